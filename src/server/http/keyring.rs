//! `/v1/operator/keyring/…`: the root keys' metadata, rotation and deletion.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use serde::Serialize;

use super::{App, read};
use crate::http::{HttpError, JsonReply, QueryOptions, QueryParams, WriteOptions};
use crate::server::state::{Table, Tables};
use crate::structs::keyring::{ALGORITHM_AES256_GCM, RootKeyMeta};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/operator/keyring/keys", get(list))
        .route("/v1/operator/keyring/rotate", put(rotate).post(rotate))
        .route("/v1/operator/keyring/key/{id}", delete(remove))
}

async fn list(State(app): State<App>, opts: QueryOptions) -> Result<Response, HttpError> {
    read::reply(&app, &opts, &[Table::RootKeys], |snap: &Tables| {
        Ok(snap
            .vars
            .root_keys
            .values()
            .map(|k| k.as_ref().clone())
            .collect::<Vec<RootKeyMeta>>())
    })
    .await
}

/// Nomad's `KeyringRotateRootKeyResponse`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RotateReply {
    key: RootKeyMeta,
    index: u64,
}

async fn rotate(
    State(app): State<App>,
    params: QueryParams,
    opts: WriteOptions,
) -> Result<Response, HttpError> {
    // As in Nomad, `full` asks for a full rotation by being there at all.
    let full = params.get("full").is_some();
    if let Some(algo) = params.non_empty("algo")
        && algo != ALGORITHM_AES256_GCM
    {
        return Err(HttpError::bad_request(format!(
            "invalid algo {algo:?}: only {ALGORITHM_AES256_GCM:?} is supported"
        )));
    }
    if params.non_empty("publish_time").is_some() {
        return Err(HttpError::bad_request(
            "publish_time: prepublishing root keys is not supported",
        ));
    }
    let (index, key) = app.server.rotate_root_key(full).await?;
    Ok(JsonReply::write(&opts, index, RotateReply { key, index }).into_response())
}

/// Nomad's `KeyringDeleteRootKeyResponse`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteReply {
    index: u64,
}

async fn remove(
    State(app): State<App>,
    Path(id): Path<String>,
    params: QueryParams,
    opts: WriteOptions,
) -> Result<Response, HttpError> {
    let force = match params.get("force") {
        None => false,
        Some(v) => crate::http::query::parse_go_bool(v).ok_or_else(|| {
            HttpError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid force parameter".to_string(),
            )
        })?,
    };
    let index = app.server.delete_root_key(&id, force).await?;
    Ok(JsonReply::write(&opts, index, DeleteReply { index }).into_response())
}
