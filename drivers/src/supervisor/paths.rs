//! Where a supervisor's socket and files live.
//!
//! A `sockaddr_un` path holds at most 107 bytes, and task dirs (`<data_dir>/alloc/<uuid>/<task>`)
//! easily exceed that. Sockets therefore live in a short runtime directory, named by a hash of
//! the task ID and a per-start nonce: `<socket_dir>/<16 hex>.sock`. The directory is 0700 and
//! owned by the agent's user, so tasks running as other users (and exec tasks in a chroot) cannot
//! reach a supervisor. The full path is stored in the task handle, so it never has to be
//! recomputed.
//!
//! The control files of one task ID (launch spec, exit record, supervisor log) live in
//! `<state_dir>/<16 hex of task ID>/`, where `state_dir` is a directory of the agent's own
//! (`<client state dir>/supervisors` in the agent), 0700 like every per-task directory in it,
//! and outside every task's tree: a task can neither rewrite what `alloc exec` and a reattach
//! read back nor plant links there. Builds before this layout kept them in the task's own
//! directory, `<task_dir>/.yurt/<16 hex of task ID>/` ([`legacy_state_dir`]); tasks they
//! started are still reattached through the paths their handles store.

use std::path::{Path, PathBuf};

/// FNV-1a, 64 bit: stable across Rust versions (unlike `DefaultHasher`).
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // Separator so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The default runtime directory for sockets: `/run/yurt/sv` as root, else a per-user one.
pub fn default_socket_dir() -> PathBuf {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return PathBuf::from("/run/yurt/sv");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("yurt-sv"),
        _ => PathBuf::from(format!("/tmp/yurt-{uid}-sv")),
    }
}

/// The default root of the per-task control directories when the agent names none:
/// `/run/yurt/tasks` as root, else a per-user one beside the socket directory.
pub fn default_state_dir() -> PathBuf {
    let sockets = default_socket_dir();
    let name = match sockets.file_name().and_then(|n| n.to_str()) {
        Some("sv") => "tasks".to_string(),
        Some(n) => n.replace("-sv", "-tasks"),
        None => "yurt-tasks".to_string(),
    };
    sockets.with_file_name(name)
}

/// `<socket_dir>/<hash>.sock` for one start of `task_id`.
pub fn socket_path(socket_dir: &Path, task_id: &str, nonce: u64) -> PathBuf {
    let h = fnv1a64(&[task_id.as_bytes(), &nonce.to_le_bytes()]);
    socket_dir.join(format!("{h:016x}.sock"))
}

/// `<state_dir>/<hash of task_id>`: spec, exit record and supervisor log of one task ID.
pub fn task_state_dir(state_dir: &Path, task_id: &str) -> PathBuf {
    let h = fnv1a64(&[task_id.as_bytes()]);
    state_dir.join(format!("{h:016x}"))
}

/// Where builds before the agent-owned state dir put a task's control files: inside the
/// task's own (task-writable) directory. Only handles of such tasks still point there.
pub fn legacy_state_dir(task_dir: &Path, task_id: &str) -> PathBuf {
    let h = fnv1a64(&[task_id.as_bytes()]);
    task_dir.join(".yurt").join(format!("{h:016x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_distinct() {
        let a = socket_path(Path::new("/run/yurt/sv"), "alloc/web/abc", 1);
        let b = socket_path(Path::new("/run/yurt/sv"), "alloc/web/abc", 2);
        assert_ne!(a, b);
        assert_eq!(a.as_os_str().len(), "/run/yurt/sv/".len() + 16 + 5);
        assert_ne!(fnv1a64(&[b"ab", b"c"]), fnv1a64(&[b"a", b"bc"]));
        let t = task_state_dir(Path::new("/d/client/supervisors"), "alloc/web");
        assert_eq!(t.parent(), Some(Path::new("/d/client/supervisors")));
        assert_ne!(default_state_dir(), default_socket_dir());
    }
}
