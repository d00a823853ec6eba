//! The agent: configuration (HCL files, flags, `-dev`) and the entry point that runs the
//! server and/or client.

pub mod config;
pub mod config_de;
pub mod config_file;
pub mod config_load;
pub mod config_merge;
pub mod dev;
pub mod logging;

#[cfg(test)]
pub(crate) mod config_tests;

pub use config::{AgentConfig, ConfigError};
pub use config_file::ConfigFile;
pub use config_load::{ConfigFormat, Loaded, load_paths, parse_config};

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Placeholder until the integrator wires the server, client and HTTP listener.
    #[error("agent runtime not wired yet")]
    NotWired,
}

/// Runs the agent until shutdown.
///
/// TEMPORARY: only sets up logging and reports the configuration; the integrator replaces
/// the body with the real runtime (state store, scheduler, client, HTTP listener).
pub async fn run(config: AgentConfig) -> Result<(), AgentError> {
    logging::init(&config.log_level, config.log_json);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        name = %config.name,
        region = %config.region,
        datacenter = %config.datacenter,
        http = %config.http_addr(),
        rpc = %config.rpc_addr(),
        server = config.server_enabled(),
        client = config.client_enabled(),
        data_dir = %config.data_dir().display(),
        dev = config.dev_mode,
        "agent configuration loaded"
    );
    Err(AgentError::NotWired)
}
