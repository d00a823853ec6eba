//! The plan applier's write: a scheduler outcome committed after re-checking, on the state
//! as it is now, that every node receiving placements still has room for them; with the
//! evaluation's outcome and its blocked and follow-up evaluations.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::server::events::EventType;
use crate::server::scheduler::{self, Plan};
use crate::server::state::{StateError, Txn};
use crate::structs::{AllocMetric, Allocation, EvalStatus, Evaluation};

use super::{Applied, ApplyCtx, ApplyError};

/// A scheduler outcome to commit for `eval`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlanApply {
    /// The evaluation the scheduler worked on, as it was dequeued.
    pub eval: Evaluation,
    pub plan: Plan,
    pub failed_tg_allocs: BTreeMap<String, AllocMetric>,
    pub queued_allocations: BTreeMap<String, i64>,
    pub blocked_eval: Option<Evaluation>,
    pub followup_evals: Vec<Evaluation>,
    /// The deployment the evaluation belongs to, when the scheduler made or used one.
    pub deployment_id: String,
    /// The index of the state the scheduler saw.
    pub snapshot_index: u64,
    /// The placements carry no job of their own: each takes the plan's (see
    /// [`PlanApply::share_plan_job`]).
    #[serde(default)]
    pub placements_share_job: bool,
}

impl PlanApply {
    /// Takes the plan's job out of the placements that run it, so the log carries the job
    /// once instead of once per allocation (docs/raft.md §2, `PlanPayload`); apply puts the
    /// same `Arc` back. Left as it is when a placement has no job at all, which the marker
    /// could not tell apart.
    pub fn share_plan_job(&mut self) {
        let Some(job) = self.plan.job.clone() else {
            return;
        };
        let placements = || self.plan.node_allocation.values().flatten();
        if placements().any(|a| a.job.is_none()) {
            return;
        }
        for a in self.plan.node_allocation.values_mut().flatten() {
            if a.job.as_ref().is_some_and(|j| Arc::ptr_eq(j, &job)) {
                a.job = None;
            }
        }
        self.placements_share_job = true;
    }

    /// A blocked evaluation that still could not place everything stays blocked, rather
    /// than completing and blocking a new one.
    pub fn reblocks(&self) -> bool {
        self.eval.status == EvalStatus::Blocked && !self.failed_tg_allocs.is_empty()
    }
}

/// Refused with a Conflict when a node no longer exists or no longer fits what the plan
/// puts on it: the scheduler recomputes on a fresh snapshot.
pub(super) fn apply(txn: &mut Txn, p: PlanApply, ctx: &ApplyCtx) -> Result<Applied, ApplyError> {
    let reblock = p.reblocks();
    let PlanApply {
        eval,
        plan,
        failed_tg_allocs,
        queued_allocations,
        blocked_eval,
        followup_evals,
        deployment_id,
        snapshot_index,
        placements_share_job,
    } = p;
    let mut plan = plan;
    if placements_share_job && let Some(job) = &plan.job {
        for a in plan.node_allocation.values_mut().flatten() {
            if a.job.is_none() {
                a.job = Some(job.clone());
            }
        }
    }
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
        let updated: HashSet<&str> = plan
            .node_update
            .get(node_id)
            .into_iter()
            .flatten()
            .chain(placed.iter())
            .map(|a| a.id.as_str())
            .collect();
        let existing = txn.tables().allocs_by_node(node_id);
        let mut proposed: Vec<&Allocation> = existing
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
    let mut done = eval;
    // The index of the state the scheduler saw: the deployment watcher compares health
    // changes against it to know whether a scheduler has seen them yet.
    done.snapshot_index = snapshot_index;
    done.modify_time = ctx.now;
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
    Ok(Applied::Plan {
        done,
        blocked,
        followups,
    })
}
