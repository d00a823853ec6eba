//! Router-wide behaviour: gzip on request, the body size limit (413), plain-text 404 for
//! unknown paths and a plain-text 405 for known paths hit with the wrong verb.

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Extensions, HeaderMap, Method, StatusCode, Version, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};

use super::HttpError;
use super::error::PAGE_NOT_FOUND;

/// Default request body limit: 10 MiB. Real job specs, even with inline templates, are
/// tens to hundreds of KiB; ten times the largest plausible one still bounds what a
/// misbehaving client can make the agent buffer.
pub const DEFAULT_BODY_LIMIT: usize = 10 * 1024 * 1024;

/// Knobs for `apply_layers_with`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerConfig {
    /// Largest accepted request body in bytes; larger ones get 413.
    pub body_limit: usize,
}

impl Default for LayerConfig {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}

/// Response extension that keeps a response out of gzip. Streaming endpoints (log follow,
/// event streams) must set it: the compressor would hold frames back until its buffer fills.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCompression;

/// Marks a response as not to be compressed (see `NoCompression`).
pub fn no_compression(mut resp: Response) -> Response {
    resp.extensions_mut().insert(NoCompression);
    resp
}

/// Adds the shared conventions to a router with the default `LayerConfig`.
pub fn apply_layers<S>(router: Router<S>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    apply_layers_with(router, LayerConfig::default())
}

/// Adds gzip, the body limit, the plain-text 404 fallback and the 405 body mapping.
pub fn apply_layers_with<S>(router: Router<S>, config: LayerConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    // Compression is outermost so error bodies are gzipped like any other response.
    let compression = CompressionLayer::new()
        .gzip(true)
        .compress_when(DefaultPredicate::new().and(compressible));
    router
        .fallback(not_found)
        .layer(middleware::from_fn(finish_writes))
        .layer(middleware::from_fn(invalid_method_body))
        .layer(middleware::from_fn_with_state(
            config.body_limit,
            reject_declared_oversize,
        ))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(compression)
}

/// Compression predicate: not for protocol switches (WebSocket) or opted-out responses.
fn compressible(status: StatusCode, _: Version, _: &HeaderMap, ext: &Extensions) -> bool {
    status != StatusCode::SWITCHING_PROTOCOLS && ext.get::<NoCompression>().is_none()
}

/// Runs a request that may write (every method but GET and HEAD) in a task of its own, so it
/// runs to the end even if the caller goes away: hyper drops a handler's future when its
/// connection closes, and a write already made durable would then never reach the steps
/// after it (handing the evaluations it created to the broker).
async fn finish_writes(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    match tokio::spawn(next.run(req)).await {
        Ok(resp) => resp,
        Err(e) => HttpError::internal(format!("request handler failed: {e}")).into_response(),
    }
}

/// Fallback for paths no route matches.
async fn not_found() -> HttpError {
    HttpError::not_found(PAGE_NOT_FOUND)
}

/// axum answers a wrong verb with an empty 405; Nomad says "Invalid method" in plain text.
async fn invalid_method_body(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if resp.status() != StatusCode::METHOD_NOT_ALLOWED || resp.body().size_hint().exact() != Some(0)
    {
        return resp;
    }
    let (parts, _) = resp.into_parts();
    let mut replaced = HttpError::invalid_method().into_response();
    // Keep axum's `Allow` header so clients learn the valid verbs.
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        replaced.headers_mut().insert(header::ALLOW, allow.clone());
    }
    replaced
}

/// Refuses a body whose declared Content-Length is over the limit before reading any of it.
/// Bodies without a length are cut off by `DefaultBodyLimit` as they are read.
async fn reject_declared_oversize(
    State(limit): State<usize>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > limit as u64 => HttpError::payload_too_large().into_response(),
        _ => next.run(req).await,
    }
}

/// Turns a body into bytes for tests and internal callers, honouring a size cap.
pub async fn body_bytes(body: Body, limit: usize) -> Result<axum::body::Bytes, HttpError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| HttpError::payload_too_large())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{JsonBody, JsonReply, QueryOptions};
    use axum::routing::{get, put};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    fn app(limit: usize) -> Router {
        let big = || async {
            let items: Vec<Value> = (0..200)
                .map(|i| json!({"ID": format!("job-{i}"), "Status": "running"}))
                .collect();
            JsonReply::new(items)
        };
        let stream =
            || async { no_compression(JsonReply::new(vec!["frame"; 100]).into_response()) };
        let echo = |opts: QueryOptions, JsonBody(v): JsonBody<Value>| async move {
            JsonReply::query(&opts, 7, v)
        };
        let router = Router::new()
            .route("/v1/big", get(big))
            .route("/v1/stream", get(stream))
            .route("/v1/echo", put(echo).post(echo));
        apply_layers_with(router, LayerConfig { body_limit: limit })
    }

    async fn send(router: Router, req: Request) -> (StatusCode, HeaderMap, Vec<u8>) {
        let resp = router.oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = body_bytes(resp.into_body(), 1 << 24).await.unwrap();
        (status, headers, body.to_vec())
    }

    fn req(method: &str, uri: &str) -> axum::http::request::Builder {
        Request::builder().method(method).uri(uri)
    }

    #[tokio::test]
    async fn gzip_only_when_asked() {
        let r = req("GET", "/v1/big")
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = send(app(1024), r).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
        assert_eq!(&body[..2], &[0x1f, 0x8b], "gzip magic");

        let r = req("GET", "/v1/big").body(Body::empty()).unwrap();
        let (_, headers, body) = send(app(1024), r).await;
        assert!(headers.get(header::CONTENT_ENCODING).is_none());
        assert_eq!(body[0], b'[');
    }

    #[tokio::test]
    async fn opted_out_responses_are_not_compressed() {
        let r = req("GET", "/v1/stream")
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(Body::empty())
            .unwrap();
        let (_, headers, body) = send(app(1024), r).await;
        assert!(headers.get(header::CONTENT_ENCODING).is_none());
        assert_eq!(body[0], b'[');
    }

    #[tokio::test]
    async fn wrong_method_is_405_with_body() {
        let r = req("DELETE", "/v1/echo").body(Body::empty()).unwrap();
        let (status, headers, body) = send(app(1024), r).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body, b"Invalid method");
        assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
        assert!(headers.get(header::ALLOW).is_some());
    }

    #[tokio::test]
    async fn unknown_path_is_404_with_body() {
        let r = req("GET", "/v1/nope").body(Body::empty()).unwrap();
        let (status, headers, body) = send(app(1024), r).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, PAGE_NOT_FOUND.as_bytes());
        assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    }

    #[tokio::test]
    async fn oversized_body_is_413_with_or_without_length() {
        let payload = format!("{{\"x\":\"{}\"}}", "a".repeat(4096));
        let r = req("PUT", "/v1/echo")
            .header(header::CONTENT_LENGTH, payload.len())
            .body(Body::from(payload.clone()))
            .unwrap();
        let (status, _, body) = send(app(1024), r).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body, b"Request body too large");

        // Chunked: no Content-Length, so the limit trips while reading.
        let chunks = futures::stream::iter(
            payload
                .into_bytes()
                .chunks(256)
                .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
                .collect::<Vec<_>>(),
        );
        let r = req("PUT", "/v1/echo")
            .body(Body::from_stream(chunks))
            .unwrap();
        let (status, _, body) = send(app(1024), r).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body, b"Request body too large");
    }

    #[tokio::test]
    async fn malformed_json_is_400_and_good_json_round_trips() {
        let r = req("PUT", "/v1/echo")
            .body(Body::from("{\"Job\": "))
            .unwrap();
        let (status, headers, body) = send(app(1024), r).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
        assert!(String::from_utf8_lossy(&body).starts_with("Failed to decode request body"));

        let r = req("PUT", "/v1/echo").body(Body::empty()).unwrap();
        let (status, _, body) = send(app(1024), r).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, b"Request body is empty");

        // No Content-Type at all, as `curl --data-binary` may send: still accepted.
        let r = req("POST", "/v1/echo?pretty")
            .body(Body::from(r#"{"A":1}"#))
            .unwrap();
        let (status, headers, body) = send(app(1024), r).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-nomad-index"], "7");
        assert_eq!(body, b"{\n    \"A\": 1\n}\n");
    }

    #[tokio::test]
    async fn websocket_upgrade_survives_the_layers() {
        use axum::extract::ws::{Message, WebSocketUpgrade};
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;

        let echo = |ws: WebSocketUpgrade| async move {
            ws.on_upgrade(|mut socket| async move {
                while let Some(Ok(Message::Text(t))) = socket.recv().await {
                    if socket.send(Message::Text(t)).await.is_err() {
                        break;
                    }
                }
            })
        };
        let app = apply_layers(Router::new().route("/v1/ws", get(echo)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let mut request = format!("ws://{addr}/v1/ws").into_client_request().unwrap();
        request
            .headers_mut()
            .insert(header::ACCEPT_ENCODING, "gzip".parse().unwrap());
        let (mut ws, resp) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert!(resp.headers().get(header::CONTENT_ENCODING).is_none());
        ws.send(tokio_tungstenite::tungstenite::Message::text("ping"))
            .await
            .unwrap();
        let reply = ws.next().await.unwrap().unwrap();
        assert_eq!(reply.into_text().unwrap().as_str(), "ping");
    }

    /// A write whose caller hangs up mid-request still runs to the end (its evaluations must
    /// reach the broker); a read is simply dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_finishes_after_its_caller_hangs_up() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::AsyncWriteExt;
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let slow = move || {
            let flag = flag.clone();
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                flag.store(true, Ordering::SeqCst);
                "written"
            }
        };
        let app = apply_layers(Router::new().route("/v1/slow", put(slow)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"PUT /v1/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        drop(conn);
        for _ in 0..100 {
            if done.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the write was cut off when its caller hung up");
    }

    #[tokio::test]
    async fn bad_query_is_400() {
        let r = req("PUT", "/v1/echo?wait=forever")
            .body(Body::from("{}"))
            .unwrap();
        let (status, _, body) = send(app(1024), r).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, b"Invalid wait time");
    }
}
