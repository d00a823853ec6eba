//! What the drainer should do now, decided from one snapshot (Nomad's drainer rules):
//! which allocations to mark for migration and which nodes have finished draining.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::server::state::Tables;
use crate::structs::{Allocation, JOB_TYPE_BATCH, JOB_TYPE_SYSBATCH, JOB_TYPE_SYSTEM, Node};

/// The drainer's decisions for one pass.
#[derive(Debug, Default, PartialEq)]
pub struct DrainPlan {
    /// Allocations to mark `DesiredTransition.Migrate`.
    pub migrate: Vec<Arc<Allocation>>,
    /// Nodes whose drain is over, with whether the deadline ended it.
    pub complete: Vec<(String, bool)>,
}

fn job_type(a: &Allocation) -> &str {
    a.job.as_ref().map_or("", |j| j.r#type.as_str())
}

fn is_system(a: &Allocation) -> bool {
    job_type(a) == JOB_TYPE_SYSTEM
}

fn marked(a: &Allocation) -> bool {
    a.desired_transition.migrate == Some(true)
}

/// Decides the pass at `now`.
pub fn plan(tables: &Tables, now: DateTime<Utc>) -> DrainPlan {
    let mut out = DrainPlan::default();
    let draining: BTreeMap<&str, &Arc<Node>> = tables
        .nodes
        .values()
        .filter(|n| n.drain_strategy.is_some())
        .map(|n| (n.id.as_str(), n))
        .collect();
    let mut jobs: BTreeSet<(String, String)> = BTreeSet::new();
    for (id, node) in &draining {
        let Some(strategy) = node.drain_strategy.as_ref() else {
            continue;
        };
        let allocs = tables.allocs_by_node(id);
        let remaining = || {
            allocs.iter().filter(|a| {
                let kept = strategy.ignore_system_jobs && is_system(a);
                !(a.terminal() || marked(a) || kept)
            })
        };
        if strategy.deadline_passed(now) {
            out.migrate.extend(remaining().cloned());
            out.complete.push((id.to_string(), true));
            continue;
        }
        let done = allocs
            .iter()
            .filter(|a| !is_system(a))
            .all(|a| a.client_terminal());
        if done {
            // System jobs leave last, once everything else has.
            out.migrate.extend(remaining().cloned());
            out.complete.push((id.to_string(), false));
            continue;
        }
        for a in allocs.iter().filter(|a| !a.terminal() && !is_system(a)) {
            jobs.insert((a.namespace.to_string(), a.job_id.to_string()));
        }
    }
    for (ns, id) in jobs {
        migrations_for_job(tables, &draining, &ns, &id, &mut out.migrate);
    }
    out
}

/// Per task group, as many allocations on draining nodes as the group's `Migrate` block
/// lets go: no more than MaxParallel of its Count may be unhealthy or moving at once.
fn migrations_for_job(
    tables: &Tables,
    draining: &BTreeMap<&str, &Arc<Node>>,
    ns: &str,
    id: &str,
    out: &mut Vec<Arc<Allocation>>,
) {
    let Some(job) = tables.job(ns, id) else {
        return;
    };
    // Batch work is left to finish until the deadline; system jobs go last.
    if matches!(
        job.r#type.as_str(),
        JOB_TYPE_BATCH | JOB_TYPE_SYSBATCH | JOB_TYPE_SYSTEM
    ) {
        return;
    }
    let mut by_group: HashMap<&str, Vec<&Arc<Allocation>>> = HashMap::new();
    let allocs = tables.allocs_by_job(ns, id);
    for a in &allocs {
        by_group.entry(&*a.task_group).or_default().push(a);
    }
    for tg in job.groups() {
        let Some(group) = by_group.get(tg.name.as_str()) else {
            continue;
        };
        let healthy = group
            .iter()
            .filter(|a| {
                !a.terminal()
                    && !marked(a)
                    && a.deployment_status
                        .as_ref()
                        .is_some_and(|d| d.healthy.is_some())
            })
            .count() as i64;
        let drainable: Vec<&Arc<Allocation>> = group
            .iter()
            .filter(|a| {
                draining.contains_key(&*a.node_id)
                    && !a.client_terminal()
                    && !a.server_terminal()
                    && !marked(a)
            })
            .copied()
            .collect();
        let max_parallel = tg.migrate.as_ref().map_or(1, |m| m.max_parallel);
        let allowed = healthy - (tg.count - max_parallel);
        let n = usize::try_from(allowed).unwrap_or(0).min(drainable.len());
        out.extend(drainable.into_iter().take(n).cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::{
        AllocClientStatus, AllocDeploymentStatus, AllocDesiredStatus, DrainStrategy, Job,
        MigrateStrategy, TaskGroup,
    };

    fn job(count: i64, max_parallel: i64) -> Arc<Job> {
        Arc::new(Job {
            id: "web".into(),
            namespace: "default".into(),
            r#type: "service".into(),
            task_groups: Some(vec![TaskGroup {
                name: "g".into(),
                count,
                migrate: Some(MigrateStrategy {
                    max_parallel,
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        })
    }

    fn alloc(id: &str, node: &str, job: &Arc<Job>, healthy: bool) -> Allocation {
        Allocation {
            id: id.into(),
            name: format!("web.g[{id}]"),
            namespace: "default".into(),
            job_id: "web".into(),
            task_group: "g".into(),
            node_id: node.into(),
            job: Some(job.clone()),
            client_status: AllocClientStatus::Running,
            deployment_status: healthy.then(|| AllocDeploymentStatus {
                healthy: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn state(allocs: Vec<Allocation>, deadline: i64) -> Tables {
        let store = crate::server::state::StateStore::in_memory();
        let j = job(3, 1);
        store
            .write_blocking(|txn| {
                txn.put_job((*j).clone(), true)?;
                for (id, drain) in [("a", true), ("b", false)] {
                    txn.put_node(Node {
                        id: id.into(),
                        drain_strategy: drain.then(|| DrainStrategy {
                            deadline,
                            force_deadline: Utc::now() + chrono::Duration::hours(1),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })?;
                }
                for a in allocs {
                    txn.put_alloc_server(a)?;
                }
                Ok(())
            })
            .unwrap();
        (*store.snapshot()).clone()
    }

    fn ids(p: &DrainPlan) -> Vec<&str> {
        p.migrate.iter().map(|a| a.id.as_str()).collect()
    }

    #[test]
    fn migrates_max_parallel_at_a_time_and_waits_for_health() {
        let j = job(3, 1);
        let all = vec![
            alloc("1", "a", &j, true),
            alloc("2", "a", &j, true),
            alloc("3", "a", &j, true),
        ];
        let p = plan(&state(all.clone(), 3_600_000_000_000), Utc::now());
        assert_eq!(ids(&p), vec!["1"]);
        assert!(p.complete.is_empty());

        // One moving (marked, replacement not yet healthy): nothing more goes.
        let mut moving = all.clone();
        moving[0].desired_transition.migrate = Some(true);
        moving.push(alloc("4", "b", &j, false));
        assert!(
            plan(&state(moving.clone(), 3_600_000_000_000), Utc::now())
                .migrate
                .is_empty()
        );

        // The replacement is healthy and the old one stopped: the next one goes.
        moving[0].desired_status = AllocDesiredStatus::Stop;
        moving[0].client_status = AllocClientStatus::Complete;
        moving[3] = alloc("4", "b", &j, true);
        assert_eq!(
            ids(&plan(&state(moving, 3_600_000_000_000), Utc::now())),
            vec!["2"]
        );
    }

    #[test]
    fn deadline_marks_everything_and_completes() {
        let j = job(3, 1);
        let all = vec![alloc("1", "a", &j, false), alloc("2", "a", &j, false)];
        let p = plan(&state(all, -1), Utc::now());
        assert_eq!(ids(&p), vec!["1", "2"]);
        assert_eq!(p.complete, vec![("a".to_string(), true)]);
    }

    #[test]
    fn system_jobs_leave_last_unless_ignored() {
        let j = job(3, 1);
        let sys_job = Arc::new(Job {
            id: "sys".into(),
            r#type: "system".into(),
            ..Default::default()
        });
        let mut sys = alloc("s", "a", &sys_job, true);
        sys.job_id = "sys".into();
        let service = alloc("1", "a", &j, false);
        let p = plan(&state(vec![sys.clone(), service.clone()], 0), Utc::now());
        assert!(
            p.migrate.is_empty(),
            "the service allocation is still there"
        );
        assert!(p.complete.is_empty());

        let mut gone = service;
        gone.client_status = AllocClientStatus::Complete;
        let p = plan(&state(vec![sys.clone(), gone.clone()], 0), Utc::now());
        assert_eq!(ids(&p), vec!["s"]);
        assert_eq!(p.complete, vec![("a".to_string(), false)]);

        let tables = state(vec![sys, gone], 0);
        let mut node = (*tables.nodes["a"]).clone();
        if let Some(s) = node.drain_strategy.as_mut() {
            s.ignore_system_jobs = true;
        }
        let mut tables = tables;
        tables.nodes.insert("a".into(), Arc::new(node));
        let p = plan(&tables, Utc::now());
        assert!(p.migrate.is_empty(), "IgnoreSystemJobs keeps it");
        assert_eq!(p.complete, vec![("a".to_string(), false)]);
    }

    #[test]
    fn a_node_with_nothing_left_completes() {
        let j = job(3, 1);
        let mut done = alloc("1", "a", &j, true);
        done.client_status = AllocClientStatus::Complete;
        let p = plan(&state(vec![done, alloc("2", "b", &j, true)], 0), Utc::now());
        assert!(p.migrate.is_empty());
        assert_eq!(p.complete, vec![("a".to_string(), false)]);
    }
}
