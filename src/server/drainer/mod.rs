//! The node drainer, a leader duty: moves allocations off draining nodes under each group's
//! `Migrate` block, forces what is left at the deadline, stops system jobs last and ends
//! the drain. Decisions come from [`plan`]; this module applies them and sleeps until the
//! state or a deadline can change them.

pub mod plan;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::Server;
use super::ops::node_admin::{EVENT_DRAIN_COMPLETE, SUBSYSTEM_DRAIN, apply_drain};
use super::state::{StateError, Table, Tables};
use crate::structs::eval::trigger;
use crate::structs::{DrainDeadline, Evaluation};

/// Node event detail Nomad adds when the deadline ended a drain.
const DETAIL_DEADLINED: &str = "deadline_reached";
/// Longest the drainer sleeps while a node drains (clock changes, missed wake-ups).
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Starts the drainer; aborting the handle stops it.
pub fn start(server: Arc<Server>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(server))
}

async fn run(server: Arc<Server>) {
    let mut nodes = server.state.watch(Table::Nodes);
    let mut allocs = server.state.watch(Table::Allocs);
    loop {
        nodes.borrow_and_update();
        allocs.borrow_and_update();
        let snap = server.state.snapshot();
        let draining = snap.nodes.values().any(|n| n.drain_strategy.is_some());
        if draining {
            let decided = plan::plan(&snap, Utc::now());
            if !decided.migrate.is_empty() || !decided.complete.is_empty() {
                match apply(&server, decided).await {
                    // The write moved the tables: look again at once.
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, "drainer write failed"),
                }
            }
        }
        let sleep = if draining {
            next_deadline(&snap).unwrap_or(MAX_SLEEP).min(MAX_SLEEP)
        } else {
            Duration::MAX
        };
        tokio::select! {
            r = nodes.changed() => if r.is_err() { return },
            r = allocs.changed(), if draining => if r.is_err() { return },
            _ = tokio::time::sleep(sleep.min(Duration::from_secs(86_400))) => {}
        }
    }
}

/// Time until the earliest drain deadline still ahead.
fn next_deadline(snap: &Tables) -> Option<Duration> {
    let now = Utc::now();
    snap.nodes
        .values()
        .filter_map(|n| match n.drain_strategy.as_ref()?.deadline_time() {
            DrainDeadline::At(t) if t > now => (t - now).to_std().ok(),
            _ => None,
        })
        .min()
        // A little past it, so the deadline has passed when the drainer looks.
        .map(|d| d + Duration::from_millis(10))
}

/// Marks the allocations for migration (one evaluation per job) and ends finished drains.
async fn apply(server: &Arc<Server>, decided: plan::DrainPlan) -> Result<bool, StateError> {
    let (_, (changed, evals)) = server
        .state
        .write(|txn| {
            let mut evals: BTreeMap<(String, String), Evaluation> = BTreeMap::new();
            let mut changed = false;
            for a in &decided.migrate {
                // Re-read: the plan came from a snapshot that may be a write behind.
                let Some(current) = txn.tables().alloc(&a.id) else {
                    continue;
                };
                if current.terminal() || current.desired_transition.migrate == Some(true) {
                    continue;
                }
                let mut updated = (*current).clone();
                updated.desired_transition.migrate = Some(true);
                txn.put_alloc_server(updated)?;
                changed = true;
                let key = (current.namespace.to_string(), current.job_id.to_string());
                if evals.contains_key(&key) {
                    continue;
                }
                let Some(job) = txn.tables().job(&key.0, &key.1) else {
                    continue;
                };
                let mut e = Server::new_eval(
                    &job.namespace,
                    &job.id,
                    &job.r#type,
                    job.priority,
                    trigger::NODE_DRAIN,
                );
                e.job_modify_index = job.job_modify_index;
                e.node_id = current.node_id.to_string();
                evals.insert(key, e);
            }
            for (node_id, deadlined) in &decided.complete {
                let Some(node) = txn.tables().node(node_id) else {
                    continue;
                };
                if node.drain_strategy.is_none() {
                    continue;
                }
                let mut node = (*node).clone();
                node.add_event(SUBSYSTEM_DRAIN, EVENT_DRAIN_COMPLETE, txn.index());
                if *deadlined && let Some(e) = node.events.as_mut().and_then(|e| e.last_mut()) {
                    e.details = Some([(DETAIL_DEADLINED.to_string(), "true".to_string())].into());
                }
                apply_drain(&mut node, None, false, None, true);
                txn.put_node(node)?;
                changed = true;
                tracing::info!(node_id, deadlined, "node drain complete");
            }
            let evals = evals
                .into_values()
                .map(|e| txn.put_eval(e))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((changed, evals))
        })
        .await?;
    server.enqueue_all(&evals);
    Ok(changed)
}
