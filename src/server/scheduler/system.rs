//! The system and sysbatch scheduler: one allocation of every group on every feasible node.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::feasible::{GroupFeasibility, datacenter_matches, node_pool_matches, node_serves_job};
use super::generic::{inplace_update, job_allocs, new_plan, push};
use super::reconcile::{
    DESC_JOB_STOPPED, DESC_LOST, DESC_MIGRATING, DESC_NOT_NEEDED, DESC_UPDATING, Update,
    update_kind,
};
use super::stack::{Cluster, GroupStack, NewAlloc, Selection, stopped_copy};
use super::{SchedulerOutcome, SchedulerView};
use crate::structs::{
    AllocClientStatus, AllocMetric, Allocation, Evaluation, Job, Node, NodeStatus, TaskGroup,
    alloc_name,
};

/// Schedules a system (or, with `sysbatch`, a sysbatch) job at time `now` (Unix ns).
pub fn schedule(
    eval: &Evaluation,
    view: &dyn SchedulerView,
    sysbatch: bool,
    now: i64,
) -> SchedulerOutcome {
    let job = view.job(&eval.namespace, &eval.job_id);
    let allocs = job_allocs(view, eval);
    let mut out = SchedulerOutcome {
        plan: new_plan(eval, job.as_ref()),
        ..Default::default()
    };
    let mut node_cache: HashMap<String, Option<Arc<Node>>> = HashMap::new();
    let mut node_of = |id: &str| {
        node_cache
            .entry(id.to_string())
            .or_insert_with(|| view.node(id))
            .clone()
    };
    let lost = |n: &Option<Arc<Node>>| n.as_ref().is_none_or(|n| n.status == NodeStatus::Down);

    let Some(job) = job.filter(|j| !j.stopped()) else {
        for a in allocs.iter().filter(|a| !a.terminal()) {
            let stop = if lost(&node_of(&a.node_id)) {
                stopped_copy(a, DESC_LOST, Some(AllocClientStatus::Lost), now)
            } else {
                stopped_copy(a, DESC_JOB_STOPPED, None, now)
            };
            push(&mut out.plan.node_update, stop);
        }
        return out;
    };

    let mut feas: HashMap<&str, GroupFeasibility> = job
        .groups()
        .iter()
        .map(|tg| (tg.name.as_str(), GroupFeasibility::new(&job, tg)))
        .collect();
    let mut stopping = HashSet::new();
    // (group, node) pairs that already have their allocation.
    let mut covered: HashSet<(String, String)> = HashSet::new();
    let mut destructive: Vec<Arc<Allocation>> = Vec::new();
    let mut ordered: Vec<&Arc<Allocation>> = allocs.iter().collect();
    // Newest first, so a duplicate on a node stops the older allocation.
    ordered.sort_by_key(|a| std::cmp::Reverse(a.create_index));
    for a in ordered {
        let key = (a.task_group.to_string(), a.node_id.to_string());
        if a.terminal() {
            // A sysbatch allocation that finished has done its work on that node.
            if sysbatch && a.client_status == AllocClientStatus::Complete {
                covered.insert(key);
            }
            continue;
        }
        let node = node_of(&a.node_id);
        let mut stop = |desc, cs| {
            stopping.insert(a.id.clone());
            push(&mut out.plan.node_update, stopped_copy(a, desc, cs, now));
        };
        if lost(&node) {
            stop(DESC_LOST, Some(AllocClientStatus::Lost));
            continue;
        }
        if a.desired_transition.migrate == Some(true) {
            // The drainer's last step: system allocations leave a draining node.
            stop(DESC_MIGRATING, None);
            continue;
        }
        let (Some(node), Some(tg)) = (node, job.group(&a.task_group)) else {
            stop(DESC_NOT_NEEDED, None);
            continue;
        };
        let still_fits = datacenter_matches(job.datacenters.as_deref(), &node.datacenter)
            && node_pool_matches(&job.node_pool, &node.node_pool)
            && feas
                .get_mut(tg.name.as_str())
                .is_some_and(|f| f.check(&node).is_ok());
        if !still_fits || covered.contains(&key) {
            stop(DESC_NOT_NEEDED, None);
            continue;
        }
        covered.insert(key);
        match update_kind(a, &job, tg) {
            Update::None => {}
            Update::InPlace => {
                if let Some(u) = inplace_update(&job, a, Some(&node), eval, now) {
                    push(&mut out.plan.node_allocation, u);
                }
            }
            Update::Destructive => destructive.push(a.clone()),
        }
    }

    let mut cl = Cluster::new(view, &job, &allocs, stopping);
    for tg in job.groups() {
        let mut gs = GroupStack::new(&cl, &job, tg, false);
        let mut failures = Failures::default();
        for a in destructive.iter().filter(|a| *a.task_group == *tg.name) {
            let Some(idx) = cl.node_idx(&a.node_id) else {
                continue;
            };
            let released = gs.release(&mut cl, a);
            let sel = gs.select_node(&mut cl, idx);
            if sel.choice.is_none() && released {
                gs.unrelease(&mut cl, a);
            }
            if place(
                &mut out,
                &mut cl,
                &mut gs,
                sel,
                eval,
                &job,
                tg,
                Some(a),
                now,
                &mut failures,
            ) {
                push(
                    &mut out.plan.node_update,
                    stopped_copy(a, DESC_UPDATING, None, now),
                );
            }
        }
        for idx in 0..cl.nodes.len() {
            let node = cl.nodes[idx].clone();
            if !node_serves_job(&job, &node)
                || covered.contains(&(tg.name.clone(), node.id.clone()))
                || !gs.statically_feasible(&cl, idx)
            {
                continue;
            }
            let sel = gs.select_node(&mut cl, idx);
            place(
                &mut out,
                &mut cl,
                &mut gs,
                sel,
                eval,
                &job,
                tg,
                None,
                now,
                &mut failures,
            );
        }
        out.queued_allocations
            .insert(tg.name.clone(), failures.count);
        if let Some(m) = failures.metric {
            out.failed_tg_allocs.insert(tg.name.clone(), m);
        }
    }
    out
}

/// The first failure of a group and how many there were.
#[derive(Default)]
struct Failures {
    metric: Option<AllocMetric>,
    count: i64,
}

/// Turns a selection into a placement or a recorded failure; true when placed.
#[allow(clippy::too_many_arguments)]
fn place(
    out: &mut SchedulerOutcome,
    cl: &mut Cluster<'_>,
    gs: &mut GroupStack<'_>,
    sel: Selection,
    eval: &Evaluation,
    job: &Arc<Job>,
    tg: &TaskGroup,
    previous: Option<&Arc<Allocation>>,
    now: i64,
    failures: &mut Failures,
) -> bool {
    let Some(choice) = sel.choice else {
        failures.count += 1;
        match failures.metric.as_mut() {
            Some(m) => m.coalesced_failures += 1,
            None => failures.metric = Some(sel.metric),
        }
        return false;
    };
    let alloc = NewAlloc {
        eval,
        job,
        tg,
        // Every system allocation is instance 0 of its group on its node.
        name: alloc_name(&job.id, &tg.name, 0),
        previous: previous.map(|a| &**a),
        tracker: None,
        now,
    }
    .build(gs.template(), cl, &choice, sel.metric);
    gs.commit(cl, &choice, &alloc.id);
    push(&mut out.plan.node_allocation, alloc);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::scheduler::schedule;
    use crate::server::scheduler::testing::{MemView, mock_eval, mock_job, mock_node};
    use crate::structs::Constraint;
    use crate::structs::{AllocClientStatus, AllocDesiredStatus, NodeStatus};

    fn system_job() -> Job {
        let mut j = mock_job("agent", 1, 100, 64);
        j.r#type = "system".into();
        j
    }

    fn run(v: &MemView, job: &Job) -> SchedulerOutcome {
        schedule(&mock_eval(job), v).unwrap()
    }

    fn placed(out: &SchedulerOutcome) -> Vec<&Allocation> {
        out.plan.node_allocation.values().flatten().collect()
    }

    fn apply_running(v: &mut MemView, out: &SchedulerOutcome) {
        v.apply_plan(&out.plan);
        for a in placed(out) {
            let mut a = a.clone();
            a.client_status = AllocClientStatus::Running;
            v.upsert_alloc(a);
        }
    }

    #[test]
    fn one_alloc_per_ready_node_and_new_nodes_get_one() {
        let mut v = MemView::new();
        for i in 0..3 {
            v.upsert_node(mock_node(&format!("n{i}"), 4000, 8192));
        }
        let mut inel = mock_node("inel", 4000, 8192);
        inel.scheduling_eligibility = "ineligible".into();
        v.upsert_node(inel);
        let job = v.upsert_job(system_job());
        let out = run(&v, &job);
        let mut nodes: Vec<&str> = placed(&out).iter().map(|a| &*a.node_id).collect();
        nodes.sort();
        assert_eq!(nodes, ["n0", "n1", "n2"]);
        assert!(placed(&out).iter().all(|a| a.name == "agent.web[0]"));
        apply_running(&mut v, &out);
        assert!(run(&v, &job).plan.is_noop());

        v.upsert_node(mock_node("n3", 4000, 8192));
        let out = run(&v, &job);
        let new = placed(&out);
        assert_eq!(new.len(), 1);
        assert_eq!(&*new[0].node_id, "n3");
        assert!(out.plan.node_update.is_empty());
    }

    #[test]
    fn down_and_infeasible_nodes_lose_their_allocs() {
        let mut v = MemView::new();
        for i in 0..3 {
            v.upsert_node(mock_node(&format!("n{i}"), 4000, 8192));
        }
        let job = v.upsert_job(system_job());
        let out = run(&v, &job);
        apply_running(&mut v, &out);

        let mut n0 = (*v.node("n0").unwrap()).clone();
        n0.status = NodeStatus::Down;
        v.upsert_node(n0);
        let mut n1 = (*v.node("n1").unwrap()).clone();
        n1.attributes = Some(
            [("kernel.name", "windows"), ("driver.exec", "1")]
                .iter()
                .map(|(k, val)| (k.to_string(), val.to_string()))
                .collect(),
        );
        v.upsert_node(n1);
        let mut j2 = (*job).clone();
        j2.constraints = Some(vec![Constraint {
            l_target: "${attr.kernel.name}".into(),
            r_target: "linux".into(),
            operand: "=".into(),
        }]);
        j2.version = 1;
        j2.job_modify_index = 2;
        let job = v.upsert_job(j2);
        let out = run(&v, &job);
        let stops: Vec<_> = out.plan.node_update.values().flatten().collect();
        assert_eq!(stops.len(), 2);
        let lost = stops.iter().find(|a| &*a.node_id == "n0").unwrap();
        assert_eq!(lost.client_status, AllocClientStatus::Lost);
        let gone = stops.iter().find(|a| &*a.node_id == "n1").unwrap();
        assert_eq!(gone.desired_status, AllocDesiredStatus::Stop);
        assert_eq!(gone.client_status, AllocClientStatus::Running);
        // n2 is updated in place to the new version; nothing new is placed.
        let upd = placed(&out);
        assert_eq!(upd.len(), 1);
        assert_eq!(&*upd[0].node_id, "n2");
        assert_eq!(upd[0].job.as_ref().unwrap().version, 1);
    }

    #[test]
    fn a_migrating_alloc_leaves_its_draining_node_and_is_not_replaced_there() {
        let mut v = MemView::new();
        for i in 0..2 {
            v.upsert_node(mock_node(&format!("n{i}"), 4000, 8192));
        }
        let job = v.upsert_job(system_job());
        let out = run(&v, &job);
        apply_running(&mut v, &out);
        let mut n0 = (*v.node("n0").unwrap()).clone();
        n0.drain_strategy = Some(crate::structs::DrainStrategy::default());
        n0.scheduling_eligibility = "ineligible".into();
        v.upsert_node(n0);
        let mut on_n0 = v
            .all_allocs()
            .into_iter()
            .find(|a| &*a.node_id == "n0")
            .map(|a| (*a).clone())
            .unwrap();
        on_n0.desired_transition.migrate = Some(true);
        v.upsert_alloc(on_n0);
        let out = run(&v, &job);
        let stops: Vec<_> = out.plan.node_update.values().flatten().collect();
        assert_eq!(stops.len(), 1);
        assert_eq!(&*stops[0].node_id, "n0");
        assert_eq!(stops[0].desired_description, DESC_MIGRATING);
        assert!(
            placed(&out).is_empty(),
            "nothing placed on the draining node"
        );
    }

    #[test]
    fn job_stop_and_exhaustion() {
        let mut v = MemView::new();
        v.upsert_node(mock_node("big", 4000, 8192));
        v.upsert_node(mock_node("tiny", 50, 8192));
        let job = v.upsert_job(system_job());
        let out = run(&v, &job);
        assert_eq!(placed(&out).len(), 1);
        assert_eq!(out.queued_allocations["web"], 1);
        let m = &out.failed_tg_allocs["web"];
        assert_eq!(m.dimension_exhausted.as_ref().unwrap()["cpu"], 1);
        apply_running(&mut v, &out);

        let mut stopped = (*job).clone();
        stopped.stop = true;
        let stopped = v.upsert_job(stopped);
        let out = run(&v, &stopped);
        let stops: Vec<_> = out.plan.node_update.values().flatten().collect();
        assert_eq!(stops.len(), 1);
        assert_eq!(stops[0].desired_status, AllocDesiredStatus::Stop);
        assert!(out.plan.node_allocation.is_empty());
    }

    #[test]
    fn sysbatch_does_not_rerun_completed_nodes() {
        let mut v = MemView::new();
        v.upsert_node(mock_node("n0", 4000, 8192));
        let mut job = system_job();
        job.r#type = "sysbatch".into();
        let job = v.upsert_job(job);
        let out = run(&v, &job);
        v.apply_plan(&out.plan);
        for a in placed(&out) {
            let mut a = a.clone();
            a.client_status = AllocClientStatus::Complete;
            v.upsert_alloc(a);
        }
        assert!(run(&v, &job).plan.is_noop());
    }

    #[test]
    fn destructive_update_replaces_on_the_same_node() {
        let mut v = MemView::new();
        v.upsert_node(mock_node("n0", 150, 8192));
        let job = v.upsert_job(system_job());
        let out = run(&v, &job);
        apply_running(&mut v, &out);
        let old = placed(&out)[0].id.clone();
        let mut j2 = (*job).clone();
        j2.version = 1;
        j2.job_modify_index = 2;
        j2.meta = Some([("k".to_string(), "v".to_string())].into_iter().collect());
        let job = v.upsert_job(j2);
        // The node only fits one instance: the replacement must reuse the old one's share.
        let out = run(&v, &job);
        let new = placed(&out);
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].previous_allocation, old);
        let stops: Vec<_> = out.plan.node_update.values().flatten().collect();
        assert_eq!(stops.len(), 1);
        assert_eq!(stops[0].id, old);
    }
}
