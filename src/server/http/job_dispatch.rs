//! `POST|PUT /v1/job/:id/dispatch` and `/periodic/force` (seed 000): the ways a parent job
//! spawns a child on demand.

use std::collections::BTreeMap;

use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::App;
use crate::http::{HttpError, JsonReply, WriteOptions, decode_optional_json};

/// Body of `POST /v1/job/:id/dispatch` (the idempotency token comes in the query).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobDispatchRequest {
    /// Base64, as Go encodes a byte slice.
    #[serde(deserialize_with = "crate::structs::de::null_default")]
    pub payload: String,
    pub meta: Option<BTreeMap<String, String>>,
    #[serde(deserialize_with = "crate::structs::de::null_default")]
    pub id_prefix_template: String,
    /// The child's priority; 0 keeps the parent's.
    #[serde(deserialize_with = "crate::structs::de::null_default")]
    pub priority: i64,
    #[serde(skip)]
    pub idempotency_token: String,
}

/// Dispatches a parameterized job; `idempotency_token` comes from the query.
pub async fn dispatch(
    app: &App,
    opts: &WriteOptions,
    id: &str,
    body: &[u8],
) -> Result<Response, HttpError> {
    let mut req: JobDispatchRequest = decode_optional_json(body)?.unwrap_or_default();
    req.idempotency_token = opts.idempotency_token.clone().unwrap_or_default();
    let resp = app.server.dispatch_job(&opts.namespace, id, &req).await?;
    Ok(JsonReply::write(opts, resp.index, resp).into_response())
}

/// Launches a periodic job's child now (`EvalID`, `EvalCreateIndex`, `Index`).
pub async fn force_periodic(
    app: &App,
    opts: &WriteOptions,
    id: &str,
) -> Result<Response, HttpError> {
    let resp = app.server.force_periodic(&opts.namespace, id).await?;
    let body = serde_json::json!({
        "EvalID": resp.eval_id,
        "EvalCreateIndex": resp.eval_create_index,
        "Index": resp.index,
    });
    Ok(JsonReply::write(opts, resp.index, body).into_response())
}
