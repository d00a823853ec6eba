//! Schedulers: turn an evaluation and a snapshot of the cluster into a plan.
//!
//! The scheduler is pure: it reads through [`SchedulerView`] and returns a [`SchedulerOutcome`];
//! the server's plan applier commits the plan (re-checking fit, see [`fit`]) and the worker
//! retries against a fresh snapshot when part of a plan was refused.

use std::collections::BTreeMap;
use std::sync::Arc;

pub mod deployment;
#[cfg(test)]
mod deployment_tests;
pub mod disconnect;
pub mod feasible;
pub mod fit;
pub mod generic;
pub mod rank;
pub mod reconcile;
pub mod reschedule;
pub mod stack;
pub mod system;
pub mod testing;
pub mod version;

pub use fit::allocs_fit;
pub use testing::MemView;

use crate::structs::time::now_nanos;
use crate::structs::{
    AllocMetric, Allocation, Deployment, DeploymentStatusUpdate, Evaluation, JOB_TYPE_BATCH,
    JOB_TYPE_SERVICE, JOB_TYPE_SYSBATCH, JOB_TYPE_SYSTEM, Job, Node,
};

/// The evaluation types a worker schedules (`/v1/agent/schedulers`' `enabled_schedulers`).
pub const SCHEDULER_TYPES: [&str; 4] = [
    JOB_TYPE_SERVICE,
    JOB_TYPE_BATCH,
    JOB_TYPE_SYSTEM,
    JOB_TYPE_SYSBATCH,
];

/// Read access to the cluster state at one index.
pub trait SchedulerView: Send + Sync {
    /// The state index this view was taken at.
    fn index(&self) -> u64;
    /// A job by namespace and ID (current version).
    fn job(&self, namespace: &str, id: &str) -> Option<Arc<Job>>;
    /// Every node, in any status.
    fn nodes(&self) -> Vec<Arc<Node>>;
    /// A node by ID.
    fn node(&self, id: &str) -> Option<Arc<Node>>;
    /// Every allocation of a job (all versions, terminal ones included).
    fn allocs_by_job(&self, namespace: &str, job_id: &str) -> Vec<Arc<Allocation>>;
    /// Every allocation on a node (terminal ones included).
    fn allocs_by_node(&self, node_id: &str) -> Vec<Arc<Allocation>>;
    /// An allocation by ID.
    fn alloc(&self, id: &str) -> Option<Arc<Allocation>>;
    /// The cluster's scheduler configuration (algorithm, memory oversubscription).
    fn scheduler_config(&self) -> Arc<crate::structs::SchedulerConfiguration> {
        Arc::default()
    }
    /// The job's most recent deployment.
    fn latest_deployment(&self, namespace: &str, job_id: &str) -> Option<Arc<Deployment>>;
}

/// Changes a scheduler wants committed.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub eval_id: String,
    pub priority: i64,
    /// The job version the placements run (None when the job is gone).
    pub job: Option<Arc<Job>>,
    /// Node ID → allocations to stop, evict or mark lost (updated copies).
    pub node_update: BTreeMap<String, Vec<Allocation>>,
    /// Node ID → allocations to place, or to update in place.
    pub node_allocation: BTreeMap<String, Vec<Allocation>>,
    /// A deployment to create or update.
    pub deployment: Option<Deployment>,
    /// Deployment status changes (cancelled, successful).
    pub deployment_updates: Vec<DeploymentStatusUpdate>,
}

impl Plan {
    /// True when the plan changes nothing.
    pub fn is_noop(&self) -> bool {
        self.node_update.values().all(Vec::is_empty)
            && self.node_allocation.values().all(Vec::is_empty)
            && self.deployment.is_none()
            && self.deployment_updates.is_empty()
    }
}

/// What a scheduler decided for one evaluation.
#[derive(Debug, Clone, Default)]
pub struct SchedulerOutcome {
    pub plan: Plan,
    /// Groups that could not be (fully) placed, with why.
    pub failed_tg_allocs: BTreeMap<String, AllocMetric>,
    /// Group → allocations still waiting for placement.
    pub queued_allocations: BTreeMap<String, i64>,
    /// A blocked evaluation to create when placements failed for lack of capacity.
    pub blocked_eval: Option<Evaluation>,
    /// Evaluations to run later (delayed reschedules), with `WaitUntil` set.
    pub followup_evals: Vec<Evaluation>,
    /// Group → what the scheduler decided, counted (a job plan's annotations).
    pub desired_updates: BTreeMap<String, crate::structs::DesiredUpdates>,
    /// The deployment the evaluation worked on ("" for none), recorded on the evaluation.
    pub deployment_id: String,
}

/// Scheduler faults (not placement failures, which are part of the outcome).
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("unknown scheduler type {0:?}")]
    UnknownType(String),
    #[error("{0}")]
    Internal(String),
}

/// Runs the scheduler for `eval.Type` against `view` and returns the plan and its side
/// products (failed groups, queued counts, blocked and follow-up evaluations).
pub fn schedule(
    eval: &Evaluation,
    view: &dyn SchedulerView,
) -> Result<SchedulerOutcome, SchedulerError> {
    // An eval without a type (hand-made, or from an old client) follows its job's type.
    let job_type;
    let ty = if eval.r#type.is_empty() {
        job_type = view
            .job(&eval.namespace, &eval.job_id)
            .map(|j| j.r#type.clone())
            .unwrap_or_default();
        job_type.as_str()
    } else {
        eval.r#type.as_str()
    };
    match ty {
        JOB_TYPE_SERVICE => Ok(generic::schedule_generic(eval, view, false, now_nanos())),
        JOB_TYPE_BATCH => Ok(generic::schedule_generic(eval, view, true, now_nanos())),
        JOB_TYPE_SYSTEM => Ok(system::schedule(eval, view, false, now_nanos())),
        JOB_TYPE_SYSBATCH => Ok(system::schedule(eval, view, true, now_nanos())),
        other => Err(SchedulerError::UnknownType(other.to_string())),
    }
}
