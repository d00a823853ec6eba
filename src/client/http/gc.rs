//! `GET|PUT /v1/client/gc` (collect every terminal allocation now) and
//! `GET|PUT /v1/client/allocation/:id/gc` (collect one, freeing its directory).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::ClientApp;
use crate::http::HttpError;

/// Collects every terminal allocation on this node.
pub async fn gc_all(State(app): State<ClientApp>) -> Response {
    let n = app.client.gc_terminal_allocs().await;
    tracing::info!(collected = n, "client garbage collection forced");
    StatusCode::OK.into_response()
}

/// Collects one terminal allocation; a live one is refused.
pub async fn gc_alloc(
    State(app): State<ClientApp>,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let runner = app.runner(&id)?;
    if runner.finished_at().is_none() {
        return Err(HttpError::bad_request(format!(
            "allocation {id} is still running and cannot be garbage collected"
        )));
    }
    app.client.gc_alloc(&id).await;
    Ok(StatusCode::OK.into_response())
}
