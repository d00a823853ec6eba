//! Forwards an `alloc exec` WebSocket to the agent that runs the allocation: the upstream
//! socket is opened first (so its refusal comes back as a plain HTTP answer), then the caller's
//! upgrade is accepted and frames are pumped both ways until either side closes.

use axum::extract::FromRequestParts;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as UpCloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message as Up};

use super::forward::{FORWARDED_HEADER, Target};
use crate::http::HttpError;
use crate::tls::ClientConfig;

/// Proxies the WebSocket request `req` to `target` (`scheme` `ws` or `wss`, the latter with
/// `tls`), passing `token` on.
pub async fn forward_websocket(
    target: &Target,
    req: axum::extract::Request,
    token: Option<String>,
    scheme: &str,
    tls: Option<&ClientConfig>,
) -> Response {
    let (mut parts, _body) = req.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    let mut request = match format!("{scheme}://{}{path}", target.http_addr).into_client_request() {
        Ok(r) => r,
        Err(e) => return HttpError::internal(format!("forwarding exec: {e}")).into_response(),
    };
    request
        .headers_mut()
        .insert(FORWARDED_HEADER, HeaderValue::from_static("1"));
    if let Some(t) = token.and_then(|t| HeaderValue::from_str(&t).ok()) {
        request.headers_mut().insert("X-Nomad-Token", t);
    }
    match crate::tls::ws::connect(request, tls).await {
        Ok((upstream, _)) => upgrade.on_upgrade(move |socket| pump(socket, upstream)),
        Err(tungstenite::Error::Http(resp)) => {
            let status =
                StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            HttpError::Status(status, body).into_response()
        }
        Err(e) => HttpError::Status(
            StatusCode::BAD_GATEWAY,
            format!("forwarding exec to {}: {e}", target.http_addr),
        )
        .into_response(),
    }
}

type Upstream = crate::tls::ws::ClientSocket;

/// Copies frames both ways; when one side ends, the other is closed too.
async fn pump(socket: WebSocket, upstream: Upstream) {
    let (mut down_tx, mut down_rx) = socket.split();
    let (mut up_tx, mut up_rx) = upstream.split();
    let to_upstream = async {
        while let Some(Ok(msg)) = down_rx.next().await {
            let closing = matches!(msg, ws::Message::Close(_));
            if up_tx.send(to_up(msg)).await.is_err() || closing {
                break;
            }
        }
        let _ = up_tx.close().await;
    };
    let to_caller = async {
        while let Some(Ok(msg)) = up_rx.next().await {
            let Some(msg) = to_down(msg) else { continue };
            let closing = matches!(msg, ws::Message::Close(_));
            if down_tx.send(msg).await.is_err() || closing {
                break;
            }
        }
        let _ = down_tx.close().await;
    };
    // Either direction ending ends the session; the other is dropped with its socket.
    tokio::select! {
        _ = to_upstream => {}
        _ = to_caller => {}
    }
}

fn to_up(msg: ws::Message) -> Up {
    match msg {
        ws::Message::Text(t) => Up::Text(t.as_str().into()),
        ws::Message::Binary(b) => Up::Binary(b),
        ws::Message::Ping(b) => Up::Ping(b),
        ws::Message::Pong(b) => Up::Pong(b),
        ws::Message::Close(c) => Up::Close(c.map(|c| UpCloseFrame {
            code: CloseCode::from(c.code),
            reason: c.reason.as_str().into(),
        })),
    }
}

fn to_down(msg: Up) -> Option<ws::Message> {
    Some(match msg {
        Up::Text(t) => ws::Message::Text(t.as_str().into()),
        Up::Binary(b) => ws::Message::Binary(b),
        Up::Ping(b) => ws::Message::Ping(b),
        Up::Pong(b) => ws::Message::Pong(b),
        Up::Close(c) => ws::Message::Close(c.map(|c| ws::CloseFrame {
            code: u16::from(c.code),
            reason: c.reason.as_str().into(),
        })),
        // Raw frames only appear when writing; nothing to relay.
        Up::Frame(_) => return None,
    })
}
