//! Artifacts: files a task asks for before it starts (Nomad's `artifact` block), fetched over
//! http(s) or from a local path, checked against a `checksum`, and unpacked into the task dir
//! when they are archives. Everything an artifact writes stays inside the task dir.

mod checksum;
mod confine;
mod fetch;
mod unpack;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use checksum::{Algorithm, Checksum};
pub use unpack::Format;

/// The client's `artifact {}` limits (Nomad's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactConfig {
    /// Longest wait for the next bytes of an HTTP body.
    pub http_read_timeout: Duration,
    /// Largest HTTP download, in bytes (0: no limit).
    pub http_max_size: u64,
    /// Most bytes one archive may unpack to (0: no limit).
    pub decompression_size_limit: u64,
    /// Most files one archive may hold (0: no limit).
    pub decompression_file_count_limit: u64,
}

impl Default for ArtifactConfig {
    fn default() -> Self {
        ArtifactConfig {
            http_read_timeout: Duration::from_secs(30 * 60),
            http_max_size: 100_000_000_000,
            decompression_size_limit: 100_000_000_000,
            decompression_file_count_limit: 4096,
        }
    }
}

/// A humanized byte count ("100GB", "512 MiB", "4096"): decimal units are powers of 1000 and
/// `i` units powers of 1024, as the Go `humanize` package Nomad uses reads them.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like \"100GB\""))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        other => return Err(format!("{s:?} has an unknown size unit {other:?}")),
    };
    let bytes = num * mult as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("{s:?} is too large"));
    }
    Ok(bytes as u64)
}

/// How the artifact lands at its destination (`mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An archive is unpacked into the destination dir; a plain file is put in it.
    Any,
    /// The destination is the file itself; archives are not unpacked.
    File,
    /// The destination is a dir the source (an archive or a dir) fills.
    Dir,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode, String> {
        match s {
            "" | "any" => Ok(Mode::Any),
            "file" => Ok(Mode::File),
            "dir" => Ok(Mode::Dir),
            other => Err(format!("invalid artifact mode {other:?}")),
        }
    }
}

/// One artifact with the task's variables already interpolated.
#[derive(Debug, Clone)]
pub struct Spec {
    pub source: String,
    pub options: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub mode: String,
    pub destination: String,
    pub insecure: bool,
}

/// Where a source is read from.
enum Source {
    Http(reqwest::Url),
    File(PathBuf),
}

/// Fetches `spec` into `task_dir`. Downloads go to a staging dir inside the task dir (so a
/// rename to the destination never crosses filesystems) that is removed afterwards.
pub async fn get(spec: &Spec, task_dir: &Path, cfg: &ArtifactConfig) -> Result<(), String> {
    let mode = Mode::parse(&spec.mode)?;
    let mut options = spec.options.clone();
    let checksum = options
        .remove("checksum")
        .filter(|c| !c.is_empty())
        .map(|c| Checksum::parse(&c))
        .transpose()?;
    let forced = match options.remove("archive").as_deref() {
        None | Some("") => None,
        Some("false") => Some(None),
        Some(v) => Some(Some(
            Format::from_option(v).ok_or_else(|| format!("unknown archive format {v:?}"))?,
        )),
    };
    let source = parse_source(&spec.source, &options)?;
    let dest = confine::destination(task_dir, &spec.destination)?;
    let name = match &source {
        Source::Http(u) => u
            .path_segments()
            .and_then(|mut s| s.next_back())
            .unwrap_or_default()
            .to_string(),
        Source::File(p) => p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let staging = task_dir.join(format!(".artifact-{}", uuid::Uuid::new_v4()));
    tokio::fs::create_dir_all(&staging)
        .await
        .map_err(|e| format!("{}: {e}", staging.display()))?;
    let res = fetch_into(FetchPlan {
        source,
        name,
        headers: &spec.headers,
        insecure: spec.insecure,
        checksum,
        forced,
        mode,
        dest,
        task_dir,
        staging: &staging,
        cfg,
    })
    .await;
    let _ = tokio::fs::remove_dir_all(&staging).await;
    res
}

struct FetchPlan<'a> {
    source: Source,
    name: String,
    headers: &'a BTreeMap<String, String>,
    insecure: bool,
    checksum: Option<Checksum>,
    forced: Option<Option<Format>>,
    mode: Mode,
    dest: PathBuf,
    task_dir: &'a Path,
    staging: &'a Path,
    cfg: &'a ArtifactConfig,
}

async fn fetch_into(p: FetchPlan<'_>) -> Result<(), String> {
    let file_name = if p.name.is_empty() {
        "artifact".to_string()
    } else {
        p.name.clone()
    };
    let downloaded = p.staging.join(&file_name);
    match &p.source {
        Source::Http(url) => {
            fetch::http(url, p.headers, p.insecure, &downloaded, p.cfg).await?;
        }
        Source::File(path) => {
            let meta = tokio::fs::metadata(path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if meta.is_dir() {
                if p.mode == Mode::File {
                    return Err(format!("{} is a directory, not a file", path.display()));
                }
                let (src, dest, task_dir) =
                    (path.clone(), p.dest.clone(), p.task_dir.to_path_buf());
                return blocking(move || {
                    std::fs::create_dir_all(&dest)
                        .map_err(|e| format!("{}: {e}", dest.display()))?;
                    check_inside(&task_dir, &dest)?;
                    fetch::copy_dir(&src, &dest)
                })
                .await;
            }
            tokio::fs::copy(path, &downloaded)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let format = match p.forced {
        Some(forced) => forced,
        None => Format::from_name(&p.name),
    };
    let (checksum, mode, dest, task_dir) = (p.checksum, p.mode, p.dest, p.task_dir.to_path_buf());
    let limits = unpack::Limits {
        max_bytes: p.cfg.decompression_size_limit,
        max_files: p.cfg.decompression_file_count_limit,
    };
    blocking(move || {
        if let Some(c) = &checksum {
            c.verify(&downloaded)?;
        }
        match (format, mode) {
            (Some(format), Mode::Any | Mode::Dir) => {
                std::fs::create_dir_all(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
                check_inside(&task_dir, &dest)?;
                unpack::unpack(&downloaded, format, &dest, limits)
            }
            (None, Mode::Dir) => Err(format!(
                "{file_name} is not an archive, so it cannot fill a directory (mode \"dir\")"
            )),
            (_, Mode::File) => place(&downloaded, &dest, &task_dir),
            (None, Mode::Any) => {
                std::fs::create_dir_all(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
                place(&downloaded, &dest.join(&file_name), &task_dir)
            }
        }
    })
    .await
}

/// Moves the downloaded file to `to`, whose dir must really (symlinks resolved) be inside
/// the task dir.
fn place(from: &Path, to: &Path, task_dir: &Path) -> Result<(), String> {
    let parent = to
        .parent()
        .ok_or_else(|| format!("{}: no parent dir", to.display()))?;
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    check_inside(task_dir, parent)?;
    if std::fs::symlink_metadata(to).is_ok_and(|m| m.file_type().is_symlink()) {
        std::fs::remove_file(to).map_err(|e| format!("{}: {e}", to.display()))?;
    }
    std::fs::rename(from, to).map_err(|e| format!("{}: {e}", to.display()))
}

/// Refuses a destination that a symlink already in the task dir redirects elsewhere.
fn check_inside(task_dir: &Path, dir: &Path) -> Result<(), String> {
    let root = task_dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", task_dir.display()))?;
    let real = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    if real.starts_with(&root) {
        Ok(())
    } else {
        Err("artifact destination path escapes the task directory".into())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("artifact worker failed: {e}"))?
}

/// Parses a source: an `http(s)://` or `file://` URL, or an absolute local path. Options
/// left after `checksum` and `archive` become query parameters, as go-getter does.
fn parse_source(source: &str, options: &BTreeMap<String, String>) -> Result<Source, String> {
    if source.starts_with('/') {
        return Ok(Source::File(PathBuf::from(source)));
    }
    let mut url = reqwest::Url::parse(source)
        .map_err(|e| format!("failed to parse source URL {source:?}: {e}"))?;
    match url.scheme() {
        "http" | "https" => {
            if !options.is_empty() {
                let mut q = url.query_pairs_mut();
                for (k, v) in options {
                    q.append_pair(k, v);
                }
            }
            Ok(Source::Http(url))
        }
        "file" => url
            .to_file_path()
            .map(Source::File)
            .map_err(|()| format!("{source:?} is not a local file path")),
        other => Err(format!(
            "unsupported artifact source scheme {other:?} (http, https and file are supported)"
        )),
    }
}

#[cfg(test)]
mod tests;
