//! `POST /v1/jobs/parse` (HCL job file → API job, seed 000) and `POST /v1/validate/job`
//! (a JSON job → the validation errors and warnings registering it would give).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};

use super::App;
use crate::http::{HttpError, JsonReply, WriteOptions, decode_json};
use crate::jobspec::{self, ParseConfig};
use crate::structs::Job;
use crate::structs::canonicalize::canonicalize_job;
use crate::structs::validate::validate_job;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/jobs/parse", post(parse).put(parse))
        .route("/v1/validate/job", post(validate).put(validate))
}

/// The body of `POST /v1/jobs/parse`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobsParseRequest {
    #[serde(
        rename = "JobHCL",
        deserialize_with = "crate::structs::de::null_default"
    )]
    pub job_hcl: String,
    #[serde(
        rename = "HCLv1",
        deserialize_with = "crate::structs::de::null_default"
    )]
    pub hcl_v1: bool,
    #[serde(deserialize_with = "crate::structs::de::null_default")]
    pub canonicalize: bool,
    #[serde(deserialize_with = "crate::structs::de::null_default")]
    pub variables: String,
}

async fn parse(
    State(app): State<App>,
    opts: WriteOptions,
    body: Bytes,
) -> Result<Response, HttpError> {
    let req: JobsParseRequest = decode_json(&body)?;
    if req.job_hcl.is_empty() {
        return Err(HttpError::bad_request("Job spec is empty"));
    }
    // As in Nomad: no file access and no environment through the API.
    let cfg = ParseConfig {
        path: "input.hcl".to_string(),
        body: req.job_hcl,
        var_content: req.variables,
        hcl1: req.hcl_v1,
        ..ParseConfig::default()
    };
    // Parsing is CPU work on a body of up to the body limit: off the async workers.
    let parsed = tokio::task::spawn_blocking(move || jobspec::parse(&cfg))
        .await
        .map_err(|e| HttpError::internal(format!("job parser task failed: {e}")))?
        .map_err(|e| HttpError::bad_request(format!("Failed to parse job: {e}")))?;
    let reply = if req.canonicalize {
        let mut job = parsed
            .to_job()
            .map_err(|e| HttpError::bad_request(format!("Failed to parse job: {e}")))?;
        canonicalize_job(&mut job, &app.server.config.region);
        serde_json::to_value(&job).map_err(|e| HttpError::internal(e.to_string()))?
    } else {
        parsed.api_json()
    };
    Ok(JsonReply::new(reply).pretty(opts.pretty).into_response())
}

/// The body of `POST /v1/validate/job`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobValidateRequest {
    pub job: Option<Job>,
}

/// The reply of `POST /v1/validate/job`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobValidateResponse {
    pub driver_config_validated: bool,
    pub validation_errors: Option<Vec<String>>,
    pub error: String,
    pub warnings: String,
}

async fn validate(
    State(app): State<App>,
    opts: WriteOptions,
    body: Bytes,
) -> Result<Response, HttpError> {
    let req: JobValidateRequest = decode_json(&body)?;
    let Some(mut job) = req.job else {
        return Err(HttpError::bad_request("Job must be specified"));
    };
    if job.namespace.is_empty() && opts.namespace != "*" {
        job.namespace = opts.namespace.clone();
    }
    canonicalize_job(&mut job, &app.server.config.region);
    let mut reply = JobValidateResponse {
        driver_config_validated: true,
        ..JobValidateResponse::default()
    };
    let mut errors = match validate_job(&job) {
        Ok(()) => Vec::new(),
        Err(e) => e.0,
    };
    if let Some(p) = job.periodic.as_ref()
        && let Err(e) = crate::server::periodic::validate(p)
    {
        errors.push(format!("Periodic: {e}"));
    }
    if !errors.is_empty() {
        reply.error = crate::structs::validate::ValidationErrors(errors.clone()).to_string();
        reply.validation_errors = Some(errors);
    }
    Ok(JsonReply::new(reply).pretty(opts.pretty).into_response())
}
