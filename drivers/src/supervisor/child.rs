//! Starting the task: its own session, its cgroups, its user, its pipes.
//!
//! The child does its setup between fork and exec (`pre_exec`), in this order:
//! 1. `setsid`: the task leads a new session and process group, so the whole group can be
//!    signalled and no terminal signal of ours reaches it;
//! 2. writes `0` (itself) into every `cgroup.procs` file of the spec, while still privileged,
//!    so the task is accounted from its first instruction (the supervisor opened the files
//!    before forking; the child only writes, which is async-signal-safe);
//! 3. writes `oom_score_adj`;
//! 4. drops to the task user: `setgroups`, `setgid`, `setuid`.
//!
//! Before those, every signal disposition is reset to the default: an ignored signal survives
//! exec, and the supervisor ignores SIGHUP (and may itself have been started with SIGINT and
//! SIGQUIT ignored, as a background job is), so the task would shrug off a `kill_signal` it
//! never chose to ignore. std's `Command` resets the signal mask, so the task does not inherit
//! the supervisor's blocked SIGCHLD either.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use super::creds::Credentials;
use super::error::SupervisorError;
use super::spec::LaunchSpec;

/// A started task: its PID and the read ends of its output pipes.
#[derive(Debug)]
pub struct SpawnedTask {
    /// The process the supervisor reaps and signals: the leader (= its process group and
    /// session ID), or for an isolated task the shim that mirrors it.
    pub pid: u32,
    /// The task's own PID as the host sees it (equals `pid` for a host task).
    pub task_pid: u32,
    /// Whether signals go to the process group `-pid` (host task) or to `pid` alone (the shim,
    /// which is no group leader and forwards what it receives).
    pub signal_group: bool,
    /// Read end of the task's stdout.
    pub stdout: OwnedFd,
    /// Read end of the task's stderr.
    pub stderr: OwnedFd,
}

/// Forks and execs the task as the spec says (isolated when the spec asks for it).
pub fn spawn_task(
    spec: &LaunchSpec,
    creds: Option<&Credentials>,
) -> Result<SpawnedTask, SupervisorError> {
    if let Some(iso) = &spec.isolation {
        return super::isolated::spawn(spec, iso, creds);
    }
    let cgroup_files = open_cgroup_files(spec)?;
    let cgroup_fds: Vec<i32> = cgroup_files.iter().map(AsRawFd::as_raw_fd).collect();
    let oom_adj = spec.oom_score_adj.map(|v| v.to_string().into_bytes());

    let mut cmd = Command::new(&spec.command);
    cmd.args(&spec.args)
        .env_clear()
        .envs(&spec.env)
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in user_env(spec, creds) {
        cmd.env(k, v);
    }
    let ids = creds.map(|c| (c.uid, c.gid, c.groups.clone()));
    // SAFETY: the closure only makes raw syscalls on memory prepared before the fork; it does
    // not allocate, lock or touch any state another thread could hold.
    unsafe {
        cmd.pre_exec(move || child_setup(&cgroup_fds, oom_adj.as_deref(), ids.as_ref()));
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| SupervisorError::io(format!("starting {}", spec.command.display()), e))?;
    drop(cgroup_files);
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(SupervisorError::Protocol("task pipes missing".into()));
    };
    // The Child is dropped without waiting: the supervisor reaps with waitpid(-1).
    Ok(SpawnedTask {
        pid: child.id(),
        task_pid: child.id(),
        signal_group: true,
        stdout: OwnedFd::from(out),
        stderr: OwnedFd::from(err),
    })
}

/// `USER`, `LOGNAME` and `HOME` of the configured user, as Nomad exports them; variables the
/// task env already sets win.
pub fn user_env(spec: &LaunchSpec, creds: Option<&Credentials>) -> Vec<(String, String)> {
    let Some(c) = creds else {
        return Vec::new();
    };
    let home = c.home.to_string_lossy().into_owned();
    [
        ("USER", c.name.clone()),
        ("LOGNAME", c.name.clone()),
        ("HOME", home),
    ]
    .into_iter()
    .filter(|(k, _)| !spec.env.contains_key(*k))
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn open_cgroup_files(spec: &LaunchSpec) -> Result<Vec<File>, SupervisorError> {
    spec.cgroup_procs
        .iter()
        .map(|p| {
            OpenOptions::new()
                .write(true)
                .open(p)
                .map_err(|e| SupervisorError::io(format!("opening {}", p.display()), e))
        })
        .collect()
}

/// Runs in the forked child before exec; see the module comment for the order.
fn child_setup(
    cgroup_fds: &[i32],
    oom_adj: Option<&[u8]>,
    ids: Option<&(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
) -> io::Result<()> {
    // SAFETY (all blocks below): plain syscalls on valid fds and pointers into live buffers.
    unsafe {
        // SIGKILL, SIGSTOP and the C library's reserved real-time signals refuse (EINVAL).
        for sig in 1..65 {
            libc::signal(sig, libc::SIG_DFL);
        }
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        for &fd in cgroup_fds {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(io::Error::last_os_error());
            }
        }
        if let Some(v) = oom_adj {
            let fd = libc::open(
                c"/proc/self/oom_score_adj".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = libc::write(fd, v.as_ptr().cast(), v.len());
            libc::close(fd);
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if let Some((uid, gid, groups)) = ids
            && (libc::setgroups(groups.len(), groups.as_ptr()) < 0
                || libc::setgid(*gid) < 0
                || libc::setuid(*uid) < 0)
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
