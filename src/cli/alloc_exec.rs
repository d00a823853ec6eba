//! `yurt alloc exec [-i] [-t] [-task T] <alloc> <command> [args...]`, Nomad's `alloc exec`:
//! resolves the alloc (ID prefixes allowed) and task, opens the exec websocket, puts the local
//! terminal in raw mode for `-t`, forwards stdin and window size changes, prints the output
//! and exits with the command's exit code.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

use super::api_client::{ApiClient, ApiError};
use super::api_flags::ApiFlags;
use super::terminal::{self, RawMode};
use crate::http::query::parse_go_bool;

/// Nomad's heartbeat period on exec sockets.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Characters of an alloc ID shown in messages (Nomad's short ID).
const SHORT_ID: usize = 8;

/// `yurt alloc exec` arguments.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Pass stdin to the command (default true; `-i=false` to disable).
    #[arg(short = 'i', num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub interactive: Option<bool>,
    /// Allocate a TTY (default: when stdin is a terminal and -i is set).
    #[arg(short = 't', num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub tty: Option<bool>,
    /// The task to exec into (required when the group has several tasks).
    #[arg(long = "task")]
    pub task: Option<String>,
    /// The allocation ID or a unique prefix of it.
    pub alloc_id: String,
    /// The command and its arguments.
    #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

fn go_bool(v: &str) -> Result<bool, String> {
    parse_go_bool(v).ok_or_else(|| format!("parse error: invalid boolean {v:?}"))
}

/// Why the command could not run (its own exit code is not an error).
#[derive(Debug, thiserror::Error)]
enum ExecCliError {
    #[error("{0}")]
    Usage(String),
    #[error("Error querying allocation: {0}")]
    Api(#[from] ApiError),
    #[error("failed to exec into task: {0}")]
    Session(String),
}

/// Runs the command; the process exit code is the remote command's.
pub fn run(args: &ExecArgs, flags: &ApiFlags) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(exec(args, flags)) {
        Ok(code) => ExitCode::from((code & 0xff) as u8),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn exec(args: &ExecArgs, flags: &ApiFlags) -> Result<i32, ExecCliError> {
    let api = ApiClient::from_flags(flags)?;
    let alloc = resolve_alloc(&api, &args.alloc_id).await?;
    let task = match &args.task {
        Some(t) if !t.is_empty() => t.clone(),
        _ => only_task(&alloc)?,
    };
    let interactive = args.interactive.unwrap_or(true);
    let tty = args
        .tty
        .unwrap_or_else(|| interactive && terminal::stdin_is_terminal());
    let alloc_id = alloc["ID"].as_str().unwrap_or_default().to_string();
    let command = serde_json::to_string(&args.command)
        .map_err(|e| ExecCliError::Usage(format!("encoding command: {e}")))?;
    let mut url = api.url(
        &format!("/v1/client/allocation/{alloc_id}/exec"),
        &[
            ("task", task.as_str()),
            ("command", command.as_str()),
            ("tty", if tty { "true" } else { "false" }),
        ],
    );
    let ws_scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    // http(s) → ws(s) is a change url allows.
    let _ = url.set_scheme(ws_scheme);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ExecCliError::Session(e.to_string()))?;
    if let Some(token) = api.token()
        && let Ok(v) = HeaderValue::from_str(token)
    {
        request.headers_mut().insert("X-Nomad-Token", v);
    }
    let (ws, _) = crate::tls::ws::connect(request, api.tls_config())
        .await
        .map_err(|e| ExecCliError::Session(describe(e)))?;
    // Raw mode only once connected, and restored when `_raw` drops on any way out.
    let _raw = if tty {
        RawMode::enable().map_err(|e| ExecCliError::Session(format!("raw mode: {e}")))?
    } else {
        None
    };
    session(ws, interactive, tty).await
}

/// Connection errors as the user should see them (an HTTP refusal shows its body).
fn describe(e: tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Http(resp) => {
            let body = resp
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).trim_end().to_string())
                .unwrap_or_default();
            format!(
                "Unexpected response code: {} ({body})",
                resp.status().as_u16()
            )
        }
        other => other.to_string(),
    }
}

type Ws = crate::tls::ws::ClientSocket;

/// Pumps the socket until the exit frame; returns the exit code.
async fn session(ws: Ws, interactive: bool, tty: bool) -> Result<i32, ExecCliError> {
    let (mut sink, mut stream) = ws.split();
    let fail = |e: tungstenite::Error| ExecCliError::Session(e.to_string());
    let mut stdin_rx = if interactive {
        Some(spawn_stdin_reader())
    } else {
        sink.send(frame(json!({"stdin": {"close": true}})))
            .await
            .map_err(fail)?;
        None
    };
    let mut winch = if tty {
        if let Some((h, w)) = terminal::size() {
            sink.send(frame(json!({"tty_size": {"height": h, "width": w}})))
                .await
                .map_err(fail)?;
        }
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok()
    } else {
        None
    };
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    let mut exit_code: Option<i32> = None;
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if let Some(code) = handle_output(t.as_bytes())? {
                        exit_code = Some(code);
                    }
                }
                Some(Ok(Message::Binary(b))) => {
                    if let Some(code) = handle_output(&b)? {
                        exit_code = Some(code);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return finish(exit_code, frame.map(|f| (u16::from(f.code), f.reason.to_string())));
                }
                Some(Ok(_)) => {}
                None => return finish(exit_code, None),
                Some(Err(e)) => {
                    return match exit_code {
                        Some(code) => Ok(code),
                        None => Err(fail(e)),
                    };
                }
            },
            chunk = recv_opt(&mut stdin_rx) => {
                let msg = match chunk {
                    Some(data) => json!({"stdin": {"data": STANDARD.encode(data)}}),
                    None => {
                        stdin_rx = None;
                        json!({"stdin": {"close": true}})
                    }
                };
                // A send failure surfaces as the stream ending just after.
                let _ = sink.send(frame(msg)).await;
            }
            Some(()) = recv_signal(&mut winch) => {
                if let Some((h, w)) = terminal::size() {
                    let _ = sink.send(frame(json!({"tty_size": {"height": h, "width": w}}))).await;
                }
            }
            _ = heartbeat.tick() => {
                let _ = sink.send(frame(json!({}))).await;
            }
        }
    }
}

/// The exit code once the socket ended; an error close (or no exit frame) is a failure.
fn finish(exit_code: Option<i32>, close: Option<(u16, String)>) -> Result<i32, ExecCliError> {
    match (exit_code, close) {
        (Some(code), _) => Ok(code),
        (None, Some((code, reason))) if !matches!(code, 1000 | 1001 | 1005) => {
            Err(ExecCliError::Session(reason))
        }
        (None, _) => Err(ExecCliError::Session(
            "connection closed before the command exited".into(),
        )),
    }
}

/// Writes a stdout/stderr frame locally; returns the exit code of an exit frame.
fn handle_output(raw: &[u8]) -> Result<Option<i32>, ExecCliError> {
    let v: Value = serde_json::from_slice(raw)
        .map_err(|e| ExecCliError::Session(format!("bad frame from agent: {e}")))?;
    for (key, is_out) in [("stdout", true), ("stderr", false)] {
        if let Some(d) = v[key]["data"].as_str() {
            let bytes = STANDARD
                .decode(d)
                .map_err(|e| ExecCliError::Session(format!("bad frame from agent: {e}")))?;
            let res = if is_out {
                let mut o = std::io::stdout().lock();
                o.write_all(&bytes).and_then(|()| o.flush())
            } else {
                let mut o = std::io::stderr().lock();
                o.write_all(&bytes).and_then(|()| o.flush())
            };
            res.map_err(|e| ExecCliError::Session(format!("writing output: {e}")))?;
        }
    }
    if v["exited"] == true {
        let code = v["result"]["exit_code"].as_i64().unwrap_or(0);
        return Ok(Some(i32::try_from(code).unwrap_or(1)));
    }
    Ok(None)
}

fn frame(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

/// Reads stdin on a plain thread (a blocking read cannot be cancelled; the thread simply dies
/// with the process) and hands chunks over; the channel closes at EOF.
fn spawn_stdin_reader() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

async fn recv_opt(rx: &mut Option<mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_signal(sig: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match sig {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// The full allocation for an ID or unique prefix (Nomad's rules and messages).
async fn resolve_alloc(api: &ApiClient, id: &str) -> Result<Value, ExecCliError> {
    let stub = super::resolve::resolve(api, super::resolve::ALLOC, id, |many| {
        super::alloc::alloc_list(many, false)
    })
    .await
    .map_err(|e| ExecCliError::Usage(e.0))?;
    let full_id = super::resolve::id_of(&stub);
    match api
        .get_json(&format!("/v1/allocation/{full_id}"), &[])
        .await
    {
        Ok(v) => Ok(v),
        Err(ApiError::Status { status: 404, .. }) => Err(ExecCliError::Usage(format!(
            "No allocation(s) with prefix or id {id:?} found"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The group's only task, or Nomad's error listing them.
fn only_task(alloc: &Value) -> Result<String, ExecCliError> {
    let group = alloc["TaskGroup"].as_str().unwrap_or_default();
    let tg = alloc["Job"]["TaskGroups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["Name"] == group))
        .ok_or_else(|| {
            ExecCliError::Usage(format!("Could not find allocation task group: {group}"))
        })?;
    let names: Vec<&str> = tg["Tasks"]
        .as_array()
        .map(|ts| ts.iter().filter_map(|t| t["Name"].as_str()).collect())
        .unwrap_or_default();
    if let [one] = names.as_slice() {
        return Ok(one.to_string());
    }
    let id = alloc["ID"].as_str().unwrap_or_default();
    let mut msg = format!(
        "Allocation {:?} is running the following tasks:\n",
        id.get(..SHORT_ID).unwrap_or(id)
    );
    for n in names {
        msg.push_str(&format!("  * {n}\n"));
    }
    msg.push_str("\nPlease specify the task.");
    Err(ExecCliError::Usage(msg))
}
