//! Heartbeats: tells the servers the node is alive well within the TTL they return, and
//! re-registers when a server no longer knows the node.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::rpc::{NodeStatusRequest, RpcError, ServerApi};
use crate::structs::NodeStatus;

use super::node_state::NodeState;
use super::util::{Backoff, jitter};

/// The shortest gap between heartbeats, whatever the TTL says.
const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// The wait before the next heartbeat: about half the TTL, jittered so nodes spread out.
pub fn interval(ttl: Duration) -> Duration {
    jitter(ttl / 2, 0.2).max(MIN_INTERVAL)
}

/// Heartbeats until `shutdown` flips.
pub async fn run(
    server: Arc<dyn ServerApi>,
    node: NodeState,
    backoff: (Duration, Duration),
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(backoff.0, backoff.1);
    // The first heartbeat goes out as soon as the node is registered: it is what moves the
    // node from `initializing` to `ready`, and nothing is placed before that.
    let mut delay = Some(Duration::ZERO);
    loop {
        tokio::select! {
            _ = node.wait_registered() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let wait = delay.take().unwrap_or_else(|| interval(node.ttl()));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if !node.is_registered() {
            continue;
        }
        let (node_id, secret_id) = node.identity();
        let req = NodeStatusRequest {
            node_id,
            secret_id,
            status: NodeStatus::Ready.to_string(),
        };
        match server.update_status(req).await {
            Ok(resp) => {
                backoff.reset();
                if let Some(ttl) = u64::try_from(resp.heartbeat_ttl)
                    .ok()
                    .filter(|n| *n > 0)
                    .map(Duration::from_nanos)
                {
                    node.set_registered(ttl);
                }
            }
            Err(RpcError::NodeNotFound) => {
                tracing::warn!("server does not know this node; re-registering");
                node.request_register(true);
                delay = Some(Duration::ZERO);
            }
            Err(e) => {
                let d = backoff.next_delay().min(node.ttl() / 2).max(MIN_INTERVAL);
                tracing::warn!(error = %e, retry_in = ?d, "heartbeat failed");
                delay = Some(d);
            }
        }
    }
}
