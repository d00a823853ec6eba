//! yurt: a Nomad-compatible node agent, task driver runtime and bundled server.

pub mod acl;
pub mod agent;
pub mod cli;
pub mod client;
pub mod gotemplate;
pub mod http;
pub mod jobspec;
pub mod rpc;
pub mod server;
pub mod structs;
pub mod telemetry;
pub mod tls;
pub mod version;
