//! The reconciler's deployment rules (Nomad's): which deployment an evaluation works on,
//! how many destructive updates a group may make now, when canaries are needed and when a
//! deployment is complete.

use std::sync::Arc;

use crate::structs::{
    Allocation, DESC_NEWER_JOB, DESC_STOPPED_JOB, Deployment, DeploymentState, DeploymentStatus,
    DeploymentStatusUpdate, Job, UpdateStrategy,
};

/// The deployment side of one reconciliation.
#[derive(Debug, Default)]
pub struct DeployCtx {
    /// The deployment this evaluation works on: the job's active (or failed) deployment of
    /// its current version, or one created by this evaluation.
    pub current: Option<Deployment>,
    /// A deployment of an older version (or one just cancelled): its unpromoted canaries go.
    pub old: Option<Arc<Deployment>>,
    /// `current` is new in this evaluation.
    pub created: bool,
    /// `current` came from the state and the scheduler changed a group of it.
    pub changed: bool,
    /// Placements wait (paused by the operator, or a multiregion state).
    pub paused: bool,
    /// The deployment failed: only lost allocations are replaced.
    pub failed: bool,
    /// Every group is done and healthy (only meaningful with an existing `current`).
    pub complete: bool,
    /// Status changes to commit (cancellations, success).
    pub updates: Vec<DeploymentStatusUpdate>,
}

impl DeployCtx {
    /// Nomad's `cancelUnneededServiceDeployments`: a deployment of another version (or of a
    /// stopped job) is cancelled when active and never worked on; a successful one is done.
    pub fn new(job: Option<&Job>, latest: Option<&Arc<Deployment>>) -> DeployCtx {
        let mut ctx = DeployCtx {
            complete: true,
            ..Default::default()
        };
        let Some(d) = latest else {
            return ctx;
        };
        let cancel = |desc: &str| DeploymentStatusUpdate {
            deployment_id: d.id.clone(),
            status: DeploymentStatus::Cancelled,
            status_description: desc.to_string(),
        };
        match job {
            Some(j) if !j.stopped() => {
                if !d.tracks(j) {
                    if d.active() {
                        ctx.updates.push(cancel(DESC_NEWER_JOB));
                    }
                    ctx.old = Some(d.clone());
                } else if d.status == DeploymentStatus::Successful
                    || d.status == DeploymentStatus::Cancelled
                {
                    ctx.old = Some(d.clone());
                } else {
                    ctx.paused = matches!(
                        d.status,
                        DeploymentStatus::Paused
                            | DeploymentStatus::Pending
                            | DeploymentStatus::Initializing
                    );
                    ctx.failed = d.status == DeploymentStatus::Failed;
                    ctx.current = Some((**d).clone());
                }
            }
            _ => {
                if d.active() {
                    ctx.updates.push(cancel(DESC_STOPPED_JOB));
                }
            }
        }
        ctx
    }

    /// The ID of the deployment new placements belong to ("" for none).
    pub fn current_id(&self) -> &str {
        self.current.as_ref().map_or("", |d| d.id.as_str())
    }

    /// Canaries that must stop: unpromoted ones of an older deployment, and of the current
    /// one once it failed.
    pub fn canaries_to_stop(&self) -> Vec<String> {
        let mut ids = Vec::new();
        let failed_current = self.current.as_ref().filter(|_| self.failed);
        for d in self.old.as_deref().into_iter().chain(failed_current) {
            for g in d.task_groups.values().filter(|g| !g.promoted) {
                ids.extend(g.placed_canaries.iter().flatten().cloned());
            }
        }
        ids
    }

    /// The group's state in the current deployment, and whether it already had one.
    pub fn group_state(
        &self,
        group: &str,
        strategy: Option<&UpdateStrategy>,
    ) -> (DeploymentState, bool) {
        if let Some(s) = self.current.as_ref().and_then(|d| d.task_groups.get(group)) {
            return (s.clone(), true);
        }
        let mut s = DeploymentState::default();
        if let Some(u) = strategy {
            s.auto_revert = u.auto_revert;
            s.auto_promote = u.auto_promote;
            s.progress_deadline = u.progress_deadline;
        }
        (s, false)
    }

    /// Records the group's state: attaches it to a new deployment when the group starts one
    /// (Nomad's `createDeployment`), or writes back what changed in an existing one.
    #[allow(clippy::too_many_arguments)]
    pub fn record_group(
        &mut self,
        job: &Job,
        eval_priority: i64,
        now: i64,
        group: &str,
        strategy: Option<&UpdateStrategy>,
        state: DeploymentState,
        existing: bool,
        updating_spec: bool,
        had_running: bool,
    ) {
        if existing {
            if let Some(d) = self.current.as_mut()
                && d.task_groups.get(group) != Some(&state)
            {
                d.task_groups.insert(group.to_string(), state);
                self.changed = true;
            }
            return;
        }
        if strategy.is_none() || state.desired_total == 0 || (had_running && !updating_spec) {
            return;
        }
        let d = self.current.get_or_insert_with(|| {
            self.created = true;
            Deployment::new(job, eval_priority, now)
        });
        d.task_groups.insert(group.to_string(), state);
        if !self.created {
            self.changed = true;
        }
    }
}

/// The group's update strategy when it asks for deployments (MaxParallel > 0).
pub fn strategy(update: Option<&UpdateStrategy>) -> Option<&UpdateStrategy> {
    update.filter(|u| u.max_parallel.unwrap_or(0) > 0)
}

/// Nomad's `computeUnderProvisionedBy`: how many more allocations may be replaced now.
/// `live` are the group's non-terminal allocations that stay (canaries being tested aside).
pub fn limit(
    strategy: Option<&UpdateStrategy>,
    count: usize,
    destructive: usize,
    migrate: usize,
    ctx: &DeployCtx,
    canarying: bool,
    live: &[&Arc<Allocation>],
) -> usize {
    let Some(u) = strategy else {
        return count;
    };
    if destructive + migrate == 0 {
        return count;
    }
    let max = usize::try_from(u.max_parallel.unwrap_or(0)).unwrap_or(0);
    let Some(d) = ctx.current.as_ref().filter(|_| !ctx.created) else {
        return max;
    };
    if ctx.paused || ctx.failed || canarying {
        return 0;
    }
    let mut left = max as i64;
    for a in live.iter().filter(|a| a.deployment_id == d.id) {
        match a.deployment_status.as_ref().and_then(|s| s.healthy) {
            // An unhealthy allocation stops the rollout until the deployment is decided.
            Some(false) => return 0,
            Some(true) => {}
            None => left -= 1,
        }
    }
    usize::try_from(left).unwrap_or(0)
}

/// Nomad's completion test for a group of the current deployment: nothing left to do and
/// enough healthy allocations, canaries promoted.
pub fn group_complete(state: &DeploymentState, nothing_left: bool) -> bool {
    nothing_left
        && state.healthy_allocs >= state.desired_total.max(state.desired_canaries)
        && (state.desired_canaries == 0 || state.promoted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::AllocDeploymentStatus;

    fn job(version: i64) -> Job {
        Job {
            id: "web".into(),
            namespace: "default".into(),
            version,
            create_index: 5,
            ..Default::default()
        }
    }

    fn dep(version: i64, status: DeploymentStatus) -> Arc<Deployment> {
        let mut d = Deployment::new(&job(version), 50, 1);
        d.status = status;
        Arc::new(d)
    }

    #[test]
    fn an_older_active_deployment_is_cancelled_and_a_stopped_job_cancels_its_own() {
        let ctx = DeployCtx::new(Some(&job(2)), Some(&dep(1, DeploymentStatus::Running)));
        assert!(ctx.current.is_none());
        assert_eq!(ctx.updates.len(), 1);
        assert_eq!(ctx.updates[0].status, DeploymentStatus::Cancelled);
        assert_eq!(ctx.updates[0].status_description, DESC_NEWER_JOB);
        let ctx = DeployCtx::new(Some(&job(2)), Some(&dep(1, DeploymentStatus::Failed)));
        assert!(ctx.updates.is_empty() && ctx.current.is_none());
        let mut stopped = job(1);
        stopped.stop = true;
        let ctx = DeployCtx::new(Some(&stopped), Some(&dep(1, DeploymentStatus::Paused)));
        assert_eq!(ctx.updates[0].status_description, DESC_STOPPED_JOB);
        let ctx = DeployCtx::new(Some(&job(1)), Some(&dep(1, DeploymentStatus::Paused)));
        assert!(ctx.paused && ctx.current.is_some());
        let ctx = DeployCtx::new(Some(&job(1)), Some(&dep(1, DeploymentStatus::Successful)));
        assert!(ctx.current.is_none() && ctx.updates.is_empty());
    }

    #[test]
    fn limit_counts_unhealthy_and_undecided_allocs_of_the_deployment() {
        let u = UpdateStrategy {
            max_parallel: Some(2),
            ..Default::default()
        };
        let d = dep(1, DeploymentStatus::Running);
        let ctx = DeployCtx {
            current: Some((*d).clone()),
            ..Default::default()
        };
        let alloc = |healthy: Option<bool>| {
            Arc::new(Allocation {
                deployment_id: d.id.clone(),
                deployment_status: Some(AllocDeploymentStatus {
                    healthy,
                    ..Default::default()
                }),
                ..Default::default()
            })
        };
        let (ok, pending, bad) = (alloc(Some(true)), alloc(None), alloc(Some(false)));
        assert_eq!(limit(Some(&u), 4, 3, 0, &ctx, false, &[&ok]), 2);
        assert_eq!(limit(Some(&u), 4, 3, 0, &ctx, false, &[&ok, &pending]), 1);
        assert_eq!(limit(Some(&u), 4, 3, 0, &ctx, false, &[&ok, &bad]), 0);
        assert_eq!(limit(Some(&u), 4, 3, 0, &ctx, true, &[]), 0);
        assert_eq!(limit(Some(&u), 4, 0, 0, &ctx, false, &[&pending]), 4);
        assert_eq!(limit(None, 4, 3, 0, &ctx, false, &[&pending]), 4);
    }
}
