//! `/v1/allocations` and `/v1/allocation/:id` (seed 002).

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::App;
use crate::http::{
    HttpError, JsonReply, QueryOptions, QueryParams, WriteOptions, blocking_query, paginate,
};
use crate::server::state::Table;
use crate::structs::AllocListStub;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/allocations", get(list_allocs))
        .route("/v1/allocation/{id}", get(read_alloc))
        .route("/v1/allocation/{id}/stop", post(stop_alloc).put(stop_alloc))
}

async fn list_allocs(
    State(app): State<App>,
    opts: QueryOptions,
    params: QueryParams,
) -> Result<Response, HttpError> {
    let task_states = params.flag("task_states")?.unwrap_or(true);
    let resources = params.flag("resources")?.unwrap_or(false);
    let state = &app.server.state;
    let (index, stubs) = blocking_query(&[state.watch(Table::Allocs)], &opts, || async {
        let snap = state.snapshot();
        let stubs: Vec<AllocListStub> = snap
            .allocs_with_prefix(&opts.namespace, &opts.prefix)
            .iter()
            .map(|a| AllocListStub::new(a, task_states, resources))
            .collect();
        Ok::<_, HttpError>((snap.table_index(Table::Allocs), stubs))
    })
    .await?;
    let page = paginate(stubs, &opts, |s| s.id.clone());
    Ok(JsonReply::query(&opts, index, page.items)
        .next_token(page.next_token)
        .into_response())
}

async fn read_alloc(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let state = &app.server.state;
    let (index, alloc) = blocking_query(&[state.watch(Table::Allocs)], &opts, || async {
        let snap = state.snapshot();
        match snap.alloc(&id) {
            Some(a) => Ok((a.modify_index, Some(a))),
            None => Ok::<_, HttpError>((snap.table_index(Table::Allocs), None)),
        }
    })
    .await?;
    let alloc = alloc.ok_or_else(|| HttpError::not_found("alloc not found"))?;
    Ok(JsonReply::query(&opts, index, alloc.as_ref().clone()).into_response())
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
