//! Prestart hook `dispatch_payload`: a dispatched job's payload is written to
//! `local/<dispatch_payload.file>` before the task starts (Nomad decodes the snappy block
//! the server stored).

use std::path::{Component, Path};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::super::allocdir::TaskDir;
use crate::structs::{Job, Task};

/// Writes the payload for `task`, if its job carries one and the task asks for it.
pub(crate) fn prestart(job: Option<&Job>, task: &Task, dir: &TaskDir) -> Result<(), String> {
    let Some(file) = task
        .dispatch_payload
        .as_ref()
        .map(|d| d.file.as_str())
        .filter(|f| !f.is_empty())
    else {
        return Ok(());
    };
    let Some(encoded) = job.and_then(|j| j.payload.as_deref()) else {
        return Ok(());
    };
    let relative = Path::new(file);
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "dispatch payload file {file:?} escapes the local dir"
        ));
    }
    let compressed = STANDARD
        .decode(encoded.as_bytes())
        .map_err(|e| format!("payload is not base64: {e}"))?;
    let payload = snap::raw::Decoder::new()
        .decompress_vec(&compressed)
        .map_err(|e| format!("decompressing payload: {e}"))?;
    write_inside(&dir.local_dir(), relative, &payload)
        .map_err(|e| format!("dispatch payload file {file:?}: {e}"))
}

/// Writes `data` to `root/relative` without following a symlink anywhere on the way: the
/// task may have run before (this is a restart) and replaced `local/`, a directory under it
/// or the file itself with a link to a host path the client, often root, would then write.
fn write_inside(root: &Path, relative: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let names: Vec<_> = relative
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let Some((name, parents)) = names.split_last() else {
        return Err("names no file".to_string());
    };
    let mut at = root.to_path_buf();
    let dirs = std::iter::once(None).chain(parents.iter().map(Some));
    for part in dirs {
        if let Some(p) = part {
            at.push(p);
        }
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "escapes the local dir: {} is a symlink",
                    at.display()
                ));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("{} is not a directory", at.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&at).map_err(|e| format!("{}: {e}", at.display()))?;
            }
            Err(e) => return Err(format!("{}: {e}", at.display())),
        }
    }
    let path = at.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => format!("escapes the local dir: {} is a symlink", path.display()),
            _ => format!("{}: {e}", path.display()),
        })?;
    f.write_all(data)
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("yurt-dispatch-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("local")).unwrap();
        std::fs::create_dir_all(dir.join("host")).unwrap();
        dir
    }

    #[test]
    fn writes_nested_files_inside_the_local_dir() {
        let dir = scratch("ok");
        let local = dir.join("local");
        write_inside(&local, Path::new("in/put.json"), b"{}").unwrap();
        assert_eq!(std::fs::read(local.join("in/put.json")).unwrap(), b"{}");
        // A rerun overwrites.
        write_inside(&local, Path::new("in/put.json"), b"[]").unwrap();
        assert_eq!(std::fs::read(local.join("in/put.json")).unwrap(), b"[]");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_symlinks_planted_by_a_previous_run() {
        let dir = scratch("links");
        let local = dir.join("local");
        let host = dir.join("host");
        // A link at the file's own name, at a directory on the way, and one replacing local/.
        std::os::unix::fs::symlink(host.join("passwd"), local.join("input")).unwrap();
        std::os::unix::fs::symlink(&host, local.join("sub")).unwrap();
        for rel in ["input", "sub/input", "sub/new/input"] {
            let err = write_inside(&local, Path::new(rel), b"x").unwrap_err();
            assert!(err.contains("escapes the local dir"), "{rel}: {err}");
        }
        std::fs::rename(&local, dir.join("moved")).unwrap();
        std::os::unix::fs::symlink(&host, &local).unwrap();
        let err = write_inside(&local, Path::new("input"), b"x").unwrap_err();
        assert!(err.contains("escapes the local dir"), "{err}");
        assert_eq!(
            std::fs::read_dir(&host).unwrap().count(),
            0,
            "nothing written outside"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_without_a_file_are_refused() {
        let dir = scratch("empty");
        let err = write_inside(&dir.join("local"), Path::new("."), b"x").unwrap_err();
        assert_eq!(err, "names no file");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
