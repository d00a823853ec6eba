//! `POST|PUT /v1/job/:id/revert` and `/stable` (seed 000): the job version writes.

use axum::response::{IntoResponse, Response};

use super::App;
use crate::http::{HttpError, JsonReply, QueryOptions, decode_json};
use crate::server::job_versions_endpoint::{JobRevertRequest, JobStabilityRequest};

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
pub fn revert(
    app: &App,
    opts: &QueryOptions,
    id: &str,
    body: &[u8],
) -> Result<Response, HttpError> {
    let req: JobRevertRequest = decode_json(body)?;
    check_job_id(&req.job_id, id)?;
    let resp = app.server.revert_job(&opts.namespace, id, &req)?;
    let index = resp.index;
    Ok(JsonReply::new(resp)
        .index(index)
        .pretty(opts.pretty)
        .into_response())
}

/// Marks `JobVersion` stable or not.
pub fn stable(
    app: &App,
    opts: &QueryOptions,
    id: &str,
    body: &[u8],
) -> Result<Response, HttpError> {
    let req: JobStabilityRequest = decode_json(body)?;
    check_job_id(&req.job_id, id)?;
    let resp = app.server.set_job_stability(&opts.namespace, id, &req)?;
    let index = resp.index;
    Ok(JsonReply::new(resp)
        .index(index)
        .pretty(opts.pretty)
        .into_response())
}
