//! The service and batch scheduler, and the entry point that dispatches on the eval type.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::feasible::{GroupFeasibility, datacenter_matches, node_pool_matches};
use super::reconcile::{PlaceReason, Placement, ReconcileInput, reconcile};
use super::stack::{Cluster, GroupStack, NewAlloc, stopped_copy};
use super::{Plan, SchedulerError, SchedulerOutcome, SchedulerView};
use crate::structs::time::now_nanos;
use crate::structs::{
    AllocMetric, Allocation, EVAL_STATUS_BLOCKED, Evaluation, JOB_TYPE_BATCH, JOB_TYPE_SERVICE,
    JOB_TYPE_SYSBATCH, JOB_TYPE_SYSTEM, Job, NODE_STATUS_DOWN, Node, trigger,
};

/// Status description of the blocked evaluation created for unplaced allocations.
pub const DESC_BLOCKED: &str = "created to place remaining allocations";

/// Runs the scheduler for `eval.Type` against `view` and returns the plan and its side
/// products (failed groups, queued counts, blocked and follow-up evaluations).
pub fn schedule(
    eval: &Evaluation,
    view: &dyn SchedulerView,
) -> Result<SchedulerOutcome, SchedulerError> {
    match eval.r#type.as_str() {
        JOB_TYPE_SERVICE => Ok(schedule_generic(eval, view, false, now_nanos())),
        JOB_TYPE_BATCH => Ok(schedule_generic(eval, view, true, now_nanos())),
        JOB_TYPE_SYSTEM => Ok(super::system::schedule(eval, view, false, now_nanos())),
        JOB_TYPE_SYSBATCH => Ok(super::system::schedule(eval, view, true, now_nanos())),
        other => Err(SchedulerError::UnknownType(other.to_string())),
    }
}

/// The job's allocations as the view reports them, restricted to this namespace and job.
pub(crate) fn job_allocs(view: &dyn SchedulerView, eval: &Evaluation) -> Vec<Arc<Allocation>> {
    view.allocs_by_job(&eval.namespace, &eval.job_id)
        .into_iter()
        .filter(|a| {
            a.job_id == eval.job_id && (a.namespace.is_empty() || a.namespace == eval.namespace)
        })
        .collect()
}

/// An empty plan for `eval` running `job`.
pub(crate) fn new_plan(eval: &Evaluation, job: Option<&Arc<Job>>) -> Plan {
    Plan {
        eval_id: eval.id.clone(),
        priority: job.map_or(eval.priority, |j| j.priority),
        job: job.cloned(),
        ..Default::default()
    }
}

/// The service/batch scheduler at time `now` (Unix ns).
pub fn schedule_generic(
    eval: &Evaluation,
    view: &dyn SchedulerView,
    batch: bool,
    now: i64,
) -> SchedulerOutcome {
    let job = view.job(&eval.namespace, &eval.job_id);
    let allocs = job_allocs(view, eval);
    let nodes: HashMap<String, Arc<Node>> = allocs
        .iter()
        .map(|a| a.node_id.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .filter_map(|id| view.node(id).map(|n| (id.to_string(), n)))
        .collect();
    let node_lost = |id: &str| nodes.get(id).is_none_or(|n| n.status == NODE_STATUS_DOWN);
    let rec = reconcile(&ReconcileInput {
        eval,
        job: job.as_ref(),
        allocs: &allocs,
        node_lost: &node_lost,
        batch,
        now,
    });

    let mut out = SchedulerOutcome {
        plan: new_plan(eval, job.as_ref()),
        followup_evals: rec.followup_evals,
        ..Default::default()
    };
    let plan = &mut out.plan;
    let mut stopping = HashSet::new();
    for s in &rec.stop {
        stopping.insert(s.alloc.id.clone());
        push(
            &mut plan.node_update,
            stopped_copy(&s.alloc, s.description, s.client_status, now),
        );
    }
    for u in rec.updates {
        push(&mut plan.node_allocation, u);
    }
    let Some(job) = job.filter(|j| !j.stopped()) else {
        return out;
    };

    let mut places = rec.place;
    for a in rec.inplace {
        match inplace_update(&job, &a, nodes.get(&a.node_id), eval, now) {
            Some(updated) => push(&mut out.plan.node_allocation, updated),
            // The node no longer suits the new version: replace the allocation.
            None => places.push(Placement {
                group: a.task_group.clone(),
                name: a.name.clone(),
                reason: PlaceReason::Destructive,
                previous: Some(a),
                tracker: None,
            }),
        }
    }

    let mut cl = Cluster::new(view, &job, &allocs, stopping);
    let mut class_eligibility = BTreeMap::new();
    let mut escaped = false;
    for tg in job.groups() {
        out.queued_allocations.insert(tg.name.clone(), 0);
        let group_places: Vec<&Placement> = places.iter().filter(|p| p.group == tg.name).collect();
        if group_places.is_empty() {
            continue;
        }
        let mut gs = GroupStack::new(&cl, &job, tg, batch);
        let mut failed: Option<AllocMetric> = None;
        let mut unplaced = 0;
        for p in group_places {
            if let Some(m) = failed.as_mut() {
                // Identical asks fail identically: count instead of searching again.
                m.coalesced_failures += 1;
                unplaced += 1;
                continue;
            }
            let prev = p.previous.as_deref();
            let released = prev.is_some_and(|a| gs.release(&mut cl, a));
            let penalty = penalty_nodes(p);
            let sel = gs.select(&mut cl, &penalty);
            let Some(choice) = sel.choice else {
                if let (true, Some(a)) = (released, prev) {
                    gs.unrelease(&mut cl, a);
                }
                failed = Some(sel.metric);
                unplaced += 1;
                continue;
            };
            let node = cl.nodes[choice.node_idx].clone();
            let alloc = NewAlloc {
                eval,
                job: &job,
                tg,
                name: p.name.clone(),
                previous: prev,
                tracker: p.tracker.clone(),
                now,
            }
            .build(gs.template(), &node, &choice, sel.metric);
            gs.commit(&mut cl, &choice, &alloc.id);
            if let (Some(desc), Some(a)) = (p.reason.stop_description(), prev) {
                let mut stopped = stopped_copy(a, desc, None, now);
                if p.reason == PlaceReason::Reschedule {
                    stopped.next_allocation = alloc.id.clone();
                }
                push(&mut out.plan.node_update, stopped);
            }
            push(&mut out.plan.node_allocation, alloc);
        }
        out.queued_allocations.insert(tg.name.clone(), unplaced);
        if let Some(m) = failed {
            gs.class_eligibility(&cl, &mut class_eligibility);
            escaped |= gs.escapes_class();
            out.failed_tg_allocs.insert(tg.name.clone(), m);
        }
    }
    if !out.failed_tg_allocs.is_empty() {
        out.blocked_eval = Some(blocked_eval(eval, &job, class_eligibility, escaped, now));
    }
    out
}

/// Appends `a` to its node's list.
pub(crate) fn push(map: &mut BTreeMap<String, Vec<Allocation>>, a: Allocation) {
    map.entry(a.node_id.clone()).or_default().push(a);
}

/// The nodes a rescheduled allocation (and its predecessors) failed on.
fn penalty_nodes(p: &Placement) -> Vec<String> {
    if p.reason != PlaceReason::Reschedule {
        return Vec::new();
    }
    let mut nodes: Vec<String> = p
        .tracker
        .iter()
        .flat_map(|t| t.events.iter().flatten())
        .map(|e| e.prev_node_id.clone())
        .collect();
    nodes.extend(p.previous.as_ref().map(|a| a.node_id.clone()));
    nodes.sort();
    nodes.dedup();
    nodes
}

/// The allocation moved to the new job version, if its node still accepts that version
/// (datacenter, pool, drivers, constraints; readiness is not required to stay).
pub(crate) fn inplace_update(
    job: &Arc<Job>,
    a: &Allocation,
    node: Option<&Arc<Node>>,
    eval: &Evaluation,
    now: i64,
) -> Option<Allocation> {
    let node = node?;
    let tg = job.group(&a.task_group)?;
    let fits_node = datacenter_matches(job.datacenters.as_deref(), &node.datacenter)
        && node_pool_matches(&job.node_pool, &node.node_pool)
        && GroupFeasibility::new(job, tg).check(node).is_ok();
    if !fits_node {
        return None;
    }
    let mut updated = a.clone();
    updated.job = Some(job.clone());
    updated.eval_id = eval.id.clone();
    updated.modify_time = now;
    Some(updated)
}

/// The evaluation that waits for capacity to place what this one could not.
pub(crate) fn blocked_eval(
    eval: &Evaluation,
    job: &Job,
    class_eligibility: BTreeMap<String, bool>,
    escaped: bool,
    now: i64,
) -> Evaluation {
    Evaluation {
        id: crate::structs::generate_uuid(),
        namespace: job.namespace.clone(),
        priority: job.priority,
        r#type: job.r#type.clone(),
        triggered_by: trigger::QUEUED_ALLOCS.to_string(),
        job_id: job.id.clone(),
        job_modify_index: job.job_modify_index,
        status: EVAL_STATUS_BLOCKED.to_string(),
        status_description: DESC_BLOCKED.to_string(),
        previous_eval: eval.id.clone(),
        class_eligibility: (!class_eligibility.is_empty()).then_some(class_eligibility),
        escaped_computed_class: escaped,
        create_time: now,
        modify_time: now,
        ..Default::default()
    }
}
