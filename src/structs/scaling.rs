//! Job scaling: the scale request, the events it records and the scale status read back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::de::{int, null_default, opt_int, uint};

/// Most scaling events kept per task group, newest first (Nomad keeps 20).
pub const JOB_TRACKED_SCALING_EVENTS: usize = 20;

/// Body of `POST /v1/job/:id/scale`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ScalingRequest {
    /// New count of the group; absent: only record an event.
    #[serde(deserialize_with = "opt_int")]
    pub count: Option<i64>,
    /// `Namespace`, `Job` and (required) `Group`.
    #[serde(deserialize_with = "null_default")]
    pub target: BTreeMap<String, String>,
    #[serde(deserialize_with = "null_default")]
    pub message: String,
    #[serde(deserialize_with = "null_default")]
    pub error: bool,
    pub meta: Option<BTreeMap<String, Value>>,
    #[serde(deserialize_with = "null_default")]
    pub policy_override: bool,
    /// Check-and-set against the job's JobModifyIndex when non-zero.
    #[serde(deserialize_with = "uint")]
    pub job_modify_index: u64,
}

/// One recorded scaling action of a task group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ScalingEvent {
    /// Unix nanoseconds.
    #[serde(deserialize_with = "int")]
    pub time: i64,
    #[serde(deserialize_with = "opt_int")]
    pub count: Option<i64>,
    #[serde(deserialize_with = "int")]
    pub previous_count: i64,
    pub message: String,
    pub error: bool,
    pub meta: Option<BTreeMap<String, Value>>,
    #[serde(rename = "EvalID")]
    pub eval_id: Option<String>,
    #[serde(deserialize_with = "uint")]
    pub create_index: u64,
}

/// The scaling events of one job, per group, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobScalingEvents {
    pub namespace: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    pub scaling_events: BTreeMap<String, Vec<ScalingEvent>>,
}

/// Answer of `GET /v1/job/:id/scale`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobScaleStatus {
    #[serde(rename = "JobID")]
    pub job_id: String,
    pub namespace: String,
    pub job_create_index: u64,
    /// The job's ModifyIndex (what Nomad puts here, despite the name).
    pub job_modify_index: u64,
    pub job_stopped: bool,
    pub task_groups: BTreeMap<String, TaskGroupScaleStatus>,
}

/// One group's part of [`JobScaleStatus`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskGroupScaleStatus {
    pub desired: i64,
    pub placed: i64,
    pub running: i64,
    pub healthy: i64,
    pub unhealthy: i64,
    pub events: Option<Vec<ScalingEvent>>,
}

/// What the scheduler would do for one task group (plan annotations, `DesiredTGUpdates`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DesiredUpdates {
    pub ignore: u64,
    pub place: u64,
    pub migrate: u64,
    pub stop: u64,
    pub in_place_update: u64,
    pub destructive_update: u64,
    pub canary: u64,
    pub preemptions: u64,
}
