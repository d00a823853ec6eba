//! The job file a job version was registered from (Nomad's job submission): its source, its
//! format and the variable values given with it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::de::null_default as nd;

/// Submissions larger than this are not kept (Nomad's default `job_max_source_size`).
pub const JOB_MAX_SOURCE_SIZE: usize = 1 << 20;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobSubmission {
    #[serde(deserialize_with = "nd")]
    pub source: String,
    /// `hcl2`, `hcl1` or `json`.
    #[serde(deserialize_with = "nd")]
    pub format: String,
    /// `-var` values (and `NOMAD_VAR_` ones) of simple types.
    pub variable_flags: Option<BTreeMap<String, String>>,
    /// Var-file content.
    #[serde(deserialize_with = "nd")]
    pub variables: String,
    #[serde(deserialize_with = "nd")]
    pub namespace: String,
    #[serde(rename = "JobID", deserialize_with = "nd")]
    pub job_id: String,
    #[serde(deserialize_with = "nd")]
    pub version: u64,
    #[serde(deserialize_with = "nd")]
    pub job_modify_index: u64,
}

impl JobSubmission {
    /// The bytes the size limit counts.
    pub fn size(&self) -> usize {
        self.source.len()
            + self.variables.len()
            + self
                .variable_flags
                .iter()
                .flatten()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }
}
