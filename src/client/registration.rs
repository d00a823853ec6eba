//! Registers the node with the servers, retrying with a bounded, jittered backoff while
//! they are away, and again whenever the node changes or a server forgets it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::rpc::{RpcError, ServerApi};

use super::node_state::NodeState;
use super::util::Backoff;

/// The TTL assumed when a server returns none.
const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// Registers once now, then again on every request, until `shutdown` flips.
pub async fn run(
    server: Arc<dyn ServerApi>,
    node: NodeState,
    backoff: (Duration, Duration),
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(backoff.0, backoff.1);
    loop {
        // Register until it succeeds.
        loop {
            match server.register_node(node.node()).await {
                Ok(resp) => {
                    let ttl = u64::try_from(resp.heartbeat_ttl)
                        .ok()
                        .filter(|n| *n > 0)
                        .map_or(DEFAULT_TTL, Duration::from_nanos);
                    tracing::info!(node_id = %node.identity().0, ?ttl, "node registered");
                    node.set_registered(ttl);
                    backoff.reset();
                    break;
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    match &e {
                        RpcError::Unavailable(_) => {
                            tracing::warn!(error = %e, ?delay, "servers unreachable; retrying registration")
                        }
                        _ => tracing::error!(error = %e, ?delay, "registration refused; retrying"),
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.wait_for(|s| *s) => return,
                    }
                }
            }
        }
        tokio::select! {
            _ = node.register_requested() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}
