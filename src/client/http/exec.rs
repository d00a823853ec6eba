//! `GET /v1/client/allocation/<id>/exec`: Nomad's alloc exec websocket.
//!
//! Before the upgrade, like Nomad's `allocExec`: the `command` JSON and `tty` are parsed
//! (failures are plain HTTP 500s), and an alloc this client does not hold is a 404 (requests
//! for allocations another agent runs were already forwarded to it by the agent's routing
//! layer, `crate::agent::http`, and never reach this handler). After the upgrade: the optional handshake frame, then
//! Nomad's client-side checks in Nomad's order, each failure a close frame — 1011 for
//! 500-class errors, 1008 for the rest — with the error text as reason. A normal end is the
//! exit frame followed by a 1000 close (what Nomad's handler writes once the stream ends).

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::stream::SplitStream;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use yurt_drivers::DriverError;
use yurt_drivers::exec_session::{ExecInput, ExecOutput, ExecRequest, ExecSession};

use super::exec_frames::{Handshake, output_frame, parse_input};
use crate::client::Client;
use crate::client::alloc_runner::AllocRunnerHandle;
use crate::client::task_runner::{TaskRunnerError, TaskRunnerHandle};
use crate::http::query::parse_go_bool;
use crate::http::{AuthContext, DeferredCheck, HttpError, QueryParams, no_compression};
use crate::structs::TaskStateName;
use crate::structs::time::is_zero;

/// WebSocket close code for errors Nomad reports as HTTP 500.
const CLOSE_INTERNAL: u16 = 1011;
/// WebSocket close code for every other error code.
const CLOSE_POLICY: u16 = 1008;
/// Normal closure after the exit frame.
const CLOSE_NORMAL: u16 = 1000;
/// How long to wait for the client's close reply after our close frame.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(2);
/// A close reason must fit a control frame (125 bytes minus the code).
const MAX_REASON: usize = 123;

/// The exec route, bound to `client`; merged into the agent's router.
pub fn exec_routes(client: Client) -> Router {
    Router::new()
        .route("/v1/client/allocation/{alloc_id}/exec", get(exec_handler))
        .with_state(client)
}

/// An error with Nomad's HTTP-style code, delivered as a close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ExecError {
    code: u16,
    message: String,
}

impl ExecError {
    fn new(code: u16, message: impl Into<String>) -> Self {
        ExecError {
            code,
            message: message.into(),
        }
    }

    fn close_code(&self) -> u16 {
        if self.code == 500 {
            CLOSE_INTERNAL
        } else {
            CLOSE_POLICY
        }
    }
}

/// What the query asked for, parsed before the upgrade.
struct Params {
    task: String,
    command: Vec<String>,
    tty: bool,
    ws_handshake: Option<String>,
    header_token: Option<String>,
    /// The ACL check that waits for the handshake's token (no header token was sent).
    deferred: Option<DeferredCheck>,
}

async fn exec_handler(
    State(client): State<Client>,
    Path(alloc_id): Path<String>,
    params: QueryParams,
    auth: AuthContext,
    deferred: Option<Extension<DeferredCheck>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let mut params = match parse_params(&params, auth) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    params.deferred = deferred.map(|Extension(d)| d);
    let alloc = match client.alloc(&alloc_id) {
        Some(a) if !a.is_destroyed() => a,
        _ => {
            return HttpError::not_found(format!("Unknown allocation \"{alloc_id}\""))
                .into_response();
        }
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    no_compression(ws.on_upgrade(move |socket| run_socket(socket, alloc, params)))
}

/// Nomad's pre-upgrade parsing: both failures are plain 500s.
fn parse_params(q: &QueryParams, auth: AuthContext) -> Result<Params, HttpError> {
    let raw = q.get("command").unwrap_or("");
    let command: Vec<String> = serde_json::from_str(raw).map_err(|e| {
        let why = if raw.is_empty() {
            "unexpected end of JSON input".to_string()
        } else {
            e.to_string()
        };
        HttpError::internal(format!("failed to marshal command into json: {why}"))
    })?;
    let tty = match q.get("tty").filter(|v| !v.is_empty()) {
        None => false,
        Some(v) => parse_go_bool(v).ok_or_else(|| {
            HttpError::internal(format!(
                "tty value is not a boolean: strconv.ParseBool: parsing {v:?}: invalid syntax"
            ))
        })?,
    };
    Ok(Params {
        task: q.get("task").unwrap_or("").to_string(),
        command,
        tty,
        ws_handshake: q.get("ws_handshake").map(str::to_string),
        header_token: auth.token,
        deferred: None,
    })
}

async fn run_socket(socket: WebSocket, alloc: AllocRunnerHandle, params: Params) {
    let (mut sink, mut stream) = socket.split();
    let session = match open_session(&mut stream, &alloc, &params).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(alloc_id = %alloc.id(), error = %e.message, "exec refused");
            let _ = sink.send(close(e.close_code(), &e.message)).await;
            return;
        }
    };
    let ExecSession { input, mut output } = session;
    let (err_tx, mut err_rx) = mpsc::channel::<ExecError>(1);
    let mut reader = tokio::spawn(forward_input(stream, input, err_tx));
    loop {
        tokio::select! {
            out = output.recv() => {
                let Some(out) = out else {
                    let msg = "exec session ended without an exit status";
                    let _ = sink.send(close(CLOSE_INTERNAL, msg)).await;
                    break;
                };
                let exited = matches!(out, ExecOutput::Exited(_));
                if sink.send(Message::Text(output_frame(&out).into())).await.is_err() {
                    break;
                }
                if exited {
                    let _ = sink.send(close(CLOSE_NORMAL, "")).await;
                    break;
                }
            }
            err = err_rx.recv() => {
                // None: the client closed its side; dropping the session kills the command.
                if let Some(e) = err {
                    let _ = sink.send(close(e.close_code(), &e.message)).await;
                }
                break;
            }
        }
    }
    // Finish the close handshake: the client's last frames (a stdin close racing the exit,
    // its close reply) must be read, or dropping the socket with unread data sends a TCP RST
    // that can destroy output the client has not read yet.
    if tokio::time::timeout(CLOSE_LINGER, &mut reader)
        .await
        .is_err()
    {
        reader.abort();
    }
    let _ = sink.close().await;
}

/// Handshake, then Nomad's client-side checks, then the driver's exec.
async fn open_session(
    stream: &mut SplitStream<WebSocket>,
    alloc: &AllocRunnerHandle,
    p: &Params,
) -> Result<ExecSession, ExecError> {
    read_handshake(stream, p).await?;
    if p.task.is_empty() {
        return Err(ExecError::new(400, "must provide task name"));
    }
    if p.command.is_empty() {
        return Err(ExecError::new(400, "command is not present"));
    }
    let task = alloc
        .task(&p.task)
        .ok_or_else(|| ExecError::new(500, "task not found"))?;
    check_running(task)?;
    let req = ExecRequest {
        command: p.command.clone(),
        tty: p.tty,
        ..ExecRequest::default()
    };
    task.exec(req).await.map_err(|e| match e {
        TaskRunnerError::NotRunning | TaskRunnerError::Driver(DriverError::TaskNotRunning) => {
            not_running(task)
        }
        TaskRunnerError::Driver(e) => ExecError::new(500, e.to_string()),
    })
}

fn not_running(task: &TaskRunnerHandle) -> ExecError {
    ExecError::new(404, format!("task \"{}\" is not running.", task.name()))
}

fn check_running(task: &TaskRunnerHandle) -> Result<(), ExecError> {
    let state = task.state();
    if is_zero(&state.started_at) {
        return Err(ExecError::new(
            404,
            format!("task \"{}\" not started yet.", task.name()),
        ));
    }
    if state.state != TaskStateName::Running {
        return Err(not_running(task));
    }
    Ok(())
}

/// Nomad's `readWsHandshake`; every failure is sent as code 400 (close 1008).
async fn read_handshake(stream: &mut SplitStream<WebSocket>, p: &Params) -> Result<(), ExecError> {
    let bad = |m: String| ExecError::new(400, m);
    let wanted = match p.ws_handshake.as_deref() {
        None | Some("") => false,
        Some(v) => parse_go_bool(v).ok_or_else(|| {
            bad(format!(
                "ws_handshake value is not a boolean: strconv.ParseBool: parsing {v:?}: invalid syntax"
            ))
        })?,
    };
    if !wanted {
        return Ok(());
    }
    let raw = loop {
        match stream.next().await {
            Some(Ok(Message::Text(t))) => break t.as_bytes().to_vec(),
            Some(Ok(Message::Binary(b))) => break b.to_vec(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_))) | None => return Err(bad("EOF".into())),
            Some(Err(e)) => return Err(bad(e.to_string())),
        }
    };
    let h: Handshake = serde_json::from_slice(&raw).map_err(|e| bad(e.to_string()))?;
    if h.version != 1 {
        return Err(bad(format!("unexpected handshake value: {}", h.version)));
    }
    if let Some(header) = &p.header_token
        && *header != h.auth_token
    {
        return Err(bad(
            "handshake auth token mismatched auth header token".into()
        ));
    }
    if let Some(deferred) = &p.deferred {
        let token = Some(h.auth_token.as_str()).filter(|t| !t.is_empty());
        deferred
            .check(token)
            .await
            .map_err(|e| ExecError::new(e.status().as_u16(), e.to_string()))?;
    }
    Ok(())
}

/// Client frames → session input. Ends (dropping `err`) when the client goes away; a bad
/// frame is reported as a 500, like Nomad's `forwardExecInput`.
async fn forward_input(
    mut stream: SplitStream<WebSocket>,
    input: mpsc::Sender<ExecInput>,
    err: mpsc::Sender<ExecError>,
) {
    while let Some(msg) = stream.next().await {
        let raw = match msg {
            Ok(Message::Text(t)) => t.as_bytes().to_vec(),
            Ok(Message::Binary(b)) => b.to_vec(),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) | Err(_) => return,
        };
        match parse_input(&raw) {
            Ok(items) => {
                // Once the command is gone, input is read and dropped until the client closes.
                for item in items {
                    let _ = input.send(item).await;
                }
            }
            Err(m) => {
                let _ = err.send(ExecError::new(500, m)).await;
                return;
            }
        }
    }
}

/// A close frame; the reason is cut to what a control frame holds.
fn close(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].into(),
    }))
}
