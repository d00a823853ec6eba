//! `/v1/scaling/policies` and `/v1/scaling/policy/:id`: the groups' `scaling` blocks, read
//! from the jobs that carry them (a policy lives and dies with its job's current version).

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;

use super::{App, read};
use crate::acl::NsCap;
use crate::http::{Caller, HttpError, QueryOptions, QueryParams};
use crate::server::state::{Table, Tables};
use crate::structs::{ScalingPolicy, group_policy};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/scaling/policies", get(list_policies))
        .route("/v1/scaling/policy/{id}", get(read_policy))
}

/// The policies of the jobs in `ns` (`*`: every namespace) whose ID starts with `job_prefix`.
fn policies(snap: &Tables, ns: &str, job_prefix: &str) -> Vec<ScalingPolicy> {
    snap.jobs_with_prefix(ns, job_prefix)
        .iter()
        .flat_map(|j| j.task_groups.iter().flatten().filter_map(group_policy))
        .collect()
}

/// Nomad lets a caller with `list-scaling-policies`, or with both `list-jobs` and `read-job`,
/// see a namespace's policies.
fn may_list(acl: &crate::acl::Acl, ns: &str) -> bool {
    acl.allow_ns_op(ns, NsCap::LIST_SCALING_POLICIES)
        || (acl.allow_ns_op(ns, NsCap::LIST_JOBS) && acl.allow_ns_op(ns, NsCap::READ_JOB))
}

async fn list_policies(
    State(app): State<App>,
    Caller(acl): Caller,
    opts: QueryOptions,
    params: QueryParams,
) -> Result<Response, HttpError> {
    let job = params.non_empty("job");
    let kind = params.non_empty("type").unwrap_or_default();
    let items = |snap: &Tables| {
        let mut list: Vec<_> = policies(snap, &opts.namespace, job.unwrap_or_default())
            .into_iter()
            .filter(|p| job.is_none_or(|j| p.target.get("Job").is_some_and(|t| t == j)))
            .filter(|p| p.r#type.starts_with(kind))
            .filter(|p| p.id.starts_with(opts.prefix.as_str()))
            .filter(|p| {
                p.target
                    .get("Namespace")
                    .is_some_and(|ns| may_list(&acl, ns))
            })
            .map(|p| p.stub())
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    };
    read::paged(&app, &opts, &[Table::Jobs], items, |p| p.id.clone()).await
}

async fn read_policy(
    State(app): State<App>,
    Caller(acl): Caller,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    read::object(&app, &opts, &[Table::Jobs], "policy not found", |snap| {
        policies(snap, &opts.namespace, "")
            .into_iter()
            .find(|p| p.id == id)
            .filter(|p| {
                p.target.get("Namespace").is_some_and(|ns| {
                    acl.allow_ns_op(ns, NsCap::READ_SCALING_POLICY) || may_list(&acl, ns)
                })
            })
            .map(|p| (p.modify_index, p))
    })
    .await
}
