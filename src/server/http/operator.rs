//! `/v1/operator/scheduler/configuration`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use super::{App, read};
use crate::http::{HttpError, JsonReply, QueryOptions, QueryParams, WriteOptions};
use crate::server::state::Table;
use crate::structs::SchedulerConfiguration;

pub fn routes() -> Router<App> {
    Router::new().route(
        "/v1/operator/scheduler/configuration",
        get(read_config).put(write_config).post(write_config),
    )
}

/// Nomad's SchedulerConfigurationResponse: the configuration beside the query meta.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigResponse {
    scheduler_config: SchedulerConfiguration,
    index: u64,
    last_contact: u64,
    known_leader: bool,
    next_token: String,
}

async fn read_config(State(app): State<App>, opts: QueryOptions) -> Result<Response, HttpError> {
    let (index, config) = read::value(&app, &opts, &[Table::SchedulerConfig], |snap| {
        Ok(snap.scheduler_config())
    })
    .await?;
    let body = ConfigResponse {
        scheduler_config: config.as_ref().clone(),
        index,
        last_contact: 0,
        known_leader: true,
        next_token: String::new(),
    };
    Ok(JsonReply::query(&opts, index, body).into_response())
}

async fn write_config(
    State(app): State<App>,
    opts: WriteOptions,
    params: QueryParams,
    body: Bytes,
) -> Result<Response, HttpError> {
    // Decoded by hand for Nomad's wording of the error; indexes in the body are ignored.
    let config: SchedulerConfiguration = crate::http::body::from_slice_null_absent(&body)
        .map_err(|e| HttpError::bad_request(format!("Error parsing scheduler config: {e}")))?;
    let cas = match params.get("cas") {
        None => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|e| HttpError::bad_request(format!("Error parsing cas value: {e}")))?,
        ),
    };
    let (updated, index) = app.server.set_scheduler_config(config, cas).await?;
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Written {
        updated: bool,
        index: u64,
    }
    Ok(JsonReply::write(&opts, index, Written { updated, index }).into_response())
}
