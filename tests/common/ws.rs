//! The exec WebSocket as Nomad's CLI and UI speak it: URL building, frames in and out, and
//! collecting a whole session, for end-to-end tests.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Bound on every exchange.
pub const STEP: Duration = Duration::from_secs(20);

/// The exec WebSocket URL of `task` in `alloc` on the agent at `base` (`http://host:port`).
pub fn exec_url(base: &str, alloc: &str, task: &str, cmd: &[&str], extra: &str) -> String {
    let command = serde_json::to_string(cmd).expect("command JSON");
    let command: String = url_encode(&command);
    format!("{base}/v1/client/allocation/{alloc}/exec?task={task}&command={command}{extra}")
        .replacen("http://", "ws://", 1)
}

pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn connect(url: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect timeout")
        .expect("connect");
    ws
}

/// Everything a session produced.
#[derive(Debug, Default)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub frames: Vec<Value>,
    pub exit: Option<Value>,
    pub close: Option<(u16, String)>,
}

impl Outcome {
    pub fn exit_code(&self) -> Option<i64> {
        self.exit
            .as_ref()
            .map(|e| e["result"]["exit_code"].as_i64().unwrap_or(0))
    }
}

/// Reads frames until the socket closes.
pub async fn collect(ws: &mut Ws) -> Outcome {
    let mut out = Outcome::default();
    let deadline = Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = match tokio::time::timeout(left, ws.next()).await {
            Err(_) => panic!("session did not end; so far: {out:?}"),
            Ok(None) | Ok(Some(Err(_))) => return out,
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(t) => absorb(&mut out, serde_json::from_str(&t).unwrap()),
            Message::Close(c) => {
                out.close = c.map(|c| (u16::from(c.code), c.reason.to_string()));
                return out;
            }
            _ => {}
        }
    }
}

pub fn absorb(out: &mut Outcome, v: Value) {
    if let Some(d) = v["stdout"]["data"].as_str() {
        out.stdout.extend(STANDARD.decode(d).unwrap());
    }
    if let Some(d) = v["stderr"]["data"].as_str() {
        out.stderr.extend(STANDARD.decode(d).unwrap());
    }
    if v["exited"] == true {
        out.exit = Some(v.clone());
    }
    out.frames.push(v);
}

/// Reads stdout frames until `needle` appeared in the accumulated output.
pub async fn read_until(ws: &mut Ws, acc: &mut Vec<u8>, needle: &str) {
    let deadline = Instant::now() + STEP;
    while !String::from_utf8_lossy(acc).contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no {needle:?} in output: {:?}",
                    String::from_utf8_lossy(acc)
                )
            })
            .expect("socket ended")
            .expect("socket error");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if let Some(d) = v["stdout"]["data"].as_str() {
                acc.extend(STANDARD.decode(d).unwrap());
            }
        }
    }
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

pub async fn stdin(ws: &mut Ws, data: &str) {
    send(ws, json!({"stdin": {"data": STANDARD.encode(data)}})).await;
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
