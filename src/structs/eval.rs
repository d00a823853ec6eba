//! Evaluations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::alloc::AllocMetric;
use super::status::EvalStatus;

/// What triggered an evaluation.
pub mod trigger {
    pub const JOB_REGISTER: &str = "job-register";
    pub const JOB_DEREGISTER: &str = "job-deregister";
    pub const PERIODIC_JOB: &str = "periodic-job";
    pub const NODE_UPDATE: &str = "node-update";
    pub const NODE_DRAIN: &str = "node-drain";
    pub const ALLOC_STOP: &str = "alloc-stop";
    pub const SCHEDULED: &str = "scheduled";
    pub const ROLLING_UPDATE: &str = "rolling-update";
    pub const DEPLOYMENT_WATCHER: &str = "deployment-watcher";
    pub const FAILED_FOLLOW_UP: &str = "failed-follow-up";
    pub const MAX_PLANS: &str = "max-plan-attempts";
    pub const RETRY_FAILED_ALLOC: &str = "alloc-failure";
    pub const QUEUED_ALLOCS: &str = "queued-allocs";
    pub const SCALING: &str = "job-scaling";
    pub const RECONNECT: &str = "reconnect";
}

/// A unit of scheduling work.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Evaluation {
    #[serde(rename = "ID")]
    pub id: String,
    pub namespace: String,
    pub priority: i64,
    pub r#type: String,
    pub triggered_by: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    pub job_modify_index: u64,
    #[serde(rename = "NodeID")]
    pub node_id: String,
    pub node_modify_index: u64,
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    pub status: EvalStatus,
    pub status_description: String,
    pub wait: i64,
    /// Unix nanoseconds before which the eval must not run (delayed reschedules); 0 = now.
    pub wait_until: Option<chrono::DateTime<chrono::Utc>>,
    pub next_eval: String,
    pub previous_eval: String,
    pub blocked_eval: String,
    pub related_evals: Option<Vec<serde_json::Value>>,
    #[serde(rename = "FailedTGAllocs")]
    pub failed_tg_allocs: Option<BTreeMap<String, AllocMetric>>,
    pub class_eligibility: Option<BTreeMap<String, bool>>,
    pub quota_limit_reached: String,
    pub escaped_computed_class: bool,
    pub annotate_plan: bool,
    pub queued_allocations: Option<BTreeMap<String, i64>>,
    #[serde(rename = "LeaderACL")]
    pub leader_acl: String,
    pub snapshot_index: u64,
    pub create_index: u64,
    pub modify_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
}

impl Evaluation {
    /// Complete, failed or cancelled.
    pub fn terminal(&self) -> bool {
        matches!(
            self.status,
            EvalStatus::Complete | EvalStatus::Failed | EvalStatus::Canceled
        )
    }
}
