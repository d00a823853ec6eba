//! yurt: a Nomad-compatible node agent, task driver runtime and bundled server.

pub mod client;
pub mod rpc;
pub mod server;
pub mod structs;
pub mod version;
