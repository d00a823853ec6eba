//! The client agent: fingerprints the machine, registers and heartbeats with the servers,
//! watches the node's allocations and runs them.

pub mod alloc_runner;
pub mod allocdir;
pub mod config;
pub mod fingerprint;
pub mod node_state;
pub mod state_db;
pub mod status_sync;
pub mod task_runner;
pub mod taskenv;
pub mod util;

#[cfg(test)]
pub(crate) mod testutil;
