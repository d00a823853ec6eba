//! The plan applier: commits a scheduler outcome in one durable write after re-checking, on
//! the state as it is now, that every node receiving placements still has room for them;
//! records the evaluation's outcome, its blocked and follow-up evaluations in the same write.

use std::sync::Arc;

use super::Server;
use super::blocked::Blocked;
use super::events::EventType;
use super::scheduler::{self, SchedulerOutcome};
use super::state::StateError;
use crate::structs::{EvalStatus, Evaluation, time::now_nanos};

/// Why a plan was not committed.
pub(super) enum PlanError {
    /// The state changed so that the plan no longer fits; recompute.
    Stale(String),
    /// A real fault.
    State(StateError),
}

impl Server {
    /// Commits a scheduler outcome atomically: plan, evaluation status, blocked and
    /// follow-up evaluations. Returns the blocked evaluations this one superseded, for the
    /// caller to cancel.
    pub(super) fn apply_outcome(
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
            deployment_id,
        } = out;
        let reblock = eval.status == EvalStatus::Blocked && !failed_tg_allocs.is_empty();
        let stops_something = plan.node_update.values().any(|v| !v.is_empty());
        let result = self.state.write_blocking(|txn| {
            txn.set_event_type(EventType::PlanResult);
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
            // The deployment goes first: the placements joining it are counted into it.
            if let Some(d) = plan.deployment {
                txn.put_plan_deployment(d)?;
            }
            for u in &plan.deployment_updates {
                txn.update_deployment_status(u)?;
            }
            let updates = plan.node_update.into_values().flatten();
            for a in updates.chain(plan.node_allocation.into_values().flatten()) {
                txn.put_alloc_server(a)?;
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
            // The index of the state the scheduler saw: the deployment watcher compares health
            // changes against it to know whether a scheduler has seen them yet.
            done.snapshot_index = snapshot_index;
            done.modify_time = now_nanos();
            done.queued_allocations = Some(queued_allocations);
            if !deployment_id.is_empty() {
                done.deployment_id = deployment_id;
            }
            done.failed_tg_allocs = if failed_tg_allocs.is_empty() {
                None
            } else {
                Some(failed_tg_allocs)
            };
            if reblock {
                done.status = EvalStatus::Blocked;
                done.status_description = "created to place remaining allocations".to_string();
            } else {
                done.status = EvalStatus::Complete;
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
