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

/// Default `Type` of a group's scaling policy.
pub const SCALING_POLICY_TYPE_HORIZONTAL: &str = "horizontal";

/// A task group's `scaling` block as the server stores and serves it
/// (`GET /v1/scaling/policy/:id`). Jobs keep it in the group's `Scaling` member, so a job
/// version and its policy can never disagree.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ScalingPolicy {
    #[serde(rename = "ID", deserialize_with = "null_default")]
    pub id: String,
    #[serde(deserialize_with = "null_default")]
    pub r#type: String,
    /// `Namespace`, `Job`, `Group`.
    #[serde(deserialize_with = "null_default")]
    pub target: BTreeMap<String, String>,
    /// Opaque to the server: what the autoscaler reads.
    pub policy: Option<BTreeMap<String, Value>>,
    #[serde(deserialize_with = "int")]
    pub min: i64,
    #[serde(deserialize_with = "int")]
    pub max: i64,
    #[serde(deserialize_with = "null_default")]
    pub enabled: bool,
    #[serde(deserialize_with = "uint")]
    pub create_index: u64,
    #[serde(deserialize_with = "uint")]
    pub modify_index: u64,
}

/// A list entry of `GET /v1/scaling/policies`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScalingPolicyListStub {
    #[serde(rename = "ID")]
    pub id: String,
    pub enabled: bool,
    pub r#type: String,
    pub target: BTreeMap<String, String>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// The block as a client submits it: unset members have defaults that depend on the group.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct SubmittedPolicy {
    #[serde(rename = "ID", deserialize_with = "null_default")]
    id: String,
    #[serde(deserialize_with = "null_default")]
    r#type: String,
    policy: Option<BTreeMap<String, Value>>,
    #[serde(deserialize_with = "opt_int")]
    min: Option<i64>,
    #[serde(deserialize_with = "opt_int")]
    max: Option<i64>,
    enabled: Option<bool>,
    #[serde(deserialize_with = "uint")]
    create_index: u64,
    #[serde(deserialize_with = "uint")]
    modify_index: u64,
}

impl ScalingPolicy {
    /// The policy a group submitted, with Nomad's defaults: enabled, `Min` the group's count,
    /// an unset `Max` kept as -1 for [`ScalingPolicy::problems`] to refuse, type horizontal,
    /// the target naming the group, and a fresh ID (the state store keeps the ID of the policy
    /// already stored for the same target).
    pub fn from_submitted(
        raw: &Value,
        namespace: &str,
        job: &str,
        group: &str,
        count: i64,
    ) -> Result<Self, String> {
        let s: SubmittedPolicy = serde_json::from_value(raw.clone()).map_err(|e| e.to_string())?;
        let mut target = BTreeMap::new();
        target.insert("Namespace".to_string(), namespace.to_string());
        target.insert("Job".to_string(), job.to_string());
        target.insert("Group".to_string(), group.to_string());
        Ok(ScalingPolicy {
            id: if s.id.is_empty() {
                super::generate_uuid()
            } else {
                s.id
            },
            r#type: if s.r#type.is_empty() {
                SCALING_POLICY_TYPE_HORIZONTAL.to_string()
            } else {
                s.r#type
            },
            target,
            policy: s.policy,
            min: s.min.unwrap_or(count),
            max: s.max.unwrap_or(-1),
            enabled: s.enabled.unwrap_or(true),
            create_index: s.create_index,
            modify_index: s.modify_index,
        })
    }

    /// Nomad's validation messages for this policy in a group of `count`.
    pub fn problems(&self, count: i64) -> Vec<String> {
        let mut errs = Vec::new();
        let mut bad = |m: &str| errs.push(format!("Scaling policy invalid: {m}"));
        if self.r#type != SCALING_POLICY_TYPE_HORIZONTAL {
            bad(&format!(
                "scaling policy type {:?} is not valid",
                self.r#type
            ));
        }
        if self.max < 0 {
            bad("maximum count must be specified and non-negative");
        } else if self.max < self.min {
            bad("maximum count must not be less than minimum count");
        }
        if self.min < 0 {
            bad("minimum count must be specified and non-negative");
        }
        if self.max < count {
            bad("task group count must not be greater than maximum count in scaling policy");
        }
        if count < self.min {
            bad("task group count must not be less than minimum count in scaling policy");
        }
        errs
    }

    /// Whether `other` differs from this policy in anything but its ID and indexes.
    pub fn differs(&self, other: &ScalingPolicy) -> bool {
        let mut o = other.clone();
        o.id.clone_from(&self.id);
        o.create_index = self.create_index;
        o.modify_index = self.modify_index;
        *self != o
    }

    /// The list entry.
    pub fn stub(&self) -> ScalingPolicyListStub {
        ScalingPolicyListStub {
            id: self.id.clone(),
            enabled: self.enabled,
            r#type: self.r#type.clone(),
            target: self.target.clone(),
            create_index: self.create_index,
            modify_index: self.modify_index,
        }
    }
}

/// The scaling policy a group carries, when it has one that decodes.
pub fn group_policy(tg: &super::TaskGroup) -> Option<ScalingPolicy> {
    let raw = tg.scaling.as_deref()?;
    serde_json::from_value(raw.clone()).ok()
}

/// Gives each group policy of `job`, about to be stored at `index`, the identity of the
/// policy `previous` (the stored job) has for the same group and type: its ID and
/// CreateIndex always, its ModifyIndex too when nothing else changed. A new policy is
/// created at `index`. This is what keeps a policy's ID stable across job versions.
pub fn carry_policy_identity(job: &mut super::Job, previous: Option<&super::Job>, index: u64) {
    for tg in job.task_groups.iter_mut().flatten() {
        let Some(mut p) = group_policy(tg) else {
            continue;
        };
        let old = previous
            .and_then(|j| j.task_groups.iter().flatten().find(|g| g.name == tg.name))
            .and_then(group_policy)
            .filter(|o| o.r#type == p.r#type);
        match old {
            Some(o) if !o.differs(&p) => p = o,
            Some(o) => {
                p.id = o.id;
                p.create_index = o.create_index;
                p.modify_index = index;
            }
            None => {
                p.create_index = index;
                p.modify_index = index;
            }
        }
        if let Ok(v) = serde_json::to_value(&p) {
            tg.scaling = Some(Box::new(v));
        }
    }
}

/// Clears what the server assigns to each group policy of `job` (ID, indexes), so two
/// submissions of one spec compare equal.
pub fn clear_policy_identity(job: &mut super::Job) {
    for tg in job.task_groups.iter_mut().flatten() {
        if let Some(mut p) = group_policy(tg) {
            p.id.clear();
            p.create_index = 0;
            p.modify_index = 0;
            if let Ok(v) = serde_json::to_value(&p) {
                tg.scaling = Some(Box::new(v));
            }
        }
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn submitted_policy_gets_nomads_defaults() {
        let p =
            ScalingPolicy::from_submitted(&json!({"Max": 5}), "default", "web", "g", 2).unwrap();
        assert_eq!(p.r#type, "horizontal");
        assert_eq!((p.min, p.max, p.enabled), (2, 5, true));
        assert_eq!(p.target["Job"], "web");
        assert_eq!(p.target["Group"], "g");
        assert_eq!(p.id.len(), 36);
        assert!(p.problems(2).is_empty());
    }

    #[test]
    fn bounds_are_checked_against_each_other_and_the_count() {
        let p =
            ScalingPolicy::from_submitted(&json!({"Min": 3}), "default", "web", "g", 1).unwrap();
        let errs = p.problems(1);
        assert!(
            errs.iter()
                .any(|e| e.contains("maximum count must be specified"))
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("must not be less than minimum count in"))
        );
        let p =
            ScalingPolicy::from_submitted(&json!({"Min": 1, "Max": 2}), "d", "w", "g", 4).unwrap();
        assert_eq!(
            p.problems(4),
            vec![
                "Scaling policy invalid: task group count must not be greater than maximum count in scaling policy"
            ]
        );
        assert!(ScalingPolicy::from_submitted(&json!({"Min": "x"}), "d", "w", "g", 1).is_err());
    }

    #[test]
    fn differs_ignores_id_and_indexes() {
        let a = ScalingPolicy::from_submitted(&json!({"Max": 5}), "d", "w", "g", 1).unwrap();
        let mut b = a.clone();
        b.id = "other".into();
        b.modify_index = 9;
        assert!(!a.differs(&b));
        b.max = 6;
        assert!(a.differs(&b));
    }
}
