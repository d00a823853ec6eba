//! The server side of the server ↔ client interface over HTTP/JSON, on the RPC port
//! (`docs/server-client-protocol.md`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::http::{HttpError, JsonReply, QueryOptions, decode_json};
use crate::rpc::{
    ClientAllocsRequest, GetAllocsRequest, NodeStatusRequest, RpcError, ServerApi,
    UpdateAllocsRequest,
};
use crate::server::Server;
use crate::structs::Node;

impl From<RpcError> for HttpError {
    fn from(e: RpcError) -> Self {
        match e {
            RpcError::NodeNotFound => HttpError::not_found("node not found"),
            RpcError::SecretMismatch | RpcError::PermissionDenied => {
                HttpError::Forbidden(e.to_string())
            }
            RpcError::BadRequest(m) => HttpError::bad_request(m),
            RpcError::Unavailable(m) => HttpError::Status(StatusCode::SERVICE_UNAVAILABLE, m),
        }
    }
}

/// The internal routes clients call.
pub fn rpc_router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/v1/internal/node/register", post(register))
        .route("/v1/internal/node/status", post(status))
        .route("/v1/internal/node/allocs", post(client_allocs))
        .route("/v1/internal/allocs", post(get_allocs))
        .route("/v1/internal/allocs/update", post(update_allocs))
        .route("/v1/internal/acl/resolve", post(resolve_token))
        .route("/v1/internal/var/read", post(read_workload_var))
        .route("/v1/internal/var/list", post(list_workload_vars))
        .route("/v1/internal/services/sync", post(sync_services))
        .with_state(server)
}

async fn register(State(s): State<Arc<Server>>, body: Bytes) -> Result<Response, HttpError> {
    let node: Node = decode_json(&body)?;
    let resp = ServerApi::register_node(&s, node).await?;
    Ok(JsonReply::new(resp).into_response())
}

async fn status(State(s): State<Arc<Server>>, body: Bytes) -> Result<Response, HttpError> {
    let req: NodeStatusRequest = decode_json(&body)?;
    Ok(JsonReply::new(s.update_node_status(req).await?).into_response())
}

async fn client_allocs(
    State(s): State<Arc<Server>>,
    opts: QueryOptions,
    body: Bytes,
) -> Result<Response, HttpError> {
    let mut req: ClientAllocsRequest = decode_json(&body)?;
    if opts.index > 0 {
        req.min_query_index = opts.index;
    }
    let wait = if req.max_query_time > 0 {
        Duration::from_nanos(req.max_query_time as u64).min(crate::http::query::MAX_WAIT)
    } else {
        opts.wait
    };
    let wait = crate::http::blocking::with_jitter(wait);
    let resp = s.client_allocs(req, wait).await?;
    let index = resp.index;
    Ok(JsonReply::new(resp).index(index).into_response())
}

async fn get_allocs(State(s): State<Arc<Server>>, body: Bytes) -> Result<Response, HttpError> {
    let req: GetAllocsRequest = decode_json(&body)?;
    let resp = ServerApi::get_allocs(&s, req).await?;
    let index = resp.index;
    Ok(JsonReply::new(resp).index(index).into_response())
}

async fn update_allocs(State(s): State<Arc<Server>>, body: Bytes) -> Result<Response, HttpError> {
    let req: UpdateAllocsRequest = decode_json(&body)?;
    let resp = s.update_allocs_from_client(req).await?;
    let index = resp.index;
    Ok(JsonReply::new(resp).index(index).into_response())
}

async fn sync_services(State(s): State<Arc<Server>>, body: Bytes) -> Result<Response, HttpError> {
    let req: crate::rpc::ServiceSyncRequest = decode_json(&body)?;
    let resp = s.sync_services(req).await?;
    let index = resp.index;
    Ok(JsonReply::new(resp).index(index).into_response())
}

async fn resolve_token(State(s): State<Arc<Server>>, body: Bytes) -> Result<Response, HttpError> {
    let req: crate::rpc::ResolveTokenRequest = decode_json(&body)?;
    Ok(JsonReply::new(s.resolve_token_grant(req.secret_id.as_deref())).into_response())
}

async fn read_workload_var(
    State(s): State<Arc<Server>>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let req: crate::rpc::WorkloadVarRequest = decode_json(&body)?;
    let resp = s.read_workload_var(req).await?;
    let index = resp.index;
    Ok(JsonReply::new(resp).index(index).into_response())
}

async fn list_workload_vars(
    State(s): State<Arc<Server>>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let req: crate::rpc::WorkloadVarRequest = decode_json(&body)?;
    let resp = s.list_workload_vars(req).await?;
    let index = resp.index;
    Ok(JsonReply::new(resp).index(index).into_response())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::Request;
    use tower::ServiceExt;

    use super::*;

    async fn post_update(body: serde_json::Value) -> (StatusCode, String) {
        let server = Server::open(crate::server::ServerConfig::default()).unwrap();
        let req = Request::builder()
            .method("POST")
            .uri("/v1/internal/allocs/update")
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = rpc_router(server).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn an_unknown_client_status_is_a_400_naming_the_field() {
        let (status, body) = post_update(serde_json::json!({
            "NodeID": "n1", "SecretID": "s",
            "Alloc": [{"ID": "a1", "ClientStatus": "exploded"}],
        }))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("Alloc[0].ClientStatus"), "{body}");
        assert!(body.contains("\"exploded\""), "{body}");
    }

    #[tokio::test]
    async fn a_known_client_status_reaches_the_server() {
        // Decoding passes; the unknown node is what the server then refuses.
        let (status, body) = post_update(serde_json::json!({
            "NodeID": "n1", "SecretID": "s",
            "Alloc": [{"ID": "a1", "ClientStatus": "running", "DesiredStatus": null}],
        }))
        .await;
        assert_ne!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(!body.contains("ClientStatus"), "{body}");
    }
}
