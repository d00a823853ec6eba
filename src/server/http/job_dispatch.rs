//! `POST|PUT /v1/job/:id/dispatch` and `/periodic/force` (seed 000): the ways a parent job
//! spawns a child on demand.

use axum::response::{IntoResponse, Response};

use super::App;
use crate::http::{HttpError, JsonReply, QueryOptions, QueryParams, decode_json};
use crate::server::job_dispatch_endpoint::JobDispatchRequest;

/// Dispatches a parameterized job; `idempotency_token` comes from the query.
pub fn dispatch(
    app: &App,
    opts: &QueryOptions,
    params: &QueryParams,
    id: &str,
    body: &[u8],
) -> Result<Response, HttpError> {
    let mut req: JobDispatchRequest = if body.iter().all(u8::is_ascii_whitespace) {
        JobDispatchRequest::default()
    } else {
        decode_json(body)?
    };
    req.idempotency_token = params.get("idempotency_token").unwrap_or("").to_string();
    let resp = app.server.dispatch_job(&opts.namespace, id, &req)?;
    let index = resp.index;
    Ok(JsonReply::new(resp)
        .index(index)
        .pretty(opts.pretty)
        .into_response())
}

/// Launches a periodic job's child now (`EvalID`, `EvalCreateIndex`, `Index`).
pub fn force_periodic(app: &App, opts: &QueryOptions, id: &str) -> Result<Response, HttpError> {
    let resp = app.server.force_periodic(&opts.namespace, id)?;
    let index = resp.index;
    let body = serde_json::json!({
        "EvalID": resp.eval_id,
        "EvalCreateIndex": resp.eval_create_index,
        "Index": index,
    });
    Ok(JsonReply::new(body)
        .index(index)
        .pretty(opts.pretty)
        .into_response())
}
