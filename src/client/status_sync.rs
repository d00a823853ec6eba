//! Batches allocation status updates to the servers: latest update per alloc wins, status
//! changes go out on the next tick, everything else every few ticks, and nothing identical
//! to what the server already acknowledged is sent again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::rpc::{RpcError, ServerApi, UpdateAllocsRequest};
use crate::structs::{AllocClientStatus, Allocation};

use super::node_state::NodeState;
use super::util::Backoff;

#[derive(Debug, Clone)]
struct Pending {
    alloc: Allocation,
    urgent: bool,
}

#[derive(Debug, Default)]
struct Queues {
    pending: BTreeMap<String, Pending>,
    acked: HashMap<String, Allocation>,
}

/// How often the status sync loop sends, and how it backs off.
#[derive(Debug, Clone, Copy)]
pub struct SyncTiming {
    /// Tick interval; status changes go out on the next tick.
    pub tick: Duration,
    /// Other changes go out every this many ticks.
    pub batch_ticks: u32,
    /// `(min, max)` retry delay after a failed send.
    pub backoff: (Duration, Duration),
}

/// The client's outgoing allocation status queue.
#[derive(Debug, Clone, Default)]
pub struct StatusSync {
    queues: Arc<Mutex<Queues>>,
    wake: Arc<Notify>,
}

/// The fields of an allocation the client owns; the rest is the server's.
pub fn strip(alloc: &Allocation) -> Allocation {
    Allocation {
        id: alloc.id.clone(),
        node_id: alloc.node_id.clone(),
        task_states: alloc.task_states.clone(),
        client_status: alloc.client_status,
        client_description: alloc.client_description.clone(),
        deployment_status: alloc.deployment_status.clone(),
        network_status: alloc.network_status.clone(),
        ..Default::default()
    }
}

fn same_client_state(a: &Allocation, b: &Allocation) -> bool {
    a.client_status == b.client_status
        && a.client_description == b.client_description
        && a.deployment_status == b.deployment_status
        && a.task_states == b.task_states
        && a.network_status == b.network_status
}

impl StatusSync {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues the client's view of an allocation; replaces any queued update for it.
    pub fn push(&self, update: Allocation) {
        let update = strip(&update);
        let mut q = self.lock();
        let urgent = match q.acked.get(&update.id) {
            Some(acked) if same_client_state(acked, &update) => {
                q.pending.remove(&update.id);
                return;
            }
            Some(acked) => acked.client_status != update.client_status,
            // The server created the allocation as pending; anything else is news.
            None => update.client_status != AllocClientStatus::Pending,
        };
        q.pending.insert(
            update.id.clone(),
            Pending {
                alloc: update,
                urgent,
            },
        );
        drop(q);
        if urgent {
            self.wake.notify_one();
        }
    }

    /// Drops everything known about a destroyed allocation.
    pub fn forget(&self, alloc_id: &str) {
        let mut q = self.lock();
        q.pending.remove(alloc_id);
        q.acked.remove(alloc_id);
    }

    /// The last state the server acknowledged for an allocation.
    pub fn acknowledged(&self, alloc_id: &str) -> Option<Allocation> {
        self.lock().acked.get(alloc_id).cloned()
    }

    /// How many updates wait to be sent.
    pub fn pending_len(&self) -> usize {
        self.lock().pending.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self, all: bool) -> Vec<Allocation> {
        let mut q = self.lock();
        let ids: Vec<String> = q
            .pending
            .iter()
            .filter(|(_, p)| all || p.urgent)
            .map(|(id, _)| id.clone())
            .collect();
        ids.iter()
            .filter_map(|id| q.pending.remove(id))
            .map(|p| p.alloc)
            .collect()
    }

    fn acked(&self, sent: Vec<Allocation>) {
        let mut q = self.lock();
        for a in sent {
            q.acked.insert(a.id.clone(), a);
        }
    }

    fn requeue(&self, failed: Vec<Allocation>) {
        let mut q = self.lock();
        for a in failed {
            // A newer update queued meanwhile wins; it carries everything the old one did.
            q.pending.entry(a.id.clone()).or_insert(Pending {
                alloc: a,
                urgent: true,
            });
        }
    }

    /// Sends queued updates until `shutdown` flips; waits for `contacted` before the first
    /// send so restored allocations do not report before the servers were heard from.
    pub async fn run(
        self,
        server: Arc<dyn ServerApi>,
        node: NodeState,
        mut contacted: watch::Receiver<bool>,
        timing: SyncTiming,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let SyncTiming {
            tick,
            batch_ticks,
            backoff,
        } = timing;
        tokio::select! {
            _ = contacted.wait_for(|c| *c) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let mut backoff = Backoff::new(backoff.0, backoff.1);
        let batch_ticks = batch_ticks.max(1);
        let mut ticks: u32 = 0;
        let mut next_tick = tokio::time::Instant::now() + tick;
        let mut backing_off = false;
        loop {
            // A ClientStatus change is sent as soon as it is queued (a `running` that waits
            // for the next tick costs up to a tick of job start latency); the tick still
            // paces everything else. While backing off after an error, only the tick sends.
            let all = tokio::select! {
                _ = tokio::time::sleep_until(next_tick) => {
                    next_tick = tokio::time::Instant::now() + tick;
                    backing_off = false;
                    ticks = ticks.wrapping_add(1);
                    ticks.is_multiple_of(batch_ticks)
                }
                _ = self.wake.notified(), if !backing_off => false,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            let batch = self.take(all);
            if batch.is_empty() {
                continue;
            }
            let (node_id, secret_id) = node.identity();
            let req = UpdateAllocsRequest {
                node_id,
                secret_id,
                alloc: batch.clone(),
            };
            let started = std::time::Instant::now();
            let sent = server.update_allocs(req).await;
            tracing::debug!(target: "yurt::latency", step = "status sent", alloc_id = %batch[0].id, status = %batch[0].client_status, count = batch.len(), us = started.elapsed().as_micros() as u64);
            match sent {
                Ok(_) => {
                    backoff.reset();
                    self.acked(batch);
                }
                Err(RpcError::BadRequest(e)) => {
                    // Retrying a refused batch cannot succeed; the next change resends.
                    tracing::error!(error = %e, count = batch.len(), "server refused allocation status updates");
                }
                Err(e) => {
                    if matches!(e, RpcError::NodeNotFound) {
                        node.request_register(true);
                    }
                    tracing::warn!(error = %e, count = batch.len(), "updating allocation status failed; will retry");
                    self.requeue(batch);
                    next_tick = tokio::time::Instant::now() + backoff.next_delay();
                    backing_off = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::{AllocClientStatus, TaskState};

    fn update(id: &str, status: AllocClientStatus, events: usize) -> Allocation {
        let mut ts = TaskState::default();
        for _ in 0..events {
            ts.push_event(crate::structs::TaskEvent::new("Started"));
        }
        Allocation {
            id: id.into(),
            client_status: status,
            task_states: Some(BTreeMap::from([("t".to_string(), ts)])),
            job: Some(Default::default()),
            ..Default::default()
        }
    }

    #[test]
    fn latest_wins_urgency_and_dedup() {
        let s = StatusSync::new();
        s.push(update("a", AllocClientStatus::Pending, 1));
        assert!(s.take(false).is_empty(), "pending is not urgent");
        let running = update("a", AllocClientStatus::Running, 2);
        s.push(running.clone());
        let sent = s.take(false);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].client_status, AllocClientStatus::Running);
        assert!(sent[0].job.is_none(), "updates are stripped");
        s.acked(sent);

        // Identical to the acknowledged state: dropped.
        s.push(running);
        assert_eq!(s.pending_len(), 0);
        // Only task events changed: not urgent, goes with the full batch.
        s.push(update("a", AllocClientStatus::Running, 3));
        assert!(s.take(false).is_empty());
        let full = s.take(true);
        assert_eq!(full.len(), 1);
        // A failed send is re-queued, but a newer update wins.
        s.push(update("a", AllocClientStatus::Failed, 4));
        s.requeue(full);
        let next = s.take(true);
        assert_eq!(next[0].client_status, AllocClientStatus::Failed);
    }
}
