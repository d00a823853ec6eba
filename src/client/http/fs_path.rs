//! Nomad's alloc-dir access rules (facts §1.3): every path is relative to the alloc dir and
//! may not leave it, lexically or through symlinks; reads under a task's `secrets` or
//! `private` dir are refused, listing them is not.

use std::path::{Component, Path, PathBuf};

use crate::client::alloc_runner::AllocRunnerHandle;
use crate::http::HttpError;

/// Nomad's message for a path outside the alloc dir.
pub const ESCAPES: &str = "Path escapes the alloc directory";

/// Why a path cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// `..` or a symlink leads out of the alloc dir.
    #[error("{ESCAPES}")]
    Escapes,
    /// The path lies under a task's `secrets` dir.
    #[error("Reading secret file prohibited: {0}")]
    Secret(String),
    /// The path lies under a task's `private` dir.
    #[error("Reading private file prohibited: {0}")]
    Private(String),
}

/// `rel` cleaned lexically (`/a/../b` → `b`); `None` when `..` climbs above the root.
fn clean(rel: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

/// The canonical form of `path`'s deepest existing ancestor, with the rest appended.
fn canonical_prefix(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            return rest.iter().rev().fold(c, |acc: PathBuf, p| acc.join(p));
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// The host path for `rel` inside `alloc_dir`, refusing escapes (symlinks included).
pub fn resolve(alloc_dir: &Path, rel: &str) -> Result<PathBuf, PathError> {
    let cleaned = clean(rel).ok_or(PathError::Escapes)?;
    let full = alloc_dir.join(cleaned);
    let root = alloc_dir
        .canonicalize()
        .unwrap_or_else(|_| alloc_dir.to_path_buf());
    if !canonical_prefix(&full).starts_with(&root) {
        return Err(PathError::Escapes);
    }
    Ok(full)
}

/// Case-insensitive "is `path` under `dir`", like Nomad's prefix check.
fn under(path: &Path, dir: &Path) -> bool {
    let p = path.to_string_lossy().to_lowercase();
    let d = dir.to_string_lossy().to_lowercase();
    p == d || p.starts_with(&format!("{d}/"))
}

/// Refuses reads under any task's `secrets` or `private` dir (checked on the lexical and
/// the symlink-resolved path).
pub fn check_readable(runner: &AllocRunnerHandle, full: &Path, rel: &str) -> Result<(), PathError> {
    let canon = canonical_prefix(full);
    let root = runner.alloc_dir().path();
    let canon_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    for task in runner.tasks().keys() {
        for (base, p) in [(root, full), (canon_root.as_path(), canon.as_path())] {
            let dir = base.join(task);
            if under(p, &dir.join("secrets")) {
                return Err(PathError::Secret(rel.to_string()));
            }
            if under(p, &dir.join("private")) {
                return Err(PathError::Private(rel.to_string()));
            }
        }
    }
    Ok(())
}

/// A path opened for reading (cat, readat, stream): Nomad answers stat failures and
/// directories with 400 and the read-rule refusals with 500.
pub async fn readable_file(
    runner: &AllocRunnerHandle,
    rel: &str,
) -> Result<(PathBuf, std::fs::Metadata), HttpError> {
    let full = resolve(runner.alloc_dir().path(), rel)
        .map_err(|e| HttpError::bad_request(e.to_string()))?;
    let meta = tokio::fs::metadata(&full)
        .await
        .map_err(|e| HttpError::bad_request(os_error("stat", rel, &e)))?;
    if meta.is_dir() {
        return Err(HttpError::bad_request(format!(
            "file {rel:?} is a directory"
        )));
    }
    check_readable(runner, &full, rel).map_err(|e| HttpError::internal(e.to_string()))?;
    Ok((full, meta))
}

/// Go's `*PathError` text (`stat foo: no such file or directory`), naming the alloc-relative
/// path rather than the host path.
pub fn os_error(op: &str, rel: &str, err: &std::io::Error) -> String {
    let text = match err.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::NotADirectory => "not a directory".to_string(),
        _ => err.to_string(),
    };
    format!("{op} {rel}: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_refuses_climbing_out() {
        assert_eq!(clean("/a/../b").unwrap(), PathBuf::from("b"));
        assert_eq!(clean("/").unwrap(), PathBuf::new());
        assert!(clean("../x").is_none());
        assert!(clean("a/../../x").is_none());
    }

    #[test]
    fn symlinks_out_of_the_root_escape() {
        let dir = std::env::temp_dir().join(format!("yurt-fspath-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("alloc")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("alloc/etc")).unwrap();
        assert!(resolve(&dir, "alloc").is_ok());
        assert!(resolve(&dir, "alloc/missing/file").is_ok());
        assert!(matches!(
            resolve(&dir, "alloc/etc/passwd"),
            Err(PathError::Escapes)
        ));
        assert!(matches!(resolve(&dir, "../"), Err(PathError::Escapes)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn prefix_check_ignores_case() {
        assert!(under(
            Path::new("/a/T/SECRETS/x"),
            Path::new("/a/t/secrets")
        ));
        assert!(!under(
            Path::new("/a/t/secretsx"),
            Path::new("/a/t/secrets")
        ));
    }
}
