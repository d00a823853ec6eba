//! Building and tearing down a task's chroot inside its task dir, with bind mounts.
//!
//! All mounts are made in the caller's (host) mount namespace so they outlive the task and can
//! be reused across restarts; the launcher's child later copies them into its private mount
//! namespace and adds `/proc` there. Mount propagation of the host is left untouched so that
//! unmounting here also removes any copies that propagated to peers.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};

use super::{IsolationError, Result, io_err};

/// Nomad's default `chroot_env`: host path → path in the task (identity).
pub const DEFAULT_CHROOT_ENV: [&str; 9] = [
    "/bin",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/run/resolvconf",
    "/sbin",
    "/usr",
    "/run/systemd/resolve",
];

/// Device nodes created in the task's `/dev`: (name, major, minor).
const DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Nomad's default `chroot_env` as a map (host source → destination inside the task dir).
pub fn default_chroot_env() -> BTreeMap<PathBuf, PathBuf> {
    DEFAULT_CHROOT_ENV
        .iter()
        .map(|p| (PathBuf::from(p), PathBuf::from(p)))
        .collect()
}

/// What [`build`] puts into a task dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChrootSpec {
    /// The task dir; it becomes the task's `/`.
    pub task_dir: PathBuf,
    /// The alloc's shared dir (`<alloc_dir>/alloc`), bind-mounted read-write at `/alloc`.
    pub shared_alloc_dir: Option<PathBuf>,
    /// Host path → absolute path inside the task; read-only binds (symlinks are recreated).
    /// Sources that do not exist on the host are skipped.
    pub chroot_env: BTreeMap<PathBuf, PathBuf>,
    /// Size of the `/secrets` tmpfs in MiB (Nomad's default is 1).
    pub secrets_size_mb: u64,
    /// Size of `/dev/shm` in MiB (runc's default is 64).
    pub shm_size_mb: u64,
}

impl ChrootSpec {
    /// A spec with Nomad's defaults for the given task dir and shared alloc dir.
    pub fn new(task_dir: impl Into<PathBuf>, shared_alloc_dir: Option<PathBuf>) -> ChrootSpec {
        ChrootSpec {
            task_dir: task_dir.into(),
            shared_alloc_dir,
            chroot_env: default_chroot_env(),
            secrets_size_mb: 1,
            shm_size_mb: 64,
        }
    }
}

/// Builds the chroot: `chroot_env` read-only binds, `/alloc` rw bind, `/secrets` tmpfs
/// (noexec), a minimal `/dev` tmpfs (null, zero, full, random, urandom, tty, `pts`, `shm`), and
/// empty `/local` (0777), `/tmp` (1777), `/proc`, `/sys` mount points.
///
/// Idempotent: targets that are already mount points are left alone. On error everything
/// mounted under the task dir is torn down again before returning.
pub fn build(spec: &ChrootSpec) -> Result<()> {
    let root = safe_task_dir(&spec.task_dir)?;
    let result = build_inner(spec, &root);
    if result.is_err() {
        // Never leave a half-built chroot (in particular no writable host bind) behind.
        let _ = teardown(&root);
    }
    result
}

fn build_inner(spec: &ChrootSpec, root: &Path) -> Result<()> {
    let mounted: BTreeSet<PathBuf> = mounts_under(root)?.into_iter().collect();

    ensure_dir_in(root, Path::new("local"), 0o777)?;
    ensure_dir_in(root, Path::new("tmp"), 0o1777)?;
    ensure_dir_in(root, Path::new("proc"), 0o555)?;
    ensure_dir_in(root, Path::new("sys"), 0o555)?;

    // Parents before children (e.g. /run before /run/resolvconf).
    let mut entries: Vec<(&PathBuf, &PathBuf)> = spec.chroot_env.iter().collect();
    entries.sort_by(|a, b| a.1.cmp(b.1));
    for (host, dest) in entries {
        let rel = relative_inside(dest)?;
        let Ok(meta) = fs::symlink_metadata(host) else {
            continue; // Nomad skips sources missing on this host.
        };
        let target = root.join(&rel);
        if meta.file_type().is_symlink() {
            // usr-merged hosts: /bin -> usr/bin. Recreate the link instead of binding through it.
            let link = fs::read_link(host).map_err(|e| io_err("readlink", host, e))?;
            if let Some(parent) = rel.parent() {
                ensure_dir_in(root, parent, 0o755)?;
            }
            match fs::symlink_metadata(&target) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    std::os::unix::fs::symlink(&link, &target)
                        .map_err(|e| io_err("symlink", &target, e))?;
                }
                Err(e) => return Err(io_err("lstat", &target, e)),
            }
            continue;
        }
        if mounted.contains(&target) {
            continue;
        }
        if meta.is_dir() {
            ensure_dir_in(root, &rel, 0o755)?;
        } else if meta.is_file() {
            if let Some(parent) = rel.parent() {
                ensure_dir_in(root, parent, 0o755)?;
            }
            ensure_file(&target)?;
        } else {
            continue; // Sockets, devices, fifos are not embedded (as in Nomad).
        }
        bind_readonly(host, &target)?;
    }

    if let Some(alloc) = &spec.shared_alloc_dir {
        let target = ensure_dir_in(root, Path::new("alloc"), 0o755)?;
        if !mounted.contains(&target) {
            do_mount(Some(alloc.as_path()), &target, None, MsFlags::MS_BIND, None)?;
        }
    }

    let secrets = ensure_dir_in(root, Path::new("secrets"), 0o777)?;
    if !mounted.contains(&secrets) {
        let opts = format!("size={}m,mode=0777", spec.secrets_size_mb.max(1));
        do_mount(
            Some(Path::new("tmpfs")),
            &secrets,
            Some("tmpfs"),
            MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(&opts),
        )?;
    }

    let dev = ensure_dir_in(root, Path::new("dev"), 0o755)?;
    if !mounted.contains(&dev) {
        build_dev(&dev, spec.shm_size_mb)?;
    }
    Ok(())
}

/// A tmpfs `/dev` with the runc default device nodes, devpts (new instance) and shm.
fn build_dev(dev: &Path, shm_size_mb: u64) -> Result<()> {
    do_mount(
        Some(Path::new("tmpfs")),
        dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for (name, major, minor) in DEVICES {
        let p = dev.join(name);
        mknod(
            &p,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        )
        .map_err(|e| io_err("mknod", &p, e.into()))?;
        // mknod honours the umask; the nodes must be usable by the unprivileged task user.
        fs::set_permissions(&p, fs::Permissions::from_mode(0o666))
            .map_err(|e| io_err("chmod", &p, e))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let p = dev.join(name);
        std::os::unix::fs::symlink(target, &p).map_err(|e| io_err("symlink", &p, e))?;
    }
    let pts = ensure_dir_in(dev, Path::new("pts"), 0o755)?;
    do_mount(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    let shm = ensure_dir_in(dev, Path::new("shm"), 0o1777)?;
    let opts = format!("mode=1777,size={}m", shm_size_mb.max(1));
    do_mount(
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(&opts),
    )?;
    Ok(())
}

/// Unmounts everything mounted at or below a path strictly inside `task_dir` (deepest first),
/// falling back to a lazy detach for busy mounts. Idempotent; a missing task dir is fine.
///
/// Safety rules: `task_dir` itself must not be a symlink and must not resolve to `/` or a
/// top-level directory; mount points are taken from `/proc/self/mountinfo` (the kernel's real
/// paths), a mount point whose path no longer resolves to itself (a symlink was swapped into
/// it) is refused, and `UMOUNT_NOFOLLOW` keeps the final component from being followed.
pub fn teardown(task_dir: &Path) -> Result<()> {
    teardown_keeping(task_dir, &[])
}

/// [`teardown`], except the mount points `keep` (paths relative to the task dir, e.g.
/// `secrets` when the agent mounted that tmpfs itself and unmounts it when the alloc goes).
pub fn teardown_keeping(task_dir: &Path, keep: &[&Path]) -> Result<()> {
    let root = match safe_task_dir(task_dir) {
        Ok(r) => r,
        Err(IsolationError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    // Stacked mounts need several passes; bound them so a misbehaving host cannot spin us.
    let keep: Vec<PathBuf> = keep.iter().map(|k| root.join(k)).collect();
    let mounts_to_remove = || -> Result<Vec<PathBuf>> {
        let mut m = mounts_under(&root)?;
        m.retain(|p| !keep.contains(p));
        Ok(m)
    };
    for _ in 0..16 {
        let mut mounts = mounts_to_remove()?;
        if mounts.is_empty() {
            return Ok(());
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for m in mounts {
            unmount_one(&root, &m)?;
        }
    }
    let left = mounts_to_remove()?;
    if left.is_empty() {
        Ok(())
    } else {
        Err(IsolationError::Unmount {
            target: left[0].clone(),
            source: Errno::EBUSY,
        })
    }
}

fn unmount_one(root: &Path, m: &Path) -> Result<()> {
    match fs::canonicalize(m) {
        Ok(c) if c == m && c.starts_with(root) && c != root => {}
        // Gone already (a parent mount was detached with it): nothing to do.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        _ => {
            return Err(IsolationError::UnsafePath {
                path: m.to_path_buf(),
                reason: "mount point no longer resolves to itself inside the task dir".into(),
            });
        }
    }
    match umount2(m, MntFlags::UMOUNT_NOFOLLOW) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EBUSY) => match umount2(m, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
            Err(source) => Err(IsolationError::Unmount {
                target: m.to_path_buf(),
                source,
            }),
        },
        Err(source) => Err(IsolationError::Unmount {
            target: m.to_path_buf(),
            source,
        }),
    }
}

/// Mount points strictly below `root` in this mount namespace, as the kernel reports them.
pub fn mounts_under(root: &Path) -> Result<Vec<PathBuf>> {
    let mi = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| io_err("read", "/proc/self/mountinfo", e))?;
    let mut out: Vec<PathBuf> = mi
        .lines()
        .filter_map(crate::cgroups::parse_mountinfo_line)
        .map(|(mp, _, _)| mp)
        .filter(|mp| mp.starts_with(root) && mp != root)
        .collect();
    out.dedup();
    Ok(out)
}

/// Canonical task dir, refusing a symlinked task dir, `/` and top-level directories.
fn safe_task_dir(task_dir: &Path) -> Result<PathBuf> {
    if !task_dir.is_absolute() {
        return Err(IsolationError::UnsafePath {
            path: task_dir.to_path_buf(),
            reason: "task dir must be absolute".into(),
        });
    }
    let meta = fs::symlink_metadata(task_dir).map_err(|e| io_err("lstat", task_dir, e))?;
    if !meta.is_dir() {
        return Err(IsolationError::UnsafePath {
            path: task_dir.to_path_buf(),
            reason: "task dir is not a directory (symlink?)".into(),
        });
    }
    let root = fs::canonicalize(task_dir).map_err(|e| io_err("canonicalize", task_dir, e))?;
    if root.components().count() < 3 {
        return Err(IsolationError::UnsafePath {
            path: root,
            reason: "refusing / or a top-level directory as task dir".into(),
        });
    }
    Ok(root)
}

/// The destination as a relative path with only normal components.
fn relative_inside(dest: &Path) -> Result<PathBuf> {
    let mut rel = PathBuf::new();
    for c in dest.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => rel.push(n),
            _ => {
                return Err(IsolationError::UnsafePath {
                    path: dest.to_path_buf(),
                    reason: "chroot_env destination must be absolute without . or ..".into(),
                });
            }
        }
    }
    if !dest.is_absolute() || rel.as_os_str().is_empty() {
        return Err(IsolationError::UnsafePath {
            path: dest.to_path_buf(),
            reason: "chroot_env destination must be an absolute path below /".into(),
        });
    }
    Ok(rel)
}

/// `mkdir -p root/rel` that refuses to walk through symlinks or non-directories; new
/// directories get `mode` exactly (umask ignored).
fn ensure_dir_in(root: &Path, rel: &Path, mode: u32) -> Result<PathBuf> {
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        let Component::Normal(n) = c else {
            return Err(IsolationError::UnsafePath {
                path: rel.to_path_buf(),
                reason: "unexpected path component".into(),
            });
        };
        cur.push(n);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(IsolationError::UnsafePath {
                    path: cur,
                    reason: "exists and is not a directory (symlinks are not followed)".into(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(mode)
                    .create(&cur)
                    .map_err(|e| io_err("mkdir", &cur, e))?;
                fs::set_permissions(&cur, fs::Permissions::from_mode(mode))
                    .map_err(|e| io_err("chmod", &cur, e))?;
            }
            Err(e) => return Err(io_err("lstat", &cur, e)),
        }
    }
    Ok(cur)
}

/// Creates an empty regular file to bind a file onto; refuses symlinks.
fn ensure_file(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(IsolationError::UnsafePath {
            path: p.to_path_buf(),
            reason: "bind target exists and is not a regular file".into(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o644)
                .open(p)
                .map(drop)
                .map_err(|e| io_err("create", p, e))
        }
        Err(e) => Err(io_err("lstat", p, e)),
    }
}

/// Read-only bind: MS_BIND alone ignores MS_RDONLY, so bind first, then remount ro. nosuid and
/// nodev are added so host setuid binaries grant nothing to the (unprivileged) task user.
fn bind_readonly(src: &Path, target: &Path) -> Result<()> {
    do_mount(Some(src), target, None, MsFlags::MS_BIND, None)?;
    let flags = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV;
    if let Err(e) = do_mount(None, target, None, flags, None) {
        // A writable view of a host directory must never survive.
        let _ = umount2(target, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW);
        return Err(e);
    }
    Ok(())
}

fn do_mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    mount(source, target, fstype, flags, data).map_err(|e| IsolationError::Mount {
        what: match (source, fstype) {
            (Some(s), Some(t)) => format!("{t} ({})", s.display()),
            (Some(s), None) => format!("bind {}", s.display()),
            (None, _) => format!("remount ({flags:?})"),
        },
        target: target.to_path_buf(),
        source: e,
    })
}
