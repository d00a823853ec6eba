//! `GET` and `POST|PUT /v1/job/:id/scale` (seed 000).

use axum::response::{IntoResponse, Response};

use super::App;
use crate::http::{HttpError, JsonReply, QueryOptions, WriteOptions, blocking_query, decode_json};
use crate::server::job_scale_endpoint::scale_status;
use crate::server::state::Table;
use crate::structs::ScalingRequest;

/// The scale status, as a blocking query over the job, its allocations and scaling events.
pub async fn status(app: App, opts: QueryOptions, id: &str) -> Result<Response, HttpError> {
    let state = &app.server.state;
    let watches = [
        state.watch(Table::Jobs),
        state.watch(Table::Allocs),
        state.watch(Table::ScalingEvents),
    ];
    let (index, status) = blocking_query(&watches, &opts, || async {
        let snap = state.snapshot();
        let index = snap.max_index(&[Table::Jobs, Table::Allocs, Table::ScalingEvents]);
        Ok::<_, HttpError>((index, scale_status(&snap, &opts.namespace, id)))
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
