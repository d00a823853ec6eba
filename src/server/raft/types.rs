//! The server's Raft type config (docs/raft.md §1): what the log carries (a [`Proposal`] of
//! state-store requests), what applying it answers ([`Answers`]), and who the servers are
//! ([`ServerPeer`], numbered by the ID kept in `raft/server-id`).

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use super::files::write_file;
use super::network::{PeerAddress, base_url};
pub use crate::server::state::Answer;
use crate::server::state::{Request, StateError};

/// One log entry's application data: requests applied in order at the entry's index.
/// Requests are shared, not copied: the log store keeps the entry in memory until it is
/// flushed, and the state machine takes the request out when it is the last holder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposal {
    pub reqs: Vec<Arc<Request>>,
}

/// What applying a proposal answered, one per request in order.
///
/// Answers go only to the proposer on the same server, which is waiting for them;
/// openraft never sends a state machine's response over the network, but its type config
/// requires serde for every type. They serialize as nothing and read back as no answers.
#[derive(Debug, Default)]
pub struct Answers(pub Vec<Answer>);

impl Serialize for Answers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for Answers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Answers(Vec::new()))
    }
}

/// A server as the Raft membership names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerPeer {
    /// The server's ID (the UUID in `raft/server-id`).
    pub id: String,
    pub name: String,
    /// Where its RPC listener (which serves the Raft routes) is reached.
    pub rpc_addr: String,
    pub datacenter: String,
}

impl PeerAddress for ServerPeer {
    fn rpc_base_url(&self) -> String {
        base_url(&self.rpc_addr)
    }
}

openraft::declare_raft_types!(
    /// The server's Raft types.
    pub TypeConfig:
        D = Proposal,
        R = Answers,
        NodeId = u64,
        Node = ServerPeer,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The file under `data_dir/server/raft` holding this server's ID.
pub const SERVER_ID_FILE: &str = "server-id";

/// The Raft node ID of a server ID: its high 64 bits. A UUID v4 has random bits there, so
/// two servers of one cluster do not collide in practice.
pub fn node_id(id: &Uuid) -> u64 {
    (id.as_u128() >> 64) as u64
}

/// This server's ID: read from `dir/server-id`, or made and written (0600) at first start.
pub fn server_id(dir: &Path) -> Result<Uuid, StateError> {
    let path = dir.join(SERVER_ID_FILE);
    let fail = |e: &dyn std::fmt::Display| StateError::Storage(format!("{}: {e}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(text) => Uuid::parse_str(text.trim()).map_err(|e| fail(&e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = Uuid::new_v4();
            write_file(&path, id.to_string().as_bytes())?;
            Ok(id)
        }
        Err(e) => Err(fail(&e)),
    }
}
