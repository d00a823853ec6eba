//! The service and batch scheduler.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::feasible::{GroupFeasibility, datacenter_matches, node_pool_matches};
use super::reconcile::{DESC_MIGRATING, PlaceReason, Placement, ReconcileInput, reconcile};
use super::stack::{Cluster, GroupStack, NewAlloc, stopped_copy};
use super::{Plan, SchedulerOutcome, SchedulerView};
use crate::structs::{
    AllocDeploymentStatus, AllocMetric, Allocation, DesiredUpdates, EvalStatus, Evaluation, Job,
    Node, NodeStatus, trigger,
};

/// Status description of the blocked evaluation created for unplaced allocations.
pub const DESC_BLOCKED: &str = "created to place remaining allocations";

/// The job's allocations as the view reports them, restricted to this namespace and job.
pub(crate) fn job_allocs(view: &dyn SchedulerView, eval: &Evaluation) -> Vec<Arc<Allocation>> {
    view.allocs_by_job(&eval.namespace, &eval.job_id)
        .into_iter()
        .filter(|a| {
            *a.job_id == *eval.job_id && (a.namespace.is_empty() || *a.namespace == *eval.namespace)
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
        .map(|a| &*a.node_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .filter_map(|id| view.node(id).map(|n| (id.to_string(), n)))
        .collect();
    let node_lost = |id: &str| nodes.get(id).is_none_or(|n| n.status == NodeStatus::Down);
    let node_disconnected = |id: &str| {
        nodes
            .get(id)
            .is_some_and(|n| n.status == NodeStatus::Disconnected)
    };
    let latest = view.latest_deployment(&eval.namespace, &eval.job_id);
    let rec = reconcile(&ReconcileInput {
        eval,
        job: job.as_ref(),
        allocs: &allocs,
        node_lost: &node_lost,
        node_disconnected: &node_disconnected,
        batch,
        now,
        deployment: latest.as_ref(),
    });

    let mut out = SchedulerOutcome {
        plan: new_plan(eval, job.as_ref()),
        followup_evals: rec.followup_evals,
        desired_updates: count_decisions(&allocs, &rec.stop, &rec.place, &rec.inplace),
        deployment_id: rec.deployment_id.clone(),
        ..Default::default()
    };
    let plan = &mut out.plan;
    plan.deployment = rec.deployment;
    plan.deployment_updates = rec.deployment_updates;
    let deployment_id = rec.deployment_id;
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
        match inplace_update(&job, &a, nodes.get(&*a.node_id), eval, now) {
            Some(mut updated) => {
                // It joins the deployment and is judged healthy again under the new version.
                if updated.deployment_id != deployment_id {
                    updated.deployment_id = deployment_id.clone();
                    updated.deployment_status = None;
                }
                push(&mut out.plan.node_allocation, updated)
            }
            // The node no longer suits the new version: replace the allocation.
            None => {
                let d = out
                    .desired_updates
                    .entry(a.task_group.to_string())
                    .or_default();
                d.in_place_update = d.in_place_update.saturating_sub(1);
                d.destructive_update += 1;
                places.push(Placement {
                    group: a.task_group.to_string(),
                    name: a.name.clone(),
                    reason: PlaceReason::Destructive,
                    previous: Some(a),
                    tracker: None,
                });
            }
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
                stop_migrating(&mut out, p, now);
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
                stop_migrating(&mut out, p, now);
                continue;
            };
            let mut alloc = NewAlloc {
                eval,
                job: &job,
                tg,
                name: p.name.clone(),
                previous: prev,
                tracker: p.tracker.clone(),
                now,
            }
            .build(gs.template(), &mut cl, &choice, sel.metric);
            alloc.deployment_id = deployment_id.clone();
            if p.reason == PlaceReason::Canary && !deployment_id.is_empty() {
                alloc.deployment_status = Some(AllocDeploymentStatus {
                    canary: true,
                    ..Default::default()
                });
            }
            gs.commit(&mut cl, &choice, &alloc.id);
            if let (Some(desc), Some(a)) = (p.reason.stop_description(), prev) {
                let mut stopped = stopped_copy(a, desc, None, now);
                // Nomad links every replacement of a rescheduled or stopped (migrated)
                // allocation forward from the old one.
                if matches!(p.reason, PlaceReason::Reschedule | PlaceReason::Migrate) {
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

/// A migrating allocation leaves its draining node even when no other node can take it
/// now, as Nomad's migrations do; the replacement is placed when capacity appears.
fn stop_migrating(out: &mut SchedulerOutcome, p: &Placement, now: i64) {
    if let (PlaceReason::Migrate, Some(a)) = (p.reason, p.previous.as_deref()) {
        push(
            &mut out.plan.node_update,
            stopped_copy(a, DESC_MIGRATING, None, now),
        );
    }
}

/// The reconciler's decisions counted per group, as a plan's `DesiredTGUpdates`: every live
/// allocation the decisions do not touch is ignored.
fn count_decisions(
    allocs: &[Arc<Allocation>],
    stops: &[super::reconcile::Stop],
    places: &[Placement],
    inplace: &[Arc<Allocation>],
) -> BTreeMap<String, DesiredUpdates> {
    let mut out: BTreeMap<String, DesiredUpdates> = BTreeMap::new();
    let mut touched: HashSet<&str> = HashSet::new();
    for s in stops {
        out.entry(s.alloc.task_group.to_string()).or_default().stop += 1;
        touched.insert(&s.alloc.id);
    }
    for p in places {
        let d = out.entry(p.group.clone()).or_default();
        match p.reason {
            PlaceReason::Destructive => d.destructive_update += 1,
            PlaceReason::Migrate => d.migrate += 1,
            PlaceReason::Canary => d.canary += 1,
            PlaceReason::New | PlaceReason::Lost | PlaceReason::Reschedule => d.place += 1,
        }
        if let Some(prev) = &p.previous {
            touched.insert(&prev.id);
        }
    }
    for a in inplace {
        out.entry(a.task_group.to_string())
            .or_default()
            .in_place_update += 1;
        touched.insert(&a.id);
    }
    for a in allocs {
        if !a.terminal() && !touched.contains(a.id.as_str()) {
            out.entry(a.task_group.to_string()).or_default().ignore += 1;
        }
    }
    out
}

/// Appends `a` to its node's list.
pub(crate) fn push(map: &mut BTreeMap<String, Vec<Allocation>>, a: Allocation) {
    map.entry(a.node_id.to_string()).or_default().push(a);
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
    nodes.extend(p.previous.as_ref().map(|a| a.node_id.to_string()));
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
    updated.eval_id = eval.id.as_str().into();
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
        status: EvalStatus::Blocked,
        status_description: DESC_BLOCKED.to_string(),
        previous_eval: eval.id.clone(),
        class_eligibility: (!class_eligibility.is_empty()).then_some(class_eligibility),
        escaped_computed_class: escaped,
        create_time: now,
        modify_time: now,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::server::scheduler::fit::allocs_fit;
    use crate::server::scheduler::reconcile::{DESC_LOST, DESC_RESCHEDULED, DESC_UPDATING};
    use crate::server::scheduler::testing::{MemView, mock_eval, mock_job, mock_node};
    use crate::server::scheduler::{SchedulerError, schedule};
    use crate::structs::time::now_nanos;
    use crate::structs::{Affinity, Constraint, NetworkResource, Port, TaskState};
    use crate::structs::{AllocClientStatus, AllocDesiredStatus, NodeStatus};

    fn run(view: &MemView, job: &Job) -> SchedulerOutcome {
        schedule(&mock_eval(job), view).unwrap()
    }

    fn placed(out: &SchedulerOutcome) -> Vec<&Allocation> {
        out.plan.node_allocation.values().flatten().collect()
    }

    fn view_with_nodes(n: usize, cpu: i64, mem: i64) -> MemView {
        let mut v = MemView::new();
        for i in 0..n {
            v.upsert_node(mock_node(&format!("node-{i}"), cpu, mem));
        }
        v
    }

    #[test]
    fn places_every_instance_with_full_allocation_fields() {
        let mut v = view_with_nodes(3, 4000, 8192);
        let job = v.upsert_job(mock_job("web", 5, 500, 256));
        let eval = mock_eval(&job);
        let out = schedule(&eval, &v).unwrap();
        let allocs = placed(&out);
        assert_eq!(allocs.len(), 5);
        let mut names: Vec<_> = allocs.iter().map(|a| a.name.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "web.web[0]",
                "web.web[1]",
                "web.web[2]",
                "web.web[3]",
                "web.web[4]"
            ]
        );
        let a = allocs[0];
        assert_eq!(*a.eval_id, *eval.id);
        assert_eq!(&*a.job_id, "web");
        assert!(Arc::ptr_eq(a.job.as_ref().unwrap(), &job));
        assert_eq!(&*a.task_group, "web");
        assert_eq!(a.desired_status, AllocDesiredStatus::Run);
        assert_eq!(a.client_status, AllocClientStatus::Pending);
        assert_eq!(*a.node_name, format!("name-{}", a.node_id));
        assert!(a.create_time > 0);
        let ar = a.allocated_resources.as_ref().unwrap();
        assert_eq!(ar.tasks["server"].cpu.cpu_shares, 500);
        assert_eq!(ar.tasks["server"].memory.memory_mb, 256);
        assert_eq!(ar.shared.disk_mb, 10);
        assert_eq!(a.resources.as_ref().unwrap().cpu, 500);
        assert_eq!(a.shared_resources.as_ref().unwrap().disk_mb, 10);
        assert_eq!(a.task_resources.as_ref().unwrap()["server"].memory_mb, 256);
        let m = a.metrics.as_ref().unwrap();
        assert!(m.nodes_evaluated >= 2);
        assert_eq!(m.nodes_available.as_ref().unwrap()["dc1"], 3);
        // Nomad leaves the deprecated Scores map null; per-node scores are in ScoreMetaData.
        assert!(m.scores.is_none());
        let meta = m.score_meta_data.as_ref().unwrap();
        assert!(
            meta.iter()
                .any(|n| *n.node_id == *a.node_id && n.scores.contains_key("binpack"))
        );
        // What the placements repeat is one copy: the job's and evaluation's strings, the
        // node's (for placements on one node), and the scorer names.
        let b = allocs[1];
        for (x, y) in [
            (&a.namespace, &b.namespace),
            (&a.job_id, &b.job_id),
            (&a.task_group, &b.task_group),
            (&a.eval_id, &b.eval_id),
        ] {
            assert!(Arc::ptr_eq(x, y), "{x} is copied");
        }
        if let Some(c) = allocs[1..].iter().find(|c| c.node_id == a.node_id) {
            assert!(Arc::ptr_eq(&a.node_id, &c.node_id));
            assert!(Arc::ptr_eq(&a.node_name, &c.node_name));
        }
        let names_b = &b
            .metrics
            .as_ref()
            .unwrap()
            .score_meta_data
            .as_ref()
            .unwrap()[0];
        assert!(Arc::ptr_eq(meta[0].scores.names(), names_b.scores.names()));
        assert_eq!(out.queued_allocations["web"], 0);
        assert!(out.failed_tg_allocs.is_empty() && out.blocked_eval.is_none());
        assert_eq!(out.plan.eval_id, eval.id);
        assert_eq!(out.plan.priority, 50);

        // Running the same eval on the applied state changes nothing.
        v.apply_plan(&out.plan);
        assert!(run(&v, &job).plan.is_noop());
    }

    #[test]
    fn unknown_type_is_an_error() {
        let v = MemView::new();
        let mut ev = mock_eval(&mock_job("x", 1, 1, 1));
        ev.r#type = "weird".into();
        assert!(matches!(schedule(&ev, &v), Err(SchedulerError::UnknownType(t)) if t == "weird"));
    }

    #[test]
    fn binpack_prefers_the_fuller_node() {
        let mut v = view_with_nodes(2, 4000, 8192);
        // Something else already uses half of node-1.
        let other = v.upsert_job(mock_job("other", 1, 2000, 4096));
        let mut filler = (*placed(&run(
            &{
                let mut only = MemView::new();
                only.upsert_node(mock_node("node-1", 4000, 8192));
                only.upsert_job((*other).clone());
                only
            },
            &other,
        ))[0])
            .clone();
        filler.client_status = AllocClientStatus::Running;
        v.upsert_alloc(filler);
        let job = v.upsert_job(mock_job("web", 1, 500, 256));
        for _ in 0..10 {
            assert_eq!(&*placed(&run(&v, &job))[0].node_id, "node-1");
        }
    }

    #[test]
    fn anti_affinity_spreads_a_job() {
        let v0 = view_with_nodes(2, 10000, 10000);
        let mut v = v0.clone();
        let job = v.upsert_job(mock_job("web", 2, 100, 100));
        for _ in 0..10 {
            let out = run(&v, &job);
            let mut nodes: Vec<&str> = placed(&out).iter().map(|a| &*a.node_id).collect();
            nodes.sort();
            assert_eq!(nodes, ["node-0", "node-1"]);
        }
    }

    #[test]
    fn affinity_moves_placement() {
        let mut v = view_with_nodes(1, 4000, 8192);
        let mut small = mock_node("small", 1000, 1000);
        small.meta = Some(BTreeMap::from([("rack".to_string(), "r2".to_string())]));
        v.upsert_node(small);
        let mut job = mock_job("web", 1, 500, 256);
        // Without affinity binpack picks the small node (fuller after placement).
        let plain = v.upsert_job(job.clone());
        assert_eq!(&*placed(&run(&v, &plain))[0].node_id, "small");
        job.affinities = Some(vec![Affinity {
            l_target: "${meta.rack}".into(),
            r_target: "r2".into(),
            operand: "!=".into(),
            weight: 100,
        }]);
        let job = v.upsert_job(job);
        for _ in 0..5 {
            let out = run(&v, &job);
            let a = placed(&out)[0];
            assert_eq!(&*a.node_id, "node-0");
            let meta = a
                .metrics
                .as_ref()
                .unwrap()
                .score_meta_data
                .as_ref()
                .unwrap();
            let chosen = meta.iter().find(|n| &*n.node_id == "node-0").unwrap();
            assert_eq!(chosen.scores["node-affinity"], 1.0);
        }
    }

    #[test]
    fn exhaustion_reports_failed_group_and_blocked_eval() {
        let mut v = view_with_nodes(1, 1000, 8192);
        let job = v.upsert_job(mock_job("web", 5, 400, 100));
        let eval = mock_eval(&job);
        let out = schedule(&eval, &v).unwrap();
        assert_eq!(placed(&out).len(), 2);
        assert_eq!(out.queued_allocations["web"], 3);
        let m = &out.failed_tg_allocs["web"];
        assert_eq!(m.nodes_evaluated, 1);
        assert_eq!(m.nodes_exhausted, 1);
        assert_eq!(m.dimension_exhausted.as_ref().unwrap()["cpu"], 1);
        assert_eq!(m.coalesced_failures, 2);
        let b = out.blocked_eval.as_ref().unwrap();
        assert_eq!(b.status, EvalStatus::Blocked);
        assert_eq!(b.status_description, DESC_BLOCKED);
        assert_eq!(b.triggered_by, "queued-allocs");
        assert_eq!(b.previous_eval, eval.id);
        assert_eq!(
            (b.job_id.as_str(), b.r#type.as_str(), b.priority),
            ("web", "service", 50)
        );
        // What was placed fits, as the plan applier will check.
        v.apply_plan(&out.plan);
        let on_node: Vec<_> = v.allocs_by_node("node-0");
        let refs: Vec<&Allocation> = on_node.iter().map(|a| &**a).collect();
        assert_eq!(allocs_fit(&v.node("node-0").unwrap(), &refs), Ok(()));
    }

    #[test]
    fn constraints_and_drivers_filter_with_reasons() {
        let mut v = view_with_nodes(1, 4000, 8192);
        let mut win = mock_node("win", 4000, 8192);
        win.attributes = Some(BTreeMap::from([(
            "kernel.name".to_string(),
            "windows".to_string(),
        )]));
        v.upsert_node(win);
        let mut nodriver = mock_node("nodriver", 4000, 8192);
        nodriver.drivers = None;
        nodriver.attributes = None;
        v.upsert_node(nodriver);
        let mut down = mock_node("down", 4000, 8192);
        down.status = NodeStatus::Down;
        v.upsert_node(down);
        let mut other_dc = mock_node("eu", 4000, 8192);
        other_dc.datacenter = "eu1".into();
        v.upsert_node(other_dc);
        let mut job = mock_job("web", 30, 500, 256);
        job.datacenters = Some(vec!["dc*".into()]);
        job.constraints = Some(vec![Constraint {
            l_target: "${attr.kernel.name}".into(),
            r_target: "linux".into(),
            operand: "=".into(),
        }]);
        let job = v.upsert_job(job);
        let out = run(&v, &job);
        let allocs = placed(&out);
        assert_eq!(allocs.len(), 8);
        assert!(allocs.iter().all(|a| &*a.node_id == "node-0"));
        let m = &out.failed_tg_allocs["web"];
        // Down and other-datacenter nodes are not even considered.
        assert_eq!(m.nodes_evaluated, 3);
        assert_eq!(m.nodes_filtered, 2);
        let cf = m.constraint_filtered.as_ref().unwrap();
        assert_eq!(cf["${attr.kernel.name} = linux"], 2);
        assert_eq!(m.nodes_available.as_ref().unwrap().len(), 1);
        assert_eq!(m.nodes_exhausted, 1);
    }

    #[test]
    fn missing_driver_is_reported() {
        let mut v = MemView::new();
        let mut n = mock_node("n", 4000, 8192);
        n.drivers = None;
        n.attributes = None;
        v.upsert_node(n);
        let job = v.upsert_job(mock_job("web", 1, 100, 100));
        let out = run(&v, &job);
        let cf = out.failed_tg_allocs["web"]
            .constraint_filtered
            .clone()
            .unwrap();
        assert_eq!(cf["missing drivers"], 1);
    }

    #[test]
    fn distinct_hosts_limits_one_per_node() {
        let mut v = view_with_nodes(2, 4000, 8192);
        let mut job = mock_job("web", 3, 100, 100);
        if let Some(tg) = job.task_groups.as_mut().and_then(|g| g.first_mut()) {
            tg.constraints = Some(vec![Constraint {
                operand: "distinct_hosts".into(),
                ..Default::default()
            }]);
        }
        let job = v.upsert_job(job);
        let out = run(&v, &job);
        let mut nodes: Vec<&str> = placed(&out).iter().map(|a| &*a.node_id).collect();
        nodes.sort();
        assert_eq!(nodes, ["node-0", "node-1"]);
        let cf = out.failed_tg_allocs["web"]
            .constraint_filtered
            .clone()
            .unwrap();
        assert_eq!(cf["distinct_hosts"], 2);
    }

    #[test]
    fn distinct_property_counts_proposed_allocs() {
        let mut v = MemView::new();
        for (id, rack) in [("a", "r1"), ("b", "r1"), ("c", "r2")] {
            let mut n = mock_node(id, 4000, 8192);
            n.meta = Some(BTreeMap::from([("rack".to_string(), rack.to_string())]));
            v.upsert_node(n);
        }
        let mut job = mock_job("web", 3, 100, 100);
        job.constraints = Some(vec![Constraint {
            l_target: "${meta.rack}".into(),
            operand: "distinct_property".into(),
            ..Default::default()
        }]);
        let job = v.upsert_job(job);
        let out = run(&v, &job);
        let allocs = placed(&out);
        assert_eq!(allocs.len(), 2);
        assert!(allocs.iter().any(|a| &*a.node_id == "c"));
        assert_eq!(out.queued_allocations["web"], 1);
    }

    fn with_ports(mut job: Job, reserved: Option<i64>, dynamic: usize) -> Job {
        if let Some(tg) = job.task_groups.as_mut().and_then(|g| g.first_mut()) {
            tg.networks = Some(vec![NetworkResource {
                mode: "host".into(),
                reserved_ports: reserved.map(|v| {
                    vec![Port {
                        label: "http".into(),
                        value: v,
                        to: 0,
                        ..Default::default()
                    }]
                }),
                dynamic_ports: Some(
                    (0..dynamic)
                        .map(|i| Port {
                            label: format!("dyn{i}"),
                            to: -1,
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }]);
        }
        job
    }

    #[test]
    fn static_port_collides_within_a_plan() {
        let mut v = view_with_nodes(1, 4000, 8192);
        let job = v.upsert_job(with_ports(mock_job("web", 2, 100, 100), Some(8080), 0));
        let out = run(&v, &job);
        let allocs = placed(&out);
        assert_eq!(allocs.len(), 1);
        let shared = &allocs[0].allocated_resources.as_ref().unwrap().shared;
        let ports = shared.ports.as_ref().unwrap();
        assert_eq!((ports[0].label.as_str(), ports[0].value), ("http", 8080));
        assert_eq!(ports[0].host_ip, "10.0.0.1");
        assert_eq!(shared.networks.as_ref().unwrap()[0].ip, "10.0.0.1");
        let dims = out.failed_tg_allocs["web"]
            .dimension_exhausted
            .clone()
            .unwrap();
        assert_eq!(dims["network: reserved port collision http=8080"], 1);
    }

    #[test]
    fn dynamic_ports_are_unique_per_node() {
        let mut v = view_with_nodes(1, 100_000, 100_000);
        let job = v.upsert_job(with_ports(mock_job("web", 50, 10, 10), None, 2));
        let out = run(&v, &job);
        let allocs = placed(&out);
        assert_eq!(allocs.len(), 50);
        let mut values: Vec<i64> = allocs
            .iter()
            .flat_map(|a| {
                a.allocated_resources
                    .as_ref()
                    .unwrap()
                    .shared
                    .ports
                    .clone()
                    .unwrap()
            })
            .map(|p| {
                assert_eq!(p.to, p.value, "To = -1 maps to the host port");
                p.value
            })
            .collect();
        assert_eq!(values.len(), 100);
        values.sort();
        values.dedup();
        assert_eq!(values.len(), 100);
        assert!(values.iter().all(|p| (20000..=32000).contains(p)));
        v.apply_plan(&out.plan);
        let on_node = v.allocs_by_node("node-0");
        let refs: Vec<&Allocation> = on_node.iter().map(|a| &**a).collect();
        assert_eq!(allocs_fit(&v.node("node-0").unwrap(), &refs), Ok(()));
    }

    fn running(v: &mut MemView, out: &SchedulerOutcome) {
        for a in placed(out) {
            let mut a = a.clone();
            a.client_status = AllocClientStatus::Running;
            v.upsert_alloc(a);
        }
    }

    #[test]
    fn lost_allocs_are_replaced_elsewhere() {
        let mut v = view_with_nodes(2, 4000, 8192);
        let job = v.upsert_job(mock_job("web", 2, 100, 100));
        let out = run(&v, &job);
        running(&mut v, &out);
        let mut n0 = (*v.node("node-0").unwrap()).clone();
        n0.status = NodeStatus::Down;
        v.upsert_node(n0);
        let out = run(&v, &job);
        let lost: Vec<_> = out.plan.node_update.values().flatten().collect();
        assert_eq!(lost.len(), 1);
        assert_eq!(&*lost[0].node_id, "node-0");
        assert_eq!(lost[0].client_status, AllocClientStatus::Lost);
        assert_eq!(lost[0].desired_status, AllocDesiredStatus::Stop);
        assert_eq!(lost[0].desired_description, DESC_LOST);
        let new = placed(&out);
        assert_eq!(new.len(), 1);
        assert_eq!(&*new[0].node_id, "node-1");
        assert_eq!(new[0].name, lost[0].name);
        assert_eq!(new[0].previous_allocation, lost[0].id);
    }

    #[test]
    fn migrating_allocs_leave_even_without_room_elsewhere() {
        let mut v = view_with_nodes(2, 4000, 8192);
        let job = v.upsert_job(mock_job("web", 2, 100, 100));
        let out = run(&v, &job);
        running(&mut v, &out);
        // Both nodes drain: nowhere to put replacements, yet the migrations stop the old.
        for n in ["node-0", "node-1"] {
            let mut node = (*v.node(n).unwrap()).clone();
            node.drain_strategy = Some(crate::structs::DrainStrategy::default());
            v.upsert_node(node);
        }
        for a in v.all_allocs() {
            let mut a = (*a).clone();
            a.desired_transition.migrate = Some(true);
            v.upsert_alloc(a);
        }
        let out = run(&v, &job);
        let stops: Vec<_> = out.plan.node_update.values().flatten().collect();
        assert_eq!(stops.len(), 2);
        assert!(
            stops
                .iter()
                .all(|a| a.desired_description == DESC_MIGRATING)
        );
        assert!(placed(&out).is_empty());
        assert!(out.failed_tg_allocs.contains_key("web"));
    }

    #[test]
    fn destructive_update_reuses_the_resources_it_frees() {
        let mut v = view_with_nodes(1, 1000, 1000);
        let job = v.upsert_job(mock_job("web", 2, 500, 500));
        let out = run(&v, &job);
        running(&mut v, &out);
        let mut v2 = mock_job("web", 2, 500, 500);
        v2.version = 1;
        v2.job_modify_index = 2;
        if let Some(t) = v2.task_groups.as_mut().and_then(|g| g[0].tasks.as_mut()) {
            t[0].env = Some(BTreeMap::from([("A".to_string(), "1".to_string())]));
        }
        let v2 = v.upsert_job(v2);
        let out = run(&v, &v2);
        let stops: Vec<_> = out.plan.node_update.values().flatten().collect();
        assert_eq!(stops.len(), 2);
        assert!(stops.iter().all(|a| a.desired_description == DESC_UPDATING));
        let new = placed(&out);
        assert_eq!(new.len(), 2);
        assert!(
            new.iter()
                .all(|a| Arc::ptr_eq(a.job.as_ref().unwrap(), &v2))
        );
        assert!(
            new.iter()
                .all(|a| stops.iter().any(|s| s.id == a.previous_allocation))
        );
        assert!(out.failed_tg_allocs.is_empty());
    }

    #[test]
    fn inplace_update_keeps_node_and_id() {
        let mut v = view_with_nodes(2, 4000, 8192);
        let job = v.upsert_job(mock_job("web", 2, 500, 500));
        let out = run(&v, &job);
        running(&mut v, &out);
        let before: Vec<_> = placed(&out)
            .iter()
            .map(|a| (a.id.clone(), a.node_id.clone()))
            .collect();
        let mut v2 = mock_job("web", 2, 500, 500);
        v2.version = 1;
        v2.job_modify_index = 2;
        if let Some(g) = v2.task_groups.as_mut() {
            g[0].reschedule_policy = None;
        }
        let v2 = v.upsert_job(v2);
        let out = run(&v, &v2);
        assert!(out.plan.node_update.is_empty());
        let mut after: Vec<_> = placed(&out)
            .iter()
            .map(|a| (a.id.clone(), a.node_id.clone()))
            .collect();
        let mut before = before;
        before.sort();
        after.sort();
        assert_eq!(before, after);
        assert!(
            placed(&out)
                .iter()
                .all(|a| a.job.as_ref().unwrap().version == 1)
        );
    }

    #[test]
    fn failed_alloc_is_rescheduled_away_from_its_node() {
        let mut v = view_with_nodes(2, 4000, 8192);
        let job = v.upsert_job(mock_job("web", 1, 100, 100));
        let out = run(&v, &job);
        let mut a = placed(&out)[0].clone();
        a.client_status = AllocClientStatus::Failed;
        let st = TaskState {
            finished_at: DateTime::<Utc>::from_timestamp_nanos(now_nanos() - 120_000_000_000),
            ..Default::default()
        };
        a.task_states = Some(BTreeMap::from([("server".to_string(), st)]));
        v.upsert_alloc(a.clone());
        for _ in 0..5 {
            let out = run(&v, &job);
            let new = placed(&out);
            assert_eq!(new.len(), 1);
            assert_eq!(new[0].previous_allocation, a.id);
            assert_ne!(
                new[0].node_id, a.node_id,
                "reschedule penalty avoids the failed node"
            );
            let ev = new[0]
                .reschedule_tracker
                .as_ref()
                .unwrap()
                .events
                .as_ref()
                .unwrap();
            assert_eq!(ev.len(), 1);
            assert_eq!(ev[0].prev_alloc_id, a.id);
            let old: Vec<_> = out.plan.node_update.values().flatten().collect();
            assert_eq!(old.len(), 1);
            assert_eq!(old[0].id, a.id);
            assert_eq!(old[0].next_allocation, new[0].id);
            assert_eq!(old[0].desired_status, AllocDesiredStatus::Stop);
            assert_eq!(old[0].desired_description, DESC_RESCHEDULED);
        }
    }

    #[test]
    fn recent_failure_creates_followup_eval() {
        let mut v = view_with_nodes(1, 4000, 8192);
        let job = v.upsert_job(mock_job("web", 1, 100, 100));
        let out = run(&v, &job);
        let mut a = placed(&out)[0].clone();
        a.client_status = AllocClientStatus::Failed;
        a.modify_time = now_nanos();
        v.upsert_alloc(a.clone());
        let out = run(&v, &job);
        assert_eq!(out.followup_evals.len(), 1);
        let ev = &out.followup_evals[0];
        assert!(ev.wait_until.is_some());
        let upd = placed(&out);
        assert_eq!(upd.len(), 1);
        assert_eq!(upd[0].id, a.id);
        assert_eq!(upd[0].followup_eval_id, ev.id);
        assert_eq!(upd[0].client_status, AllocClientStatus::Failed);
    }

    #[test]
    fn stopping_the_job_stops_its_allocs() {
        let mut v = view_with_nodes(2, 4000, 8192);
        let job = v.upsert_job(mock_job("web", 3, 100, 100));
        let out = run(&v, &job);
        running(&mut v, &out);
        let mut stopped = (*job).clone();
        stopped.stop = true;
        let stopped = v.upsert_job(stopped);
        let out = run(&v, &stopped);
        assert_eq!(out.plan.node_update.values().flatten().count(), 3);
        assert!(out.plan.node_allocation.is_empty());
        v.remove_job("default", "web");
        let out = run(&v, &job);
        assert_eq!(out.plan.node_update.values().flatten().count(), 3);
        assert!(out.plan.job.is_none());
    }

    #[test]
    fn batch_scales_like_service_but_keeps_completed() {
        let mut v = view_with_nodes(2, 4000, 8192);
        let mut job = mock_job("b", 2, 100, 100);
        job.r#type = "batch".into();
        let job = v.upsert_job(job);
        let out = run(&v, &job);
        assert_eq!(placed(&out).len(), 2);
        for a in placed(&out) {
            let mut a = a.clone();
            a.client_status = AllocClientStatus::Complete;
            v.upsert_alloc(a);
        }
        assert!(run(&v, &job).plan.is_noop());
    }

    #[test]
    fn task_networks_get_ports_in_task_resources() {
        let mut v = view_with_nodes(1, 4000, 8192);
        let mut job = mock_job("web", 1, 100, 100);
        if let Some(t) = job.task_groups.as_mut().and_then(|g| g[0].tasks.as_mut())
            && let Some(r) = t[0].resources.as_mut()
        {
            r.networks = Some(Arc::new(vec![NetworkResource {
                mbits: 10,
                dynamic_ports: Some(vec![Port {
                    label: "db".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }]));
        }
        let job = v.upsert_job(job);
        let out = run(&v, &job);
        let a = placed(&out)[0];
        let ar = a.allocated_resources.as_ref().unwrap();
        let net = &ar.tasks["server"].networks.as_ref().unwrap()[0];
        assert_eq!(net.ip, "10.0.0.1");
        assert_eq!(net.device, "eth0");
        let port = net.dynamic_ports.as_ref().unwrap()[0].value;
        assert!((20000..=32000).contains(&port));
        let legacy = &a.task_resources.as_ref().unwrap()["server"];
        assert_eq!(
            legacy.networks.as_ref().unwrap()[0]
                .dynamic_ports
                .as_ref()
                .unwrap()[0]
                .value,
            port
        );
        assert_eq!(
            a.resources
                .as_ref()
                .unwrap()
                .networks
                .as_ref()
                .unwrap()
                .len(),
            1
        );
        assert!(ar.shared.ports.is_none());
    }

    #[test]
    fn spread_balances_datacenters() {
        let mut v = MemView::new();
        for (id, dc) in [("a1", "dc1"), ("a2", "dc1"), ("b1", "dc2")] {
            let mut n = mock_node(id, 8000, 16000);
            n.datacenter = dc.into();
            v.upsert_node(n);
        }
        let mut job = mock_job("web", 4, 100, 100);
        job.spreads = Some(vec![crate::structs::Spread {
            attribute: "${node.datacenter}".into(),
            weight: 100,
            spread_target: None,
        }]);
        let job = v.upsert_job(job);
        for _ in 0..5 {
            let out = run(&v, &job);
            let in_dc2 = placed(&out).iter().filter(|a| &*a.node_id == "b1").count();
            assert_eq!(in_dc2, 2, "half of the instances go to the single dc2 node");
        }
    }

    #[test]
    fn job_level_distinct_hosts_spans_groups() {
        let mut v = view_with_nodes(3, 4000, 8192);
        let mut job = mock_job("web", 2, 100, 100);
        job.constraints = Some(vec![Constraint {
            operand: "distinct_hosts".into(),
            ..Default::default()
        }]);
        if let Some(groups) = job.task_groups.as_mut() {
            let mut second = groups[0].clone();
            second.name = "api".into();
            groups.push(second);
        }
        let job = v.upsert_job(job);
        let out = run(&v, &job);
        let mut nodes: Vec<&str> = placed(&out).iter().map(|a| &*a.node_id).collect();
        assert_eq!(nodes.len(), 3);
        nodes.sort();
        nodes.dedup();
        assert_eq!(nodes.len(), 3, "no node holds two allocations of the job");
        let queued: i64 = out.queued_allocations.values().sum();
        assert_eq!(queued, 1);
    }
}
