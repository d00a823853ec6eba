//! `alloc exec` for raw_exec: the command runs on the host like the task itself — the task's
//! environment, user and working directory (read back from its launch spec), and its cgroups
//! when the spec has them.
//!
//! Without cgroups the command cannot join the task's session (a process can only create a
//! session, never enter one), so it leads its own and the session is killed when the task
//! exits (the `kill_when` future); once the cgroup manager fills `cgroup_procs`, the command
//! is placed there from its first instruction and dies with the task's cgroup too.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;

use futures::FutureExt;

use crate::driver::DriverError;
use crate::exec_session::process::{self, ChildStdio, SpawnedExec};
use crate::exec_session::{ExecRequest, ExecSession};
use crate::supervisor::creds::{self, Credentials};
use crate::supervisor::spec::LaunchSpec;
use crate::supervisor_client::task_entry::TaskEntry;

/// What a TTY session gets as `TERM` when the task env has none.
const DEFAULT_TERM: &str = "xterm-256color";

/// Starts `req` for the running task `entry`.
pub fn exec(entry: &Arc<TaskEntry>, req: &ExecRequest) -> Result<ExecSession, DriverError> {
    if entry.exit_result().is_some() {
        return Err(DriverError::TaskNotRunning);
    }
    if req.command.is_empty() {
        return Err(DriverError::Failed("command is not present".into()));
    }
    let spec = entry.launch_spec()?;
    let creds = creds::resolve(&spec.user).map_err(|e| DriverError::Failed(e.to_string()))?;
    let task = entry.clone();
    let kill_when = async move {
        task.wait().await;
    }
    .boxed();
    process::start(req, Some(kill_when), |stdio| {
        spawn(&spec, req, creds.as_ref(), stdio)
    })
}

/// Forks the command with the task's identity and the session's stdio.
fn spawn(
    spec: &LaunchSpec,
    req: &ExecRequest,
    creds: Option<&Credentials>,
    stdio: ChildStdio,
) -> Result<SpawnedExec, DriverError> {
    let cgroup_files = spec
        .cgroup_procs
        .iter()
        .map(|p| {
            OpenOptions::new()
                .write(true)
                .open(p)
                .map_err(|e| DriverError::io(format!("opening {}", p.display()), e))
        })
        .collect::<Result<Vec<File>, _>>()?;
    let cgroup_fds: Vec<i32> = cgroup_files.iter().map(AsRawFd::as_raw_fd).collect();

    let mut cmd = Command::new(&req.command[0]);
    cmd.args(&req.command[1..])
        .env_clear()
        .envs(&spec.env)
        .current_dir(&spec.cwd);
    if let Some(c) = creds {
        // As for the task itself: the task env wins if it set these.
        for (k, v) in [("USER", c.name.as_str()), ("LOGNAME", c.name.as_str())] {
            if !spec.env.contains_key(k) {
                cmd.env(k, v);
            }
        }
        if !spec.env.contains_key("HOME") {
            cmd.env("HOME", &c.home);
        }
    }
    if stdio.tty && !spec.env.contains_key("TERM") {
        cmd.env("TERM", DEFAULT_TERM);
    }
    cmd.envs(&req.env);
    let tty = stdio.tty;
    cmd.stdin(Stdio::from(stdio.stdin))
        .stdout(Stdio::from(stdio.stdout))
        .stderr(Stdio::from(stdio.stderr));
    let ids = creds.map(|c| (c.uid, c.gid, c.groups.clone()));
    // SAFETY: the closure only makes raw syscalls on memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || child_setup(tty, &cgroup_fds, ids.as_ref()));
    }
    let child = cmd.spawn().map_err(|e| {
        DriverError::Failed(format!(
            "failed to exec into task: {:?}: {e}",
            req.command[0]
        ))
    })?;
    drop(cgroup_files);
    let pid = child.id() as i32;
    // The session reaps it through a pidfd; std's Child neither waits nor kills on drop.
    drop(child);
    Ok(SpawnedExec { pid, pgid: pid })
}

/// In the forked child: own session (and controlling TTY), the task's cgroups, its user.
fn child_setup(
    tty: bool,
    cgroup_fds: &[i32],
    ids: Option<&(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
) -> io::Result<()> {
    // SAFETY (all blocks below): plain syscalls on valid fds and live buffers.
    unsafe {
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        if tty && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
        for &fd in cgroup_fds {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
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
