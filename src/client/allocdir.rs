//! The per-allocation directory tree (`<alloc_root>/<id>/alloc/{data,logs,tmp}` and
//! `<id>/<task>/{local,secrets,private,tmp}`) with Nomad's permissions.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Shared directory name inside the alloc dir.
pub const SHARED_ALLOC_NAME: &str = "alloc";
/// Marker written inside a tmpfs mounted by us, so a second build does not mount again.
const MOUNT_MARKER: &str = ".nomad-mount";
/// Size of the `private` tmpfs in MB (fixed in Nomad).
const PRIVATE_MB: i64 = 1;

/// A filesystem failure while building or removing alloc dirs.
#[derive(Debug, thiserror::Error)]
#[error("{context} {path}: {source}")]
pub struct AllocDirError {
    context: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

impl AllocDirError {
    /// The directory of an allocation being restored is gone.
    pub fn missing(path: &Path) -> Self {
        AllocDirError {
            context: "restoring allocation from",
            path: path.to_path_buf(),
            source: std::io::ErrorKind::NotFound.into(),
        }
    }
}

fn err(context: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> AllocDirError {
    let path = path.to_path_buf();
    move |source| AllocDirError {
        context,
        path,
        source,
    }
}

/// One allocation's directory.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocDir {
    dir: PathBuf,
}

impl AllocDir {
    /// The dir of `alloc_id` under the client's alloc root.
    pub fn new(alloc_root: &Path, alloc_id: &str) -> Self {
        AllocDir {
            dir: alloc_root.join(alloc_id),
        }
    }

    /// `<alloc_root>/<id>`.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The shared `alloc/` dir every task sees.
    pub fn shared_dir(&self) -> PathBuf {
        self.dir.join(SHARED_ALLOC_NAME)
    }

    /// `alloc/logs`, where task logs are rotated.
    pub fn logs_dir(&self) -> PathBuf {
        self.shared_dir().join("logs")
    }

    /// The dir of one task.
    pub fn task_dir(&self, task: &str) -> TaskDir {
        TaskDir {
            dir: self.dir.join(task),
        }
    }

    /// Creates the alloc dir and its shared subdirs; idempotent.
    pub fn build(&self) -> Result<(), AllocDirError> {
        fs::create_dir_all(&self.dir).map_err(err("creating alloc dir", &self.dir))?;
        set_mode(&self.dir, 0o755)?;
        let shared = self.shared_dir();
        make_dir(&shared, 0o777)?;
        for sub in ["data", "logs", "tmp"] {
            make_dir(&shared.join(sub), 0o777)?;
        }
        Ok(())
    }

    /// Unmounts what tasks mounted and removes the whole tree.
    pub fn destroy(&self) -> Result<(), AllocDirError> {
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() && entry.file_name() != SHARED_ALLOC_NAME {
                    TaskDir { dir: path }.unmount();
                }
            }
        }
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(err("removing alloc dir", &self.dir)(e)),
        }
    }
}

/// One task's directory inside an alloc dir.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDir {
    dir: PathBuf,
}

impl TaskDir {
    /// `<alloc>/<task>`.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `local/` (NOMAD_TASK_DIR).
    pub fn local_dir(&self) -> PathBuf {
        self.dir.join("local")
    }

    /// `secrets/` (NOMAD_SECRETS_DIR).
    pub fn secrets_dir(&self) -> PathBuf {
        self.dir.join("secrets")
    }

    /// `private/` (client-only data).
    pub fn private_dir(&self) -> PathBuf {
        self.dir.join("private")
    }

    /// `tmp/` (sticky, world-writable).
    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// Creates the task tree; `secrets_mb` sizes the secrets tmpfs when running as root.
    pub fn build(&self, secrets_mb: i64) -> Result<(), AllocDirError> {
        make_dir(&self.dir, 0o777)?;
        make_dir(&self.local_dir(), 0o777)?;
        make_dir(&self.tmp_dir(), 0o1777)?;
        self.ensure_tmpfs(&self.secrets_dir(), secrets_mb.max(1))?;
        self.ensure_tmpfs(&self.private_dir(), PRIVATE_MB)?;
        Ok(())
    }

    /// Makes `dir` a private tmpfs as Nomad does when it runs as root (so secrets never touch
    /// the disk); a plain directory otherwise or when the kernel refuses the mount.
    fn ensure_tmpfs(&self, dir: &Path, size_mb: i64) -> Result<(), AllocDirError> {
        make_dir(dir, 0o777)?;
        if !nix::unistd::geteuid().is_root() || dir.join(MOUNT_MARKER).exists() {
            return Ok(());
        }
        if mount_tmpfs(dir, size_mb) {
            fs::write(dir.join(MOUNT_MARKER), b"").map_err(err("writing mount marker", dir))?;
            set_mode(dir, 0o777)?;
            chown_nobody(dir);
        }
        Ok(())
    }

    fn unmount(&self) {
        for dir in [self.secrets_dir(), self.private_dir()] {
            if dir.join(MOUNT_MARKER).exists()
                && let Err(e) = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH)
            {
                tracing::warn!(path = %dir.display(), error = %e, "unmounting task tmpfs");
            }
        }
    }
}

fn mount_tmpfs(dir: &Path, size_mb: i64) -> bool {
    use nix::mount::{MsFlags, mount};
    for opts in [
        format!("size={size_mb}m,noswap"),
        format!("size={size_mb}m"),
    ] {
        match mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOEXEC,
            Some(opts.as_str()),
        ) {
            Ok(()) => return true,
            Err(nix::errno::Errno::EINVAL) => continue,
            Err(e) => {
                tracing::warn!(path = %dir.display(), error = %e, "tmpfs mount refused; using a plain directory");
                return false;
            }
        }
    }
    false
}

/// Creates `dir` if needed and forces `mode`, owned by `nobody` when we are root (Nomad does
/// both so tasks running as `nobody` can write to them).
fn make_dir(dir: &Path, mode: u32) -> Result<(), AllocDirError> {
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err("creating directory", dir)(e)),
    }
    set_mode(dir, mode)?;
    chown_nobody(dir);
    Ok(())
}

fn set_mode(dir: &Path, mode: u32) -> Result<(), AllocDirError> {
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(err("setting permissions of", dir))
}

fn chown_nobody(dir: &Path) {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    if let Ok(Some(user)) = nix::unistd::User::from_name("nobody")
        && let Err(e) = nix::unistd::chown(dir, Some(user.uid), Some(user.gid))
    {
        tracing::warn!(path = %dir.display(), error = %e, "chown to nobody");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn builds_nomads_tree_with_its_permissions() {
        let root = tempdir();
        let ad = AllocDir::new(&root, "a1");
        ad.build().unwrap();
        assert_eq!(mode(ad.path()), 0o755);
        for sub in ["alloc", "alloc/data", "alloc/logs", "alloc/tmp"] {
            assert_eq!(mode(&ad.path().join(sub)), 0o777, "{sub}");
        }
        let td = ad.task_dir("web");
        td.build(1).unwrap();
        assert_eq!(mode(td.path()), 0o777);
        assert_eq!(mode(&td.local_dir()), 0o777);
        assert_eq!(mode(&td.tmp_dir()), 0o1777);
        assert!(td.secrets_dir().is_dir());
        assert!(td.private_dir().is_dir());
        // Building again is harmless (restarts re-run the task dir hook).
        td.build(1).unwrap();
        ad.destroy().unwrap();
        assert!(!ad.path().exists());
        ad.destroy().unwrap();
        fs::remove_dir_all(root).unwrap();
    }

    fn tempdir() -> PathBuf {
        let p = std::env::temp_dir().join(format!("yurt-allocdir-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&p).unwrap();
        p
    }
}
