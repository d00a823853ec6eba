//! `GET /v1/job/:id/submission?version=N`: the job file a job version was registered from.

use axum::response::Response;

use super::{App, read};
use crate::http::{HttpError, QueryOptions, QueryParams};
use crate::server::state::Table;

pub(super) async fn submission(
    app: App,
    opts: QueryOptions,
    params: QueryParams,
    id: &str,
) -> Result<Response, HttpError> {
    let version: u64 = params.int("version").ok().flatten().ok_or_else(|| {
        HttpError::bad_request("Unable to parse job submission version parameter")
    })?;
    read::object(
        &app,
        &opts,
        &[Table::Jobs],
        "job source not found",
        |snap| {
            let sub = snap.job_submission(&opts.namespace, id, version)?;
            Some((sub.job_modify_index, sub))
        },
    )
    .await
}
