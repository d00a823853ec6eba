//! Entering a running isolated task (`alloc exec` for the `exec` driver).
//!
//! # Process structure
//!
//! ```text
//! caller ── fork ──▶ shim ── setns(ipc, uts, net, pid, mnt of the task) ── fork ──▶ command
//! waitpid(shim)      forwards signals,                                         in the task's
//!                    exits like the command                                    PID namespace
//! ```
//!
//! A PID namespace only applies to children of the process that joins it, hence the shim. The
//! command then: joins the task's cgroups, takes the task's root (`/proc/<task>/root`, which
//! also covers tasks set up with MS_MOVE + chroot), its own session (with the given TTY as
//! controlling terminal), the task user and capability set, and execs `argv` (a bare name is
//! searched in the `PATH` of `env` inside the task root). Namespaces the task shares with the
//! caller (`pid_mode = "host"`) are not re-entered.
//!
//! The command has `PR_SET_PDEATHSIG=SIGKILL` towards the shim, so SIGKILL to the shim ends
//! it; its process group ([`EnteredChild::command_pid`]) holds its children. When the task's
//! PID 1 dies the kernel kills everything in the namespace, exec sessions included.
//!
//! Like [`super::launch`], everything is prepared before `fork`; the children only make raw
//! system calls.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::Pid;

use super::caps::CapSet;
use super::fork::handshake::Handshake;
use super::fork::identity::{
    Identity, install_stdio, prepare_exec, reset_signals_and_die_with_shim,
};
use super::fork::prepare::{CStringArray, cstr, cstr_path, dup_high};
use super::fork::shim::ShimFds;
use super::fork::stage::{ErrorChannel, Stage};
use super::user::resolve_user;
use super::{IsolationError, Result};

/// Namespaces joined, in order (mnt last: it also resets root and cwd).
const NAMESPACES: [&str; 5] = ["ipc", "uts", "net", "pid", "mnt"];
/// `PATH` used to find a bare command when `env` has none (Nomad's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to run inside a running isolated task, and as whom.
#[derive(Debug, Clone)]
pub struct EnterSpec<'a> {
    /// The task's host pid ([`super::IsolatedChild::task_pid`]).
    pub task_pid: Pid,
    /// argv; `argv[0]` is the program (absolute inside the root, or looked up in `PATH`).
    pub argv: Vec<String>,
    /// The complete environment (the task's plus the session's additions).
    pub env: Vec<(String, String)>,
    /// Working directory inside the task root.
    pub work_dir: PathBuf,
    /// Host user name to run as (empty: `nobody`, like the task).
    pub user: String,
    /// Capabilities, normally the task's own set.
    pub capabilities: CapSet,
    /// The task's `cgroup.procs` files.
    pub cgroup_procs: Vec<PathBuf>,
    /// stdin for the command (borrowed; the caller keeps ownership).
    pub stdin: BorrowedFd<'a>,
    /// stdout for the command.
    pub stdout: BorrowedFd<'a>,
    /// stderr for the command.
    pub stderr: BorrowedFd<'a>,
    /// stdin is a terminal to make the controlling TTY of the command's new session.
    pub tty: bool,
}

/// A command started inside a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnteredChild {
    /// The shim: the caller's child. Wait for it to get the command's status.
    pub pid: Pid,
    /// The command's host pid, also its process group (kill `-command_pid` for its children).
    pub command_pid: Pid,
}

/// What the command needs besides the shared fork chain, prepared before fork.
struct CommandCtx {
    ns_fds: Vec<RawFd>,
    root_fd: RawFd,
    cgroup_fds: Vec<RawFd>,
    /// Where `argv[0]` may be, tried in order.
    candidates: Vec<CString>,
    argv: CStringArray,
    envp: CStringArray,
    work_dir: CString,
    identity: Identity,
    stdio: [RawFd; 3],
    tty: bool,
}

/// Starts `spec` inside the task; returns once the command exec'd (or failed to).
pub fn enter(spec: &EnterSpec<'_>) -> Result<EnteredChild> {
    let Some(program) = spec.argv.first() else {
        return Err(IsolationError::InvalidSpec("empty command".into()));
    };
    if !spec.work_dir.is_absolute() {
        return Err(IsolationError::InvalidSpec(format!(
            "work_dir must be absolute: {}",
            spec.work_dir.display()
        )));
    }
    let user = resolve_user(&spec.user)?;
    let proc_dir = PathBuf::from(format!("/proc/{}", spec.task_pid));
    let mut ns_files = Vec::new();
    for ns in NAMESPACES {
        let theirs = proc_dir.join("ns").join(ns);
        let ours = Path::new("/proc/self/ns").join(ns);
        let same = match (std::fs::metadata(&theirs), std::fs::metadata(&ours)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            (Err(e), _) => return Err(super::io_err("stat", theirs, e)),
            (_, Err(_)) => false,
        };
        if !same {
            let f = std::fs::File::open(&theirs).map_err(|e| super::io_err("open", theirs, e))?;
            ns_files.push(OwnedFd::from(f));
        }
    }
    let root = proc_dir.join("root");
    let root_file = std::fs::File::open(&root).map_err(|e| super::io_err("open", root, e))?;
    let cgroup_files = spec
        .cgroup_procs
        .iter()
        .map(|p| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .map_err(|e| super::io_err("open", p, e))
        })
        .collect::<Result<Vec<_>>>()?;

    let candidates = if program.contains('/') {
        vec![cstr(program)?]
    } else {
        let path = spec
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| cstr(&format!("{}/{program}", d.trim_end_matches('/'))))
            .collect::<Result<Vec<_>>>()?
    };
    let stdio = [
        dup_high(spec.stdin)?,
        dup_high(spec.stdout)?,
        dup_high(spec.stderr)?,
    ];
    let (handshake, ends) = Handshake::new()?;
    let ctx = CommandCtx {
        ns_fds: ns_files.iter().map(AsRawFd::as_raw_fd).collect(),
        root_fd: root_file.as_raw_fd(),
        cgroup_fds: cgroup_files.iter().map(AsRawFd::as_raw_fd).collect(),
        candidates,
        argv: CStringArray::argv(&spec.argv)?,
        envp: CStringArray::envp(&spec.env)?,
        work_dir: cstr_path(&spec.work_dir)?,
        identity: Identity::new(&user, spec.capabilities),
        stdio: [
            stdio[0].as_raw_fd(),
            stdio[1].as_raw_fd(),
            stdio[2].as_raw_fd(),
        ],
        tty: spec.tty,
    };
    let mut keep: Vec<RawFd> = ctx
        .ns_fds
        .iter()
        .chain(&ctx.cgroup_fds)
        .chain(&ctx.stdio)
        .copied()
        .chain([ctx.root_fd, ends.pid_w(), ends.err().0])
        .collect();
    keep.sort_unstable();
    let fds = ShimFds {
        keep: &keep,
        pid_w: ends.pid_w(),
        err: ends.err(),
        child_only: &ctx.stdio,
    };

    // SAFETY: the shim only runs async-signal-safe system calls on memory prepared above.
    let shim = unsafe { handshake.fork_shim(ends, fds, &ctx, join_namespaces, command_main)? };
    drop(stdio);
    let command_pid = shim
        .child_pid("shim exited before starting the command")
        .map_err(|e| shim.abort(e))?;
    if let Some(err) = shim.setup_error() {
        return Err(shim.abort(err));
    }
    drop((ns_files, root_file, cgroup_files, ctx));
    Ok(EnteredChild {
        pid: shim.pid(),
        command_pid: Pid::from_raw(command_pid),
    })
}

// ---- after fork: raw system calls only -----------------------------------------------------

/// The shim's namespace step: the task's namespaces (a PID namespace only applies to the
/// children of the joiner, hence the shim).
fn join_namespaces(ctx: &CommandCtx, err: ErrorChannel) {
    for &fd in &ctx.ns_fds {
        // SAFETY: setns is async-signal-safe.
        err.check(unsafe { libc::setns(fd, 0) } as libc::c_long, Stage::Setns);
    }
}

fn command_main(ctx: &CommandCtx, err: ErrorChannel) -> ! {
    // SAFETY (whole function): only async-signal-safe system calls on pre-allocated data.
    unsafe {
        reset_signals_and_die_with_shim();
        for &fd in &ctx.cgroup_fds {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                err.fail(Stage::Cgroup);
            }
        }
        err.check(libc::fchdir(ctx.root_fd) as libc::c_long, Stage::Chroot);
        err.check(libc::chroot(c".".as_ptr()) as libc::c_long, Stage::Chroot);
        err.check(libc::setsid() as libc::c_long, Stage::Setsid);
        install_stdio(ctx.stdio, err);
        if ctx.tty {
            err.check(
                libc::ioctl(0, libc::TIOCSCTTY, 0) as libc::c_long,
                Stage::ControllingTty,
            );
        }
        ctx.identity.assume(err);
        err.check(
            libc::chdir(ctx.work_dir.as_ptr()) as libc::c_long,
            Stage::Chdir,
        );
        prepare_exec();
        for c in &ctx.candidates {
            libc::execve(c.as_ptr(), ctx.argv.as_ptr(), ctx.envp.as_ptr());
            if Errno::last() != Errno::ENOENT && Errno::last() != Errno::ENOTDIR {
                break;
            }
        }
        err.fail(Stage::Exec)
    }
}

#[cfg(test)]
#[path = "enter_tests.rs"]
mod tests;
