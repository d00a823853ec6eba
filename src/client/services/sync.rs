//! Keeps the servers' registrations of this node's services equal to what its allocations
//! want: alloc runners say what each allocation should have registered now, and one loop
//! sends the difference from what the servers acknowledged, retrying until it lands.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::rpc::{RpcError, ServerApi, ServiceKey, ServiceSyncRequest};
use crate::structs::service::ServiceRegistration;

use super::super::node_state::NodeState;
use super::super::util::Backoff;

#[derive(Debug, Default)]
struct State {
    /// What each allocation should have registered, by registration ID.
    wanted: BTreeMap<String, BTreeMap<String, ServiceRegistration>>,
    /// What the servers acknowledged, the same way.
    acked: BTreeMap<String, BTreeMap<String, ServiceRegistration>>,
}

/// The client's service registrations. Cheap to clone; every clone is the same queue.
#[derive(Debug, Clone, Default)]
pub struct ServiceSync {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
}

impl ServiceSync {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `regs` what allocation `alloc_id` has registered (empty: nothing).
    pub fn set(&self, alloc_id: &str, regs: Vec<ServiceRegistration>) {
        let regs: BTreeMap<String, ServiceRegistration> =
            regs.into_iter().map(|r| (r.id.clone(), r)).collect();
        let mut st = self.lock();
        let unchanged = match st.wanted.get(alloc_id) {
            Some(w) => *w == regs,
            None => regs.is_empty() && !st.acked.contains_key(alloc_id),
        };
        if unchanged {
            return;
        }
        st.wanted.insert(alloc_id.to_string(), regs);
        drop(st);
        self.wake.notify_one();
    }

    /// The registrations the servers acknowledged for an allocation.
    pub fn registered(&self, alloc_id: &str) -> Vec<ServiceRegistration> {
        self.lock()
            .acked
            .get(alloc_id)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// What to send to bring the servers to what is wanted: registrations to store (new or
    /// changed) and keys to remove, stamped with the node's ID and datacenter.
    fn diff(&self, node_id: &str, datacenter: &str) -> (Vec<ServiceRegistration>, Vec<ServiceKey>) {
        let st = self.lock();
        let mut upsert = Vec::new();
        let mut delete = Vec::new();
        let empty = BTreeMap::new();
        for (alloc, wanted) in &st.wanted {
            let acked = st.acked.get(alloc).unwrap_or(&empty);
            for (id, reg) in wanted {
                let mut reg = reg.clone();
                reg.node_id = node_id.to_string();
                reg.datacenter = datacenter.to_string();
                if acked.get(id) != Some(&reg) {
                    upsert.push(reg);
                }
            }
            for (id, reg) in acked {
                if !wanted.contains_key(id) {
                    delete.push(ServiceKey {
                        namespace: reg.namespace.clone(),
                        id: id.clone(),
                    });
                }
            }
        }
        (upsert, delete)
    }

    /// Records that the servers hold `upsert` and no longer hold `delete`; allocations left
    /// with nothing wanted or held are forgotten.
    fn acknowledge(&self, upsert: Vec<ServiceRegistration>, delete: &[ServiceKey]) {
        let mut st = self.lock();
        for reg in upsert {
            st.acked
                .entry(reg.alloc_id.clone())
                .or_default()
                .insert(reg.id.clone(), reg);
        }
        for key in delete {
            for held in st.acked.values_mut() {
                held.remove(&key.id);
            }
        }
        st.acked.retain(|_, held| !held.is_empty());
        let State { wanted, acked } = &mut *st;
        wanted.retain(|alloc, w| !w.is_empty() || acked.contains_key(alloc));
    }

    /// Sends differences until `shutdown` flips, starting once the servers were contacted.
    pub async fn run(
        self,
        server: Arc<dyn ServerApi>,
        node: NodeState,
        mut contacted: watch::Receiver<bool>,
        backoff: (Duration, Duration),
        mut shutdown: watch::Receiver<bool>,
    ) {
        tokio::select! {
            _ = contacted.wait_for(|c| *c) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let mut backoff = Backoff::new(backoff.0, backoff.1);
        let mut retry_at: Option<tokio::time::Instant> = None;
        loop {
            let retry = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.wake.notified(), if retry_at.is_none() => {}
                _ = retry => retry_at = None,
                _ = shutdown.wait_for(|s| *s) => return,
            }
            let (node_id, secret_id) = node.identity();
            let datacenter = node.node().datacenter;
            let (upsert, delete) = self.diff(&node_id, &datacenter);
            if upsert.is_empty() && delete.is_empty() {
                continue;
            }
            let req = ServiceSyncRequest {
                node_id,
                secret_id,
                upsert: upsert.clone(),
                delete: delete.clone(),
            };
            match server.sync_services(req).await {
                Ok(_) => {
                    backoff.reset();
                    self.acknowledge(upsert, &delete);
                    // Something may have changed while the request was out.
                    self.wake.notify_one();
                }
                Err(e) => {
                    if matches!(e, RpcError::NodeNotFound) {
                        node.request_register(true);
                    }
                    tracing::warn!(error = %e, upsert = upsert.len(), delete = delete.len(), "syncing service registrations failed; will retry");
                    retry_at = Some(tokio::time::Instant::now() + backoff.next_delay());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(alloc: &str, id: &str, port: i64) -> ServiceRegistration {
        ServiceRegistration {
            id: id.into(),
            alloc_id: alloc.into(),
            namespace: "default".into(),
            service_name: "web".into(),
            port,
            ..Default::default()
        }
    }

    #[test]
    fn sends_only_differences_and_forgets_finished_allocations() {
        let s = ServiceSync::new();
        s.set("a1", vec![reg("a1", "s1", 1), reg("a1", "s2", 2)]);
        let (up, del) = s.diff("n1", "dc1");
        assert_eq!(up.len(), 2);
        assert!(del.is_empty());
        assert!(
            up.iter()
                .all(|r| r.node_id == "n1" && r.datacenter == "dc1")
        );
        s.acknowledge(up, &del);
        assert_eq!(
            s.diff("n1", "dc1"),
            (vec![], vec![]),
            "nothing left to send"
        );

        s.set("a1", vec![reg("a1", "s1", 1), reg("a1", "s2", 3)]);
        let (up, del) = s.diff("n1", "dc1");
        assert_eq!(up.len(), 1, "only the changed port is sent");
        assert_eq!(up[0].port, 3);
        s.acknowledge(up, &del);

        s.set("a1", vec![]);
        let (up, del) = s.diff("n1", "dc1");
        assert!(up.is_empty());
        assert_eq!(del.len(), 2);
        s.acknowledge(up, &del);
        assert!(s.lock().wanted.is_empty() && s.lock().acked.is_empty());
        assert!(s.registered("a1").is_empty());
    }

    #[test]
    fn an_allocation_that_never_registered_sends_nothing() {
        let s = ServiceSync::new();
        s.set("a1", vec![]);
        assert_eq!(s.diff("n1", "dc1"), (vec![], vec![]));
        assert!(s.lock().wanted.is_empty());
    }
}
