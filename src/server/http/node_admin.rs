//! Node writes: `POST|PUT /v1/node/:id/eligibility`, `/drain`, `/purge` and `/evaluate`.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::App;
use crate::http::{HttpError, JsonBody, JsonReply, WriteOptions};
use crate::server::ops::node_admin::{NodeDrainRequest, NodeEligibilityRequest};

pub fn routes() -> Router<App> {
    Router::new()
        .route(
            "/v1/node/{id}/eligibility",
            post(eligibility).put(eligibility),
        )
        .route("/v1/node/{id}/drain", post(drain).put(drain))
        .route("/v1/node/{id}/purge", post(purge).put(purge))
        .route("/v1/node/{id}/evaluate", post(evaluate).put(evaluate))
}

async fn eligibility(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: WriteOptions,
    JsonBody(req): JsonBody<NodeEligibilityRequest>,
) -> Result<Response, HttpError> {
    let resp = app.server.update_node_eligibility(&id, req).await?;
    Ok(JsonReply::write(&opts, resp.index, resp).into_response())
}

async fn drain(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: WriteOptions,
    JsonBody(req): JsonBody<NodeDrainRequest>,
) -> Result<Response, HttpError> {
    let resp = app.server.update_node_drain(&id, req).await?;
    Ok(JsonReply::write(&opts, resp.index, resp).into_response())
}

async fn purge(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: WriteOptions,
) -> Result<Response, HttpError> {
    let resp = app.server.purge_node(&id).await?;
    Ok(JsonReply::write(&opts, resp.index, resp).into_response())
}

async fn evaluate(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: WriteOptions,
) -> Result<Response, HttpError> {
    let resp = app.server.evaluate_node(&id).await?;
    Ok(JsonReply::write(&opts, resp.index, resp).into_response())
}
