//! The placement engine both schedulers use: node iteration, feasibility, fit, ranking,
//! metrics, and the bookkeeping that lets placements in one plan account for each other.
//!
//! Per evaluation a [`Cluster`] holds the nodes, a lazily built [`NodeState`] per node and
//! where the job's live allocations are. Per task group a [`GroupStack`] caches the static
//! feasibility of every node and selects nodes the way Nomad does: walk the nodes in a
//! shuffled order, continuing where the previous placement stopped, and rank only a
//! limited number of fitting candidates.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;

use super::SchedulerView;
use super::feasible::{
    DISTINCT_HOSTS, DistinctProperty, GroupFeasibility, JobCollocation, node_serves_job,
};
use super::fit::{
    AssignedNetworks, NetworkAsk, NodeState, Usage, alloc_ports, alloc_usage, group_usage,
};
use super::rank::{
    AffinityScorer, SCORE_ANTI_AFFINITY, SCORE_BINPACK, SCORE_NODE_AFFINITY,
    SCORE_RESCHEDULE_PENALTY, SCORE_SPREAD, ScoreCard, SpreadScorer, anti_affinity_penalty,
    binpack_score, candidate_limit, spread_fit_score,
};
use crate::structs::{
    AllocClientStatus, AllocDesiredStatus, AllocMetric, AllocatedResources,
    AllocatedSharedResources, AllocatedTaskResources, Allocation, Evaluation, Job, Lifecycle, Node,
    NodeScoreMeta, NodeScores, RescheduleTracker, Resources, ScorerNames, TaskGroup, VecMap,
};

/// How many nodes' scores are kept in `ScoreMetaData`.
const SCORE_META_TOP: usize = 5;
/// Fitting nodes whose score is negative are passed over this many times before they count
/// towards the candidate limit (they stay eligible for the best pick).
const MAX_SKIP: usize = 3;

/// The nodes and the job's footprint during one evaluation.
pub struct Cluster<'a> {
    view: &'a dyn SchedulerView,
    /// Every node the view knows.
    pub nodes: Vec<Arc<Node>>,
    index: HashMap<String, usize>,
    /// Nodes the job may use (ready, datacenter, pool), shuffled once per evaluation.
    candidates: Vec<usize>,
    cursor: usize,
    states: Vec<Option<NodeState>>,
    /// Allocations the plan stops whatever happens; they hold nothing.
    stopping: HashSet<String>,
    /// Live allocations of the job per node, placements of this plan included.
    colloc: JobCollocation,
    /// (node index, group, alloc ID) of every live allocation of the job.
    live: Vec<(usize, String, String)>,
    rng: SmallRng,
    /// Shared by the metric of every placement of the evaluation.
    nodes_available: Arc<VecMap<String, i64>>,
    /// The cluster's scheduler configuration when the evaluation started.
    config: Arc<crate::structs::SchedulerConfiguration>,
    nodes_in_pool: i64,
    /// Metric strings every placement that ranked a node repeats, made once per evaluation.
    score_keys: ScoreKeys,
}

/// The strings the evaluation's allocations and metrics repeat, one shared copy each: node
/// IDs and names (by node index), scorer names, and the job's (namespace, job ID, group,
/// evaluation ID).
#[derive(Default)]
struct ScoreKeys {
    /// (ID, name) by node index, made the first time a node is used.
    nodes: Vec<Option<(Arc<str>, Arc<str>)>>,
    /// The last scorer names seen; nearly every node of an evaluation has the same ones.
    scorer_names: Option<ScorerNames>,
    /// The job's strings; a handful, so a scan beats hashing.
    job: Vec<Arc<str>>,
}

impl ScoreKeys {
    /// The shared copy of one of the job's strings.
    fn job_str(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.job.iter().find(|j| ***j == *s) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(s);
        self.job.push(shared.clone());
        shared
    }

    /// The shared (ID, name) of the node at `idx`.
    fn node(&mut self, idx: usize, node: &Node) -> &(Arc<str>, Arc<str>) {
        if self.nodes.len() <= idx {
            self.nodes.resize(idx + 1, None);
        }
        self.nodes[idx]
            .get_or_insert_with(|| (Arc::from(node.id.as_str()), Arc::from(node.name.as_str())))
    }

    fn node_id(&mut self, idx: usize, node: &Node) -> Arc<str> {
        self.node(idx, node).0.clone()
    }
}

impl<'a> Cluster<'a> {
    /// Snapshot of the nodes for scheduling `job`, whose allocations are `job_allocs`;
    /// `stopping` lists allocations the plan stops unconditionally.
    pub fn new(
        view: &'a dyn SchedulerView,
        job: &Job,
        job_allocs: &[Arc<Allocation>],
        stopping: HashSet<String>,
    ) -> Cluster<'a> {
        let nodes = view.nodes();
        let index: HashMap<String, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect();
        let mut rng: SmallRng = rand::make_rng();
        let mut candidates: Vec<usize> = (0..nodes.len())
            .filter(|i| node_serves_job(job, &nodes[*i]))
            .collect();
        candidates.shuffle(&mut rng);
        let mut nodes_available = VecMap::new();
        for i in &candidates {
            let dc = &nodes[*i].datacenter;
            match nodes_available.get_mut(dc.as_str()) {
                Some(n) => *n += 1,
                None => {
                    nodes_available.insert(dc.clone(), 1);
                }
            }
        }
        nodes_available.shrink_to_fit();
        let nodes_available = Arc::new(nodes_available);
        let nodes_in_pool = nodes
            .iter()
            .filter(|n| {
                n.ready() && super::feasible::node_pool_matches(&job.node_pool, &n.node_pool)
            })
            .count() as i64;
        let mut colloc = JobCollocation::new(nodes.len());
        let mut live = Vec::new();
        for a in job_allocs {
            if a.terminal() || stopping.contains(&a.id) {
                continue;
            }
            if let Some(idx) = index.get(&*a.node_id) {
                colloc.add(*idx, &a.task_group);
                live.push((*idx, a.task_group.to_string(), a.id.clone()));
            }
        }
        Cluster {
            view,
            states: vec![None; nodes.len()],
            nodes,
            index,
            candidates,
            cursor: 0,
            stopping,
            colloc,
            live,
            rng,
            nodes_available,
            nodes_in_pool,
            score_keys: ScoreKeys::default(),
            config: view.scheduler_config(),
        }
    }

    /// The index of a node by ID.
    pub fn node_idx(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// True when the plan already stops this allocation.
    pub fn is_stopping(&self, alloc_id: &str) -> bool {
        self.stopping.contains(alloc_id)
    }

    fn ensure_state(&mut self, idx: usize) {
        if self.states[idx].is_some() {
            return;
        }
        let node = &self.nodes[idx];
        let allocs = self.view.allocs_by_node(&node.id);
        let live = allocs
            .iter()
            .filter(|a| !self.stopping.contains(&a.id))
            .map(|a| &**a);
        self.states[idx] = Some(NodeState::new(node, live));
    }

    fn base_metric(&self) -> AllocMetric {
        AllocMetric {
            nodes_available: Some(self.nodes_available.clone()),
            nodes_in_pool: self.nodes_in_pool,
            ..Default::default()
        }
    }
}

/// A chosen node and the ports it gave.
#[derive(Debug, Clone)]
pub struct Choice {
    /// Index into [`Cluster::nodes`].
    pub node_idx: usize,
    /// The placement's networks with host ports.
    pub nets: AssignedNetworks,
}

/// The outcome of one node selection.
#[derive(Debug, Clone)]
pub struct Selection {
    /// What the scheduler saw (becomes the allocation's or the failure's metric).
    pub metric: AllocMetric,
    /// The node, if one fits.
    pub choice: Option<Choice>,
}

/// Per-group selection state.
pub struct GroupStack<'j> {
    tg: &'j TaskGroup,
    feas: GroupFeasibility,
    /// Per node: not yet checked, feasible, or the index of the filter reason.
    static_ok: Vec<Option<Result<(), usize>>>,
    reasons: Vec<String>,
    distinct_props: Vec<DistinctProperty>,
    affinity: AffinityScorer,
    spread: Option<SpreadScorer>,
    ask: Usage,
    net_ask: NetworkAsk<'j>,
    limit: usize,
    template: AllocTemplate,
}

impl<'j> GroupStack<'j> {
    /// Prepares the selection of nodes for `tg`.
    pub fn new(cl: &Cluster<'_>, job: &'j Job, tg: &'j TaskGroup, batch: bool) -> GroupStack<'j> {
        let feas = GroupFeasibility::new(job, tg);
        let mut distinct_props: Vec<DistinctProperty> = feas
            .distinct_properties
            .iter()
            .map(|(c, job_level)| {
                DistinctProperty::new(c, (!job_level).then_some(tg.name.as_str()))
            })
            .collect();
        let mut spread = SpreadScorer::new(job, tg);
        for (idx, group, _) in &cl.live {
            let node = &cl.nodes[*idx];
            for dp in &mut distinct_props {
                dp.add(node, group);
            }
            if let Some(sp) = spread.as_mut().filter(|_| *group == tg.name) {
                sp.add(node);
            }
        }
        let affinity = AffinityScorer::new(job, tg);
        let exhaustive = !affinity.is_empty() || spread.is_some();
        GroupStack {
            tg,
            limit: candidate_limit(cl.candidates.len(), batch, exhaustive),
            feas,
            static_ok: vec![None; cl.nodes.len()],
            reasons: Vec::new(),
            distinct_props,
            affinity,
            spread,
            ask: group_usage(tg),
            net_ask: NetworkAsk::of(tg),
            template: AllocTemplate::new(tg, cl.config.memory_oversubscription_enabled),
        }
    }

    /// The allocation skeleton of this group.
    pub fn template(&self) -> &AllocTemplate {
        &self.template
    }

    /// True when drivers and constraints allow the group on node `idx`.
    pub fn statically_feasible(&mut self, cl: &Cluster<'_>, idx: usize) -> bool {
        self.static_check(&cl.nodes[idx], idx).is_ok()
    }

    fn static_check(&mut self, node: &Node, idx: usize) -> Result<(), usize> {
        if let Some(r) = self.static_ok[idx] {
            return r;
        }
        let r = match self.feas.check(node) {
            Ok(()) => Ok(()),
            Err(reason) => Err(match self.reasons.iter().position(|r| r == reason) {
                Some(i) => i,
                None => {
                    self.reasons.push(reason.to_string());
                    self.reasons.len() - 1
                }
            }),
        };
        self.static_ok[idx] = Some(r);
        r
    }

    /// Picks the best node among the next candidates. `penalty` lists nodes a rescheduled
    /// allocation already failed on.
    pub fn select(&mut self, cl: &mut Cluster<'_>, penalty: &[String]) -> Selection {
        let start = Instant::now();
        let mut m = cl.base_metric();
        let n = cl.candidates.len();
        let mut cards: Vec<(usize, ScoreCard)> = Vec::new();
        let mut best: Option<(f64, usize)> = None;
        let (mut counted, mut skipped, mut visited) = (0, 0, 0);
        while visited < n && counted < self.limit {
            let idx = cl.candidates[(cl.cursor + visited) % n];
            visited += 1;
            let Some(card) = self.evaluate(cl, idx, &mut m, penalty) else {
                continue;
            };
            let score = card.final_score();
            if score < 0.0 && skipped < MAX_SKIP {
                skipped += 1;
            } else {
                counted += 1;
            }
            if best.as_ref().is_none_or(|(b, _)| score > *b) {
                best = Some((score, idx));
            }
            cards.push((idx, card));
        }
        if n > 0 {
            cl.cursor = (cl.cursor + visited) % n;
        }
        record_scores(&mut m, cl, &cards);
        let choice = best.and_then(|(_, idx)| self.assign(cl, idx, &mut m));
        m.allocation_time = i64::try_from(start.elapsed().as_nanos()).unwrap_or(i64::MAX);
        m.shrink_to_fit();
        Selection { metric: m, choice }
    }

    /// Checks one node only (the system scheduler places per node). The node must be ready
    /// and serve the job; that is the caller's business.
    pub fn select_node(&mut self, cl: &mut Cluster<'_>, idx: usize) -> Selection {
        let start = Instant::now();
        let mut m = cl.base_metric();
        let choice = match self.evaluate(cl, idx, &mut m, &[]) {
            Some(card) => {
                record_scores(&mut m, cl, &[(idx, card)]);
                self.assign(cl, idx, &mut m)
            }
            None => None,
        };
        m.allocation_time = i64::try_from(start.elapsed().as_nanos()).unwrap_or(i64::MAX);
        m.shrink_to_fit();
        Selection { metric: m, choice }
    }

    fn evaluate(
        &mut self,
        cl: &mut Cluster<'_>,
        idx: usize,
        m: &mut AllocMetric,
        penalty: &[String],
    ) -> Option<ScoreCard> {
        let node = cl.nodes[idx].clone();
        m.nodes_evaluated += 1;
        if let Err(r) = self.static_check(&node, idx) {
            filter_node(m, &node, &self.reasons[r]);
            return None;
        }
        if !cl
            .colloc
            .distinct_hosts_ok(self.feas.distinct_hosts, idx, &self.tg.name)
        {
            filter_node(m, &node, DISTINCT_HOSTS);
            return None;
        }
        for dp in &self.distinct_props {
            if let Err(reason) = dp.check(&node) {
                filter_node(m, &node, &reason);
                return None;
            }
        }
        cl.ensure_state(idx);
        let state = cl.states[idx].as_ref()?;
        if let Err(dim) = state.fits(&self.ask) {
            exhaust_node(m, &node, dim);
            return None;
        }
        if !self.net_ask.is_empty()
            && let Err(dim) = state.ports_fit(&self.net_ask)
        {
            exhaust_node(m, &node, &dim);
            return None;
        }
        let mut card = ScoreCard::default();
        let after = state.used.plus(self.ask);
        // Nomad reports the fit under "binpack" whichever algorithm computed it.
        let fit = if cl.config.spreads() {
            spread_fit_score(&state.capacity, &after)
        } else {
            binpack_score(&state.capacity, &after)
        };
        card.push(SCORE_BINPACK, fit, true);
        match anti_affinity_penalty(cl.colloc.group_on(idx, &self.tg.name), self.tg.count) {
            Some(p) => card.push(SCORE_ANTI_AFFINITY, p, true),
            None => card.push(SCORE_ANTI_AFFINITY, 0.0, false),
        }
        let penalized = penalty.iter().any(|p| *p == node.id);
        card.push(
            SCORE_RESCHEDULE_PENALTY,
            if penalized { -1.0 } else { 0.0 },
            penalized,
        );
        if self.affinity.is_empty() {
            card.push(SCORE_NODE_AFFINITY, 0.0, false);
        } else {
            card.push(SCORE_NODE_AFFINITY, self.affinity.score(&node), true);
        }
        if let Some(sp) = &self.spread {
            card.push(SCORE_SPREAD, sp.score(&node), true);
        }
        Some(card)
    }

    /// Picks the actual host ports on the chosen node.
    fn assign(&self, cl: &mut Cluster<'_>, idx: usize, m: &mut AllocMetric) -> Option<Choice> {
        let nets = if self.net_ask.is_empty() {
            AssignedNetworks::default()
        } else {
            let state = cl.states[idx].as_ref()?;
            match state.assign_networks(&self.net_ask, &mut cl.rng) {
                Ok(nets) => nets,
                Err(dim) => {
                    // Only reachable if the cheap check was too optimistic.
                    exhaust_node(m, &cl.nodes[idx], &dim);
                    return None;
                }
            }
        };
        Some(Choice {
            node_idx: idx,
            nets,
        })
    }

    /// Records a placement on `choice`'s node so later selections see it. `alloc_id` is
    /// the new allocation's ID.
    pub fn commit(&mut self, cl: &mut Cluster<'_>, choice: &Choice, alloc_id: &str) {
        let idx = choice.node_idx;
        if let Some(st) = cl.states[idx].as_mut() {
            st.commit(self.ask, &choice.nets.taken);
        }
        self.track(cl, idx, true);
        cl.live
            .push((idx, self.tg.name.clone(), alloc_id.to_string()));
    }

    /// Gives back what a live allocation the plan is about to replace holds, so its
    /// replacement may use it. Returns false when it held nothing.
    pub fn release(&mut self, cl: &mut Cluster<'_>, prev: &Allocation) -> bool {
        if prev.terminal() || cl.stopping.contains(&prev.id) {
            return false;
        }
        let Some(idx) = cl.node_idx(&prev.node_id) else {
            return false;
        };
        cl.ensure_state(idx);
        if let Some(st) = cl.states[idx].as_mut() {
            st.release(alloc_usage(prev), &alloc_ports(prev));
        }
        if *prev.task_group == *self.tg.name {
            self.track(cl, idx, false);
        } else {
            cl.colloc.remove(idx, &prev.task_group);
        }
        if let Some(pos) = cl.live.iter().position(|(_, _, id)| *id == prev.id) {
            cl.live.swap_remove(pos);
        }
        true
    }

    /// Undoes [`GroupStack::release`] when the replacement could not be placed.
    pub fn unrelease(&mut self, cl: &mut Cluster<'_>, prev: &Allocation) {
        let Some(idx) = cl.node_idx(&prev.node_id) else {
            return;
        };
        if let Some(st) = cl.states[idx].as_mut() {
            st.commit(alloc_usage(prev), &alloc_ports(prev));
        }
        if *prev.task_group == *self.tg.name {
            self.track(cl, idx, true);
        } else {
            cl.colloc.add(idx, &prev.task_group);
        }
        cl.live
            .push((idx, prev.task_group.to_string(), prev.id.clone()));
    }

    fn track(&mut self, cl: &mut Cluster<'_>, idx: usize, add: bool) {
        let node = cl.nodes[idx].clone();
        let group = self.tg.name.as_str();
        if add {
            cl.colloc.add(idx, group);
        } else {
            cl.colloc.remove(idx, group);
        }
        for dp in &mut self.distinct_props {
            if add {
                dp.add(&node, group);
            } else {
                dp.remove(&node, group);
            }
        }
        if let Some(sp) = self.spread.as_mut() {
            if add {
                sp.add(&node);
            } else {
                sp.remove(&node);
            }
        }
    }

    /// Computed node class → whether some node of it passed the static checks.
    pub fn class_eligibility(&mut self, cl: &Cluster<'_>, out: &mut BTreeMap<String, bool>) {
        for &idx in &cl.candidates {
            let node = &cl.nodes[idx];
            if node.computed_class.is_empty() {
                continue;
            }
            let ok = self.static_check(node, idx).is_ok();
            let e = out.entry(node.computed_class.clone()).or_insert(false);
            *e |= ok;
        }
    }

    /// True when a constraint names a per-node unique value.
    pub fn escapes_class(&self) -> bool {
        self.feas.escapes_class()
    }
}

/// Increments `map[key]`, allocating the key only the first time.
fn bump(map: &mut Option<VecMap<String, i64>>, key: &str) {
    let map = map.get_or_insert_with(VecMap::new);
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_string(), 1);
        }
    }
}

fn filter_node(m: &mut AllocMetric, node: &Node, reason: &str) {
    m.nodes_filtered += 1;
    if !node.node_class.is_empty() {
        bump(&mut m.class_filtered, &node.node_class);
    }
    bump(&mut m.constraint_filtered, reason);
}

fn exhaust_node(m: &mut AllocMetric, node: &Node, dim: &str) {
    m.nodes_exhausted += 1;
    if !node.node_class.is_empty() {
        bump(&mut m.class_exhausted, &node.node_class);
    }
    bump(&mut m.dimension_exhausted, dim);
}

/// Fills `ScoreMetaData` (every scorer of the best few nodes). The deprecated `Scores` map
/// stays null, as Nomad has left it since `ScoreMetaData` replaced it: filling it cost about a
/// kilobyte per allocation of server memory for a field no client reads.
fn record_scores(m: &mut AllocMetric, cl: &mut Cluster<'_>, cards: &[(usize, ScoreCard)]) {
    if cards.is_empty() {
        return;
    }
    let mut order: Vec<(f64, usize)> = cards
        .iter()
        .enumerate()
        .map(|(i, (_, c))| (c.final_score(), i))
        .collect();
    order.sort_by(|a, b| b.0.total_cmp(&a.0));
    let meta = order
        .iter()
        .take(SCORE_META_TOP)
        .map(|(norm, i)| {
            let (idx, card) = &cards[*i];
            let scores = NodeScores::from_pairs(
                card.scores
                    .iter()
                    .map(|(n, v, _)| (Cow::Borrowed(*n), *v))
                    .collect(),
                cl.score_keys.scorer_names.as_ref(),
            );
            cl.score_keys.scorer_names = Some(scores.names().clone());
            NodeScoreMeta {
                node_id: cl.score_keys.node_id(*idx, &cl.nodes[*idx]),
                scores,
                norm_score: *norm,
            }
        })
        .collect();
    m.score_meta_data = Some(meta);
}

/// The resources part of a group's allocations, computed once per group. The per-task maps
/// are shared by every allocation of the group unless its tasks get networks of their own.
#[derive(Debug, Clone, Default)]
pub struct AllocTemplate {
    tasks: Arc<VecMap<String, AllocatedTaskResources>>,
    lifecycles: Arc<VecMap<String, Option<Lifecycle>>>,
    legacy_tasks: Arc<VecMap<String, Resources>>,
    total: Resources,
    disk_mb: i64,
}

impl AllocTemplate {
    /// Builds the skeleton from the group's tasks.
    /// `MemoryMaxMB` is kept only where the cluster allows memory oversubscription, as
    /// Nomad's scheduler does, so a task's hard limit is its `MemoryMB` otherwise.
    pub fn new(tg: &TaskGroup, memory_oversubscription: bool) -> AllocTemplate {
        let disk_mb = tg.ephemeral_disk.as_ref().map_or(0, |d| d.size_mb);
        let mut total = Resources {
            disk_mb,
            ..Default::default()
        };
        let (mut tasks, mut lifecycles, mut legacy_tasks) = (Vec::new(), Vec::new(), Vec::new());
        for task in tg.tasks() {
            let mut r = task.resources.clone().unwrap_or_default();
            if !memory_oversubscription {
                r.memory_max_mb = 0;
            }
            let mut atr = AllocatedTaskResources::default();
            atr.cpu.cpu_shares = r.cpu;
            atr.memory.memory_mb = r.memory_mb;
            atr.memory.memory_max_mb = r.memory_max_mb;
            tasks.push((task.name.clone(), atr));
            lifecycles.push((task.name.clone(), task.lifecycle.clone()));
            total.cpu += r.cpu;
            total.memory_mb += r.memory_mb;
            total.memory_max_mb += r.memory_max_mb;
            legacy_tasks.push((
                task.name.clone(),
                Resources {
                    cpu: r.cpu,
                    memory_mb: r.memory_mb,
                    memory_max_mb: r.memory_max_mb,
                    ..Default::default()
                },
            ));
        }
        AllocTemplate {
            tasks: Arc::new(tasks.into_iter().collect()),
            lifecycles: Arc::new(lifecycles.into_iter().collect()),
            legacy_tasks: Arc::new(legacy_tasks.into_iter().collect()),
            total,
            disk_mb,
        }
    }

    /// The allocation's resources with `nets` filled in: (allocated, legacy total,
    /// legacy shared, legacy per task).
    pub fn instantiate(
        &self,
        nets: &AssignedNetworks,
    ) -> (
        AllocatedResources,
        Resources,
        Resources,
        Arc<VecMap<String, Resources>>,
    ) {
        let mut tasks = self.tasks.clone();
        let mut legacy = self.legacy_tasks.clone();
        let mut all_nets = Vec::new();
        for (name, n) in &nets.tasks {
            let n = Arc::new(n.clone());
            if let Some(t) = Arc::make_mut(&mut tasks).get_mut(name.as_str()) {
                t.networks = Some(n.clone());
            }
            if let Some(t) = Arc::make_mut(&mut legacy).get_mut(name.as_str()) {
                t.networks = Some(n.clone());
            }
            all_nets.extend(n.iter().cloned());
        }
        let group_nets = (!nets.group.is_empty()).then(|| Arc::new(nets.group.clone()));
        // Without task networks the legacy total is the group's networks: one copy for all.
        let total_nets = if all_nets.is_empty() {
            group_nets.clone()
        } else {
            all_nets.extend(nets.group.iter().cloned());
            Some(Arc::new(all_nets))
        };
        let allocated = AllocatedResources {
            tasks,
            task_lifecycles: Some(self.lifecycles.clone()),
            shared: AllocatedSharedResources {
                networks: group_nets.clone(),
                disk_mb: self.disk_mb,
                ports: (!nets.ports.is_empty()).then(|| nets.ports.clone()),
            },
        };
        let mut total = self.total.clone();
        total.networks = total_nets;
        let shared = Resources {
            disk_mb: self.disk_mb,
            networks: group_nets,
            ..Default::default()
        };
        (allocated, total, shared, legacy)
    }
}

/// What a new allocation needs besides its node.
pub struct NewAlloc<'x> {
    /// The evaluation placing it.
    pub eval: &'x Evaluation,
    /// The job version it runs.
    pub job: &'x Arc<Job>,
    /// Its task group.
    pub tg: &'x TaskGroup,
    /// `<job>.<group>[<index>]`.
    pub name: String,
    /// The allocation it replaces.
    pub previous: Option<&'x Allocation>,
    /// Its reschedule history.
    pub tracker: Option<RescheduleTracker>,
    /// Now, in Unix nanoseconds.
    pub now: i64,
}

impl NewAlloc<'_> {
    /// Builds the allocation for `choice` with its metric.
    pub fn build(
        self,
        template: &AllocTemplate,
        cl: &mut Cluster<'_>,
        choice: &Choice,
        metric: AllocMetric,
    ) -> Allocation {
        let (allocated, total, shared, tasks) = template.instantiate(&choice.nets);
        let keys = &mut cl.score_keys;
        let (node_id, node_name) = keys
            .node(choice.node_idx, &cl.nodes[choice.node_idx])
            .clone();
        Allocation {
            id: crate::structs::generate_uuid(),
            namespace: keys.job_str(&self.job.namespace),
            eval_id: keys.job_str(&self.eval.id),
            name: self.name,
            node_id,
            node_name,
            job_id: keys.job_str(&self.job.id),
            job: Some(self.job.clone()),
            task_group: keys.job_str(&self.tg.name),
            resources: Some(total),
            shared_resources: Some(shared),
            task_resources: Some(tasks),
            allocated_resources: Some(allocated),
            metrics: Some(metric),
            desired_status: AllocDesiredStatus::Run,
            client_status: AllocClientStatus::Pending,
            previous_allocation: self.previous.map(|p| p.id.clone()).unwrap_or_default(),
            reschedule_tracker: self.tracker,
            create_time: self.now,
            modify_time: self.now,
            ..Default::default()
        }
    }
}

/// A copy of `a` marked stopped (and `lost` when `client_status` says so).
pub fn stopped_copy(
    a: &Allocation,
    description: &str,
    client_status: Option<crate::structs::AllocClientStatus>,
    now: i64,
) -> Allocation {
    let mut s = a.clone();
    s.desired_status = crate::structs::AllocDesiredStatus::Stop;
    s.desired_description = description.to_string();
    if let Some(cs) = client_status {
        s.client_status = cs;
    }
    s.modify_time = now;
    s
}
