//! Deployment (and, outside deployments, migration) health from task states
//! (`health_check = "task_states"`) or from task states and the checks of the allocation's
//! native services (`"checks"`): healthy once every task has run, and every check has
//! passed, for MinHealthyTime; unhealthy when a task fails or the HealthyDeadline passes
//! first.

use std::time::{Duration, Instant};

use chrono::Utc;

use crate::structs::{
    AllocDeploymentStatus, Allocation, JOB_TYPE_SERVICE, JOB_TYPE_SYSTEM, TaskState, TaskStateName,
};

use super::super::task_runner::Stage;

/// Watches one allocation's health during a deployment.
#[derive(Debug)]
pub struct HealthTracker {
    min_healthy: Duration,
    deadline: Instant,
    healthy_since: Option<Instant>,
    result: Option<bool>,
    canary: bool,
    /// `health_check = "checks"`: the service checks must pass too.
    uses_checks: bool,
}

impl HealthTracker {
    /// A tracker when the allocation belongs to a deployment that judges health from the
    /// client; `None` otherwise.
    pub fn for_alloc(alloc: &Allocation, now: Instant) -> Option<Self> {
        let job = alloc.job.as_ref()?;
        let group = alloc.group()?;
        // Outside a deployment, a service allocation's health is judged under its group's
        // Migrate block, which is what the server's drainer waits for (as Nomad does).
        let (check, min_healthy, deadline) = if alloc.deployment_id.is_empty() {
            if job.r#type != JOB_TYPE_SERVICE {
                return None;
            }
            let m = group.migrate.as_ref()?;
            (&m.health_check, m.min_healthy_time, m.healthy_deadline)
        } else {
            if !matches!(job.r#type.as_str(), JOB_TYPE_SERVICE | JOB_TYPE_SYSTEM) {
                return None;
            }
            let u = group.update.as_ref()?;
            (&u.health_check, u.min_healthy_time, u.healthy_deadline)
        };
        if check == "manual" {
            return None;
        }
        let nanos = |n: i64| Duration::from_nanos(u64::try_from(n).unwrap_or(0));
        let already = alloc.deployment_status.as_ref().and_then(|d| d.healthy);
        Some(HealthTracker {
            min_healthy: nanos(min_healthy),
            deadline: now + nanos(deadline).max(Duration::from_secs(1)),
            healthy_since: None,
            result: already,
            canary: alloc.deployment_status.as_ref().is_some_and(|d| d.canary),
            uses_checks: check == "checks",
        })
    }

    /// Looks at the task states and whether every check passes; returns when to look again
    /// if undecided.
    pub fn observe(
        &mut self,
        tasks: &[(Stage, TaskState)],
        checks_passing: bool,
        now: Instant,
    ) -> Option<Duration> {
        if self.result.is_some() {
            return None;
        }
        if tasks.iter().any(|(_, st)| st.failed) || now >= self.deadline {
            self.result = Some(false);
            return None;
        }
        let ready = tasks.iter().all(|(stage, st)| match stage {
            Stage::Poststop => true,
            Stage::PrestartEphemeral | Stage::PoststartEphemeral => {
                st.state == TaskStateName::Dead && !st.failed
            }
            _ => st.state == TaskStateName::Running,
        }) && (checks_passing || !self.uses_checks);
        if !ready {
            self.healthy_since = None;
            return Some(self.deadline - now);
        }
        let since = *self.healthy_since.get_or_insert(now);
        if now.duration_since(since) >= self.min_healthy {
            self.result = Some(true);
            return None;
        }
        Some((since + self.min_healthy).min(self.deadline) - now)
    }

    /// The deployment status to report, once decided.
    pub fn status(&self) -> Option<AllocDeploymentStatus> {
        self.result.map(|healthy| AllocDeploymentStatus {
            healthy: Some(healthy),
            timestamp: Some(Utc::now()),
            canary: self.canary,
            modify_index: 0,
        })
    }

    /// Whether health has been decided.
    pub fn decided(&self) -> bool {
        self.result.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::TaskStateName;
    use crate::structs::{Job, TaskGroup, UpdateStrategy};
    use std::sync::Arc;

    fn alloc() -> Allocation {
        Allocation {
            deployment_id: "d1".into(),
            task_group: "g".into(),
            job: Some(Arc::new(Job {
                r#type: "service".into(),
                task_groups: Some(vec![TaskGroup {
                    name: "g".into(),
                    update: Some(UpdateStrategy {
                        health_check: "task_states".into(),
                        min_healthy_time: 2_000_000_000,
                        healthy_deadline: 10_000_000_000,
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn st(state: crate::structs::TaskStateName, failed: bool) -> TaskState {
        TaskState {
            state,
            failed,
            ..Default::default()
        }
    }

    #[test]
    fn healthy_after_min_healthy_time() {
        let t0 = Instant::now();
        let mut h = HealthTracker::for_alloc(&alloc(), t0).unwrap();
        assert!(
            h.observe(
                &[(Stage::Main, st(TaskStateName::Pending, false))],
                true,
                t0
            )
            .is_some()
        );
        let wait = h
            .observe(
                &[(Stage::Main, st(TaskStateName::Running, false))],
                true,
                t0,
            )
            .unwrap();
        assert_eq!(wait, Duration::from_secs(2));
        assert!(h.status().is_none());
        h.observe(
            &[(Stage::Main, st(TaskStateName::Running, false))],
            true,
            t0 + Duration::from_secs(2),
        );
        assert_eq!(h.status().unwrap().healthy, Some(true));
    }

    #[test]
    fn unhealthy_on_failure_or_deadline() {
        let t0 = Instant::now();
        let mut h = HealthTracker::for_alloc(&alloc(), t0).unwrap();
        h.observe(&[(Stage::Main, st(TaskStateName::Pending, true))], true, t0);
        assert_eq!(h.status().unwrap().healthy, Some(false));
        let mut h = HealthTracker::for_alloc(&alloc(), t0).unwrap();
        h.observe(
            &[(Stage::Main, st(TaskStateName::Pending, false))],
            true,
            t0 + Duration::from_secs(11),
        );
        assert_eq!(h.status().unwrap().healthy, Some(false));
        let mut no_deploy = alloc();
        no_deploy.deployment_id.clear();
        assert!(HealthTracker::for_alloc(&no_deploy, t0).is_none());
    }

    #[test]
    fn outside_a_deployment_the_migrate_block_judges() {
        let t0 = Instant::now();
        let mut a = alloc();
        a.deployment_id.clear();
        let mut job = (**a.job.as_ref().unwrap()).clone();
        if let Some(g) = job.task_groups.as_mut().and_then(|g| g.first_mut()) {
            g.migrate = Some(crate::structs::MigrateStrategy {
                max_parallel: 1,
                health_check: "task_states".into(),
                min_healthy_time: 1_000_000_000,
                healthy_deadline: 60_000_000_000,
            });
        }
        a.job = Some(Arc::new(job));
        let mut h = HealthTracker::for_alloc(&a, t0).unwrap();
        let running = [(Stage::Main, st(TaskStateName::Running, false))];
        assert!(h.observe(&running, true, t0).is_some());
        assert!(
            h.observe(&running, true, t0 + Duration::from_millis(1100))
                .is_none()
        );
        assert_eq!(h.status().unwrap().healthy, Some(true));
    }

    #[test]
    fn checks_mode_waits_for_passing_checks() {
        let t0 = Instant::now();
        let mut a = alloc();
        let mut job = (**a.job.as_ref().unwrap()).clone();
        if let Some(u) = job
            .task_groups
            .as_mut()
            .and_then(|g| g.first_mut())
            .and_then(|g| g.update.as_mut())
        {
            u.health_check = "checks".into();
        }
        a.job = Some(Arc::new(job));
        let mut h = HealthTracker::for_alloc(&a, t0).unwrap();
        let running = [(Stage::Main, st(TaskStateName::Running, false))];
        h.observe(&running, false, t0);
        h.observe(&running, false, t0 + Duration::from_secs(3));
        assert!(h.status().is_none(), "failing checks keep it undecided");
        h.observe(&running, true, t0 + Duration::from_secs(3));
        h.observe(&running, true, t0 + Duration::from_secs(5));
        assert_eq!(h.status().unwrap().healthy, Some(true));
        // Task-states mode ignores the checks.
        let mut plain = HealthTracker::for_alloc(&alloc(), t0).unwrap();
        plain.observe(&running, false, t0);
        plain.observe(&running, false, t0 + Duration::from_secs(2));
        assert_eq!(plain.status().unwrap().healthy, Some(true));
    }
}
