//! `/v1/namespaces` and `/v1/namespace[/:name]`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::{App, read};
use crate::http::respond::HEADER_INDEX;
use crate::http::{Caller, HttpError, QueryOptions, decode_json};
use crate::server::state::{Table, Tables};
use crate::structs::Namespace;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/namespaces", get(list))
        .route("/v1/namespace", post(create).put(create))
        .route("/v1/namespace/", get(missing_name).post(missing_name))
        .route(
            "/v1/namespace/{name}",
            get(read_one).post(update).put(update).delete(delete),
        )
}

/// A write's answer as Nomad gives it for namespaces: no body, only the index.
fn written(index: u64) -> Response {
    let mut resp = StatusCode::OK.into_response();
    resp.headers_mut()
        .insert(HEADER_INDEX, HeaderValue::from(index.max(1)));
    resp
}

async fn missing_name() -> HttpError {
    HttpError::bad_request("Missing Namespace Name")
}

async fn list(
    State(app): State<App>,
    Caller(acl): Caller,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    read::reply(&app, &opts, &[Table::Namespaces], |snap: &Tables| {
        // As in Nomad, the list shows only the namespaces the caller holds some capability in.
        Ok(snap
            .namespaces_with_prefix(&opts.prefix)
            .iter()
            .filter(|n| acl.allow_namespace(&n.name))
            .map(|n| n.as_ref().clone())
            .collect::<Vec<_>>())
    })
    .await
}

async fn read_one(
    State(app): State<App>,
    Path(name): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    read::object(
        &app,
        &opts,
        &[Table::Namespaces],
        "Namespace not found",
        |snap| {
            snap.namespace(&name)
                .map(|n| (n.modify_index, n.as_ref().clone()))
        },
    )
    .await
}

async fn create(State(app): State<App>, body: Bytes) -> Result<Response, HttpError> {
    let ns: Namespace = decode_json(&body)?;
    Ok(written(app.server.upsert_namespace(ns, None).await?))
}

async fn update(
    State(app): State<App>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let ns: Namespace = decode_json(&body)?;
    Ok(written(app.server.upsert_namespace(ns, Some(&name)).await?))
}

async fn delete(State(app): State<App>, Path(name): Path<String>) -> Result<Response, HttpError> {
    Ok(written(app.server.delete_namespace(&name).await?))
}
