//! `/v1/jobs` and `/v1/job/:job_id[/...]` (seed 000).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::{Deserialize, Serialize};

use super::summary::job_summary;
use super::{App, job_dispatch, job_scale, job_submission, job_versions, read};
use crate::acl::NsCap;
use crate::http::{
    Caller, HttpError, JsonReply, QueryOptions, QueryParams, WriteOptions, decode_json,
    decode_optional_json,
};
use crate::server::ops::jobs::JobRegisterRequest;
use crate::server::state::{Table, Tables};
use crate::structs::{AllocListStub, JobListStub};

pub fn routes() -> Router<App> {
    Router::new()
        .route(
            "/v1/jobs",
            get(list_jobs).post(register_jobs).put(register_jobs),
        )
        .route("/v1/job/{*rest}", any(job_dispatch))
}

async fn list_jobs(
    State(app): State<App>,
    Caller(acl): Caller,
    opts: QueryOptions,
    params: QueryParams,
) -> Result<Response, HttpError> {
    let meta = params.flag("meta")?.unwrap_or(false);
    let stubs = |snap: &Tables| {
        snap.jobs_with_prefix(&opts.namespace, &opts.prefix)
            .iter()
            .filter(|j| acl.allow_ns_op(&j.namespace, NsCap::LIST_JOBS))
            .map(|j| JobListStub::new(j, Some(job_summary(snap, j)), meta))
            .collect()
    };
    let key = |s: &JobListStub| format!("{}.{}", s.namespace, s.id);
    read::paged(&app, &opts, &[Table::Jobs, Table::Allocs], stubs, key).await
}

async fn register_jobs(
    State(app): State<App>,
    opts: WriteOptions,
    body: Bytes,
) -> Result<Response, HttpError> {
    register(app, &opts.namespace, opts.pretty, None, &body).await
}

/// Registers a job; `namespace` is the `?namespace` the request named (used when the job
/// names none).
async fn register(
    app: App,
    namespace: &str,
    pretty: bool,
    path_id: Option<&str>,
    body: &[u8],
) -> Result<Response, HttpError> {
    let req: JobRegisterRequest = decode_json(body)?;
    let Some(job) = req.job.as_ref() else {
        return Err(HttpError::bad_request("Job must be specified"));
    };
    if let Some(id) = path_id
        && job.id != id
    {
        return Err(HttpError::bad_request("Job ID does not match name"));
    }
    let resp = app.server.register_job(req, Some(namespace)).await?;
    let index = resp.index;
    Ok(JsonReply::new(resp)
        .index(index)
        .pretty(pretty)
        .into_response())
}

/// Job IDs may contain `/` (dispatched children), so the sub-resource is recognised by its
/// suffix, as Nomad does.
const SUB_RESOURCES: &[&str] = &[
    "allocations",
    "evaluations",
    "summary",
    "versions",
    "deployments",
    "deployment",
    "evaluate",
    "revert",
    "stable",
    "scale",
    "plan",
    "dispatch",
    "submission",
    "services",
];

async fn job_dispatch(
    State(app): State<App>,
    method: Method,
    Path(rest): Path<String>,
    params: QueryParams,
    opts: QueryOptions,
    wopts: WriteOptions,
    body: Bytes,
) -> Result<Response, HttpError> {
    let (id, sub) = match rest.rsplit_once('/') {
        Some((id, "force")) if id.ends_with("/periodic") && id.len() > "/periodic".len() => {
            (&id[..id.len() - "/periodic".len()], "periodic/force")
        }
        Some((id, sub)) if SUB_RESOURCES.contains(&sub) && !id.is_empty() => (id, sub),
        _ => (rest.as_str(), ""),
    };
    if id.is_empty() {
        return Err(HttpError::bad_request("Missing job ID"));
    }
    // `/v1/job/<id>/versions/<name>/tag`
    if let Some((job, name)) = rest
        .strip_suffix("/tag")
        .and_then(|r| r.rsplit_once('/'))
        .and_then(|(head, name)| Some((head.strip_suffix("/versions")?, name)))
        .filter(|(job, name)| !job.is_empty() && !name.is_empty())
    {
        return match method {
            Method::PUT | Method::POST => {
                job_versions::tag(&app, &wopts, job, name, false, &body).await
            }
            Method::DELETE => job_versions::tag(&app, &wopts, job, name, true, &body).await,
            _ => Err(HttpError::invalid_method()),
        };
    }
    match (sub, method) {
        ("", Method::GET) => read_job(app, opts, id).await,
        ("", Method::POST | Method::PUT) => {
            register(app, &opts.namespace, opts.pretty, Some(id), &body).await
        }
        ("", Method::DELETE) => deregister(app, params, opts, id).await,
        ("allocations", Method::GET) => job_allocs(app, opts, params, id).await,
        ("evaluations", Method::GET) => job_evals(app, opts, id).await,
        ("summary", Method::GET) => job_summary_handler(app, opts, id).await,
        ("submission", Method::GET) => job_submission::submission(app, opts, params, id).await,
        ("versions", Method::GET) => job_versions(app, opts, params, id).await,
        ("deployments", Method::GET) => {
            super::deployments::job_deployments(app, opts, params, id).await
        }
        ("deployment", Method::GET) => super::deployments::latest_deployment(app, opts, id).await,
        ("services", Method::GET) => super::services::job_services(app, opts, id).await,
        ("evaluate", Method::POST | Method::PUT) => evaluate(app, opts, id, &body).await,
        ("revert", Method::POST | Method::PUT) => {
            job_versions::revert(&app, &wopts, id, &body).await
        }
        ("stable", Method::POST | Method::PUT) => {
            job_versions::stable(&app, &wopts, id, &body).await
        }
        ("scale", Method::GET) => job_scale::status(app, opts, id).await,
        ("scale", Method::POST | Method::PUT) => job_scale::scale(&app, &wopts, id, &body).await,
        ("plan", Method::POST | Method::PUT) => job_versions::plan(&app, &wopts, id, &body),
        ("periodic/force", Method::POST | Method::PUT) => {
            job_dispatch::force_periodic(&app, &wopts, id).await
        }
        ("dispatch", Method::POST | Method::PUT) => {
            job_dispatch::dispatch(&app, &wopts, id, &body).await
        }
        _ => Err(HttpError::invalid_method()),
    }
}

fn job_not_found() -> HttpError {
    HttpError::not_found("job not found")
}

async fn read_job(app: App, opts: QueryOptions, id: &str) -> Result<Response, HttpError> {
    read::object(&app, &opts, &[Table::Jobs], "job not found", |snap| {
        let job = snap.job(&opts.namespace, id)?;
        Some((job.modify_index, job.as_ref().clone()))
    })
    .await
}

async fn deregister(
    app: App,
    params: QueryParams,
    opts: QueryOptions,
    id: &str,
) -> Result<Response, HttpError> {
    let purge = params.flag("purge")?.unwrap_or(false);
    let priority: i64 = params.int("eval_priority")?.unwrap_or(0);
    if priority != 0 && !(1..=100).contains(&priority) {
        return Err(HttpError::bad_request(
            "Eval priority must be between 1 and 100",
        ));
    }
    let resp = app
        .server
        .deregister_job(&opts.namespace, id, purge, priority)
        .await?;
    let index = resp.index;
    Ok(JsonReply::new(resp)
        .index(index)
        .pretty(opts.pretty)
        .into_response())
}

async fn job_allocs(
    app: App,
    opts: QueryOptions,
    params: QueryParams,
    id: &str,
) -> Result<Response, HttpError> {
    let all = params.flag("all")?.unwrap_or(false);
    read::reply(&app, &opts, &[Table::Allocs], |snap| {
        let job = snap.job(&opts.namespace, id);
        let mut stubs: Vec<AllocListStub> = snap
            .allocs_by_job(&opts.namespace, id)
            .iter()
            .filter(|a| {
                all || match (&job, &a.job) {
                    (Some(j), Some(aj)) => aj.create_index == j.create_index,
                    _ => true,
                }
            })
            .map(|a| AllocListStub::new(a, true, false))
            .collect();
        stubs.sort_by(|a, b| a.create_index.cmp(&b.create_index).then(a.id.cmp(&b.id)));
        Ok(stubs)
    })
    .await
}

async fn job_evals(app: App, opts: QueryOptions, id: &str) -> Result<Response, HttpError> {
    read::reply(&app, &opts, &[Table::Evals], |snap| {
        let mut evals: Vec<_> = snap
            .evals_by_job(&opts.namespace, id)
            .iter()
            .map(|e| e.as_ref().clone())
            .collect();
        evals.sort_by_key(|e| std::cmp::Reverse(e.create_index));
        Ok(evals)
    })
    .await
}

async fn job_summary_handler(
    app: App,
    opts: QueryOptions,
    id: &str,
) -> Result<Response, HttpError> {
    let tables = [Table::Jobs, Table::Allocs, Table::Evals];
    read::object(&app, &opts, &tables, "job not found", |snap| {
        let job = snap.job(&opts.namespace, id)?;
        let summary = job_summary(snap, &job);
        Some((summary.modify_index, summary))
    })
    .await
}

/// `GET /v1/job/:id/versions`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct VersionsReply {
    diffs: Option<Vec<serde_json::Value>>,
    index: u64,
    known_leader: bool,
    last_contact: u64,
    versions: Vec<crate::structs::Job>,
}

async fn job_versions(
    app: App,
    opts: QueryOptions,
    params: QueryParams,
    id: &str,
) -> Result<Response, HttpError> {
    let diffs = params.flag("diffs")?.unwrap_or(false);
    let (index, versions) = read::value(&app, &opts, &[Table::JobVersions], |snap| {
        Ok(snap
            .job_versions(&opts.namespace, id)
            .iter()
            .map(|j| j.as_ref().clone())
            .collect::<Vec<_>>())
    })
    .await?;
    if versions.is_empty() {
        return Err(job_not_found());
    }
    let diff_list = if diffs {
        Some(
            versions
                .windows(2)
                .map(|w| crate::server::job_diff::job_diff(&w[1], &w[0]))
                .collect(),
        )
    } else {
        None
    };
    let reply = VersionsReply {
        diffs: diff_list,
        index,
        known_leader: true,
        last_contact: 0,
        versions,
    };
    Ok(JsonReply::query(&opts, index, reply).into_response())
}

/// Body of `POST /v1/job/:id/evaluate`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct EvaluateRequest {
    #[serde(rename = "JobID")]
    job_id: String,
    eval_options: EvalOptions,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct EvalOptions {
    force_reschedule: bool,
}

async fn evaluate(
    app: App,
    opts: QueryOptions,
    id: &str,
    body: &[u8],
) -> Result<Response, HttpError> {
    let req: EvaluateRequest = decode_optional_json(body)?.unwrap_or_default();
    if !req.job_id.is_empty() && req.job_id != id {
        return Err(HttpError::bad_request("JobID not same as job name"));
    }
    let resp = app
        .server
        .evaluate_job(&opts.namespace, id, req.eval_options.force_reschedule)
        .await?;
    let index = resp.index;
    Ok(JsonReply::new(resp)
        .index(index)
        .pretty(opts.pretty)
        .into_response())
}
