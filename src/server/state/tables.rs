//! The in-memory tables: persistent (structurally shared) maps, so a snapshot is a cheap
//! clone and a writer copies only what it changes.

use std::ops::Bound;
use std::sync::Arc;

use imbl::{HashMap, OrdMap, OrdSet, Vector};

use crate::server::scheduler::SchedulerView;
use crate::structs::{
    Allocation, Deployment, Evaluation, Job, JobScalingEvents, JobSubmission, Namespace, Node,
    SchedulerConfiguration,
};

/// `(namespace, id)`.
pub type NsKey = (String, String);

/// The tables a blocking query can watch; each has its own index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Jobs,
    JobVersions,
    Allocs,
    Nodes,
    Evals,
    Deployments,
    ScalingEvents,
    Namespaces,
    AclPolicies,
    AclTokens,
    AclRoles,
    SchedulerConfig,
    Variables,
    RootKeys,
    Services,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 15] = [
        Table::Jobs,
        Table::JobVersions,
        Table::Allocs,
        Table::Nodes,
        Table::Evals,
        Table::Deployments,
        Table::ScalingEvents,
        Table::Namespaces,
        Table::AclPolicies,
        Table::AclTokens,
        Table::AclRoles,
        Table::SchedulerConfig,
        Table::Variables,
        Table::RootKeys,
        Table::Services,
    ];

    /// Position in per-table arrays.
    pub fn pos(self) -> usize {
        self as usize
    }

    /// Name used in the persisted meta records.
    pub fn name(self) -> &'static str {
        match self {
            Table::Jobs => "jobs",
            Table::JobVersions => "job_version",
            Table::Allocs => "allocs",
            Table::Nodes => "nodes",
            Table::Evals => "evals",
            Table::Deployments => "deployment",
            Table::ScalingEvents => "scaling_event",
            Table::Namespaces => "namespaces",
            Table::AclPolicies => "acl_policy",
            Table::AclTokens => "acl_token",
            Table::AclRoles => "acl_role",
            Table::SchedulerConfig => "scheduler_config",
            Table::Variables => "variables",
            Table::RootKeys => "root_keys",
            Table::Services => "service_registrations",
        }
    }
}

/// Most job versions kept per job (Nomad keeps six).
pub const JOB_TRACKED_VERSIONS: usize = 6;

/// One consistent view of the whole state.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    /// The latest index of any write.
    pub index: u64,
    /// The latest write index per table.
    pub table_index: [u64; Table::ALL.len()],
    pub jobs: OrdMap<NsKey, Arc<Job>>,
    /// Versions of each job, newest first.
    pub job_versions: OrdMap<NsKey, Vector<Arc<Job>>>,
    /// Allocations by ID. The key is the one copy of the ID the two indexes below share.
    pub allocs: OrdMap<Arc<str>, Arc<Allocation>>,
    pub allocs_by_node: HashMap<String, OrdSet<Arc<str>>>,
    pub allocs_by_job: HashMap<NsKey, OrdSet<Arc<str>>>,
    pub nodes: OrdMap<String, Arc<Node>>,
    pub evals: OrdMap<String, Arc<Evaluation>>,
    pub evals_by_job: HashMap<NsKey, OrdSet<String>>,
    pub deployments: OrdMap<String, Arc<Deployment>>,
    /// Scaling events of each job, per group, newest first.
    pub scaling_events: OrdMap<NsKey, Arc<JobScalingEvents>>,
    /// Namespaces by name; `default` is always there (see [`Tables::ensure_default_namespace`]).
    pub namespaces: OrdMap<String, Arc<Namespace>>,
    /// ACL policies, tokens (by accessor ID, with the secret index) and roles.
    pub acl: super::acl::AclTables,
    /// The job files of each job's kept versions, newest first.
    pub job_submissions: OrdMap<NsKey, Arc<Vec<JobSubmission>>>,
    /// The scheduler configuration; `None` until one is written.
    pub scheduler_config: Option<Arc<SchedulerConfiguration>>,
    /// Variables (items encrypted) and the root keys' metadata.
    pub vars: super::variables::VariableTables,
    /// Native service registrations.
    pub services: super::services::ServiceTables,
    /// Keys of job copies already persisted for allocations (see `txn::alloc_job_key`).
    pub alloc_job_keys: imbl::HashSet<String>,
}

/// `(ns, id)` key helper.
pub fn ns_key(ns: &str, id: &str) -> NsKey {
    (ns.to_string(), id.to_string())
}

fn in_namespace(ns_filter: &str, ns: &str) -> bool {
    ns_filter == "*" || ns_filter == ns
}

impl Tables {
    /// The index of a table (at least 1, as Nomad never reports 0).
    pub fn table_index(&self, t: Table) -> u64 {
        self.table_index[t.pos()].max(1)
    }

    /// The highest index among several tables.
    pub fn max_index(&self, tables: &[Table]) -> u64 {
        tables
            .iter()
            .map(|t| self.table_index(*t))
            .max()
            .unwrap_or(1)
    }

    /// Adds the `default` namespace when the state has none (a new cluster, or a state
    /// directory written before namespaces were objects), as Nomad does at every start.
    pub fn ensure_default_namespace(&mut self) {
        let name = crate::structs::DEFAULT_NAMESPACE.to_string();
        if !self.namespaces.contains_key(&name) {
            self.namespaces
                .insert(name, Arc::new(Namespace::default_namespace()));
        }
    }

    /// A namespace by name.
    pub fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        self.namespaces.get(name).cloned()
    }

    /// Namespaces whose name starts with `prefix`, sorted by name.
    pub fn namespaces_with_prefix(&self, prefix: &str) -> Vec<Arc<Namespace>> {
        self.namespaces
            .range(prefix.to_string()..)
            .take_while(|(name, _)| name.starts_with(prefix))
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// The scheduler configuration in force (Nomad's default until one is written).
    pub fn scheduler_config(&self) -> Arc<SchedulerConfiguration> {
        self.scheduler_config.clone().unwrap_or_default()
    }

    /// A job by namespace and ID.
    pub fn job(&self, ns: &str, id: &str) -> Option<Arc<Job>> {
        self.jobs.get(&ns_key(ns, id)).cloned()
    }

    /// Jobs in a namespace (`*` for all) whose ID starts with `prefix`, sorted by namespace, ID.
    pub fn jobs_with_prefix(&self, ns: &str, prefix: &str) -> Vec<Arc<Job>> {
        if ns == "*" {
            return self
                .jobs
                .iter()
                .filter(|((_, id), _)| id.starts_with(prefix))
                .map(|(_, j)| j.clone())
                .collect();
        }
        // IDs sharing a prefix sort together: read only their range.
        self.jobs
            .range(ns_key(ns, prefix)..)
            .take_while(|((jns, id), _)| jns == ns && id.starts_with(prefix))
            .map(|(_, j)| j.clone())
            .collect()
    }

    /// The job file version `version` of a job was registered from, if kept.
    pub fn job_submission(&self, ns: &str, id: &str, version: u64) -> Option<JobSubmission> {
        self.job_submissions
            .get(&ns_key(ns, id))?
            .iter()
            .find(|s| s.version == version)
            .cloned()
    }

    /// Versions of a job, newest first.
    pub fn job_versions(&self, ns: &str, id: &str) -> Vec<Arc<Job>> {
        self.job_versions
            .get(&ns_key(ns, id))
            .map(|v| v.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// A specific version of a job.
    pub fn job_version(&self, ns: &str, id: &str, version: i64) -> Option<Arc<Job>> {
        self.job_versions
            .get(&ns_key(ns, id))?
            .iter()
            .find(|j| j.version == version)
            .cloned()
    }

    /// An allocation by ID.
    pub fn alloc(&self, id: &str) -> Option<Arc<Allocation>> {
        self.allocs.get(id).cloned()
    }

    /// Allocations whose ID starts with `prefix` in a namespace (`*` for all).
    pub fn allocs_with_prefix(&self, ns: &str, prefix: &str) -> Vec<Arc<Allocation>> {
        self.allocs
            .range::<_, str>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(id, _)| id.starts_with(prefix))
            .filter(|(_, a)| in_namespace(ns, &a.namespace))
            .map(|(_, a)| a.clone())
            .collect()
    }

    /// Allocations of a job (every version).
    pub fn allocs_by_job(&self, ns: &str, job_id: &str) -> Vec<Arc<Allocation>> {
        self.allocs_by_job
            .get(&ns_key(ns, job_id))
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| self.allocs.get(&**id).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Allocations placed on a node.
    pub fn allocs_by_node(&self, node_id: &str) -> Vec<Arc<Allocation>> {
        self.allocs_by_node
            .get(node_id)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| self.allocs.get(&**id).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A node by ID.
    pub fn node(&self, id: &str) -> Option<Arc<Node>> {
        self.nodes.get(id).cloned()
    }

    /// Nodes whose ID starts with `prefix`.
    pub fn nodes_with_prefix(&self, prefix: &str) -> Vec<Arc<Node>> {
        self.nodes
            .range(prefix.to_string()..)
            .take_while(|(id, _)| id.starts_with(prefix))
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// An evaluation by ID.
    pub fn eval(&self, id: &str) -> Option<Arc<Evaluation>> {
        self.evals.get(id).cloned()
    }

    /// Evaluations whose ID starts with `prefix` in a namespace (`*` for all).
    pub fn evals_with_prefix(&self, ns: &str, prefix: &str) -> Vec<Arc<Evaluation>> {
        self.evals
            .range(prefix.to_string()..)
            .take_while(|(id, _)| id.starts_with(prefix))
            .filter(|(_, e)| in_namespace(ns, &e.namespace))
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Deployments whose ID starts with `prefix`, in ID order.
    pub fn deployments_with_prefix(&self, ns: &str, prefix: &str) -> Vec<Arc<Deployment>> {
        self.deployments
            .range(prefix.to_string()..)
            .take_while(|(id, _)| id.starts_with(prefix))
            .filter(|(_, d)| in_namespace(ns, &d.namespace))
            .map(|(_, d)| d.clone())
            .collect()
    }

    /// Allocations that belong to a deployment.
    pub fn allocs_by_deployment(&self, d: &Deployment) -> Vec<Arc<Allocation>> {
        self.allocs_by_job(&d.namespace, &d.job_id)
            .into_iter()
            .filter(|a| a.deployment_id == d.id)
            .collect()
    }

    /// Evaluations of a job.
    pub fn evals_by_job(&self, ns: &str, job_id: &str) -> Vec<Arc<Evaluation>> {
        self.evals_by_job
            .get(&ns_key(ns, job_id))
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| self.evals.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Allocations created by an evaluation.
    pub fn allocs_by_eval(&self, eval: &Evaluation) -> Vec<Arc<Allocation>> {
        self.allocs_by_job(&eval.namespace, &eval.job_id)
            .into_iter()
            .filter(|a| *a.eval_id == *eval.id)
            .collect()
    }

    /// A job's most recent deployment.
    pub fn latest_deployment(&self, ns: &str, job_id: &str) -> Option<Arc<Deployment>> {
        self.deployments
            .values()
            .filter(|d| d.namespace == ns && d.job_id == job_id)
            .max_by_key(|d| d.create_index)
            .cloned()
    }

    /// A deployment by ID.
    pub fn deployment(&self, id: &str) -> Option<Arc<Deployment>> {
        self.deployments.get(id).cloned()
    }

    /// Deployments of a job, newest first.
    pub fn deployments_by_job(&self, ns: &str, job_id: &str) -> Vec<Arc<Deployment>> {
        let mut out: Vec<_> = self
            .deployments
            .values()
            .filter(|d| d.namespace == ns && d.job_id == job_id)
            .cloned()
            .collect();
        out.sort_by_key(|d| std::cmp::Reverse(d.create_index));
        out
    }
}

impl SchedulerView for Tables {
    fn index(&self) -> u64 {
        self.index
    }

    fn job(&self, namespace: &str, id: &str) -> Option<Arc<Job>> {
        Tables::job(self, namespace, id)
    }

    fn nodes(&self) -> Vec<Arc<Node>> {
        self.nodes.values().cloned().collect()
    }

    fn node(&self, id: &str) -> Option<Arc<Node>> {
        Tables::node(self, id)
    }

    fn allocs_by_job(&self, namespace: &str, job_id: &str) -> Vec<Arc<Allocation>> {
        Tables::allocs_by_job(self, namespace, job_id)
    }

    fn allocs_by_node(&self, node_id: &str) -> Vec<Arc<Allocation>> {
        Tables::allocs_by_node(self, node_id)
    }

    fn alloc(&self, id: &str) -> Option<Arc<Allocation>> {
        Tables::alloc(self, id)
    }

    fn scheduler_config(&self) -> Arc<SchedulerConfiguration> {
        Tables::scheduler_config(self)
    }

    fn latest_deployment(&self, namespace: &str, job_id: &str) -> Option<Arc<Deployment>> {
        Tables::latest_deployment(self, namespace, job_id)
    }
}
