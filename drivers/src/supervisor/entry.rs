//! `supervisor_main`: the process entry point of a per-task supervisor.
//!
//! Call it first thing in `main` (before any thread, runtime or logger exists): it forks, so
//! the process must still be single-threaded. Sequence:
//! 1. close every inherited fd above stderr (the agent's sockets, db, listeners);
//! 2. fork; the parent exits at once (the launcher reaps it), the child calls `setsid`, so the
//!    supervisor is re-parented away from the agent, in its own session and process group, and
//!    survives the agent's death (SIGKILL, systemd `KillMode=process`);
//! 3. load the spec, become a child subreaper (the task's orphans come back to us: reaped, and
//!    killable on stop), resolve the user, open the rotators, block SIGCHLD into a signalfd,
//!    bind the socket, spawn the task;
//! 4. write one [`Ready`] line to stdout (a pipe the launcher reads), point stdout at /dev/null;
//!    when the line cannot be written (the launcher gave up or the agent died meanwhile),
//!    nobody knows of the task: it is killed and the supervisor exits;
//! 5. run the poll loop until `shutdown` or the linger time.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, FromRawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{ForkResult, fork, setsid};

use super::child::spawn_task;
use super::creds;
use super::error::SupervisorError;
use super::event_loop::{Supervisor, TaskInfo, unix_ms};
use super::oom;
use super::private_fs;
use super::proctree::send_signal;
use super::protocol::Ready;
use super::spec::LaunchSpec;
use crate::logrotate::FileRotator;

/// Runs a supervisor for the spec at `spec_path`; never returns.
pub fn supervisor_main(spec_path: &OsStr) -> ! {
    close_inherited_fds();
    // SAFETY: called before any other thread exists (the documented contract of this entry).
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => {
            // SAFETY: _exit skips atexit handlers and stdio flushing, right for a forked parent.
            unsafe { libc::_exit(0) }
        }
        Ok(ForkResult::Child) => {}
        Err(e) => {
            report_failure(format!("fork: {e}"), 0);
            std::process::exit(1)
        }
    }
    let _ = setsid();
    let _ = std::env::set_current_dir("/");
    let code = match start(Path::new(spec_path)) {
        Ok((supervisor, socket)) => {
            supervisor.run();
            let _ = std::fs::remove_file(socket);
            0
        }
        Err(e) => {
            eprintln!("yurt-supervisor: {e}");
            report_failure(e.to_string(), std::process::id());
            1
        }
    };
    std::process::exit(code)
}

/// Removes the socket file when start fails after binding it.
struct SocketGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn start(spec_path: &Path) -> Result<(Supervisor, PathBuf), SupervisorError> {
    let spec = LaunchSpec::load(spec_path)?;
    // SAFETY: setting a signal disposition to SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| SupervisorError::errno("becoming a child subreaper", e))?;
    let creds = creds::resolve(&spec.user)?;

    let open = |base: &str| {
        FileRotator::open(
            &spec.logs.dir,
            base,
            spec.logs.max_files,
            spec.logs.max_file_size_bytes,
        )
        .map_err(|e| SupervisorError::io(format!("opening log {base}"), e))
    };
    let out_rot = open(&spec.logs.stdout_base)?;
    let err_rot = open(&spec.logs.stderr_base)?;

    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .map_err(|e| SupervisorError::errno("blocking SIGCHLD", e))?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| SupervisorError::errno("creating signalfd", e))?;

    let listener = bind(&spec.socket_path)?;
    let mut guard = SocketGuard {
        path: spec.socket_path.clone(),
        armed: true,
    };

    let oom_baseline = spec
        .oom_events
        .as_deref()
        .and_then(|p| oom::oom_kills(p).ok());
    let task = spawn_task(&spec, creds.as_ref())?;
    let (pid, task_pid, signal_group) = (task.pid, task.task_pid, task.signal_group);
    let started_at_ms = unix_ms();
    let info = TaskInfo {
        task_id: spec.task_id.clone(),
        pid: task.pid,
        task_pid: task.task_pid,
        signal_group: task.signal_group,
        started_at_ms,
        exit_record_path: spec.exit_record_path.clone(),
        oom_events: spec.oom_events.clone(),
        oom_baseline,
        linger: Duration::from_millis(spec.linger_ms),
    };
    let supervisor = Supervisor::new(
        info,
        listener,
        sigfd,
        (task.stdout, out_rot),
        (task.stderr, err_rot),
    )
    .map_err(|e| SupervisorError::io("setting up the poll loop", e))?;
    if let Err(e) = report(&Ready {
        ok: true,
        error: None,
        supervisor_pid: std::process::id(),
        task_pid,
        started_at_ms,
    }) {
        // Nobody reads the ready line any more: the agent gave up on this launch (it kills
        // what it finds of it) or died before it could record the task. Either way nobody
        // would ever stop this task, so it does not run.
        let target = if signal_group {
            -(pid as i32)
        } else {
            pid as i32
        };
        if let Err(k) = send_signal(target, libc::SIGKILL) {
            eprintln!("yurt-supervisor: killing the unreported task {pid}: {k}");
        }
        return Err(SupervisorError::io("reporting the started task", e));
    }
    guard.armed = false;
    Ok((supervisor, spec.socket_path))
}

fn bind(path: &Path) -> Result<UnixListener, SupervisorError> {
    if let Some(dir) = path.parent() {
        // The agent made it so already; a supervisor started by hand gets the same.
        private_fs::private_dir(dir)
            .map_err(|e| SupervisorError::io(format!("making {} private", dir.display()), e))?;
    }
    // A leftover file from a dead supervisor would make bind fail with EADDRINUSE.
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)
        .map_err(|e| SupervisorError::io(format!("binding {}", path.display()), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| SupervisorError::io(format!("chmod {}", path.display()), e))?;
    Ok(listener)
}

/// Reports a start that failed; a launcher that is no longer listening is noted in our log.
fn report_failure(error: String, supervisor_pid: u32) {
    let failed = Ready {
        ok: false,
        error: Some(error),
        supervisor_pid,
        task_pid: 0,
        started_at_ms: 0,
    };
    if let Err(e) = report(&failed) {
        eprintln!("yurt-supervisor: reporting the failure: {e}");
    }
}

/// Writes the ready line to stdout (the launcher's pipe), then detaches stdout from it. Fails
/// when the line could not be written (nobody reads the pipe any more).
fn report(ready: &Ready) -> std::io::Result<()> {
    // SAFETY: fd 1 stays open for the process lifetime; ManuallyDrop keeps File from closing it.
    let mut out = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
    let written = serde_json::to_vec(ready)
        .map_err(std::io::Error::other)
        .and_then(|mut line| {
            line.push(b'\n');
            out.write_all(&line)
        });
    // Point stdout at /dev/null: the launcher sees EOF, and a stray print cannot block on a
    // pipe nobody reads.
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(null.as_fd());
    }
    written
}

/// Closes every fd above 2 the agent may have leaked into us.
fn close_inherited_fds() {
    // SAFETY: close_range only closes descriptors; nothing in this process uses them yet.
    let rc = unsafe { libc::close_range(3, libc::c_uint::MAX, 0) };
    if rc == 0 {
        return;
    }
    // Kernels before 5.9: close what /proc lists (collect first; read_dir holds an fd).
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|&fd| fd > 2)
                .collect()
        })
        .unwrap_or_default();
    for fd in fds {
        // SAFETY: closing an fd number; the one read_dir used is already closed (EBADF).
        unsafe { libc::close(fd) };
    }
}
