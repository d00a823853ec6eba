//! Deployments: the rollout of one job version, group by group, with Nomad's status
//! descriptions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::job::Job;
use super::status::DeploymentStatus;
use super::time::zero_time;

pub const DESC_RUNNING: &str = "Deployment is running";
pub const DESC_RUNNING_NEEDS_PROMOTION: &str =
    "Deployment is running but requires manual promotion";
pub const DESC_RUNNING_AUTO_PROMOTION: &str = "Deployment is running pending automatic promotion";
pub const DESC_PAUSED: &str = "Deployment is paused";
pub const DESC_SUCCESSFUL: &str = "Deployment completed successfully";
pub const DESC_STOPPED_JOB: &str = "Cancelled because job is stopped";
pub const DESC_NEWER_JOB: &str = "Cancelled due to newer version of job";
pub const DESC_FAILED_ALLOCATIONS: &str = "Failed due to unhealthy allocations";
pub const DESC_PROGRESS_DEADLINE: &str = "Failed due to progress deadline";
pub const DESC_FAILED_BY_USER: &str = "Deployment marked as failed";
pub const DESC_UNBLOCKING: &str = "Deployment is unblocking remaining regions";

/// The description of a failed deployment that reverts the job to `version`.
pub fn desc_rollback(base: &str, version: i64) -> String {
    format!("{base} - rolling back to job version {version}")
}

/// The description of a failed deployment whose stable version has the same spec.
pub fn desc_rollback_noop(base: &str, version: i64) -> String {
    format!(
        "{base} - not rolling back to stable job version {version} as current job has same specification"
    )
}

/// The description of a failed deployment that has no stable version to revert to.
pub fn desc_no_rollback_target(base: &str) -> String {
    format!("{base} - no stable job version to auto revert to")
}

/// A rolling update of a job version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Deployment {
    #[serde(rename = "ID")]
    pub id: String,
    pub namespace: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    pub job_version: i64,
    pub job_modify_index: u64,
    pub job_spec_modify_index: u64,
    pub job_create_index: u64,
    pub is_multiregion: bool,
    pub task_groups: BTreeMap<String, DeploymentState>,
    pub status: DeploymentStatus,
    pub status_description: String,
    pub eval_priority: i64,
    pub create_index: u64,
    pub modify_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
}

impl Deployment {
    /// A running deployment of `job`'s current version.
    pub fn new(job: &Job, eval_priority: i64, now: i64) -> Deployment {
        Deployment {
            id: super::generate_uuid(),
            namespace: job.namespace.clone(),
            job_id: job.id.clone(),
            job_version: job.version,
            job_modify_index: job.modify_index,
            job_spec_modify_index: job.job_modify_index,
            job_create_index: job.create_index,
            is_multiregion: false,
            task_groups: BTreeMap::new(),
            status: DeploymentStatus::Running,
            status_description: DESC_RUNNING.to_string(),
            eval_priority,
            create_time: now,
            modify_time: now,
            ..Default::default()
        }
    }

    /// Still in progress (not successful, failed or cancelled).
    pub fn active(&self) -> bool {
        use DeploymentStatus as S;
        matches!(
            self.status,
            S::Running | S::Paused | S::Blocked | S::Unblocking | S::Initializing | S::Pending
        )
    }

    /// True when it tracks this incarnation and version of `job`.
    pub fn tracks(&self, job: &Job) -> bool {
        self.job_create_index == job.create_index && self.job_version == job.version
    }

    /// Running with canaries that wait for promotion.
    pub fn requires_promotion(&self) -> bool {
        self.status == DeploymentStatus::Running
            && self
                .task_groups
                .values()
                .any(|g| g.desired_canaries > 0 && !g.promoted)
    }

    /// Every group with canaries promotes them by itself.
    pub fn has_auto_promote(&self) -> bool {
        self.status == DeploymentStatus::Running
            && !self.task_groups.is_empty()
            && self
                .task_groups
                .values()
                .all(|g| g.desired_canaries == 0 || g.auto_promote)
    }

    /// Some group placed canaries.
    pub fn has_placed_canaries(&self) -> bool {
        self.task_groups
            .values()
            .any(|g| g.placed_canaries.as_ref().is_some_and(|c| !c.is_empty()))
    }
}

/// Progress of one group in a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeploymentState {
    pub auto_revert: bool,
    pub auto_promote: bool,
    pub progress_deadline: i64,
    /// Go's zero time until the first placement starts the clock.
    pub require_progress_by: DateTime<Utc>,
    pub promoted: bool,
    pub placed_canaries: Option<Vec<String>>,
    pub desired_canaries: i64,
    pub desired_total: i64,
    pub placed_allocs: i64,
    pub healthy_allocs: i64,
    pub unhealthy_allocs: i64,
}

impl Default for DeploymentState {
    fn default() -> Self {
        DeploymentState {
            auto_revert: false,
            auto_promote: false,
            progress_deadline: 0,
            require_progress_by: zero_time(),
            promoted: false,
            placed_canaries: None,
            desired_canaries: 0,
            desired_total: 0,
            placed_allocs: 0,
            healthy_allocs: 0,
            unhealthy_allocs: 0,
        }
    }
}

/// A status change of a deployment a plan or an operator makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentStatusUpdate {
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    pub status: DeploymentStatus,
    pub status_description: String,
}

/// What every deployment write answers (Nomad's `DeploymentUpdateResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentUpdateResponse {
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    pub eval_create_index: u64,
    pub deployment_modify_index: u64,
    /// The version the job was reverted to, when the write reverted it.
    pub reverted_job_version: Option<i64>,
    pub index: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_new_deployment_serializes_every_field_nomad_returns() {
        let job = Job {
            id: "web".into(),
            namespace: "default".into(),
            version: 3,
            create_index: 7,
            job_modify_index: 19,
            ..Default::default()
        };
        let mut d = Deployment::new(&job, 50, 1);
        d.task_groups
            .insert("cache".into(), DeploymentState::default());
        let v = serde_json::to_value(&d).unwrap();
        for k in [
            "ID",
            "Namespace",
            "JobID",
            "JobVersion",
            "JobModifyIndex",
            "JobSpecModifyIndex",
            "JobCreateIndex",
            "IsMultiregion",
            "TaskGroups",
            "Status",
            "StatusDescription",
            "EvalPriority",
            "CreateIndex",
            "ModifyIndex",
            "CreateTime",
            "ModifyTime",
        ] {
            assert!(v.get(k).is_some(), "{k} missing");
        }
        assert_eq!(v["Status"], json!("running"));
        assert_eq!(v["StatusDescription"], json!(DESC_RUNNING));
        assert_eq!(v["JobSpecModifyIndex"], json!(19));
        let g = &v["TaskGroups"]["cache"];
        assert_eq!(g["RequireProgressBy"], json!("0001-01-01T00:00:00Z"));
        assert_eq!(g["PlacedCanaries"], json!(null));
        assert!(d.active() && d.tracks(&job));
    }

    #[test]
    fn promotion_needs_and_auto_promote() {
        let mut d = Deployment::default();
        d.task_groups.insert(
            "a".into(),
            DeploymentState {
                desired_canaries: 1,
                auto_promote: true,
                ..Default::default()
            },
        );
        assert!(d.requires_promotion() && d.has_auto_promote());
        d.task_groups.insert(
            "b".into(),
            DeploymentState {
                desired_canaries: 1,
                ..Default::default()
            },
        );
        assert!(!d.has_auto_promote());
        d.status = DeploymentStatus::Paused;
        assert!(!d.requires_promotion());
        assert_eq!(
            desc_rollback(DESC_FAILED_ALLOCATIONS, 2),
            "Failed due to unhealthy allocations - rolling back to job version 2"
        );
    }
}
