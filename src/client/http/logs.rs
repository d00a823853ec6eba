//! `GET /v1/client/fs/logs/:alloc_id?task=&type=&origin=&offset=&follow=&plain=`: a task's
//! stdout or stderr across its rotated files `alloc/logs/<task>.<type>.<n>`, following new
//! files as the rotator creates them (facts §7.3 "Logs algorithm").

use std::path::{Path as FsPath, PathBuf};

use axum::extract::{Path, State};
use axum::response::Response;

use super::ClientApp;
use super::stream::{
    FrameTx, POLL, frame_channel, frames_response, open_at, parse_i64, parse_origin, send_to_eof,
};
use crate::http::{HttpError, QueryParams};
use crate::structs::time::is_zero;

/// One rotated log file: its index and size when listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LogFile {
    index: u64,
    size: u64,
}

/// The rotated files of `base` (`<task>.<type>`), lowest index first.
async fn list_logs(dir: &FsPath, base: &str) -> Result<Vec<LogFile>, String> {
    let prefix = format!("{base}.");
    let mut out = Vec::new();
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .map_err(|e| format!("failed to list entries: {e}"))?;
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(suffix) = name.strip_prefix(&prefix) else {
            continue;
        };
        let index = suffix
            .parse::<u64>()
            .map_err(|e| format!("failed to convert {suffix:?} to int: {e}"))?;
        let size = entry.metadata().await.map(|m| m.len()).unwrap_or(0);
        out.push(LogFile { index, size });
    }
    out.sort_by_key(|f| f.index);
    Ok(out)
}

/// Where reading starts: the file (position in `files`) and offset in it. The requested
/// offset is walked across files: forward from the first for `start`, backward from the
/// last for `end`, clamped at the ends.
fn start_position(files: &[LogFile], offset: u64, from_end: bool) -> (usize, u64) {
    let mut off = offset;
    if from_end {
        let mut i = files.len() - 1;
        while off > files[i].size && i > 0 {
            off -= files[i].size;
            i -= 1;
        }
        (i, files[i].size.saturating_sub(off))
    } else {
        let mut i = 0;
        while off > files[i].size && i + 1 < files.len() {
            off -= files[i].size;
            i += 1;
        }
        (i, off.min(files[i].size))
    }
}

/// The lowest existing index above `index`, if any.
async fn next_index(dir: &FsPath, base: &str, index: u64) -> Option<u64> {
    // The common case, the very next file, without listing the directory.
    let direct = dir.join(format!("{base}.{}", index + 1));
    if tokio::fs::metadata(&direct).await.is_ok() {
        return Some(index + 1);
    }
    let files = list_logs(dir, base).await.ok()?;
    files.iter().map(|f| f.index).find(|&i| i > index)
}

/// What the pump needs to know about the request.
struct Pump {
    tx: FrameTx,
    dir: PathBuf,
    base: String,
    follow: bool,
    /// The highest index when the request began; without follow, reading ends there.
    last_at_start: u64,
}

impl Pump {
    async fn run(self, mut index: u64, mut pos: u64) {
        loop {
            let name = format!("{}.{index}", self.base);
            let rel = format!("alloc/logs/{name}");
            let mut file = match open_at(&self.dir.join(&name), pos).await {
                Ok(f) => f,
                Err(_) => {
                    // Rotated away (purged) before we got to it: go on with the next one.
                    match next_index(&self.dir, &self.base, index).await {
                        Some(n) => {
                            index = n;
                            pos = 0;
                            continue;
                        }
                        None => return,
                    }
                }
            };
            let mut event = "";
            loop {
                match send_to_eof(&self.tx, &mut file, &rel, &mut pos, &mut event).await {
                    Ok(true) => {}
                    Ok(false) | Err(_) => return,
                }
                if let Some(next) = next_index(&self.dir, &self.base, index).await {
                    if !self.follow && index >= self.last_at_start {
                        return;
                    }
                    // Catch what was written to this file just before the rotation.
                    if !matches!(
                        send_to_eof(&self.tx, &mut file, &rel, &mut pos, &mut event).await,
                        Ok(true)
                    ) {
                        return;
                    }
                    index = next;
                    pos = 0;
                    break;
                }
                if !self.follow {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = self.tx.closed() => return,
                }
            }
        }
    }
}

/// `GET /v1/client/fs/logs/:alloc_id`.
pub async fn logs(
    State(app): State<ClientApp>,
    Path(id): Path<String>,
    params: QueryParams,
) -> Result<Response, HttpError> {
    let task = params
        .non_empty("task")
        .ok_or_else(|| HttpError::bad_request("must provide task name"))?
        .to_string();
    let log_type = match params.get("type") {
        Some(t @ ("stdout" | "stderr")) => t.to_string(),
        _ => {
            return Err(HttpError::bad_request(
                "must provide log type (stdout/stderr)",
            ));
        }
    };
    let follow = params.flag("follow")?.unwrap_or(false);
    let plain = params.flag("plain")?.unwrap_or(false);
    let offset = parse_i64(&params, "offset")?.max(0) as u64;
    let from_end = parse_origin(&params)?;
    let runner = app.live_runner(&id)?;
    let handle = runner
        .task(&task)
        .ok_or_else(|| HttpError::bad_request(format!("unknown task name {task:?}")))?;
    if is_zero(&handle.state().started_at) {
        return Err(HttpError::not_found(format!(
            "task {task:?} not started yet. No logs available"
        )));
    }
    let dir = runner.alloc_dir().logs_dir();
    let base = format!("{task}.{log_type}");
    let files = list_logs(&dir, &base).await.map_err(HttpError::internal)?;
    let Some(last) = files.last().copied() else {
        return Err(HttpError::not_found(format!(
            "log entry for task {task:?} and log type {log_type:?} not found"
        )));
    };
    let (i, pos) = start_position(&files, offset, from_end);
    let (tx, rx) = frame_channel();
    let pump = Pump {
        tx,
        dir,
        base,
        follow,
        last_at_start: last.index,
    };
    tokio::spawn(pump.run(files[i].index, pos));
    Ok(frames_response(rx, plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(sizes: &[u64]) -> Vec<LogFile> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| LogFile {
                index: i as u64,
                size,
            })
            .collect()
    }

    #[test]
    fn offsets_walk_across_files() {
        let f = files(&[100, 100, 50]);
        assert_eq!(start_position(&f, 0, false), (0, 0));
        assert_eq!(start_position(&f, 150, false), (1, 50));
        assert_eq!(start_position(&f, 1000, false), (2, 50));
        assert_eq!(start_position(&f, 0, true), (2, 50));
        assert_eq!(start_position(&f, 30, true), (2, 20));
        assert_eq!(start_position(&f, 120, true), (1, 30));
        assert_eq!(start_position(&f, 1000, true), (0, 0));
    }
}
