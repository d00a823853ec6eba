//! Scheduler workers and the plan applier: take an evaluation from the broker, run the
//! scheduler on a snapshot, commit the plan after re-checking that it still fits, and record
//! the evaluation's outcome — all in one durable write.

use std::sync::Arc;

use super::Server;
use super::blocked::Blocked;
use super::scheduler::{self, SchedulerOutcome};
use super::state::StateError;
use crate::structs::{
    EVAL_STATUS_BLOCKED, EVAL_STATUS_COMPLETE, EVAL_STATUS_FAILED, Evaluation, time::now_nanos,
};

/// How many times a plan is recomputed when the state moved under it.
const MAX_PLAN_ATTEMPTS: usize = 5;

/// Runs one worker forever.
pub async fn run(server: Arc<Server>) {
    loop {
        let eval = server.broker.dequeue().await;
        tracing::debug!(target: "yurt::latency", step = "eval dequeued", job_id = %eval.job_id);
        let s = server.clone();
        let e = eval.clone();
        let superseded = match tokio::task::spawn_blocking(move || s.process_eval(e)).await {
            Ok(superseded) => superseded,
            Err(e) => {
                tracing::error!(eval_id = %eval.id, error = %e, "scheduler worker panicked");
                Vec::new()
            }
        };
        let mut cancelled = server.broker.ack(&eval);
        cancelled.extend(superseded);
        server.cancel_evals(cancelled).await;
    }
}

/// Why a plan was not committed.
enum PlanError {
    /// The state changed so that the plan no longer fits; recompute.
    Stale(String),
    /// A real fault.
    State(StateError),
}

impl Server {
    /// Schedules one evaluation to completion (or failure), committing its plan; runs on a
    /// blocking thread. Returns the blocked evaluations the outcome superseded, for the
    /// caller to cancel.
    pub fn process_eval(self: &Arc<Self>, eval: Evaluation) -> Vec<Evaluation> {
        for attempt in 0..MAX_PLAN_ATTEMPTS {
            let snap = self.state.snapshot();
            // The broker may hold a copy older than the stored one (e.g. a re-queued blocked
            // eval); skip evaluations that are already finished.
            if snap.eval(&eval.id).is_some_and(|e| e.terminal()) {
                return Vec::new();
            }
            let started = std::time::Instant::now();
            let outcome = match scheduler::schedule(&eval, snap.as_ref()) {
                Ok(o) => o,
                Err(e) => {
                    self.fail_eval(&eval, &e.to_string());
                    return Vec::new();
                }
            };
            tracing::debug!(target: "yurt::latency", step = "scheduled", job_id = %eval.job_id, us = started.elapsed().as_micros() as u64);
            let started = std::time::Instant::now();
            let applied = self.apply_outcome(&eval, outcome, snap.index);
            tracing::debug!(target: "yurt::latency", step = "plan committed", job_id = %eval.job_id, us = started.elapsed().as_micros() as u64);
            match applied {
                Ok(superseded) => return superseded,
                Err(PlanError::Stale(why)) => {
                    tracing::debug!(eval_id = %eval.id, attempt, why, "plan refused, recomputing");
                }
                Err(PlanError::State(e)) => {
                    tracing::error!(eval_id = %eval.id, error = %e, "committing plan");
                    self.fail_eval(&eval, &e.to_string());
                    return Vec::new();
                }
            }
        }
        self.fail_eval(&eval, "maximum attempts reached (5)");
        Vec::new()
    }

    fn fail_eval(&self, eval: &Evaluation, why: &str) {
        let mut e = eval.clone();
        e.status = EVAL_STATUS_FAILED.to_string();
        e.status_description = why.to_string();
        e.modify_time = now_nanos();
        if let Err(err) = self.state.write_blocking(|txn| txn.put_eval(e)) {
            tracing::error!(eval_id = %eval.id, error = %err, "recording failed evaluation");
        }
    }

    /// Commits a scheduler outcome atomically: plan, evaluation status, blocked and
    /// follow-up evaluations. Returns the blocked evaluation this one replaced, if any.
    fn apply_outcome(
        self: &Arc<Self>,
        eval: &Evaluation,
        out: SchedulerOutcome,
        snapshot_index: u64,
    ) -> Result<Vec<Evaluation>, PlanError> {
        let SchedulerOutcome {
            plan,
            failed_tg_allocs,
            queued_allocations,
            blocked_eval,
            followup_evals,
            // Annotations only matter to a job plan (a dry run), never to a commit.
            desired_updates: _,
        } = out;
        let reblock = eval.status == EVAL_STATUS_BLOCKED && !failed_tg_allocs.is_empty();
        let stops_something = plan.node_update.values().any(|v| !v.is_empty());
        let result = self.state.write_blocking(|txn| {
            // Re-check every node that receives placements against the current state.
            for (node_id, placed) in &plan.node_allocation {
                if placed.is_empty() {
                    continue;
                }
                let Some(node) = txn.tables().node(node_id) else {
                    return Err(StateError::Conflict(format!(
                        "node {node_id} no longer exists"
                    )));
                };
                let updated: std::collections::HashSet<&str> = plan
                    .node_update
                    .get(node_id)
                    .into_iter()
                    .flatten()
                    .chain(placed.iter())
                    .map(|a| a.id.as_str())
                    .collect();
                let existing = txn.tables().allocs_by_node(node_id);
                let mut proposed: Vec<&crate::structs::Allocation> = existing
                    .iter()
                    .filter(|a| !a.terminal() && !updated.contains(a.id.as_str()))
                    .map(|a| a.as_ref())
                    .collect();
                proposed.extend(placed.iter().filter(|a| !a.terminal()));
                if let Err(dim) = scheduler::fit::allocs_fit(&node, &proposed) {
                    return Err(StateError::Conflict(format!("node {node_id}: {dim}")));
                }
            }
            let updates = plan.node_update.into_values().flatten();
            for a in updates.chain(plan.node_allocation.into_values().flatten()) {
                txn.put_alloc_server(a)?;
            }
            if let Some(d) = plan.deployment {
                txn.put_deployment(d)?;
            }
            let mut followups = Vec::new();
            for f in followup_evals {
                followups.push(txn.put_eval(f)?);
            }
            let blocked = match blocked_eval {
                Some(b) if !reblock => Some(txn.put_eval(b)?),
                _ => None,
            };
            let mut done = eval.clone();
            done.snapshot_index = txn.tables().index;
            done.modify_time = now_nanos();
            done.queued_allocations = Some(queued_allocations);
            done.failed_tg_allocs = if failed_tg_allocs.is_empty() {
                None
            } else {
                Some(failed_tg_allocs)
            };
            if reblock {
                done.status = EVAL_STATUS_BLOCKED.to_string();
                done.status_description = "created to place remaining allocations".to_string();
            } else {
                done.status = EVAL_STATUS_COMPLETE.to_string();
                if let Some(b) = &blocked {
                    done.blocked_eval = b.id.clone();
                }
                if let Some(f) = followups.first() {
                    done.next_eval = f.id.clone();
                }
            }
            let done = txn.put_eval(done)?;
            Ok((done, blocked, followups))
        });
        match result {
            Ok((_, (done, blocked, followups))) => {
                let to_block = if reblock { Some(done) } else { blocked };
                let mut superseded = Vec::new();
                if let Some(b) = to_block {
                    match self.blocked.block_at((*b).clone(), snapshot_index) {
                        Blocked::Waiting {
                            replaced: Some(old),
                        } => superseded.push(old),
                        Blocked::Waiting { replaced: None } => {}
                        Blocked::RetryNow(e) => self.broker.enqueue(e),
                    }
                }
                for f in followups {
                    self.broker.enqueue((*f).clone());
                }
                if stops_something {
                    self.unblock();
                }
                Ok(superseded)
            }
            Err(StateError::Conflict(why)) => Err(PlanError::Stale(why)),
            Err(e) => Err(PlanError::State(e)),
        }
    }
}
