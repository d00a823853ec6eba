//! The node as the client last fingerprinted it, and whether the servers know it: shared by
//! registration, heartbeat, the alloc watcher and status sync.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use crate::structs::Node;

#[derive(Debug)]
struct Inner {
    node: RwLock<Node>,
    registered: watch::Sender<bool>,
    reregister: Notify,
    ttl: Mutex<Duration>,
    /// Since when heartbeats fail (None while they get answered): the client has lost
    /// contact with the servers since then.
    failing_since: Mutex<Option<Instant>>,
}

/// Shared node identity and registration state.
#[derive(Debug, Clone)]
pub struct NodeState {
    inner: Arc<Inner>,
}

impl NodeState {
    /// Wraps the fingerprinted node; it starts unregistered.
    pub fn new(node: Node) -> Self {
        NodeState {
            inner: Arc::new(Inner {
                node: RwLock::new(node),
                registered: watch::Sender::new(false),
                reregister: Notify::new(),
                ttl: Mutex::new(Duration::from_secs(10)),
                failing_since: Mutex::new(None),
            }),
        }
    }

    /// A copy of the node.
    pub fn node(&self) -> Node {
        self.inner
            .node
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `(NodeID, SecretID)`.
    pub fn identity(&self) -> (String, String) {
        let n = self.inner.node.read().unwrap_or_else(|p| p.into_inner());
        (n.id.clone(), n.secret_id.clone())
    }

    /// Changes the node; returns whether anything changed.
    pub fn update_node(&self, f: impl FnOnce(&mut Node)) -> bool {
        let mut n = self.inner.node.write().unwrap_or_else(|p| p.into_inner());
        let before = n.clone();
        f(&mut n);
        *n != before
    }

    /// The servers accepted the node; `ttl` is how soon they expect a heartbeat.
    pub fn set_registered(&self, ttl: Duration) {
        *self.inner.ttl.lock().unwrap_or_else(|p| p.into_inner()) = ttl;
        self.inner.registered.send_replace(true);
    }

    /// The heartbeat TTL the servers last returned.
    pub fn ttl(&self) -> Duration {
        *self.inner.ttl.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A server answered a heartbeat.
    pub fn heartbeat_ok(&self) {
        *self
            .inner
            .failing_since
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// A heartbeat got no answer; contact counts as lost from the first such failure.
    pub fn heartbeat_failed(&self) {
        self.inner
            .failing_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(Instant::now);
    }

    /// How long the servers have not answered heartbeats (zero while they do).
    pub fn out_of_contact(&self) -> Duration {
        self.inner
            .failing_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// Whether the node is currently registered.
    pub fn is_registered(&self) -> bool {
        *self.inner.registered.borrow()
    }

    /// Asks the registration loop to register again (node changed or the server forgot it).
    pub fn request_register(&self, forgotten: bool) {
        if forgotten {
            self.inner.registered.send_replace(false);
        }
        self.inner.reregister.notify_one();
    }

    /// Resolves when a (re-)registration was requested.
    pub async fn register_requested(&self) {
        self.inner.reregister.notified().await;
    }

    /// Resolves once the node is registered.
    pub async fn wait_registered(&self) {
        let mut rx = self.inner.registered.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }
}
