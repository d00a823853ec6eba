//! The deployment watcher, a leader duty: follows every running deployment, fails it (and
//! reverts the job) on unhealthy allocations or a missed progress deadline, promotes
//! canaries that promote themselves, lets failed allocations be replaced, and wakes the
//! scheduler when an allocation turns healthy so the next batch is placed. Success is the
//! scheduler's call (its reconciler sees a group done and healthy).
//!
//! It wakes on every write to the allocation or deployment tables, and at the earliest
//! progress deadline; [`Watcher::start`]/[`Watcher::stop`] tie it to leadership.

pub mod decide;

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::Server;
use super::ops::deployments::deployment_eval;
use super::state::{Applied, Command, Request, Table};
use crate::structs::{Deployment, DeploymentStatus};
use decide::{Action, decide};

/// Stops a watcher whose table changes come faster than it can act from spinning: one
/// pass at most this often.
const MIN_PASS_INTERVAL: Duration = Duration::from_millis(20);

/// The running watcher task, if any.
#[derive(Default)]
pub struct Watcher {
    stop: Mutex<Option<watch::Sender<bool>>>,
}

impl Watcher {
    /// Starts watching (a no-op when already started).
    pub fn start(&self, server: &Arc<Server>) {
        let mut guard = self.stop.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_some() {
            return;
        }
        let (tx, rx) = watch::channel(false);
        *guard = Some(tx);
        tokio::spawn(run(Arc::downgrade(server), rx));
    }

    /// Stops watching (leadership lost, shutdown).
    pub fn stop(&self) {
        if let Some(tx) = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tx.send(true);
        }
    }
}

async fn run(server: Weak<Server>, mut stop: watch::Receiver<bool>) {
    let (mut allocs, mut deployments) = match server.upgrade() {
        Some(s) => (
            s.state.watch(Table::Allocs),
            s.state.watch(Table::Deployments),
        ),
        None => return,
    };
    loop {
        let Some(s) = server.upgrade() else {
            return;
        };
        let wake_at = pass(&s).await;
        drop(s);
        let sleep = wake_at.map(|at| {
            let left = (at - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(left)
        });
        tokio::select! {
            _ = allocs.changed() => {}
            _ = deployments.changed() => {}
            _ = async { match sleep { Some(s) => s.await, None => std::future::pending().await } } => {}
            _ = stop.changed() => return,
        }
        tokio::time::sleep(MIN_PASS_INTERVAL).await;
    }
}

/// Looks at every running deployment once; returns when the next deadline falls.
async fn pass(server: &Arc<Server>) -> Option<chrono::DateTime<Utc>> {
    let snap = server.state.snapshot();
    let now = Utc::now();
    let running: Vec<Arc<Deployment>> = snap
        .deployments
        .values()
        .filter(|d| d.status == DeploymentStatus::Running)
        .cloned()
        .collect();
    let mut next: Option<chrono::DateTime<Utc>> = None;
    for d in running {
        let decision = decide(&snap, &d, now);
        if let Some(at) = decision.wake_at {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        if let Err(e) = act(server, &d, decision.action).await {
            tracing::warn!(deployment_id = %d.id, error = %e, "deployment watcher");
        }
    }
    next
}

async fn act(
    server: &Arc<Server>,
    d: &Deployment,
    action: Action,
) -> Result<(), super::ServerError> {
    match action {
        Action::Wait => {}
        Action::Fail {
            description,
            rollback,
        } => {
            tracing::info!(deployment_id = %d.id, description, rollback, "deployment failed");
            server
                .fail_deployment_with(d, description, rollback)
                .await?;
        }
        Action::Promote => {
            server.promote_deployment(&d.id, true, &[]).await?;
        }
        Action::Replace(ids) => {
            let job = server.state.snapshot().job(&d.namespace, &d.job_id);
            let ev = deployment_eval(d, job.as_deref());
            let (_, applied) = server
                .state
                .commit(Request::new(Command::DeploymentReschedule {
                    alloc_ids: ids,
                    eval: ev,
                }))
                .await?;
            if let Some(stored) = applied.into_deployment_eval()? {
                server.broker.enqueue((*stored).clone());
            }
        }
        Action::Evaluate => {
            let job = server.state.snapshot().job(&d.namespace, &d.job_id);
            let ev = deployment_eval(d, job.as_deref());
            let (_, applied) = server
                .state
                .commit(Request::new(Command::EvalUpdate { evals: vec![ev] }))
                .await?;
            match applied {
                Applied::Evals(stored) => server.enqueue_all(&stored),
                other => return Err(other.unexpected().into()),
            }
        }
    }
    Ok(())
}
