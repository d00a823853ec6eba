//! Job version writes: revert to an earlier version, mark a version stable, name a version.

use serde::{Deserialize, Serialize};

use super::jobs::{JobRegisterRequest, JobRegisterResponse};
use crate::server::http::{JobRevertRequest, JobStabilityRequest, JobTagRequest};
use crate::server::state::{Command, Request, StateError};
use crate::server::{Server, ServerError};

/// Answer to a stability change: the write's index.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobStabilityResponse {
    pub index: u64,
}

/// Answer to a tag change: the tag as applied (empty when removed) and the write's index.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobTagResponse {
    pub name: String,
    pub description: String,
    pub tagged_time: i64,
    pub index: u64,
}

/// Nomad's limit on a tag's description.
const MAX_TAG_DESCRIPTION: usize = 1000;

fn version_not_found(ns: &str, id: &str, version: i64) -> ServerError {
    ServerError::Refused(format!(
        "job {id:?} in namespace {ns:?} at version {version} not found"
    ))
}

impl Server {
    /// Registers an earlier version of a job again, as a new version (Nomad's Job.Revert):
    /// the old spec as it was, `Stable` cleared. An unchanged spec only gets an evaluation.
    pub async fn revert_job(
        &self,
        namespace: &str,
        job_id: &str,
        req: &JobRevertRequest,
    ) -> Result<JobRegisterResponse, ServerError> {
        let snap = self.state.snapshot();
        let current = snap
            .job(namespace, job_id)
            .ok_or_else(|| ServerError::Refused(format!("job {job_id:?} not found")))?;
        if req.job_version == current.version {
            return Err(ServerError::Refused(
                "can't revert to current version".to_string(),
            ));
        }
        let old = snap
            .job_version(namespace, job_id, req.job_version)
            .ok_or_else(|| version_not_found(namespace, job_id, req.job_version))?;
        if let Some(prior) = req.enforce_prior_version
            && prior != current.version
        {
            return Err(ServerError::Refused(format!(
                "Current job has version {}; enforcing version {prior}",
                current.version
            )));
        }
        let mut job = (*old).clone();
        job.stable = false;
        // A tag names one version: the reverted copy is a new, untagged one.
        job.version_tag = None;
        // Checked again inside the register write: a change in between is refused.
        let register = JobRegisterRequest {
            job: Some(job),
            enforce_index: true,
            job_modify_index: current.job_modify_index,
            ..JobRegisterRequest::default()
        };
        self.register_job(register, Some(namespace))
            .await
            .map_err(|e| match e {
                // Nomad reports a lost check-and-set race from the revert as a 500.
                ServerError::BadRequest(m) if m.starts_with("Enforcing job modify index") => {
                    ServerError::Refused(m)
                }
                other => other,
            })
    }

    /// Sets the `Stable` flag of one version of a job (no new version, no evaluation).
    pub async fn set_job_stability(
        &self,
        namespace: &str,
        job_id: &str,
        req: &JobStabilityRequest,
    ) -> Result<JobStabilityResponse, ServerError> {
        let (index, _) = self
            .state
            .commit(Request::new(Command::JobStability {
                ns: namespace.to_string(),
                id: job_id.to_string(),
                version: req.job_version,
                stable: req.stable,
            }))
            .await
            .map_err(|e| match e {
                StateError::NotFound(_) => version_not_found(namespace, job_id, req.job_version),
                other => ServerError::State(other),
            })?;
        Ok(JobStabilityResponse { index })
    }

    /// Names a version of a job (`Version`, or the current one with `Latest`); a name is
    /// unique among the job's versions, and naming the same version again updates it.
    pub async fn tag_job_version(
        &self,
        namespace: &str,
        job_id: &str,
        name: &str,
        req: &JobTagRequest,
    ) -> Result<JobTagResponse, ServerError> {
        if req.latest && req.version > 0 {
            return Err(ServerError::BadRequest(format!(
                "version must be zero when tagging latest, got: {}",
                req.version
            )));
        }
        if req.description.chars().count() > MAX_TAG_DESCRIPTION {
            return Err(ServerError::BadRequest(format!(
                "Tagged version description must be under {MAX_TAG_DESCRIPTION} characters, currently {}",
                req.description.chars().count()
            )));
        }
        let current = self
            .state
            .snapshot()
            .job(namespace, job_id)
            .ok_or_else(|| ServerError::NotFound(format!("job {job_id:?} not found")))?;
        let version = if req.latest {
            current.version
        } else {
            req.version
        };
        let tag = crate::structs::JobVersionTag {
            name: name.to_string(),
            description: req.description.clone(),
            tagged_time: crate::structs::time::now_nanos(),
        };
        let (index, _) = self
            .state
            .commit(Request::new(Command::JobVersionTag {
                ns: namespace.to_string(),
                id: job_id.to_string(),
                version,
                name: name.to_string(),
                tag: Some(tag.clone()),
            }))
            .await
            .map_err(tag_error)?;
        Ok(JobTagResponse {
            name: tag.name,
            description: tag.description,
            tagged_time: tag.tagged_time,
            index,
        })
    }

    /// Takes the tag `name` off the version of the job that has it.
    pub async fn unset_job_version_tag(
        &self,
        namespace: &str,
        job_id: &str,
        name: &str,
    ) -> Result<JobTagResponse, ServerError> {
        let (index, _) = self
            .state
            .commit(Request::new(Command::JobVersionTag {
                ns: namespace.to_string(),
                id: job_id.to_string(),
                version: 0,
                name: name.to_string(),
                tag: None,
            }))
            .await
            .map_err(tag_error)?;
        Ok(JobTagResponse {
            index,
            ..JobTagResponse::default()
        })
    }
}

fn tag_error(e: StateError) -> ServerError {
    match e {
        StateError::NotFound(m) => ServerError::NotFound(m),
        StateError::BadRequest(m) | StateError::Conflict(m) => ServerError::BadRequest(m),
        other => ServerError::State(other),
    }
}
