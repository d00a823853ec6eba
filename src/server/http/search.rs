//! `POST|PUT /v1/search` and `/v1/search/fuzzy` (the work is in `crate::server::ops::search`).

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::App;
use crate::http::{Caller, HttpError, JsonBody, JsonReply, QueryOptions, QueryParams};
use crate::server::ops::search::{FuzzySearchRequest, SearchRequest, fuzzy_search, prefix_search};
use crate::structs::DEFAULT_NAMESPACE;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/search", post(prefix).put(prefix))
        .route("/v1/search/fuzzy", post(fuzzy).put(fuzzy))
}

/// The namespace searched: `?namespace`, else the body's `Namespace`, else `default`.
fn namespace(params: &QueryParams, body: Option<&str>) -> String {
    params
        .non_empty("namespace")
        .or(body.filter(|n| !n.is_empty()))
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_string()
}

async fn prefix(
    State(app): State<App>,
    Caller(acl): Caller,
    opts: QueryOptions,
    params: QueryParams,
    JsonBody(req): JsonBody<SearchRequest>,
) -> Result<Response, HttpError> {
    let ns = namespace(&params, req.namespace.as_deref());
    let resp = prefix_search(&app.server.state.snapshot(), &acl, &ns, &req)?;
    Ok(JsonReply::query(&opts, resp.index, resp).into_response())
}

async fn fuzzy(
    State(app): State<App>,
    Caller(acl): Caller,
    opts: QueryOptions,
    params: QueryParams,
    JsonBody(req): JsonBody<FuzzySearchRequest>,
) -> Result<Response, HttpError> {
    let ns = namespace(&params, req.namespace.as_deref());
    let resp = fuzzy_search(&app.server.state.snapshot(), &acl, &ns, &req)?;
    Ok(JsonReply::query(&opts, resp.index, resp).into_response())
}
