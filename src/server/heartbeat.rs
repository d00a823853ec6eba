//! Node heartbeat timers: a node that stays silent past its TTL plus the grace period is
//! marked `down`, and its allocations are rescheduled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use tokio::task::JoinHandle;

use super::Server;

/// Nomad's `failover_heartbeat_ttl`: the time every known node gets to heartbeat after a
/// server (re)starts or takes over.
pub const DEFAULT_FAILOVER_TTL: Duration = Duration::from_secs(300);

/// One timer per node.
pub struct Heartbeats {
    min_ttl: Duration,
    grace: Duration,
    timers: Mutex<HashMap<String, JoinHandle<()>>>,
}

impl Heartbeats {
    /// Timers with the configured minimum TTL and grace.
    pub fn new(min_ttl: Duration, grace: Duration) -> Self {
        Heartbeats {
            min_ttl,
            grace,
            timers: Mutex::new(HashMap::new()),
        }
    }

    /// The TTL handed to a node: at least the minimum, growing with the cluster so heartbeats
    /// stay near 50 per second, plus a random stagger of up to the same amount.
    pub fn ttl(&self, num_nodes: usize) -> Duration {
        let base = self
            .min_ttl
            .max(Duration::from_secs_f64(num_nodes as f64 / 50.0));
        let stagger = rand::rng().random_range(0.0..=1.0) * base.as_secs_f64();
        base + Duration::from_secs_f64(stagger)
    }

    /// (Re)arms a node's timer and returns the TTL the node was given.
    pub fn reset(&self, server: &Arc<Server>, node_id: &str, num_nodes: usize) -> Duration {
        let ttl = self.ttl(num_nodes);
        self.arm(server, node_id, ttl + self.grace);
        ttl
    }

    /// (Re)arms a node's timer to expire after `deadline`.
    pub fn arm(&self, server: &Arc<Server>, node_id: &str, deadline: Duration) {
        let server = server.clone();
        let id = node_id.to_string();
        let handle = tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            // Detached: a heartbeat that re-arms (aborts) this timer while the expiry is
            // being written must not cut it off between the durable write and handing its
            // evaluations to the broker.
            tokio::spawn(async move { server.node_heartbeat_expired(&id).await });
        });
        let mut timers = match self.timers.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(old) = timers.insert(node_id.to_string(), handle) {
            old.abort();
        }
    }

    /// Nodes with a running heartbeat timer (Nomad's `nomad.nomad.heartbeat.active`).
    pub fn active(&self) -> usize {
        match self.timers.lock() {
            Ok(g) => g.len(),
            Err(p) => p.into_inner().len(),
        }
    }

    /// Stops tracking a node.
    pub fn clear(&self, node_id: &str) {
        let mut timers = match self.timers.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(old) = timers.remove(node_id) {
            old.abort();
        }
    }
}
