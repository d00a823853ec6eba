//! `GET` and `POST|PUT /v1/job/:id/scale` (seed 000).

use axum::response::{IntoResponse, Response};

use super::{App, read};
use crate::http::{HttpError, JsonReply, QueryOptions, WriteOptions, decode_json};
use crate::server::ops::job_scale::scale_status;
use crate::server::state::Table;
use crate::structs::ScalingRequest;

/// The scale status, as a blocking query over the job, its allocations and scaling events.
pub async fn status(app: App, opts: QueryOptions, id: &str) -> Result<Response, HttpError> {
    let tables = [Table::Jobs, Table::Allocs, Table::ScalingEvents];
    let (index, status) = read::value(&app, &opts, &tables, |snap| {
        Ok(scale_status(snap, &opts.namespace, id))
    })
    .await?;
    let status = status.ok_or_else(|| HttpError::not_found("job not found"))?;
    Ok(JsonReply::query(&opts, index, status).into_response())
}

/// Scales a group (or only records an event when `Count` is absent).
pub async fn scale(
    app: &App,
    opts: &WriteOptions,
    id: &str,
    body: &[u8],
) -> Result<Response, HttpError> {
    let req: ScalingRequest = decode_json(body)?;
    if req.target.get("Job").is_some_and(|j| j != id) {
        return Err(HttpError::bad_request(
            "job ID in payload did not match URL",
        ));
    }
    let resp = app.server.scale_job(&opts.namespace, id, &req).await?;
    Ok(JsonReply::write(opts, resp.index, resp).into_response())
}
