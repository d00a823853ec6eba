//! Where a template's source and destination are, and writing what it renders. Paths are
//! Nomad's: relative to the task dir, an absolute path outside the alloc dir is taken as
//! relative to the task dir (`/local/app.conf`), and nothing may land outside the alloc dir
//! — neither by `..` nor through a symlinked directory.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// `raw` resolved the way Nomad resolves template paths; an error when it escapes
/// `sandbox` (the alloc dir). `None` for the sandbox allows any path.
pub fn resolve(task_dir: &Path, sandbox: Option<&Path>, raw: &str) -> Result<PathBuf, String> {
    let raw = Path::new(raw);
    let escapes = |p: &Path| sandbox.is_some_and(|s| !clean(p).starts_with(s));
    let path = if !raw.is_absolute() || escapes(raw) {
        clean(&task_dir.join(raw.strip_prefix("/").unwrap_or(raw)))
    } else {
        clean(raw)
    };
    if escapes(&path) {
        return Err("path escapes the alloc directory".into());
    }
    Ok(path)
}

/// `path` with `.` and `..` applied lexically (`..` stops at the root).
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if out.parent().is_some() {
                    out.pop();
                }
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Checks that what `path` really is (its symlinks followed, as far as it exists) is inside
/// `sandbox`.
pub fn check_real(path: &Path, sandbox: Option<&Path>) -> Result<(), String> {
    let Some(sandbox) = sandbox else {
        return Ok(());
    };
    let root = sandbox
        .canonicalize()
        .map_err(|e| format!("alloc directory {}: {e}", sandbox.display()))?;
    let mut existing = path;
    let mut rest = Vec::new();
    let real = loop {
        match existing.canonicalize() {
            Ok(r) => break r,
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => return Err("path escapes the alloc directory".into()),
            },
        }
    };
    let real = rest.iter().rev().fold(real, |p, n| p.join(n));
    if real.starts_with(&root) {
        Ok(())
    } else {
        Err("path escapes the alloc directory (through a symlink)".into())
    }
}

/// The file mode a job's `perms` names (`"0644"`), as Nomad parses it.
pub fn parse_perms(perms: &str) -> Result<u32, String> {
    if perms.is_empty() {
        return Ok(0o644);
    }
    u32::from_str_radix(perms, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("Failed to parse {perms:?} as octal"))
}

/// How a rendered file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode {
    pub perms: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Writes `content` to `dest` unless it already holds exactly that; true when written. The
/// file is replaced in one rename, so a task never reads half a file and a symlink at
/// `dest` is replaced rather than followed.
pub fn write(
    dest: &Path,
    content: &str,
    mode: FileMode,
    sandbox: Option<&Path>,
) -> Result<bool, String> {
    if let Ok(meta) = std::fs::symlink_metadata(dest)
        && meta.is_file()
        && meta.len() == content.len() as u64
        && std::fs::read(dest).is_ok_and(|old| old == content.as_bytes())
    {
        return Ok(false);
    }
    let dir = dest
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", dest.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    check_real(dir, sandbox)?;
    let name = dest
        .file_name()
        .ok_or_else(|| format!("{} names no file", dest.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| format!("creating {}: {e}", tmp.display()))?;
        f.write_all(content.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode.perms))
            .map_err(|e| format!("setting the mode of {}: {e}", dest.display()))?;
        if mode.uid.is_some() || mode.gid.is_some() {
            nix::unistd::chown(
                &tmp,
                mode.uid.map(nix::unistd::Uid::from_raw),
                mode.gid.map(nix::unistd::Gid::from_raw),
            )
            .map_err(|e| format!("setting the owner of {}: {e}", dest.display()))?;
        }
        std::fs::rename(&tmp, dest).map_err(|e| format!("renaming to {}: {e}", dest.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_like_nomads() {
        let alloc = Path::new("/a/alloc1");
        let task = Path::new("/a/alloc1/web");
        let r = |p: &str| resolve(task, Some(alloc), p);
        assert_eq!(r("local/app.conf").unwrap(), task.join("local/app.conf"));
        assert_eq!(r("/local/app.conf").unwrap(), task.join("local/app.conf"));
        assert_eq!(
            r("../alloc/shared.txt").unwrap(),
            alloc.join("alloc/shared.txt")
        );
        assert_eq!(
            r("/a/alloc1/web/secrets/x").unwrap(),
            task.join("secrets/x"),
            "an absolute path inside the alloc dir is kept"
        );
        assert!(r("../../etc/passwd").is_err());
        assert!(r("local/../../../x").is_err());
        // Outside the alloc dir, an absolute path is read as relative to the task dir.
        assert_eq!(r("/etc/passwd").unwrap(), task.join("etc/passwd"));
        assert_eq!(
            resolve(task, None, "/etc/passwd").unwrap(),
            PathBuf::from("/etc/passwd")
        );
    }

    #[test]
    fn perms_are_octal() {
        assert_eq!(parse_perms("0644").unwrap(), 0o644);
        assert_eq!(parse_perms("755").unwrap(), 0o755);
        assert_eq!(parse_perms("").unwrap(), 0o644);
        assert!(parse_perms("0999").is_err());
        assert!(parse_perms("rw").is_err());
        assert!(parse_perms("77777").is_err());
    }

    #[test]
    fn writes_only_changes_and_never_through_a_symlinked_dir() {
        let root = std::env::temp_dir().join(format!("yurt-tmpl-{}", uuid::Uuid::new_v4()));
        let alloc = root.join("alloc");
        let outside = root.join("outside");
        std::fs::create_dir_all(alloc.join("web")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let mode = FileMode {
            perms: 0o600,
            uid: None,
            gid: None,
        };
        let dest = alloc.join("web/local/a.conf");
        assert!(write(&dest, "one", mode, Some(&alloc)).unwrap());
        assert!(
            !write(&dest, "one", mode, Some(&alloc)).unwrap(),
            "unchanged"
        );
        assert!(write(&dest, "two", mode, Some(&alloc)).unwrap());
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "two");
        let m = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o7777;
        assert_eq!(m, 0o600);

        std::os::unix::fs::symlink(&outside, alloc.join("web/evil")).unwrap();
        let err = write(&alloc.join("web/evil/x"), "x", mode, Some(&alloc)).unwrap_err();
        assert!(err.contains("escapes"), "{err}");
        assert!(!outside.join("x").exists());

        // A symlink at the destination is replaced, not written through.
        std::os::unix::fs::symlink(outside.join("target"), alloc.join("web/link")).unwrap();
        assert!(write(&alloc.join("web/link"), "y", mode, Some(&alloc)).unwrap());
        assert!(!outside.join("target").exists());
        assert!(check_real(&alloc.join("web/evil/x"), Some(&alloc)).is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
