//! Nomad's StreamFrame output (`{"Offset","Data","File","FileEvent"}` concatenated, `{}`
//! heartbeats every second) or raw bytes, and `GET /v1/client/fs/stream/:alloc_id`.

use std::io::SeekFrom;
use std::path::Path as FsPath;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use super::ClientApp;
use super::fs_path::readable_file;
use crate::http::{HttpError, QueryParams, no_compression};

/// Most data one frame carries (Nomad's 64 KiB).
const FRAME_MAX: usize = 64 * 1024;
/// Idle time after which a `{}` heartbeat frame is sent.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How often a followed file is checked for growth, truncation or removal.
pub const POLL: Duration = Duration::from_millis(100);

/// `FileEvent` values.
pub const FILE_TRUNCATED: &str = "file truncated";
/// The followed file was removed.
pub const FILE_DELETED: &str = "file deleted";

/// One StreamFrame; empty fields are omitted like Go's `omitempty`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Frame {
    #[serde(skip_serializing_if = "is_zero")]
    pub offset: i64,
    #[serde(skip_serializing_if = "Bytes::is_empty", serialize_with = "base64")]
    pub data: Bytes,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub file: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub file_event: &'static str,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn base64<S: serde::Serializer>(data: &Bytes, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(data))
}

/// Where producers send frames; a failed send means the client went away.
pub type FrameTx = mpsc::Sender<Frame>;

/// A frame channel sized like Nomad's frame buffer (32 frames).
pub fn frame_channel() -> (FrameTx, mpsc::Receiver<Frame>) {
    mpsc::channel(32)
}

/// The streaming response for `rx`: JSON frames with heartbeats, or (`plain`) the raw data.
/// Never compressed, so every frame reaches the client as it is produced.
pub fn frames_response(rx: mpsc::Receiver<Frame>, plain: bool) -> Response {
    let stream = futures::stream::unfold(rx, move |mut rx| async move {
        loop {
            match tokio::time::timeout(HEARTBEAT, rx.recv()).await {
                Ok(Some(frame)) if plain => {
                    if frame.data.is_empty() {
                        continue;
                    }
                    return Some((Ok::<_, std::io::Error>(frame.data), rx));
                }
                Ok(Some(frame)) => {
                    let json = serde_json::to_vec(&frame).unwrap_or_default();
                    return Some((Ok(Bytes::from(json)), rx));
                }
                Ok(None) => return None,
                Err(_) if plain => continue,
                Err(_) => return Some((Ok(Bytes::from_static(b"{}")), rx)),
            }
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    let ctype = if plain {
        "text/plain; charset=utf-8"
    } else {
        "application/json"
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    no_compression(resp)
}

/// Sends everything from `*pos` to the current end of `file` as frames tagged `rel`.
/// `event` tags the first frame (truncation). Returns false when the client went away.
pub async fn send_to_eof(
    tx: &FrameTx,
    file: &mut tokio::fs::File,
    rel: &str,
    pos: &mut u64,
    event: &mut &'static str,
) -> std::io::Result<bool> {
    let mut buf = vec![0u8; FRAME_MAX];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(true);
        }
        *pos += n as u64;
        let frame = Frame {
            offset: *pos as i64,
            data: Bytes::copy_from_slice(&buf[..n]),
            file: rel.to_string(),
            file_event: std::mem::take(event),
        };
        if tx.send(frame).await.is_err() {
            return Ok(false);
        }
    }
}

/// Opens `path` positioned at `pos`.
pub async fn open_at(path: &FsPath, pos: u64) -> std::io::Result<tokio::fs::File> {
    let mut f = tokio::fs::File::open(path).await?;
    if pos > 0 {
        f.seek(SeekFrom::Start(pos)).await?;
    }
    Ok(f)
}

/// Follows one file from `pos`: new data, truncation (reopen at 0) and removal (a final
/// `file deleted` frame). Without `follow` it stops at the end of the file.
async fn stream_file(
    tx: FrameTx,
    path: std::path::PathBuf,
    rel: String,
    mut pos: u64,
    follow: bool,
) {
    let mut file = match open_at(&path, pos).await {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!(error = %e, "fs stream: opening");
            return;
        }
    };
    let mut event = "";
    loop {
        match send_to_eof(&tx, &mut file, &rel, &mut pos, &mut event).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::debug!(error = %e, "fs stream: reading");
                return;
            }
        }
        if !follow {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = tx.closed() => return,
        }
        match tokio::fs::metadata(&path).await {
            Err(_) => {
                let frame = Frame {
                    offset: pos as i64,
                    file: rel.clone(),
                    file_event: FILE_DELETED,
                    ..Frame::default()
                };
                let _ = tx.send(frame).await;
                return;
            }
            Ok(m) if m.len() < pos => match open_at(&path, 0).await {
                Ok(f) => {
                    file = f;
                    pos = 0;
                    event = FILE_TRUNCATED;
                }
                Err(_) => return,
            },
            Ok(_) => {}
        }
    }
}

/// `origin` (`start` default, or `end`), else Nomad's 400.
pub fn parse_origin(params: &QueryParams) -> Result<bool, HttpError> {
    match params.get("origin").unwrap_or("start") {
        "start" | "" => Ok(false),
        "end" => Ok(true),
        _ => Err(HttpError::bad_request("origin must be start or end")),
    }
}

/// An integer query parameter Nomad parses with strconv (bad values are 400 here).
pub fn parse_i64(params: &QueryParams, name: &str) -> Result<i64, HttpError> {
    match params.non_empty(name) {
        None => Ok(0),
        Some(v) => v.parse().map_err(|_| {
            HttpError::bad_request(format!(
                "error parsing {name}: strconv.ParseInt: parsing {v:?}: invalid syntax"
            ))
        }),
    }
}

/// `GET /v1/client/fs/stream/:alloc_id?path=&offset=&origin=&follow=` (follow defaults to true).
pub async fn stream(
    State(app): State<ClientApp>,
    Path(id): Path<String>,
    params: QueryParams,
) -> Result<Response, HttpError> {
    let runner = app.live_runner(&id)?;
    let rel = params
        .non_empty("path")
        .map(str::to_string)
        .ok_or_else(|| HttpError::bad_request("must provide a file name"))?;
    let offset = parse_i64(&params, "offset")?.max(0) as u64;
    let from_end = parse_origin(&params)?;
    let follow = params.flag("follow")?.unwrap_or(true);
    let (full, meta) = readable_file(&runner, &rel).await?;
    let size = meta.len();
    let pos = if from_end {
        size.saturating_sub(offset)
    } else {
        offset.min(size)
    };
    let (tx, rx) = frame_channel();
    let file_rel = rel.trim_start_matches('/').to_string();
    tokio::spawn(stream_file(tx, full, file_rel, pos, follow));
    Ok(frames_response(rx, false))
}
