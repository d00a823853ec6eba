//! `GET|POST /v1/jobs/statuses` (Nomad 1.7+): each job with its allocations' statuses, its
//! latest deployment and its children's statuses, newest change first — the UI's job list.
//! A POST (or a GET with a body) names the jobs: `{"Jobs": [{"ID", "Namespace"}],
//! "IncludeChildren"}`.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::{App, read};
use crate::acl::NsCap;
use crate::http::filter::filter_items;
use crate::http::paging::paginate_raw;
use crate::http::{Caller, HttpError, JsonReply, OptionalJsonBody, QueryOptions, QueryParams};
use crate::server::state::{Table, Tables};
use crate::structs::Job;

pub fn routes() -> Router<App> {
    Router::new().route("/v1/jobs/statuses", get(statuses).post(statuses))
}

/// The request body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StatusesRequest {
    jobs: Option<Vec<JobRef>>,
    include_children: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct JobRef {
    #[serde(rename = "ID")]
    id: String,
    namespace: String,
}

/// Nomad's `JobStatusesJob`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct JobStatus {
    #[serde(rename = "ID")]
    id: String,
    namespace: String,
    name: String,
    r#type: String,
    node_pool: String,
    datacenters: Vec<String>,
    priority: i64,
    version: i64,
    submit_time: i64,
    modify_index: u64,
    allocs: Option<Vec<AllocStatus>>,
    group_count_sum: i64,
    child_statuses: Option<Vec<String>>,
    #[serde(rename = "ParentID")]
    parent_id: String,
    latest_deployment: Option<LatestDeployment>,
    stop: bool,
    is_pack: bool,
    status: String,
}

/// Nomad's `JobStatusesAlloc`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct AllocStatus {
    #[serde(rename = "ID")]
    id: String,
    group: String,
    client_status: String,
    #[serde(rename = "NodeID")]
    node_id: String,
    deployment_status: DeploymentFlags,
    job_version: i64,
    #[serde(rename = "FollowupEvalID")]
    followup_eval_id: String,
    /// Paused tasks are an Enterprise feature; never set.
    has_paused_task: bool,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DeploymentFlags {
    canary: bool,
    healthy: Option<bool>,
}

/// Nomad's `JobStatusesLatestDeployment`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct LatestDeployment {
    #[serde(rename = "ID")]
    id: String,
    is_active: bool,
    job_version: i64,
    status: String,
    status_description: String,
    all_auto_promote: bool,
    requires_promotion: bool,
}

/// The job's entry.
fn job_status(snap: &Tables, job: &Job) -> JobStatus {
    let mut out = JobStatus {
        id: job.id.clone(),
        namespace: job.namespace.clone(),
        name: job.name.clone(),
        r#type: job.r#type.clone(),
        node_pool: job.node_pool.clone(),
        datacenters: job.datacenters.clone().unwrap_or_default(),
        priority: job.priority,
        version: job.version,
        submit_time: job.submit_time,
        modify_index: job.modify_index,
        allocs: None,
        group_count_sum: job.groups().iter().map(|g| g.count).sum(),
        child_statuses: None,
        parent_id: job.parent_id.clone(),
        latest_deployment: None,
        stop: job.stop,
        is_pack: job
            .meta
            .as_ref()
            .is_some_and(|m| m.contains_key("pack.name")),
        status: job.status.map(|s| s.to_string()).unwrap_or_default(),
    };
    if job.is_parent() {
        let children: Vec<&Arc<Job>> = snap
            .jobs
            .values()
            .filter(|c| c.namespace == job.namespace && c.parent_id == job.id)
            .collect();
        out.child_statuses = Some(
            children
                .iter()
                .map(|c| c.status.map(|s| s.to_string()).unwrap_or_default())
                .collect(),
        );
        return out;
    }
    let allocs = snap.allocs_by_job(&job.namespace, &job.id);
    out.allocs = (!allocs.is_empty()).then(|| {
        allocs
            .iter()
            .map(|a| AllocStatus {
                id: a.id.to_string(),
                group: a.task_group.to_string(),
                client_status: a.client_status.to_string(),
                node_id: a.node_id.to_string(),
                deployment_status: a
                    .deployment_status
                    .as_ref()
                    .map(|d| DeploymentFlags {
                        canary: d.canary,
                        healthy: d.healthy,
                    })
                    .unwrap_or_default(),
                job_version: a.job.as_ref().map_or(job.version, |j| j.version),
                followup_eval_id: a.followup_eval_id.clone(),
                has_paused_task: false,
            })
            .collect()
    });
    if let Some(d) = snap.latest_deployment(&job.namespace, &job.id) {
        out.latest_deployment = Some(LatestDeployment {
            id: d.id.clone(),
            is_active: d.active(),
            job_version: d.job_version,
            status: d.status.to_string(),
            status_description: d.status_description.clone(),
            all_auto_promote: d.has_auto_promote(),
            requires_promotion: d.requires_promotion(),
        });
    }
    out
}

/// The paging key: the ModifyIndex, zero-padded so string order is numeric order.
fn key(index: u64) -> String {
    format!("{index:020}")
}

async fn statuses(
    State(app): State<App>,
    Caller(acl): Caller,
    opts: QueryOptions,
    params: QueryParams,
    OptionalJsonBody(body): OptionalJsonBody<StatusesRequest>,
) -> Result<Response, HttpError> {
    let mut include_children = params.flag("include_children")?.unwrap_or(false);
    let mut wanted: Option<HashSet<(String, String)>> = None;
    let mut per_page = opts.per_page;
    let mut namespace = opts.namespace.clone();
    if let Some(body) = body {
        let jobs = body.jobs.unwrap_or_default();
        if jobs.is_empty() {
            return Err(HttpError::bad_request("no jobs in request"));
        }
        // Jobs of several namespaces: look in all of them (each still needs read-job).
        if namespace == crate::structs::DEFAULT_NAMESPACE {
            namespace = "*".to_string();
        }
        per_page = Some(jobs.len() as u32);
        include_children |= body.include_children;
        wanted = Some(
            jobs.into_iter()
                .map(|j| {
                    let ns = if j.namespace.is_empty() {
                        crate::structs::DEFAULT_NAMESPACE.to_string()
                    } else {
                        j.namespace
                    };
                    (ns, j.id)
                })
                .collect(),
        );
    }
    // Newest change first unless `reverse`, as Nomad orders this list.
    let newest_first = !opts.reverse;
    let token = match opts.next_token.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => Some(key(t.parse::<u64>().map_err(|_| {
            HttpError::bad_request(format!("next_token: {t:?} is not a job modify index"))
        })?)),
        None => None,
    };
    let tables = [Table::Jobs, Table::Allocs, Table::Deployments];
    let (index, (page, next)) = read::value(&app, &opts, &tables, |snap| {
        let mut jobs: Vec<Arc<Job>> = snap
            .jobs
            .values()
            .filter(|j| namespace == "*" || j.namespace == namespace)
            .filter(|j| acl.allow_ns_op(&j.namespace, NsCap::READ_JOB))
            .filter(|j| include_children || j.parent_id.is_empty())
            .filter(|j| {
                wanted
                    .as_ref()
                    .is_none_or(|w| w.contains(&(j.namespace.clone(), j.id.clone())))
            })
            .cloned()
            .collect();
        jobs.sort_by_key(|j| (j.modify_index, j.namespace.clone(), j.id.clone()));
        if newest_first {
            jobs.reverse();
        }
        let jobs =
            filter_items(&opts.filter, jobs).map_err(|e| HttpError::bad_request(e.to_string()))?;
        let page = paginate_raw(jobs, per_page, token.as_deref(), newest_first, |j| {
            key(j.modify_index)
        });
        let items: Vec<JobStatus> = page.items.iter().map(|j| job_status(snap, j)).collect();
        // Handed out as Nomad's plain ModifyIndex.
        let next = page
            .next_token
            .and_then(|t| t.parse::<u64>().ok())
            .map(|i| i.to_string());
        Ok((items, next))
    })
    .await?;
    Ok(JsonReply::query(&opts, index, page)
        .next_token(next)
        .into_response())
}
