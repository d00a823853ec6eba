//! `/v1/allocations` and `/v1/allocation/:id` (seed 002).

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::{App, read};
use crate::acl::NsCap;
use crate::http::{Caller, HttpError, JsonReply, QueryOptions, QueryParams, WriteOptions};
use crate::server::state::{Table, Tables};
use crate::structs::AllocListStub;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/allocations", get(list_allocs))
        .route("/v1/allocation/{id}", get(read_alloc))
        .route("/v1/allocation/{id}/stop", post(stop_alloc).put(stop_alloc))
}

async fn list_allocs(
    State(app): State<App>,
    Caller(acl): Caller,
    opts: QueryOptions,
    params: QueryParams,
) -> Result<Response, HttpError> {
    let task_states = params.flag("task_states")?.unwrap_or(true);
    let resources = params.flag("resources")?.unwrap_or(false);
    let stubs = |snap: &Tables| {
        snap.allocs_with_prefix(&opts.namespace, &opts.prefix)
            .iter()
            .filter(|a| acl.allow_ns_op(&a.namespace, NsCap::READ_JOB))
            .map(|a| AllocListStub::new(a, task_states, resources))
            .collect()
    };
    read::paged(&app, &opts, &[Table::Allocs], stubs, |s| s.id.clone()).await
}

async fn read_alloc(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    read::object(&app, &opts, &[Table::Allocs], "alloc not found", |snap| {
        snap.alloc(&id)
            .map(|a| (a.modify_index, a.as_ref().clone()))
    })
    .await
}

/// `POST|PUT /v1/allocation/:id/stop[?no_shutdown_delay=]`: stop and reschedule.
async fn stop_alloc(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: WriteOptions,
    params: QueryParams,
) -> Result<Response, HttpError> {
    let no_shutdown_delay = params.flag("no_shutdown_delay")?.unwrap_or(false);
    let resp = app.server.stop_alloc(&id, no_shutdown_delay).await?;
    let index = resp.index;
    Ok(JsonReply::write(&opts, index, resp).into_response())
}
