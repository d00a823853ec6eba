//! The Raft transport's server side (docs/raft.md §6): the routes a peer's
//! [`super::network::PeerClient`] calls, for the RPC listener to mount. Each hands the request
//! to the local Raft node and answers the JSON of its `Result`, so the caller gets openraft's
//! own error (a higher vote, a missing entry) rather than an HTTP status.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use openraft::{Raft, RaftTypeConfig};
use serde::de::DeserializeOwned;

use super::network::{APPEND_PATH, SNAPSHOT_PATH, VOTE_PATH, unframe_chunk};
use crate::http::HttpError;

/// Largest append body: a 10 000-allocation plan is about 15 MB packed and several times
/// that as JSON, and a batch holds up to `max_payload_entries` entries.
const APPEND_BODY_LIMIT: usize = 512 << 20;
/// Largest snapshot chunk body: openraft's chunk (`snapshot_max_chunk_size`, 4 MiB in
/// docs/raft.md §1) plus its header.
const SNAPSHOT_BODY_LIMIT: usize = 16 << 20;
/// Bodies above this are decoded on a blocking thread, so a large plan does not hold a
/// runtime thread for the hundreds of milliseconds its JSON takes.
const DECODE_INLINE_MAX: usize = 1 << 20;

/// The Raft routes, answered by `raft`.
pub fn raft_router<C>(raft: Raft<C>) -> Router
where
    C: RaftTypeConfig,
    C::SnapshotData: tokio::io::AsyncRead + tokio::io::AsyncWrite + tokio::io::AsyncSeek + Unpin,
{
    Router::new()
        .route(
            APPEND_PATH,
            post(append::<C>).layer(DefaultBodyLimit::max(APPEND_BODY_LIMIT)),
        )
        .route(VOTE_PATH, post(vote::<C>))
        .route(
            SNAPSHOT_PATH,
            post(snapshot::<C>).layer(DefaultBodyLimit::max(SNAPSHOT_BODY_LIMIT)),
        )
        .with_state(raft)
}

async fn decode<T: DeserializeOwned + Send + 'static>(
    what: &'static str,
    body: Bytes,
) -> Result<T, HttpError> {
    let inline = body.len() <= DECODE_INLINE_MAX;
    let parse = move || {
        serde_json::from_slice::<T>(&body)
            .map_err(|e| HttpError::bad_request(format!("{what} request body: {e}")))
    };
    if inline {
        return parse();
    }
    tokio::task::spawn_blocking(parse)
        .await
        .map_err(|e| HttpError::Internal(format!("decoding the {what} request: {e}")))?
}

fn answer<T: serde::Serialize>(result: T) -> Response {
    axum::Json(result).into_response()
}

async fn append<C: RaftTypeConfig>(
    State(raft): State<Raft<C>>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let rpc = decode("append", body).await?;
    Ok(answer(raft.append_entries(rpc).await))
}

async fn vote<C: RaftTypeConfig>(
    State(raft): State<Raft<C>>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let rpc = decode("vote", body).await?;
    Ok(answer(raft.vote(rpc).await))
}

async fn snapshot<C>(State(raft): State<Raft<C>>, body: Bytes) -> Result<Response, HttpError>
where
    C: RaftTypeConfig,
    C::SnapshotData: tokio::io::AsyncRead + tokio::io::AsyncWrite + tokio::io::AsyncSeek + Unpin,
{
    let rpc = unframe_chunk::<C>(&body).map_err(HttpError::bad_request)?;
    Ok(answer(raft.install_snapshot(rpc).await))
}
