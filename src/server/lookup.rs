//! The server's answers to the agent's [`ServerLookup`], read from the current snapshot.

use super::Server;
use crate::rpc::ServerLookup;

impl ServerLookup for Server {
    fn alloc_node_id(&self, alloc_id: &str) -> Option<String> {
        self.state
            .snapshot()
            .alloc(alloc_id)
            .map(|a| a.node_id.to_string())
    }

    fn node_http_addr(&self, node_id: &str) -> Option<String> {
        self.state
            .snapshot()
            .node(node_id)
            .map(|n| n.http_addr.clone())
    }

    fn applied_index(&self) -> u64 {
        self.state.snapshot().index
    }
}
