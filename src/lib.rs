//! yurt: a Nomad-compatible node agent, task driver runtime and bundled server.

pub mod structs;
pub mod version;
