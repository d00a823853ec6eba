//! The agent: configuration (HCL files, flags, `-dev`), the entry point that runs the
//! server and/or client, and the HTTP surface that joins them (router assembly,
//! forwarding between agents, the agent-wide endpoints) — the only module that knows both
//! the server and the client.

pub mod config;
pub mod config_de;
pub mod config_file;
pub mod config_load;
pub mod config_merge;
pub mod config_tls;
pub mod dev;
mod docker;
pub mod http;
pub mod logging;
pub mod reload;
pub mod signals;
pub mod tls;

#[cfg(test)]
pub(crate) mod config_tests;

pub use config::{AgentConfig, ConfigError};
pub use config_file::ConfigFile;
pub use config_load::{ConfigFormat, Loaded, load_paths, parse_config};

mod runtime;

pub use reload::ConfigSource;
pub use runtime::{AgentError, run};
