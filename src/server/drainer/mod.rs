//! The node drainer, a leader duty: moves allocations off draining nodes under each group's
//! `Migrate` block, forces what is left at the deadline, stops system jobs last and ends
//! the drain. Decisions come from [`plan`]; this module applies them and sleeps until the
//! state or a deadline can change them.

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::Server;
use super::state::{Applied, Command, DrainBatch, Request, StateError, Table, Tables};
use crate::structs::DrainDeadline;
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
    let complete = decided.complete.clone();
    let batch = DrainBatch {
        migrate: decided.migrate.iter().map(|a| a.id.clone()).collect(),
        complete: decided.complete,
    };
    let (_, applied) = server
        .state
        .commit(Request::new(Command::DrainBatch(batch)))
        .await?;
    let (changed, evals) = match applied {
        Applied::Drained { changed, evals } => (changed, evals),
        other => return Err(other.unexpected()),
    };
    for (node_id, deadlined) in &complete {
        tracing::info!(node_id, deadlined, "node drain complete");
    }
    server.enqueue_all(&evals);
    Ok(changed)
}
