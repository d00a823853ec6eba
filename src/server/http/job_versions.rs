//! `POST|PUT /v1/job/:id/revert`, `/stable`, `/plan` and `/versions/:name/tag` (seed 000):
//! writing job versions, naming them, and trying one out.

use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::App;
use crate::http::{HttpError, JsonReply, WriteOptions, decode_json, decode_optional_json};
use crate::structs::Job;

/// Body of `POST /v1/job/:id/revert`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobRevertRequest {
    #[serde(rename = "JobID")]
    pub job_id: String,
    #[serde(deserialize_with = "crate::structs::de::int")]
    pub job_version: i64,
    #[serde(deserialize_with = "crate::structs::de::opt_int")]
    pub enforce_prior_version: Option<i64>,
}

/// Body of `POST /v1/job/:id/stable`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobStabilityRequest {
    #[serde(rename = "JobID")]
    pub job_id: String,
    #[serde(deserialize_with = "crate::structs::de::int")]
    pub job_version: i64,
    pub stable: bool,
}

/// Body of `PUT /v1/job/:id/versions/:name/tag`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobTagRequest {
    /// The version to tag (0 is a version; see `latest`).
    #[serde(deserialize_with = "crate::structs::de::int")]
    pub version: i64,
    /// Tag the current version (with `Version` 0).
    #[serde(deserialize_with = "crate::structs::de::null_default")]
    pub latest: bool,
    #[serde(deserialize_with = "crate::structs::de::null_default")]
    pub description: String,
}

/// `PUT` names a version of the job `name`; `DELETE` takes the name off.
pub async fn tag(
    app: &App,
    opts: &WriteOptions,
    id: &str,
    name: &str,
    delete: bool,
    body: &[u8],
) -> Result<Response, HttpError> {
    let resp = if delete {
        app.server
            .unset_job_version_tag(&opts.namespace, id, name)
            .await?
    } else {
        let req: JobTagRequest = decode_optional_json(body)?.unwrap_or_default();
        app.server
            .tag_job_version(&opts.namespace, id, name, &req)
            .await?
    };
    Ok(JsonReply::write(opts, resp.index, resp).into_response())
}

/// Body of `POST /v1/job/:id/plan`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobPlanRequest {
    pub job: Option<Job>,
    pub diff: bool,
    pub policy_override: bool,
}

/// The body's JobID, checked against the path as Nomad's handlers do.
fn check_job_id(body_id: &str, path_id: &str) -> Result<(), HttpError> {
    if body_id.is_empty() {
        return Err(HttpError::bad_request("JobID must be specified"));
    }
    if body_id != path_id {
        return Err(HttpError::bad_request("Job ID does not match"));
    }
    Ok(())
}

/// Reverts the job to `JobVersion`.
pub async fn revert(
    app: &App,
    opts: &WriteOptions,
    id: &str,
    body: &[u8],
) -> Result<Response, HttpError> {
    let req: JobRevertRequest = decode_json(body)?;
    check_job_id(&req.job_id, id)?;
    let resp = app.server.revert_job(&opts.namespace, id, &req).await?;
    Ok(JsonReply::write(opts, resp.index, resp).into_response())
}

/// Marks `JobVersion` stable or not.
pub async fn stable(
    app: &App,
    opts: &WriteOptions,
    id: &str,
    body: &[u8],
) -> Result<Response, HttpError> {
    let req: JobStabilityRequest = decode_json(body)?;
    check_job_id(&req.job_id, id)?;
    let resp = app
        .server
        .set_job_stability(&opts.namespace, id, &req)
        .await?;
    Ok(JsonReply::write(opts, resp.index, resp).into_response())
}

/// A dry run of the scheduler for the submitted job.
pub fn plan(app: &App, opts: &WriteOptions, id: &str, body: &[u8]) -> Result<Response, HttpError> {
    let req: JobPlanRequest = decode_json(body)?;
    let resp = app.server.plan_job(id, &opts.namespace, req)?;
    Ok(JsonReply::new(resp).pretty(opts.pretty).into_response())
}
