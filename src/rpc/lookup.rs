//! What the agent's own HTTP layer (forwarding, `/v1/agent/*`) reads from an in-process
//! server: where an allocation runs and how its node is reached. The agent holds it as
//! `Arc<dyn ServerLookup>` so nothing outside `src/server/` depends on the server's types.

/// Read-only lookups on the local server's current state.
pub trait ServerLookup: Send + Sync {
    /// The node an allocation is placed on, `None` for an unknown allocation.
    fn alloc_node_id(&self, alloc_id: &str) -> Option<String>;

    /// A node's advertised HTTP address (`ip:port`, empty when it advertises none), `None`
    /// for an unknown node.
    fn node_http_addr(&self, node_id: &str) -> Option<String>;

    /// The index of the latest write the state has applied.
    fn applied_index(&self) -> u64;
}
