//! The plan applier: commits a scheduler outcome as one [`PlanApply`] command (whose apply
//! re-checks that every node receiving placements still has room for them, and records the
//! evaluation's outcome, its blocked and follow-up evaluations in the same write), then
//! hands the blocked and follow-up evaluations on.

use std::sync::Arc;

use super::Server;
use super::blocked::Blocked;
use super::scheduler::SchedulerOutcome;
use super::state::{Applied, Command, PlanApply, Request, StateError};
use crate::structs::Evaluation;

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
        let stops_something = plan.node_update.values().any(|v| !v.is_empty());
        let mut commit = PlanApply {
            eval: eval.clone(),
            plan,
            failed_tg_allocs,
            queued_allocations,
            blocked_eval,
            followup_evals,
            deployment_id,
            snapshot_index,
            placements_share_job: false,
        };
        commit.share_plan_job();
        let reblock = commit.reblocks();
        let result = self
            .state
            .commit_blocking(Request::new(Command::PlanApply(Box::new(commit))));
        match result {
            Ok((
                _,
                Applied::Plan {
                    done,
                    blocked,
                    followups,
                },
            )) => {
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
            Ok((_, other)) => Err(PlanError::State(other.unexpected())),
            Err(StateError::Conflict(why)) => Err(PlanError::Stale(why)),
            Err(e) => Err(PlanError::State(e)),
        }
    }
}
