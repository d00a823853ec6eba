//! What garbage collection may remove, decided from one snapshot with Nomad's rules: terminal
//! evaluations and their allocations, dead jobs (batch ones on their own, others once
//! stopped), finished deployments and down nodes, each once older than its threshold.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::server::state::Tables;
use crate::structs::{
    AllocClientStatus, AllocDesiredStatus, Allocation, DeploymentStatus, Evaluation,
    JOB_TYPE_BATCH, JOB_TYPE_SYSBATCH, Job, JobStatus, NodeStatus,
};

/// How old each kind of object must be before it is collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Thresholds {
    pub eval: Duration,
    pub batch_eval: Duration,
    pub job: Duration,
    pub deployment: Duration,
    pub node: Duration,
}

impl Thresholds {
    /// What a forced collection uses: anything eligible at all goes (Nomad uses 1 ms).
    pub fn forced() -> Self {
        let ms = Duration::from_millis(1);
        Thresholds {
            eval: ms,
            batch_eval: ms,
            job: ms,
            deployment: ms,
            node: ms,
        }
    }
}

/// What one collection removes.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Garbage {
    /// `(namespace, id)` of jobs to remove with their versions.
    pub jobs: Vec<(String, String)>,
    pub evals: BTreeSet<String>,
    pub allocs: BTreeSet<String>,
    pub deployments: Vec<String>,
    pub nodes: Vec<String>,
}

impl Garbage {
    /// True when there is nothing to remove.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
            && self.evals.is_empty()
            && self.allocs.is_empty()
            && self.deployments.is_empty()
            && self.nodes.is_empty()
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Decides what to collect at `now` (Unix ns).
pub fn collect(tables: &Tables, now: i64, t: &Thresholds) -> Garbage {
    let mut by_eval: HashMap<&str, Vec<&Arc<Allocation>>> = HashMap::new();
    for a in tables.allocs.values() {
        by_eval.entry(&a.eval_id).or_default().push(a);
    }
    let ctx = Ctx {
        tables,
        now,
        by_eval,
    };
    let mut out = Garbage::default();
    ctx.jobs(now.saturating_sub(nanos(t.job)), &mut out);
    ctx.evals(
        now.saturating_sub(nanos(t.eval)),
        now.saturating_sub(nanos(t.batch_eval)),
        &mut out,
    );
    ctx.deployments(now.saturating_sub(nanos(t.deployment)), &mut out);
    ctx.nodes(now.saturating_sub(nanos(t.node)), &mut out);
    out
}

struct Ctx<'a> {
    tables: &'a Tables,
    now: i64,
    by_eval: HashMap<&'a str, Vec<&'a Arc<Allocation>>>,
}

/// Whether a job may be collected at all (Nomad's `jobIsGCable`).
fn job_gcable(job: &Job) -> bool {
    if job.is_parent() {
        return job.stop;
    }
    if job.status != Some(JobStatus::Dead) {
        return false;
    }
    job.stop || matches!(job.r#type.as_str(), JOB_TYPE_BATCH | JOB_TYPE_SYSBATCH)
}

impl Ctx<'_> {
    fn jobs(&self, cutoff: i64, out: &mut Garbage) {
        'jobs: for job in self.tables.jobs.values() {
            if !job_gcable(job) || job.submit_time > cutoff {
                continue;
            }
            let mut evals = Vec::new();
            let mut allocs = Vec::new();
            for e in self.tables.evals_by_job(&job.namespace, &job.id) {
                match self.eval_garbage(&e, cutoff, true) {
                    Some(a) => {
                        evals.push(e.id.clone());
                        allocs.extend(a);
                    }
                    None => continue 'jobs,
                }
            }
            // Allocations whose evaluation is already gone go with the job too.
            for a in self.tables.allocs_by_job(&job.namespace, &job.id) {
                if !self.alloc_eligible(&a, Some(job), cutoff) {
                    continue 'jobs;
                }
                allocs.push(a.id.clone());
            }
            out.jobs.push((job.namespace.clone(), job.id.clone()));
            out.evals.extend(evals);
            out.allocs.extend(allocs);
        }
    }

    fn evals(&self, cutoff: i64, batch_cutoff: i64, out: &mut Garbage) {
        for e in self.tables.evals.values() {
            let cut = if e.r#type == JOB_TYPE_BATCH {
                batch_cutoff
            } else {
                cutoff
            };
            if let Some(allocs) = self.eval_garbage(e, cut, false) {
                out.evals.insert(e.id.clone());
                out.allocs.extend(allocs);
            } else if e.r#type == JOB_TYPE_BATCH {
                // A live batch job keeps its evaluation but sheds old versions' allocations.
                out.allocs.extend(self.old_batch_allocs(e, cut));
            }
        }
    }

    /// The allocations to remove with an evaluation when the evaluation itself can go.
    fn eval_garbage(&self, e: &Evaluation, cutoff: i64, allow_batch: bool) -> Option<Vec<String>> {
        if !e.terminal() || e.modify_time > cutoff {
            return None;
        }
        let job = self.tables.job(&e.namespace, &e.job_id);
        let allocs = self
            .by_eval
            .get(e.id.as_str())
            .map_or(&[][..], Vec::as_slice);
        if e.r#type == JOB_TYPE_BATCH
            && let Some(j) = job.as_ref()
            && !(j.status == Some(JobStatus::Dead) && (j.stop || allow_batch))
        {
            let old = self.old_batch_allocs(e, cutoff);
            return (old.len() == allocs.len()).then_some(old);
        }
        let mut ids = Vec::with_capacity(allocs.len());
        for a in allocs {
            if !self.alloc_eligible(a, job.as_deref(), cutoff) {
                return None;
            }
            ids.push(a.id.clone());
        }
        Some(ids)
    }

    /// Terminal allocations of a batch evaluation placed before the job's current version.
    fn old_batch_allocs(&self, e: &Evaluation, cutoff: i64) -> Vec<String> {
        let Some(job) = self.tables.job(&e.namespace, &e.job_id) else {
            return Vec::new();
        };
        self.by_eval
            .get(e.id.as_str())
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter(|a| {
                a.create_index < job.job_modify_index && a.modify_time <= cutoff && a.terminal()
            })
            .map(|a| a.id.clone())
            .collect()
    }

    /// Nomad's `allocGCEligible`: terminal, old enough, and not still due a reschedule.
    fn alloc_eligible(&self, a: &Allocation, job: Option<&Job>, cutoff: i64) -> bool {
        if !a.terminal() || a.modify_time > cutoff {
            return false;
        }
        if a.client_status == AllocClientStatus::Running {
            return false;
        }
        let Some(job) = job else { return true };
        if job.stop || job.status == Some(JobStatus::Dead) {
            return true;
        }
        if a.desired_status == AllocDesiredStatus::Stop
            || a.client_status != AllocClientStatus::Failed
        {
            return true;
        }
        let Some(policy) = job
            .group(&a.task_group)
            .and_then(|g| g.reschedule_policy.as_ref())
        else {
            return true;
        };
        if (!policy.unlimited && policy.attempts == 0) || !a.next_allocation.is_empty() {
            return true;
        }
        if policy.unlimited {
            return false;
        }
        let last = a
            .reschedule_tracker
            .as_ref()
            .and_then(|t| t.events.as_ref())
            .and_then(|e| e.last());
        match last {
            Some(ev) => self.now - ev.reschedule_time > policy.interval,
            None => false,
        }
    }

    fn deployments(&self, cutoff: i64, out: &mut Garbage) {
        let mut live: BTreeSet<&str> = BTreeSet::new();
        for a in self.tables.allocs.values() {
            if !a.terminal() && !a.deployment_id.is_empty() {
                live.insert(&a.deployment_id);
            }
        }
        for d in self.tables.deployments.values() {
            let finished = matches!(
                d.status,
                DeploymentStatus::Successful
                    | DeploymentStatus::Failed
                    | DeploymentStatus::Cancelled
            );
            if finished && d.modify_time <= cutoff && !live.contains(d.id.as_str()) {
                out.deployments.push(d.id.clone());
            }
        }
    }

    fn nodes(&self, cutoff: i64, out: &mut Garbage) {
        let cutoff_secs = cutoff / 1_000_000_000;
        for n in self.tables.nodes.values() {
            if n.status != NodeStatus::Down || n.status_updated_at > cutoff_secs {
                continue;
            }
            if self
                .tables
                .allocs_by_node(&n.id)
                .iter()
                .all(|a| a.terminal())
            {
                out.nodes.push(n.id.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::state::StateStore;
    use crate::structs::{EvalStatus, time::now_nanos};

    fn store_with_batch_job(status: JobStatus, alloc_status: AllocClientStatus) -> StateStore {
        let store = StateStore::in_memory();
        let old = now_nanos() - 3_600_000_000_000;
        store
            .write_blocking(|txn| {
                txn.put_job(
                    Job {
                        id: "b".into(),
                        namespace: "default".into(),
                        r#type: "batch".into(),
                        submit_time: old,
                        status: Some(status),
                        ..Default::default()
                    },
                    true,
                )?;
                txn.put_eval(Evaluation {
                    id: "e1".into(),
                    namespace: "default".into(),
                    job_id: "b".into(),
                    r#type: "batch".into(),
                    status: EvalStatus::Complete,
                    modify_time: old,
                    ..Default::default()
                })?;
                txn.put_alloc_server(Allocation {
                    id: "a1".into(),
                    namespace: "default".into(),
                    job_id: "b".into(),
                    eval_id: "e1".into(),
                    node_id: "n1".into(),
                    client_status: alloc_status,
                    modify_time: old,
                    ..Default::default()
                })?;
                Ok(())
            })
            .unwrap();
        store
    }

    #[test]
    fn a_dead_batch_job_goes_after_its_threshold() {
        let store = store_with_batch_job(JobStatus::Dead, AllocClientStatus::Complete);
        let snap = store.snapshot();
        let hour = Duration::from_secs(3600);
        let t = Thresholds {
            eval: hour,
            batch_eval: Duration::from_secs(86_400),
            job: Duration::from_secs(4 * 3600),
            deployment: hour,
            node: Duration::from_secs(86_400),
        };
        assert!(collect(&snap, now_nanos(), &t).is_empty(), "too young");
        let g = collect(&snap, now_nanos(), &Thresholds::forced());
        assert_eq!(g.jobs, vec![("default".to_string(), "b".to_string())]);
        assert!(g.evals.contains("e1"));
        assert!(g.allocs.contains("a1"));
    }

    #[test]
    fn down_nodes_go_once_nothing_runs_on_them() {
        let store = StateStore::in_memory();
        let day_ago = now_nanos() / 1_000_000_000 - 86_400 - 10;
        store
            .write_blocking(|txn| {
                for (id, status) in [
                    ("down-empty", NodeStatus::Down),
                    ("down-busy", NodeStatus::Down),
                    ("ready", NodeStatus::Ready),
                ] {
                    txn.put_node(crate::structs::Node {
                        id: id.into(),
                        status,
                        status_updated_at: day_ago,
                        ..Default::default()
                    })?;
                }
                txn.put_alloc_server(Allocation {
                    id: "a".into(),
                    node_id: "down-busy".into(),
                    client_status: AllocClientStatus::Running,
                    ..Default::default()
                })?;
                Ok(())
            })
            .unwrap();
        let defaults = crate::server::gc::GcConfig::default().thresholds;
        let g = collect(&store.snapshot(), now_nanos(), &defaults);
        assert_eq!(g.nodes, vec!["down-empty".to_string()]);
    }

    #[test]
    fn a_running_job_and_its_allocs_stay() {
        let store = store_with_batch_job(JobStatus::Running, AllocClientStatus::Running);
        let g = collect(&store.snapshot(), now_nanos(), &Thresholds::forced());
        assert!(g.is_empty(), "{g:?}");
    }
}
