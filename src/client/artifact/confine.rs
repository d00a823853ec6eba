//! Keeping artifact paths inside the task dir: the destination a job names, and every entry
//! an archive unpacks (including the targets of its links).

use std::path::{Component, Path, PathBuf};

/// `relative` (a job's `destination`) resolved under `root`, or an error when it would land
/// outside it. Resolution is lexical: `..` may move up only as far as `root`.
pub fn destination(root: &Path, relative: &str) -> Result<PathBuf, String> {
    let rel = Path::new(relative);
    let rel = if rel.is_absolute() {
        // An absolute destination is accepted only when it already points into the task dir.
        rel.strip_prefix(root)
            .map_err(|_| "artifact destination path escapes the task directory".to_string())?
    } else {
        rel
    };
    let parts = normalize(rel)
        .ok_or_else(|| "artifact destination path escapes the task directory".to_string())?;
    Ok(parts.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

/// The normal components of `path` once `.` and `..` are applied, or `None` when `..`
/// climbs above the start or the path is absolute.
pub fn normalize(path: &Path) -> Option<Vec<std::ffi::OsString>> {
    let mut out: Vec<std::ffi::OsString> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// An archive entry's name as components under the unpack root. Unlike a destination, an
/// entry may not use `..` at all nor be absolute: archives that try are refused outright.
pub fn entry(name: &Path) -> Result<Vec<std::ffi::OsString>, String> {
    let mut out = Vec::new();
    for c in name.components() {
        match c {
            Component::Normal(s) => out.push(s.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!(
                    "archive entry {:?} escapes the destination (\"..\")",
                    name.display()
                ));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "archive entry {:?} escapes the destination (absolute path)",
                    name.display()
                ));
            }
        }
    }
    Ok(out)
}

/// Checks a symlink at `link` (components under the root) pointing at `target`: relative
/// targets must stay under the root when resolved from the link's directory; absolute
/// targets are refused.
pub fn symlink_target(link: &[std::ffi::OsString], target: &Path) -> Result<(), String> {
    if target.is_absolute() {
        return Err(format!(
            "archive symlink to {:?} escapes the destination (absolute target)",
            target.display()
        ));
    }
    let parent: PathBuf = link[..link.len().saturating_sub(1)].iter().collect();
    if normalize(&parent.join(target)).is_none() {
        return Err(format!(
            "archive symlink to {:?} escapes the destination",
            target.display()
        ));
    }
    Ok(())
}

/// Refuses to write beneath a symlink: a link the archive (or anything before it) put at an
/// ancestor of `parts` could redirect the write outside the root, whatever the link says
/// lexically.
pub fn no_symlink_ancestor(root: &Path, parts: &[std::ffi::OsString]) -> Result<(), String> {
    let mut p = root.to_path_buf();
    for c in &parts[..parts.len().saturating_sub(1)] {
        p.push(c);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "archive entry {:?} is written through a symlink",
                    parts.iter().collect::<PathBuf>().display()
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_stay_in_the_task_dir() {
        let root = Path::new("/a/task");
        assert_eq!(destination(root, "local/").unwrap(), root.join("local"));
        assert_eq!(
            destination(root, "local/../secrets/x").unwrap(),
            root.join("secrets/x")
        );
        assert_eq!(
            destination(root, "/a/task/local").unwrap(),
            root.join("local")
        );
        for bad in ["..", "../other", "local/../../x", "/etc", "/a/taskx"] {
            let err = destination(root, bad).unwrap_err();
            assert!(err.contains("escapes"), "{bad}: {err}");
        }
    }

    #[test]
    fn entries_with_parent_or_absolute_paths_are_refused() {
        assert_eq!(entry(Path::new("./a/b")).unwrap().len(), 2);
        assert!(entry(Path::new("../x")).unwrap_err().contains(".."));
        assert!(entry(Path::new("a/../../x")).unwrap_err().contains(".."));
        assert!(entry(Path::new("a/../b")).is_err());
        assert!(
            entry(Path::new("/etc/passwd"))
                .unwrap_err()
                .contains("absolute")
        );
    }

    #[test]
    fn symlink_targets_must_resolve_inside() {
        let link = entry(Path::new("a/b/link")).unwrap();
        symlink_target(&link, Path::new("../c")).unwrap();
        symlink_target(&link, Path::new("../../c")).unwrap();
        assert!(symlink_target(&link, Path::new("../../../c")).is_err());
        assert!(
            symlink_target(&link, Path::new("/etc"))
                .unwrap_err()
                .contains("absolute")
        );
    }
}
