//! `GET /v1/client/allocation/:id/checks` (and `/v1/allocation/:id/checks`, which the agent
//! routes to the client running the allocation): the latest result of each check of the
//! allocation's native services, by check ID.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use super::ClientApp;
use super::alloc_lookup::unknown_alloc;
use crate::http::{HttpError, JsonReply};

pub async fn alloc_checks(
    State(app): State<ClientApp>,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let results = app
        .client
        .check_results(&id)
        .ok_or_else(|| unknown_alloc(&id))?;
    Ok(JsonReply::new(results).into_response())
}
