//! `/v1/evaluations` and `/v1/evaluation/:id[/allocations]`.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::{App, read};
use crate::acl::NsCap;
use crate::http::filter::filter_items;
use crate::http::{Caller, HttpError, JsonReply, QueryOptions, QueryParams};
use crate::server::state::{Table, Tables};
use crate::structs::AllocListStub;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/evaluations", get(list_evals))
        .route("/v1/evaluations/count", get(count_evals))
        .route("/v1/evaluation/{id}", get(read_eval))
        .route("/v1/evaluation/{id}/allocations", get(eval_allocs))
}

async fn list_evals(
    State(app): State<App>,
    Caller(acl): Caller,
    opts: QueryOptions,
    params: QueryParams,
) -> Result<Response, HttpError> {
    let job = params.non_empty("job");
    let status = params.non_empty("status");
    let evals = |snap: &Tables| {
        snap.evals_with_prefix(&opts.namespace, &opts.prefix)
            .iter()
            .filter(|e| acl.allow_ns_op(&e.namespace, NsCap::READ_JOB))
            .filter(|e| job.is_none_or(|j| e.job_id == j))
            .filter(|e| status.is_none_or(|s| e.status.as_str() == s))
            .map(|e| e.as_ref().clone())
            .collect()
    };
    read::paged(&app, &opts, &[Table::Evals], evals, |e| e.id.clone()).await
}

/// `GET /v1/evaluations/count`: how many evaluations the list would hold (namespace,
/// `prefix`, `filter`, and only namespaces the token may read), as Nomad's `Eval.Count`
/// answers it: `Count` beside the query meta.
async fn count_evals(
    State(app): State<App>,
    Caller(acl): Caller,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let (index, count) = read::value(&app, &opts, &[Table::Evals], |snap| {
        let evals = snap.evals_with_prefix(&opts.namespace, &opts.prefix);
        let visible = evals
            .iter()
            .filter(|e| acl.allow_ns_op(&e.namespace, NsCap::READ_JOB));
        if opts.filter.is_empty() {
            return Ok(visible.count());
        }
        let items: Vec<_> = visible.map(|e| e.as_ref().clone()).collect();
        filter_items(&opts.filter, items)
            .map(|kept| kept.len())
            .map_err(|e| HttpError::bad_request(e.to_string()))
    })
    .await?;
    let body = json!({
        "Count": count,
        "Index": index,
        "LastContact": 0,
        "KnownLeader": true,
        "NextToken": "",
    });
    Ok(JsonReply::query(&opts, index, body).into_response())
}

async fn read_eval(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    read::object(&app, &opts, &[Table::Evals], "eval not found", |snap| {
        snap.eval(&id).map(|e| (e.modify_index, e.as_ref().clone()))
    })
    .await
}

async fn eval_allocs(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    read::reply(&app, &opts, &[Table::Allocs], |snap| {
        let stubs: Vec<AllocListStub> = match snap.eval(&id) {
            Some(e) => snap
                .allocs_by_eval(&e)
                .iter()
                .map(|a| AllocListStub::new(a, true, false))
                .collect(),
            None => Vec::new(),
        };
        Ok(stubs)
    })
    .await
}
