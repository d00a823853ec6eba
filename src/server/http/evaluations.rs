//! `/v1/evaluations` and `/v1/evaluation/:id[/allocations]`.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::App;
use crate::http::{HttpError, JsonReply, QueryOptions, QueryParams, blocking_query, paginate};
use crate::server::state::Table;
use crate::structs::AllocListStub;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/evaluations", get(list_evals))
        .route("/v1/evaluation/{id}", get(read_eval))
        .route("/v1/evaluation/{id}/allocations", get(eval_allocs))
}

async fn list_evals(
    State(app): State<App>,
    opts: QueryOptions,
    params: QueryParams,
) -> Result<Response, HttpError> {
    let job = params.non_empty("job").map(str::to_string);
    let status = params.non_empty("status").map(str::to_string);
    let state = &app.server.state;
    let (index, evals) = blocking_query(&[state.watch(Table::Evals)], &opts, || async {
        let snap = state.snapshot();
        let evals: Vec<_> = snap
            .evals_with_prefix(&opts.namespace, &opts.prefix)
            .iter()
            .filter(|e| job.as_ref().is_none_or(|j| &e.job_id == j))
            .filter(|e| status.as_ref().is_none_or(|s| &e.status == s))
            .map(|e| e.as_ref().clone())
            .collect();
        Ok::<_, HttpError>((snap.table_index(Table::Evals), evals))
    })
    .await?;
    let page = paginate(evals, &opts, |e| e.id.clone());
    Ok(JsonReply::query(&opts, index, page.items)
        .next_token(page.next_token)
        .into_response())
}

async fn read_eval(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let state = &app.server.state;
    let (index, eval) = blocking_query(&[state.watch(Table::Evals)], &opts, || async {
        let snap = state.snapshot();
        match snap.eval(&id) {
            Some(e) => Ok((e.modify_index, Some(e))),
            None => Ok::<_, HttpError>((snap.table_index(Table::Evals), None)),
        }
    })
    .await?;
    let eval = eval.ok_or_else(|| HttpError::not_found("eval not found"))?;
    Ok(JsonReply::query(&opts, index, eval.as_ref().clone()).into_response())
}

async fn eval_allocs(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let state = &app.server.state;
    let (index, stubs) = blocking_query(&[state.watch(Table::Allocs)], &opts, || async {
        let snap = state.snapshot();
        let stubs: Vec<AllocListStub> = match snap.eval(&id) {
            Some(e) => snap
                .allocs_by_eval(&e)
                .iter()
                .map(|a| AllocListStub::new(a, true, false))
                .collect(),
            None => Vec::new(),
        };
        Ok::<_, HttpError>((snap.table_index(Table::Allocs), stubs))
    })
    .await?;
    Ok(JsonReply::query(&opts, index, stubs).into_response())
}
