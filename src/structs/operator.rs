//! The cluster-wide scheduler configuration (`/v1/operator/scheduler/configuration`).

use serde::{Deserialize, Serialize};

use super::de::{null_default, uint};

/// Nomad's default algorithm: fill nodes before using new ones.
pub const SCHEDULER_ALGORITHM_BINPACK: &str = "binpack";
/// Spread allocations over the nodes that fit.
pub const SCHEDULER_ALGORITHM_SPREAD: &str = "spread";

/// Which schedulers may preempt lower-priority allocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PreemptionConfig {
    #[serde(deserialize_with = "null_default")]
    pub system_scheduler_enabled: bool,
    #[serde(deserialize_with = "null_default")]
    pub sys_batch_scheduler_enabled: bool,
    #[serde(deserialize_with = "null_default")]
    pub batch_scheduler_enabled: bool,
    #[serde(deserialize_with = "null_default")]
    pub service_scheduler_enabled: bool,
}

impl Default for PreemptionConfig {
    /// Nomad's server default: only system jobs preempt.
    fn default() -> Self {
        PreemptionConfig {
            system_scheduler_enabled: true,
            sys_batch_scheduler_enabled: false,
            batch_scheduler_enabled: false,
            service_scheduler_enabled: false,
        }
    }
}

/// The scheduler configuration the servers share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SchedulerConfiguration {
    #[serde(deserialize_with = "null_default")]
    pub scheduler_algorithm: String,
    #[serde(deserialize_with = "null_default")]
    pub preemption_config: PreemptionConfig,
    #[serde(deserialize_with = "null_default")]
    pub memory_oversubscription_enabled: bool,
    #[serde(deserialize_with = "null_default")]
    pub reject_job_registration: bool,
    #[serde(deserialize_with = "null_default")]
    pub pause_eval_broker: bool,
    #[serde(deserialize_with = "uint")]
    pub create_index: u64,
    #[serde(deserialize_with = "uint")]
    pub modify_index: u64,
}

impl Default for SchedulerConfiguration {
    fn default() -> Self {
        SchedulerConfiguration {
            scheduler_algorithm: SCHEDULER_ALGORITHM_BINPACK.to_string(),
            preemption_config: PreemptionConfig::default(),
            memory_oversubscription_enabled: false,
            reject_job_registration: false,
            pause_eval_broker: false,
            create_index: 0,
            modify_index: 0,
        }
    }
}

impl SchedulerConfiguration {
    /// Nomad's check: the algorithm is empty (binpack), `binpack` or `spread`.
    pub fn validate(&self) -> Result<(), String> {
        match self.scheduler_algorithm.as_str() {
            "" | SCHEDULER_ALGORITHM_BINPACK | SCHEDULER_ALGORITHM_SPREAD => Ok(()),
            other => Err(format!("invalid scheduler algorithm: {other}")),
        }
    }

    /// Whether placements should spread out rather than pack.
    pub fn spreads(&self) -> bool {
        self.scheduler_algorithm == SCHEDULER_ALGORITHM_SPREAD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation_follow_nomad() {
        let c: SchedulerConfiguration = serde_json::from_str("{}").unwrap();
        assert_eq!(c, SchedulerConfiguration::default());
        assert!(c.preemption_config.system_scheduler_enabled);
        assert!(!c.spreads());
        let c: SchedulerConfiguration =
            serde_json::from_str(r#"{"SchedulerAlgorithm":"spread","PreemptionConfig":null}"#)
                .unwrap();
        assert!(c.spreads());
        assert!(c.validate().is_ok());
        let c: SchedulerConfiguration =
            serde_json::from_str(r#"{"SchedulerAlgorithm":"random"}"#).unwrap();
        assert_eq!(
            c.validate().unwrap_err(),
            "invalid scheduler algorithm: random"
        );
    }
}
