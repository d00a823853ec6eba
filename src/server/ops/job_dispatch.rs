//! `POST /v1/job/:id/dispatch`: a parameterized job spawns a child job carrying the payload
//! and meta of one dispatch (Nomad's Job.Dispatch).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::jobs::JobRegisterRequest;
use crate::server::http::JobDispatchRequest;
use crate::server::{Server, ServerError};
use crate::structs::time::now_nanos;

/// Largest payload a dispatch may carry (Nomad's 16 KiB).
pub const DISPATCH_PAYLOAD_MAX: usize = 16 * 1024;
/// Separates the parent's ID from the generated part of a child's ID.
const DISPATCH_SUFFIX: &str = "/dispatch-";

/// Answer to a dispatch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobDispatchResponse {
    #[serde(rename = "DispatchedJobID")]
    pub dispatched_job_id: String,
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    pub eval_create_index: u64,
    pub job_create_index: u64,
    pub index: u64,
}

impl Server {
    /// Dispatches parameterized job `parent_id`: validates payload and meta against its
    /// `ParameterizedJob` block, then registers the child (which schedules it).
    pub async fn dispatch_job(
        &self,
        namespace: &str,
        parent_id: &str,
        req: &JobDispatchRequest,
    ) -> Result<JobDispatchResponse, ServerError> {
        let snap = self.state.snapshot();
        let parent = snap
            .job(namespace, parent_id)
            .ok_or_else(|| ServerError::NotFound("parameterized job not found".into()))?;
        let Some(config) = parent.parameterized_job.as_ref() else {
            return Err(ServerError::BadRequest(
                "Specified job is not a parameterized job".into(),
            ));
        };
        if parent.stop {
            return Err(ServerError::BadRequest("Specified job is stopped".into()));
        }
        if req.priority != 0 && !(1..=100).contains(&req.priority) {
            return Err(ServerError::BadRequest(format!(
                "dispatch job priority must be between [1, 100]; got Priority {}",
                req.priority
            )));
        }
        let payload = STANDARD
            .decode(req.payload.as_bytes())
            .map_err(|e| ServerError::BadRequest(format!("Payload is not valid base64: {e}")))?;
        check_payload(&config.payload, &payload)?;
        let meta = req.meta.clone().unwrap_or_default();
        check_meta(
            config.meta_required.as_deref().unwrap_or_default(),
            config.meta_optional.as_deref().unwrap_or_default(),
            &meta,
        )?;

        // The same token while an earlier child is still live: that child is the answer.
        if !req.idempotency_token.is_empty()
            && let Some(child) = snap
                .jobs_with_prefix(namespace, &format!("{parent_id}{DISPATCH_SUFFIX}"))
                .into_iter()
                .find(|j| {
                    j.parent_id == parent_id
                        && j.dispatch_idempotency_token == req.idempotency_token
                        && j.status != Some(crate::structs::JobStatus::Dead)
                })
        {
            return Ok(JobDispatchResponse {
                dispatched_job_id: child.id.clone(),
                job_create_index: child.create_index,
                index: child.modify_index,
                ..JobDispatchResponse::default()
            });
        }

        let mut child = parent.derive_child(child_id(parent_id, &req.id_prefix_template));
        child.parameterized_job = None;
        child.dispatched = true;
        child.dispatch_idempotency_token = req.idempotency_token.clone();
        if req.priority != 0 {
            child.priority = req.priority;
        }
        // Stored as Nomad stores it: snappy-compressed, base64 in JSON.
        if !payload.is_empty() {
            let compressed = snap::raw::Encoder::new()
                .compress_vec(&payload)
                .map_err(|e| ServerError::Refused(format!("compressing payload: {e}")))?;
            child.payload = Some(STANDARD.encode(compressed));
        }
        let mut merged = parent.meta.clone().unwrap_or_default();
        merged.extend(meta);
        child.meta = (!merged.is_empty()).then_some(merged);
        let child_id = child.id.clone();
        let resp = self
            .register_job(
                JobRegisterRequest {
                    job: Some(child),
                    ..JobRegisterRequest::default()
                },
                Some(namespace),
            )
            .await?;
        let created = self.state.snapshot().job(namespace, &child_id);
        Ok(JobDispatchResponse {
            dispatched_job_id: child_id,
            eval_id: resp.eval_id,
            eval_create_index: resp.eval_create_index,
            job_create_index: created.map_or(resp.job_modify_index, |j| j.create_index),
            index: resp.index,
        })
    }
}

/// `<parent>/dispatch-[<prefix>-]<unix seconds>-<8 hex>`.
fn child_id(parent_id: &str, prefix: &str) -> String {
    let secs = now_nanos() / 1_000_000_000;
    let uuid = crate::structs::generate_uuid();
    let short = &uuid[..8];
    if prefix.is_empty() {
        format!("{parent_id}{DISPATCH_SUFFIX}{secs}-{short}")
    } else {
        format!("{parent_id}{DISPATCH_SUFFIX}{prefix}-{secs}-{short}")
    }
}

/// The payload against the job's `payload` setting (`optional`, `required`, `forbidden`).
fn check_payload(setting: &str, payload: &[u8]) -> Result<(), ServerError> {
    if payload.len() > DISPATCH_PAYLOAD_MAX {
        return Err(ServerError::BadRequest(format!(
            "Payload exceeds maximum size; {} > {DISPATCH_PAYLOAD_MAX}",
            payload.len()
        )));
    }
    match setting {
        "forbidden" if !payload.is_empty() => {
            Err(ServerError::BadRequest("Payload is not allowed".into()))
        }
        "required" if payload.is_empty() => {
            Err(ServerError::BadRequest("Payload is required".into()))
        }
        _ => Ok(()),
    }
}

/// Every required key present, nothing outside required + optional.
fn check_meta(
    required: &[String],
    optional: &[String],
    meta: &BTreeMap<String, String>,
) -> Result<(), ServerError> {
    let unpermitted: Vec<&str> = meta
        .keys()
        .filter(|k| !required.contains(k) && !optional.contains(k))
        .map(String::as_str)
        .collect();
    if !unpermitted.is_empty() {
        return Err(ServerError::BadRequest(format!(
            "Dispatch provided unpermitted meta keys: [{}]",
            unpermitted.join(" ")
        )));
    }
    let missing: Vec<&str> = required
        .iter()
        .filter(|k| !meta.contains_key(*k))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(ServerError::BadRequest(format!(
            "Dispatch did not provide required meta keys: [{}]",
            missing.join(" ")
        )));
    }
    Ok(())
}
