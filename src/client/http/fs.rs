//! `/v1/client/fs/{ls,stat,cat,readat}/:alloc_id` (facts §7.3).

use std::io::SeekFrom;
use std::os::unix::fs::PermissionsExt;
use std::path::Path as FsPath;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::ClientApp;
use super::fs_path::{os_error, readable_file, resolve};
use crate::http::{HttpError, JsonReply, QueryOptions, QueryParams};

/// Nomad's `AllocFileInfo`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocFileInfo {
    name: String,
    is_dir: bool,
    size: u64,
    file_mode: String,
    mod_time: DateTime<Utc>,
    #[serde(skip_serializing_if = "String::is_empty")]
    content_type: String,
}

/// Go's `os.FileMode.String()` (`drwxrwxrwx`, `dtrwxrwxrwx`, `-rw-r--r--`, `Lrwxrwxrwx`).
pub fn go_mode_string(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::FileTypeExt;
    let ft = meta.file_type();
    let mode = meta.permissions().mode();
    let mut s = String::new();
    let flags = [
        (ft.is_dir(), 'd'),
        (ft.is_symlink(), 'L'),
        (ft.is_block_device(), 'D'),
        (ft.is_fifo(), 'p'),
        (ft.is_socket(), 'S'),
        (mode & 0o4000 != 0, 'u'),
        (mode & 0o2000 != 0, 'g'),
        (ft.is_char_device(), 'c'),
        (mode & 0o1000 != 0, 't'),
    ];
    for (set, c) in flags {
        if set {
            s.push(c);
        }
    }
    if ft.is_char_device() {
        // Go sets both ModeDevice and ModeCharDevice for character devices.
        s.insert(s.find('c').unwrap_or(0), 'D');
    }
    if s.is_empty() {
        s.push('-');
    }
    const RWX: &[u8; 9] = b"rwxrwxrwx";
    for (i, c) in RWX.iter().enumerate() {
        s.push(if mode & (1 << (8 - i)) != 0 {
            *c as char
        } else {
            '-'
        });
    }
    s
}

fn file_info(name: String, meta: &std::fs::Metadata) -> AllocFileInfo {
    AllocFileInfo {
        name,
        is_dir: meta.is_dir(),
        size: meta.len(),
        file_mode: go_mode_string(meta),
        mod_time: meta
            .modified()
            .map(DateTime::<Utc>::from)
            .unwrap_or_default(),
        content_type: String::new(),
    }
}

/// The query's `path`, required for everything but ls.
fn required_path(params: &QueryParams) -> Result<String, HttpError> {
    params
        .non_empty("path")
        .map(str::to_string)
        .ok_or_else(|| HttpError::bad_request("must provide a file name"))
}

/// ls and stat: a missing path is a 404; the rest are plain (500) errors.
fn lookup_error(op: &str, rel: &str, err: &std::io::Error) -> HttpError {
    let msg = os_error(op, rel, err);
    if err.kind() == std::io::ErrorKind::NotFound {
        HttpError::not_found(msg)
    } else {
        HttpError::internal(msg)
    }
}

/// `GET /v1/client/fs/ls/:alloc_id?path=` (default `/`).
pub async fn ls(
    State(app): State<ClientApp>,
    Path(id): Path<String>,
    params: QueryParams,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let runner = app.runner(&id)?;
    let rel = params.non_empty("path").unwrap_or("/").to_string();
    let dir = resolve(runner.alloc_dir().path(), &rel)
        .map_err(|e| HttpError::bad_request(e.to_string()))?;
    let mut entries = tokio::fs::read_dir(&dir)
        .await
        .map_err(|e| lookup_error("open", &rel, &e))?;
    let mut out = Vec::new();
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|e| lookup_error("readdir", &rel, &e))?
    {
        // An entry removed while listing is simply not listed.
        let Ok(meta) = tokio::fs::symlink_metadata(entry.path()).await else {
            continue;
        };
        out.push(file_info(
            entry.file_name().to_string_lossy().into_owned(),
            &meta,
        ));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(JsonReply::new(out).pretty(opts.pretty).into_response())
}

/// `GET /v1/client/fs/stat/:alloc_id?path=`.
pub async fn stat(
    State(app): State<ClientApp>,
    Path(id): Path<String>,
    params: QueryParams,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let runner = app.runner(&id)?;
    let rel = required_path(&params)?;
    let full = resolve(runner.alloc_dir().path(), &rel)
        .map_err(|e| HttpError::bad_request(e.to_string()))?;
    let meta = tokio::fs::metadata(&full)
        .await
        .map_err(|e| lookup_error("stat", &rel, &e))?;
    let name = full
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".to_string());
    let mut info = file_info(name, &meta);
    info.content_type = content_type(&full, meta.is_dir()).await;
    Ok(JsonReply::new(info).pretty(opts.pretty).into_response())
}

/// Go's `http.DetectContentType` for the common cases, `.json` forced as Nomad does.
async fn content_type(path: &FsPath, is_dir: bool) -> String {
    if is_dir {
        return "application/octet-stream".into();
    }
    if path.extension().is_some_and(|e| e == "json") {
        return "application/json".into();
    }
    let mut head = vec![0u8; 512];
    let n = match tokio::fs::File::open(path).await {
        Ok(mut f) => f.read(&mut head).await.unwrap_or(0),
        Err(_) => 0,
    };
    sniff(&head[..n]).into()
}

/// A small subset of the WHATWG sniffing table Go implements.
fn sniff(data: &[u8]) -> &'static str {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"%PDF-", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"GIF8", "image/gif"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"\x1f\x8b\x08", "application/x-gzip"),
        (b"PK\x03\x04", "application/zip"),
    ];
    if let Some((_, t)) = MAGIC.iter().find(|(m, _)| data.starts_with(m)) {
        return t;
    }
    let trimmed = data.trim_ascii_start().to_ascii_lowercase();
    if trimmed.starts_with(b"<!doctype html") || trimmed.starts_with(b"<html") {
        return "text/html; charset=utf-8";
    }
    let binary = data.iter().any(|&b| {
        b <= 0x08 || b == 0x0b || (0x0e..=0x1a).contains(&b) || (0x1c..=0x1f).contains(&b)
    });
    if binary {
        "application/octet-stream"
    } else {
        "text/plain; charset=utf-8"
    }
}

/// Streams `path` from `offset`, `limit` bytes at most (all when None), without buffering it.
pub fn file_body(file: tokio::fs::File, limit: Option<u64>) -> Body {
    let stream = futures::stream::unfold((file, limit), |(mut file, left)| async move {
        let want = left.map_or(64 * 1024, |l| l.min(64 * 1024)) as usize;
        if want == 0 {
            return None;
        }
        let mut buf = vec![0u8; want];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from(buf)),
                    (file, left.map(|l| l - n as u64)),
                ))
            }
            Err(e) => Some((Err(e), (file, Some(0)))),
        }
    });
    Body::from_stream(stream)
}

/// Raw file bytes, marked as untrusted content like Nomad's cat and readat.
async fn raw_file(
    full: &FsPath,
    offset: u64,
    limit: Option<u64>,
    rel: &str,
) -> Result<Response, HttpError> {
    let mut file = tokio::fs::File::open(full)
        .await
        .map_err(|e| HttpError::bad_request(os_error("open", rel, &e)))?;
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))
            .await
            .map_err(|e| HttpError::internal(os_error("seek", rel, &e)))?;
    }
    let mut resp = file_body(file, limit).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    );
    Ok(crate::http::no_compression(resp))
}

/// `GET /v1/client/fs/cat/:alloc_id?path=`.
pub async fn cat(
    State(app): State<ClientApp>,
    Path(id): Path<String>,
    params: QueryParams,
) -> Result<Response, HttpError> {
    let runner = app.live_runner(&id)?;
    let rel = required_path(&params)?;
    let (full, _) = readable_file(&runner, &rel).await?;
    raw_file(&full, 0, None, &rel).await
}

/// `GET /v1/client/fs/readat/:alloc_id?path=&offset=&limit=`.
pub async fn readat(
    State(app): State<ClientApp>,
    Path(id): Path<String>,
    params: QueryParams,
) -> Result<Response, HttpError> {
    let runner = app.live_runner(&id)?;
    let rel = required_path(&params)?;
    let raw_offset = params.get("offset").unwrap_or("");
    // Nomad parses with strconv.ParseInt and returns the failure uncoded (500).
    let offset: i64 = raw_offset.parse().map_err(|_| {
        HttpError::internal(format!(
            "error parsing offset: strconv.ParseInt: parsing {raw_offset:?}: invalid syntax"
        ))
    })?;
    let limit = match params.get("limit").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => {
            let l: i64 = v.parse().map_err(|_| {
                HttpError::internal(format!(
                    "error parsing limit: strconv.ParseInt: parsing {v:?}: invalid syntax"
                ))
            })?;
            (l > 0).then_some(l as u64)
        }
    };
    let (full, _) = readable_file(&runner, &rel).await?;
    raw_file(&full, offset.max(0) as u64, limit, &rel).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings_match_go() {
        let dir = std::env::temp_dir().join(format!("yurt-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(
            go_mode_string(&std::fs::metadata(&dir).unwrap()),
            "dtrwxrwxrwx"
        );
        let f = dir.join("f");
        std::fs::write(&f, b"x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            go_mode_string(&std::fs::metadata(&f).unwrap()),
            "-rw-r--r--"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff(b"hello\n"), "text/plain; charset=utf-8");
        assert_eq!(
            sniff(b"\x7fELF\x02\x01\x01\0\0"),
            "application/octet-stream"
        );
        assert_eq!(sniff(b"%PDF-1.4"), "application/pdf");
    }
}
