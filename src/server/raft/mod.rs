//! Raft for several servers (docs/raft.md): the pieces that keep openraft's types out of the
//! rest of the server. Each is generic over openraft's `RaftTypeConfig` where it touches
//! application data, so it serves the server's own type config and the tests' alike.

pub mod committer;
mod files;
pub mod http;
pub mod log_store;
pub mod migrate;
pub mod network;
pub mod snapshot;
pub mod state_machine;
#[cfg(test)]
pub(crate) mod testing;
pub mod types;
