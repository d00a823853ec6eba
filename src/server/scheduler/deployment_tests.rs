//! The generic scheduler with update strategies: deployments created, rolling updates held
//! to MaxParallel, canaries beside the old version, promotion, success.

use std::collections::BTreeMap;

use super::testing::{MemView, mock_eval, mock_job, mock_node};
use super::{SchedulerOutcome, schedule};
use crate::structs::{
    AllocClientStatus, AllocDeploymentStatus, AllocDesiredStatus, Allocation, DESC_NEWER_JOB,
    DESC_RUNNING_NEEDS_PROMOTION, DeploymentStatus, Job, UpdateStrategy,
};

fn job(version: i64, env: &str, update: UpdateStrategy) -> Job {
    let mut j = mock_job("web", 4, 100, 100);
    j.version = version;
    j.job_modify_index = version as u64 + 1;
    j.create_index = 1;
    if let Some(g) = j.task_groups.as_mut().and_then(|g| g.first_mut()) {
        g.update = Some(update);
        if let Some(t) = g.tasks.as_mut() {
            t[0].env = Some(BTreeMap::from([("V".to_string(), env.to_string())]));
        }
    }
    j
}

fn rolling(canary: i64) -> UpdateStrategy {
    UpdateStrategy {
        max_parallel: Some(1),
        canary,
        health_check: "task_states".into(),
        progress_deadline: 600_000_000_000,
        ..Default::default()
    }
}

fn run(v: &mut MemView, job: &Job) -> SchedulerOutcome {
    let out = schedule(&mock_eval(job), v).unwrap();
    v.apply_plan(&out.plan);
    out
}

fn placed(out: &SchedulerOutcome) -> Vec<&Allocation> {
    out.plan
        .node_allocation
        .values()
        .flatten()
        .filter(|a| a.desired_status == AllocDesiredStatus::Run)
        .collect()
}

fn stopped(out: &SchedulerOutcome) -> Vec<&Allocation> {
    out.plan.node_update.values().flatten().collect()
}

/// Marks every live allocation running and healthy, and the deployment's counters to match.
fn all_healthy(v: &mut MemView) {
    for a in v.all_allocs() {
        if a.terminal() {
            continue;
        }
        let mut a = (*a).clone();
        a.client_status = AllocClientStatus::Running;
        let canary = a.deployment_status.as_ref().is_some_and(|d| d.canary);
        a.deployment_status = Some(AllocDeploymentStatus {
            healthy: Some(true),
            canary,
            ..Default::default()
        });
        v.upsert_alloc(a);
    }
    if let Some(d) = v.deployment_of("default", "web") {
        let mut d = (*d).clone();
        let live: Vec<_> = v
            .all_allocs()
            .into_iter()
            .filter(|a| !a.terminal() && a.deployment_id == d.id)
            .collect();
        for g in d.task_groups.values_mut() {
            g.healthy_allocs = live.len() as i64;
            g.placed_canaries = Some(
                live.iter()
                    .filter(|a| a.deployment_status.as_ref().is_some_and(|s| s.canary))
                    .map(|a| a.id.clone())
                    .collect(),
            );
        }
        v.upsert_deployment(d);
    }
}

fn view() -> MemView {
    let mut v = MemView::new();
    for i in 0..2 {
        v.upsert_node(mock_node(&format!("n{i}"), 8000, 8000));
    }
    v
}

/// Version 0 deployed and healthy, then version 1 registered and scheduled once.
fn update_a_deployed_job(canary: i64) -> (MemView, std::sync::Arc<Job>, SchedulerOutcome) {
    let mut v = view();
    let j1 = v.upsert_job(job(0, "a", rolling(canary)));
    run(&mut v, &j1);
    all_healthy(&mut v);
    run(&mut v, &j1);
    let j2 = v.upsert_job(job(1, "b", rolling(canary)));
    let out = run(&mut v, &j2);
    (v, j2, out)
}

#[test]
fn a_first_run_places_everything_in_a_deployment_that_then_succeeds() {
    let mut v = view();
    let j1 = v.upsert_job(job(0, "a", rolling(0)));
    let out = run(&mut v, &j1);
    let d = out.plan.deployment.clone().expect("deployment created");
    assert_eq!(d.task_groups["web"].desired_total, 4);
    assert_eq!(placed(&out).len(), 4, "initial placements are not limited");
    assert!(placed(&out).iter().all(|a| a.deployment_id == d.id));
    all_healthy(&mut v);
    let out = run(&mut v, &j1);
    assert_eq!(out.plan.deployment_updates.len(), 1);
    assert_eq!(
        out.plan.deployment_updates[0].status,
        DeploymentStatus::Successful
    );
    // Nothing changes any more.
    assert!(run(&mut v, &j1).plan.is_noop());
}

#[test]
fn a_destructive_update_rolls_one_at_a_time() {
    let (mut v, j2, out) = update_a_deployed_job(0);
    let d = out.plan.deployment.clone().expect("new deployment");
    assert_eq!(d.job_version, 1);
    assert_eq!(d.task_groups["web"].desired_total, 4);
    assert_eq!(placed(&out).len(), 1);
    assert_eq!(stopped(&out).len(), 1);
    // Until the new allocation is healthy nothing else moves.
    assert!(run(&mut v, &j2).plan.is_noop());
    for step in 2..=4 {
        all_healthy(&mut v);
        let out = run(&mut v, &j2);
        assert_eq!(placed(&out).len(), 1, "step {step}");
        assert_eq!(stopped(&out).len(), 1, "step {step}");
    }
    all_healthy(&mut v);
    let out = run(&mut v, &j2);
    assert_eq!(
        out.plan.deployment_updates[0].status,
        DeploymentStatus::Successful
    );
    let live: Vec<_> = v
        .all_allocs()
        .into_iter()
        .filter(|a| !a.terminal())
        .collect();
    assert_eq!(live.len(), 4);
    assert!(live.iter().all(|a| a.job.as_ref().unwrap().version == 1));
}

#[test]
fn an_unhealthy_allocation_stops_the_rollout_and_a_new_version_cancels_it() {
    let (mut v, j2, out) = update_a_deployed_job(0);
    let mut new = placed(&out)[0].clone();
    new.deployment_status = Some(AllocDeploymentStatus {
        healthy: Some(false),
        ..Default::default()
    });
    v.upsert_alloc(new);
    assert!(run(&mut v, &j2).plan.is_noop());
    let j3 = v.upsert_job(job(2, "c", rolling(0)));
    let out = run(&mut v, &j3);
    assert_eq!(
        out.plan.deployment_updates[0].status,
        DeploymentStatus::Cancelled
    );
    assert_eq!(
        out.plan.deployment_updates[0].status_description,
        DESC_NEWER_JOB
    );
    assert_eq!(out.plan.deployment.as_ref().unwrap().job_version, 2);
}

#[test]
fn canaries_stand_beside_the_old_version_until_promoted() {
    let (mut v, j2, out) = update_a_deployed_job(1);
    let d = out.plan.deployment.clone().unwrap();
    assert_eq!(d.task_groups["web"].desired_canaries, 1);
    assert_eq!(d.status_description, DESC_RUNNING_NEEDS_PROMOTION);
    assert!(stopped(&out).is_empty(), "old allocations stay");
    let canary = placed(&out)[0].clone();
    assert!(canary.deployment_status.as_ref().unwrap().canary);
    assert_eq!(out.desired_updates["web"].canary, 1);
    // Healthy but not promoted: nothing more, and the 4 old ones still run beside it.
    all_healthy(&mut v);
    assert!(run(&mut v, &j2).plan.is_noop());
    let live = v.all_allocs().into_iter().filter(|a| !a.terminal()).count();
    assert_eq!(live, 5);
    // Promoted: the old allocation sharing the canary's name stops, the rest roll.
    let mut d = (*v.deployment_of("default", "web").unwrap()).clone();
    d.task_groups.get_mut("web").unwrap().promoted = true;
    v.upsert_deployment(d);
    let out = run(&mut v, &j2);
    let gone: Vec<_> = stopped(&out).iter().map(|a| a.name.clone()).collect();
    assert!(gone.contains(&canary.name), "{gone:?}");
    assert_eq!(placed(&out).len(), 1);
    assert_eq!(stopped(&out).len(), 2);
}

#[test]
fn without_max_parallel_everything_is_replaced_at_once() {
    let mut v = view();
    let none = UpdateStrategy::default();
    let j1 = v.upsert_job(job(0, "a", none.clone()));
    let out = run(&mut v, &j1);
    assert!(out.plan.deployment.is_none());
    let j2 = v.upsert_job(job(1, "b", none));
    let out = run(&mut v, &j2);
    assert_eq!(placed(&out).len(), 4);
    assert!(placed(&out).iter().all(|a| a.deployment_id.is_empty()));
}
