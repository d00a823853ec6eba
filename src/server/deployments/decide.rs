//! What the deployment watcher does about one running deployment, decided from a snapshot
//! (Nomad's deployment watcher rules): fail it, promote its canaries, let failed allocations
//! be replaced, or wake the scheduler when an allocation turned healthy.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::server::scheduler::reschedule;
use crate::server::state::Tables;
use crate::structs::time::is_zero;
use crate::structs::{
    AllocClientStatus, Allocation, DESC_FAILED_ALLOCATIONS, DESC_PROGRESS_DEADLINE, Deployment,
    DeploymentState, EvalStatus, Evaluation, Job,
};

/// The watcher's decision for one deployment.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Fail it with this description; revert the job when a failing group asks for it.
    Fail {
        description: &'static str,
        rollback: bool,
    },
    /// Every group's canaries are healthy and set to promote themselves.
    Promote,
    /// Let the scheduler replace these failed allocations.
    Replace(Vec<String>),
    /// An allocation turned healthy since the scheduler last looked: evaluate the job.
    Evaluate,
    /// Nothing now.
    Wait,
}

/// The decision, and when to look again at the latest (a progress deadline).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub action: Action,
    pub wake_at: Option<DateTime<Utc>>,
}

/// The highest state index a scheduler has seen for the job (Nomad's `jobEvalStatus`): a
/// processed evaluation's snapshot index, a pending one's create index.
pub fn latest_eval_index(evals: &[Arc<Evaluation>]) -> u64 {
    evals
        .iter()
        .filter(|e| e.status != EvalStatus::Canceled)
        .map(|e| {
            if e.snapshot_index != 0 {
                e.snapshot_index
            } else {
                e.create_index
            }
        })
        .max()
        .unwrap_or(0)
}

fn health(a: &Allocation) -> Option<bool> {
    a.deployment_status.as_ref().and_then(|s| s.healthy)
}

/// Decides for the running deployment `d` at `now`.
pub fn decide(snap: &Tables, d: &Deployment, now: DateTime<Utc>) -> Decision {
    let job = snap.job(&d.namespace, &d.job_id);
    let allocs: Vec<Arc<Allocation>> = snap
        .allocs_by_job(&d.namespace, &d.job_id)
        .into_iter()
        .filter(|a| a.deployment_id == d.id)
        .collect();
    let seen = latest_eval_index(&snap.evals_by_job(&d.namespace, &d.job_id));
    let wait = |wake_at| Decision {
        action: Action::Wait,
        wake_at,
    };

    let mut evaluate = false;
    let mut replace = Vec::new();
    let mut fail = false;
    let mut rollback = false;
    for a in &allocs {
        let Some(state) = d.task_groups.get(&*a.task_group) else {
            continue;
        };
        match health(a) {
            Some(true) => {
                let changed_at = a.deployment_status.as_ref().map_or(0, |s| s.modify_index);
                evaluate |= changed_at > seen;
            }
            Some(false) if fails_early(state, job.as_deref(), a, now) => {
                fail = true;
                rollback |= state.auto_revert;
            }
            Some(false)
                if a.client_status == AllocClientStatus::Failed
                    && a.desired_transition.reschedule != Some(true)
                    && !a.server_terminal() =>
            {
                replace.push(a.id.clone());
            }
            Some(false) | None => {}
        }
    }
    if fail {
        return Decision {
            action: Action::Fail {
                description: DESC_FAILED_ALLOCATIONS,
                rollback,
            },
            wake_at: None,
        };
    }
    if auto_promote(d, &allocs) {
        return Decision {
            action: Action::Promote,
            wake_at: None,
        };
    }
    let cutoff = progress_cutoff(d, &allocs);
    if let Some(at) = cutoff
        && at <= now
        && let Some(rollback) = missed_progress(d, job.as_deref())
    {
        return Decision {
            action: Action::Fail {
                description: DESC_PROGRESS_DEADLINE,
                rollback,
            },
            wake_at: None,
        };
    }
    let wake_at = cutoff.filter(|at| *at > now);
    if !replace.is_empty() {
        return Decision {
            action: Action::Replace(replace),
            wake_at,
        };
    }
    if evaluate {
        return Decision {
            action: Action::Evaluate,
            wake_at,
        };
    }
    wait(wake_at)
}

/// Nomad's `shouldFailEarly`: an unhealthy allocation fails the deployment at once when no
/// progress deadline would give a replacement time, or when it cannot be replaced anyway.
fn fails_early(
    state: &DeploymentState,
    job: Option<&Job>,
    a: &Allocation,
    now: DateTime<Utc>,
) -> bool {
    if state.progress_deadline == 0 {
        return true;
    }
    let policy = job
        .and_then(|j| j.group(&a.task_group))
        .and_then(|g| g.reschedule_policy.as_ref());
    let Some(policy) = policy else {
        return true;
    };
    let now_ns = now.timestamp_nanos_opt().unwrap_or(0);
    !reschedule::eligible(a, policy, now_ns)
}

/// Every group with canaries promotes itself and all its canaries are healthy.
fn auto_promote(d: &Deployment, allocs: &[Arc<Allocation>]) -> bool {
    if !d.has_placed_canaries() || !d.requires_promotion() {
        return false;
    }
    d.task_groups
        .values()
        .filter(|g| g.desired_canaries > 0)
        .all(|g| {
            let placed = g.placed_canaries.as_deref().unwrap_or_default();
            let healthy = placed
                .iter()
                .filter(|id| {
                    allocs
                        .iter()
                        .any(|a| a.id == **id && health(a) == Some(true))
                })
                .count() as i64;
            g.auto_promote
                && placed.len() as i64 >= g.desired_canaries
                && healthy >= g.desired_canaries
        })
}

/// The earliest progress deadline of a group that is not done yet.
fn progress_cutoff(d: &Deployment, allocs: &[Arc<Allocation>]) -> Option<DateTime<Utc>> {
    d.task_groups
        .iter()
        .filter(|(name, g)| {
            let healthy = allocs
                .iter()
                .filter(|a| *a.task_group == ***name && !a.terminal() && health(a) == Some(true))
                .count() as i64;
            let done = (g.desired_canaries == 0 || g.promoted) && healthy >= g.desired_total;
            !done && !is_zero(&g.require_progress_by)
        })
        .map(|(_, g)| g.require_progress_by)
        .min()
}

/// Nomad's `shouldFail` at a progress deadline: Some(rollback) when a group lacks healthy
/// allocations (canaries, while they await promotion); None keeps it going (paused, or
/// waiting for a manual promotion with healthy canaries).
fn missed_progress(d: &Deployment, job: Option<&Job>) -> Option<bool> {
    let mut failed = false;
    for (name, g) in &d.task_groups {
        let enough = if g.desired_canaries > 0 && !g.promoted {
            g.healthy_allocs >= g.desired_canaries
        } else {
            g.healthy_allocs >= g.desired_total
        };
        if enough {
            continue;
        }
        failed = true;
        let revert = job
            .and_then(|j| j.group(name))
            .and_then(|tg| tg.update.as_ref())
            .is_some_and(|u| u.auto_revert);
        if revert {
            return Some(true);
        }
    }
    failed.then_some(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::{AllocDeploymentStatus, DeploymentStatus};

    fn eval(status: EvalStatus, create: u64, snapshot: u64) -> Arc<Evaluation> {
        Arc::new(Evaluation {
            status,
            create_index: create,
            snapshot_index: snapshot,
            ..Default::default()
        })
    }

    #[test]
    fn the_scheduler_has_seen_what_its_latest_evaluation_saw() {
        assert_eq!(latest_eval_index(&[]), 0);
        let evals = [
            eval(EvalStatus::Complete, 3, 9),
            eval(EvalStatus::Pending, 12, 0),
            eval(EvalStatus::Canceled, 40, 0),
        ];
        assert_eq!(latest_eval_index(&evals), 12);
    }

    fn deployment(g: DeploymentState) -> Deployment {
        let mut d = Deployment::new(&Job::default(), 50, 0);
        d.status = DeploymentStatus::Running;
        d.task_groups.insert("g".into(), g);
        d
    }

    fn alloc(id: &str, healthy: Option<bool>) -> Arc<Allocation> {
        Arc::new(Allocation {
            id: id.into(),
            task_group: "g".into(),
            deployment_status: Some(AllocDeploymentStatus {
                healthy,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[test]
    fn auto_promotion_waits_for_every_canary() {
        let g = DeploymentState {
            auto_promote: true,
            desired_canaries: 2,
            placed_canaries: Some(vec!["a".into(), "b".into()]),
            ..Default::default()
        };
        let d = deployment(g.clone());
        assert!(!auto_promote(
            &d,
            &[alloc("a", Some(true)), alloc("b", None)]
        ));
        assert!(auto_promote(
            &d,
            &[alloc("a", Some(true)), alloc("b", Some(true))]
        ));
        let manual = deployment(DeploymentState {
            auto_promote: false,
            ..g
        });
        assert!(!auto_promote(
            &manual,
            &[alloc("a", Some(true)), alloc("b", Some(true))]
        ));
    }

    #[test]
    fn a_missed_deadline_fails_unless_canaries_wait_healthy() {
        let waiting = deployment(DeploymentState {
            desired_canaries: 1,
            desired_total: 3,
            healthy_allocs: 1,
            ..Default::default()
        });
        assert_eq!(missed_progress(&waiting, None), None);
        let short = deployment(DeploymentState {
            desired_total: 3,
            healthy_allocs: 2,
            ..Default::default()
        });
        assert_eq!(missed_progress(&short, None), Some(false));
    }

    #[test]
    fn the_cutoff_ignores_done_groups_and_unstarted_clocks() {
        let at = Utc::now();
        let mut d = deployment(DeploymentState {
            desired_total: 1,
            require_progress_by: at,
            ..Default::default()
        });
        assert_eq!(progress_cutoff(&d, &[alloc("a", None)]), Some(at));
        assert_eq!(progress_cutoff(&d, &[alloc("a", Some(true))]), None);
        if let Some(g) = d.task_groups.get_mut("g") {
            g.require_progress_by = crate::structs::time::zero_time();
        }
        assert_eq!(progress_cutoff(&d, &[alloc("a", None)]), None);
    }
}
