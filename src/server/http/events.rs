//! `GET /v1/event/stream`: the server's events as newline-delimited JSON (see
//! `crate::server::events`).

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::App;
use crate::http::{Caller, HttpError, QueryOptions, QueryParams, no_compression};
use crate::server::events::Filter;
use crate::server::events::stream::{HEARTBEAT_INTERVAL, subscribe};

pub fn routes() -> Router<App> {
    Router::new().route("/v1/event/stream", get(stream))
}

/// `?topic=Job:web&topic=Allocation` (none: every topic), `?namespace` (`*`: every
/// namespace that exists now), `?index` (resume at the buffered writes from that index).
/// The token must be allowed every topic in every namespace asked for, as in Nomad, for as
/// long as the stream lasts.
async fn stream(
    State(app): State<App>,
    Caller(acl): Caller,
    opts: QueryOptions,
    params: QueryParams,
) -> Result<Response, HttpError> {
    let topics = params
        .0
        .iter()
        .filter(|(k, _)| k == "topic")
        .map(|(_, v)| v.as_str());
    let filter = Filter::parse(topics).map_err(|e| HttpError::bad_request(e.to_string()))?;
    let namespaces: Vec<String> = app
        .server
        .state
        .snapshot()
        .namespaces
        .keys()
        .cloned()
        .collect();
    let filter = filter
        .authorize(&acl, &opts.namespace, namespaces)
        .map_err(|_| HttpError::permission_denied())?;
    let broker = app
        .server
        .state
        .events()
        .ok_or_else(|| HttpError::internal("the event broker is disabled on this server"))?;
    let (server, token) = (app.server.clone(), opts.auth.token.clone());
    let allowed = Box::new(move |f: &Filter| {
        server
            .resolve_acl(token.as_deref())
            .is_ok_and(|acl| f.check(&acl).is_ok())
    });
    let frames = subscribe(broker, filter, opts.index, HEARTBEAT_INTERVAL, allowed);
    let resp = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(frames),
    )
        .into_response();
    Ok(no_compression(resp))
}
