//! A node's drain: what the operator asked for (DrainStrategy) and how the last one went
//! (LastDrain), with Nomad's JSON shapes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::de::{int, null_default as nd};
use super::job::StrMap;
use super::time::zero_time;

/// `LastDrain.Status` while a drain runs.
pub const DRAIN_STATUS_DRAINING: &str = "draining";
/// `LastDrain.Status` once every allocation has left the node.
pub const DRAIN_STATUS_COMPLETE: &str = "complete";
/// `LastDrain.Status` after the operator cancelled the drain.
pub const DRAIN_STATUS_CANCELED: &str = "canceled";

/// What the operator asked for: `Deadline` (ns; negative forces at once, zero never
/// forces) and whether system jobs stay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DrainSpec {
    #[serde(deserialize_with = "int")]
    pub deadline: i64,
    #[serde(deserialize_with = "nd")]
    pub ignore_system_jobs: bool,
}

/// A drain in progress. Nomad embeds DrainSpec, so its fields sit at the top level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DrainStrategy {
    #[serde(deserialize_with = "int")]
    pub deadline: i64,
    #[serde(deserialize_with = "nd")]
    pub ignore_system_jobs: bool,
    /// When what is left is stopped; the zero time when there is no deadline.
    pub force_deadline: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
}

impl Default for DrainStrategy {
    fn default() -> Self {
        DrainStrategy {
            deadline: 0,
            ignore_system_jobs: false,
            force_deadline: zero_time(),
            started_at: zero_time(),
        }
    }
}

/// When the drain stops waiting for migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainDeadline {
    /// Zero deadline: never forced.
    Never,
    /// Negative deadline: everything is stopped at once.
    Now,
    /// Forced at this time.
    At(DateTime<Utc>),
}

impl DrainStrategy {
    /// When the remaining allocations are to be stopped (Nomad's `DeadlineTime`).
    pub fn deadline_time(&self) -> DrainDeadline {
        match self.deadline {
            d if d < 0 => DrainDeadline::Now,
            0 => DrainDeadline::Never,
            _ => DrainDeadline::At(self.force_deadline),
        }
    }

    /// True when the deadline has passed at `now`.
    pub fn deadline_passed(&self, now: DateTime<Utc>) -> bool {
        match self.deadline_time() {
            DrainDeadline::Never => false,
            DrainDeadline::Now => true,
            DrainDeadline::At(t) => t <= now,
        }
    }
}

/// How the node's most recent drain went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DrainMetadata {
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(deserialize_with = "nd")]
    pub status: String,
    #[serde(rename = "AccessorID", deserialize_with = "nd")]
    pub accessor_id: String,
    pub meta: StrMap,
}

impl Default for DrainMetadata {
    fn default() -> Self {
        DrainMetadata {
            started_at: zero_time(),
            updated_at: zero_time(),
            status: String::new(),
            accessor_id: String::new(),
            meta: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_flattens_the_spec_like_nomad() {
        let s: DrainStrategy = serde_json::from_str(
            r#"{"Deadline": 3600000000000, "IgnoreSystemJobs": true,
                "ForceDeadline": "2030-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(s.deadline, 3_600_000_000_000);
        assert!(s.ignore_system_jobs);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["IgnoreSystemJobs"], true);
        assert!(v.get("DrainSpec").is_none());
    }

    #[test]
    fn deadline_sign_decides_forcing() {
        let now = Utc::now();
        let mut s = DrainStrategy {
            deadline: -1,
            ..Default::default()
        };
        assert!(s.deadline_passed(now));
        s.deadline = 0;
        assert!(!s.deadline_passed(now));
        s.deadline = 1;
        s.force_deadline = now + chrono::Duration::seconds(5);
        assert!(!s.deadline_passed(now));
        assert!(s.deadline_passed(now + chrono::Duration::seconds(6)));
    }
}
