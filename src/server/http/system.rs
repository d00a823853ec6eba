//! `PUT /v1/system/gc` (collect everything eligible now, thresholds ignored) and
//! `PUT /v1/system/reconcile/summaries`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::put;

use super::App;
use crate::http::HttpError;
use crate::server::gc::collect::Thresholds;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/system/gc", put(force_gc))
        .route("/v1/system/reconcile/summaries", put(reconcile_summaries))
}

async fn force_gc(State(app): State<App>) -> Result<Response, HttpError> {
    app.server
        .collect_garbage(&Thresholds::forced())
        .await
        .map_err(|e| HttpError::internal(e.to_string()))?;
    Ok(StatusCode::OK.into_response())
}

/// Job summaries are derived from the allocations whenever they are read, so they can never
/// drift from them; reconciling has nothing to repair.
async fn reconcile_summaries(State(_app): State<App>) -> Response {
    StatusCode::OK.into_response()
}
