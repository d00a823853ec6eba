//! An in-memory [`SchedulerView`] for tests, benchmarks and tools: a tiny state store that
//! holds jobs, nodes and allocations in maps and can apply a [`Plan`] to itself.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::{Plan, SchedulerView};
use crate::structs::{
    Allocation, DEFAULT_NAMESPACE, Deployment, DriverInfo, EphemeralDisk, EvalStatus, Evaluation,
    Job, NetworkResource, Node, NodeResources, NodeStatus, ReschedulePolicy, Resources, Task,
    TaskGroup,
};

/// In-memory cluster state implementing [`SchedulerView`].
#[derive(Debug, Default, Clone)]
pub struct MemView {
    index: u64,
    jobs: HashMap<(String, String), Arc<Job>>,
    nodes: BTreeMap<String, Arc<Node>>,
    allocs: HashMap<String, Arc<Allocation>>,
    by_job: HashMap<(String, String), HashSet<String>>,
    by_node: HashMap<String, HashSet<String>>,
    /// The latest deployment of each job.
    deployments: HashMap<(String, String), Arc<Deployment>>,
}

fn ns(namespace: &str) -> String {
    if namespace.is_empty() {
        DEFAULT_NAMESPACE.to_string()
    } else {
        namespace.to_string()
    }
}

impl MemView {
    /// An empty cluster.
    pub fn new() -> MemView {
        MemView::default()
    }

    /// Stores (or replaces) a job and returns the shared copy allocations should point at.
    pub fn upsert_job(&mut self, job: Job) -> Arc<Job> {
        self.index += 1;
        let job = Arc::new(job);
        self.jobs
            .insert((ns(&job.namespace), job.id.clone()), job.clone());
        job
    }

    /// Removes a job (allocations stay, as after a purge before the GC).
    pub fn remove_job(&mut self, namespace: &str, id: &str) {
        self.index += 1;
        self.jobs.remove(&(ns(namespace), id.to_string()));
    }

    /// Stores (or replaces) a node.
    pub fn upsert_node(&mut self, node: Node) {
        self.index += 1;
        self.nodes.insert(node.id.clone(), Arc::new(node));
    }

    /// Stores (or replaces) an allocation, stamping its indexes like a state store.
    pub fn upsert_alloc(&mut self, mut alloc: Allocation) {
        self.index += 1;
        match self.allocs.get(&alloc.id) {
            Some(old) => {
                alloc.create_index = old.create_index;
                if let Some(ids) = self.by_node.get_mut(&*old.node_id) {
                    ids.remove(&alloc.id);
                }
            }
            None => alloc.create_index = self.index,
        }
        alloc.modify_index = self.index;
        self.by_job
            .entry((ns(&alloc.namespace), alloc.job_id.to_string()))
            .or_default()
            .insert(alloc.id.clone());
        self.by_node
            .entry(alloc.node_id.to_string())
            .or_default()
            .insert(alloc.id.clone());
        self.allocs.insert(alloc.id.clone(), Arc::new(alloc));
    }

    /// Stores a job's latest deployment.
    pub fn upsert_deployment(&mut self, d: Deployment) {
        self.index += 1;
        self.deployments
            .insert((ns(&d.namespace), d.job_id.clone()), Arc::new(d));
    }

    /// The job's latest deployment.
    pub fn deployment_of(&self, namespace: &str, job_id: &str) -> Option<Arc<Deployment>> {
        self.deployments
            .get(&(ns(namespace), job_id.to_string()))
            .cloned()
    }

    /// Applies a plan without re-checking it: stops and placements are upserted, the
    /// deployment stored and its status changes applied (no health counting).
    pub fn apply_plan(&mut self, plan: &Plan) {
        if let Some(d) = &plan.deployment {
            self.upsert_deployment(d.clone());
        }
        for u in &plan.deployment_updates {
            let found = self
                .deployments
                .values()
                .find(|d| d.id == u.deployment_id)
                .cloned();
            if let Some(d) = found {
                let mut d = (*d).clone();
                d.status = u.status;
                d.status_description = u.status_description.clone();
                self.upsert_deployment(d);
            }
        }
        for a in plan.node_update.values().flatten() {
            self.upsert_alloc(a.clone());
        }
        for a in plan.node_allocation.values().flatten() {
            self.upsert_alloc(a.clone());
        }
    }

    /// Every allocation stored.
    pub fn all_allocs(&self) -> Vec<Arc<Allocation>> {
        self.allocs.values().cloned().collect()
    }

    fn collect(&self, ids: Option<&HashSet<String>>) -> Vec<Arc<Allocation>> {
        ids.into_iter()
            .flatten()
            .filter_map(|id| self.allocs.get(id).cloned())
            .collect()
    }
}

impl SchedulerView for MemView {
    fn index(&self) -> u64 {
        self.index
    }

    fn job(&self, namespace: &str, id: &str) -> Option<Arc<Job>> {
        self.jobs.get(&(ns(namespace), id.to_string())).cloned()
    }

    fn nodes(&self) -> Vec<Arc<Node>> {
        self.nodes.values().cloned().collect()
    }

    fn node(&self, id: &str) -> Option<Arc<Node>> {
        self.nodes.get(id).cloned()
    }

    fn allocs_by_job(&self, namespace: &str, job_id: &str) -> Vec<Arc<Allocation>> {
        self.collect(self.by_job.get(&(ns(namespace), job_id.to_string())))
    }

    fn allocs_by_node(&self, node_id: &str) -> Vec<Arc<Allocation>> {
        self.collect(self.by_node.get(node_id))
    }

    fn alloc(&self, id: &str) -> Option<Arc<Allocation>> {
        self.allocs.get(id).cloned()
    }

    fn latest_deployment(&self, namespace: &str, job_id: &str) -> Option<Arc<Deployment>> {
        self.deployment_of(namespace, job_id)
    }
}

/// A ready, eligible node in `dc1` with `cpu` MHz, `mem` MB, 100 GB of disk, a healthy
/// `exec` driver, Linux attributes and IP 10.0.0.1.
pub fn mock_node(id: &str, cpu: i64, mem: i64) -> Node {
    let mut res = NodeResources::default();
    res.cpu.cpu_shares = cpu;
    res.memory.memory_mb = mem;
    res.disk.disk_mb = 100_000;
    res.networks = Some(vec![NetworkResource {
        device: "eth0".into(),
        ip: "10.0.0.1".into(),
        ..Default::default()
    }]);
    let attrs = [("kernel.name", "linux"), ("driver.exec", "1")];
    Node {
        id: id.to_string(),
        name: format!("name-{id}"),
        datacenter: "dc1".into(),
        node_pool: "default".into(),
        status: NodeStatus::Ready,
        scheduling_eligibility: "eligible".into(),
        attributes: Some(
            attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        drivers: Some(BTreeMap::from([(
            "exec".to_string(),
            DriverInfo {
                detected: true,
                healthy: true,
                ..Default::default()
            },
        )])),
        node_resources: Some(res),
        ..Default::default()
    }
}

/// A service job `id` with one group `web` of `count` instances of one `exec` task asking
/// for `cpu` MHz and `mem` MB, on datacenters `*`, with Nomad's default service policies.
pub fn mock_job(id: &str, count: i64, cpu: i64, mem: i64) -> Job {
    Job {
        id: id.to_string(),
        name: id.to_string(),
        namespace: DEFAULT_NAMESPACE.into(),
        r#type: "service".into(),
        priority: 50,
        datacenters: Some(vec!["*".into()]),
        node_pool: "default".into(),
        version: 0,
        job_modify_index: 1,
        task_groups: Some(vec![TaskGroup {
            name: "web".into(),
            count,
            ephemeral_disk: Some(EphemeralDisk {
                size_mb: 10,
                ..Default::default()
            }),
            reschedule_policy: Some(ReschedulePolicy {
                attempts: 0,
                interval: 0,
                delay: 30_000_000_000,
                delay_function: "exponential".into(),
                max_delay: 3_600_000_000_000,
                unlimited: true,
            }),
            tasks: Some(vec![Task {
                name: "server".into(),
                driver: "exec".into(),
                resources: Some(Resources {
                    cpu,
                    memory_mb: mem,
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// A pending evaluation of `job` triggered by a registration.
pub fn mock_eval(job: &Job) -> Evaluation {
    Evaluation {
        id: crate::structs::generate_uuid(),
        namespace: job.namespace.clone(),
        priority: job.priority,
        r#type: job.r#type.clone(),
        triggered_by: crate::structs::trigger::JOB_REGISTER.into(),
        job_id: job.id.clone(),
        status: EvalStatus::Pending,
        ..Default::default()
    }
}
