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
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::Pid;

use super::caps::{CapSet, last_cap};
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

#[derive(Debug, Clone, Copy)]
#[repr(u32)]
enum Stage {
    Setns,
    Fork,
    Cgroup,
    Chroot,
    Setsid,
    Stdio,
    ControllingTty,
    CapBounding,
    KeepCaps,
    SetGroups,
    SetGid,
    SetUid,
    CapSet,
    Ambient,
    ParentDeathSignal,
    Chdir,
    Exec,
}

const STAGES: [&str; 17] = [
    "setns",
    "fork",
    "join cgroup",
    "chroot into task root",
    "setsid",
    "dup2 stdio",
    "TIOCSCTTY",
    "drop bounding capabilities",
    "PR_SET_KEEPCAPS",
    "setgroups",
    "setresgid",
    "setresuid",
    "capset",
    "raise ambient capabilities",
    "PR_SET_PDEATHSIG",
    "chdir work_dir",
    "execve",
];

/// Everything the children need, prepared before fork.
struct Ctx {
    ns_fds: Vec<RawFd>,
    root_fd: RawFd,
    cgroup_fds: Vec<RawFd>,
    candidates: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    work_dir: CString,
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
    caps: u64,
    last_cap: u32,
    stdio: [RawFd; 3],
    tty: bool,
    pid_w: RawFd,
    err_w: RawFd,
    /// Every fd above, sorted: the shim closes all others it inherited from the caller.
    keep: Vec<RawFd>,
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
    let argv = spec
        .argv
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<Vec<_>>>()?;
    let envp = spec
        .env
        .iter()
        .map(|(k, v)| {
            if k.is_empty() || k.contains('=') {
                return Err(IsolationError::InvalidSpec(format!("bad env name {k:?}")));
            }
            cstr(&format!("{k}={v}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let stdio = [
        dup_high(spec.stdin)?,
        dup_high(spec.stdout)?,
        dup_high(spec.stderr)?,
    ];
    let (pid_r, pid_w) = pipe()?;
    let (err_r, err_w) = pipe()?;

    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    let mut keep: Vec<RawFd> = ns_files
        .iter()
        .map(AsRawFd::as_raw_fd)
        .chain([root_file.as_raw_fd(), pid_w.as_raw_fd(), err_w.as_raw_fd()])
        .chain(cgroup_files.iter().map(AsRawFd::as_raw_fd))
        .chain(stdio.iter().map(AsRawFd::as_raw_fd))
        .collect();
    keep.sort_unstable();
    let ctx = Ctx {
        ns_fds: ns_files.iter().map(AsRawFd::as_raw_fd).collect(),
        root_fd: root_file.as_raw_fd(),
        cgroup_fds: cgroup_files.iter().map(AsRawFd::as_raw_fd).collect(),
        candidates,
        argv_ptrs,
        envp_ptrs,
        work_dir: CString::new(spec.work_dir.as_os_str().as_bytes())
            .map_err(|_| IsolationError::InvalidSpec("NUL byte in work_dir".into()))?,
        uid: user.uid,
        gid: user.gid,
        groups: user.groups.clone(),
        caps: spec.capabilities.0,
        last_cap: last_cap(),
        stdio: [
            stdio[0].as_raw_fd(),
            stdio[1].as_raw_fd(),
            stdio[2].as_raw_fd(),
        ],
        tty: spec.tty,
        pid_w: pid_w.as_raw_fd(),
        err_w: err_w.as_raw_fd(),
        keep,
    };

    // SAFETY: the child only runs shim_main: raw system calls on memory prepared above.
    let shim = unsafe { libc::fork() };
    if shim < 0 {
        return Err(sys("fork", Errno::last()));
    }
    if shim == 0 {
        shim_main(&ctx);
    }
    let shim = Pid::from_raw(shim);
    drop((pid_w, err_w, stdio));
    let fail = |e: IsolationError| -> Result<EnteredChild> {
        let _ = nix::sys::signal::kill(shim, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(shim, None);
        Err(e)
    };
    let mut buf = [0u8; 4];
    if read_full(pid_r.as_raw_fd(), &mut buf) != 4 {
        let err = read_child_error(err_r.as_raw_fd())
            .unwrap_or_else(|| sys("shim exited before starting the command", Errno::ECHILD));
        return fail(err);
    }
    if let Some(err) = read_child_error(err_r.as_raw_fd()) {
        return fail(err);
    }
    drop((ns_files, root_file, cgroup_files, argv, envp, ctx));
    Ok(EnteredChild {
        pid: shim,
        command_pid: Pid::from_raw(i32::from_ne_bytes(buf)),
    })
}

fn sys(call: &'static str, source: Errno) -> IsolationError {
    IsolationError::Sys { call, source }
}

fn cstr(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| IsolationError::InvalidSpec(format!("NUL byte in {s:?}")))
}

/// A close-on-exec copy ≥ 3, so dup2 onto 0..2 in the child never clobbers another source.
fn dup_high(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    // SAFETY: fcntl on a valid fd; the result is a new fd we own.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if n < 0 {
        return Err(sys("fcntl(F_DUPFD_CLOEXEC)", Errno::last()));
    }
    // SAFETY: n is fresh and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| sys("pipe2", e))
}

fn read_full(fd: RawFd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reading into the unfilled tail of buf.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n < 0 && Errno::last() == Errno::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    got
}

/// Blocks until the error pipe closes (exec succeeded) or carries `(stage, errno)`.
fn read_child_error(fd: RawFd) -> Option<IsolationError> {
    let mut buf = [0u8; 8];
    if read_full(fd, &mut buf) != 8 {
        return None;
    }
    let stage = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let errno = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
    Some(IsolationError::ChildSetup {
        stage: STAGES.get(stage).copied().unwrap_or("unknown stage"),
        source: Errno::from_raw(errno),
    })
}

// ---- after fork: raw system calls only -----------------------------------------------------

fn die(ctx: &Ctx, stage: Stage) -> ! {
    let errno = Errno::last_raw();
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&(stage as u32).to_ne_bytes());
    msg[4..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: write/_exit are async-signal-safe; msg lives on the stack.
    unsafe {
        libc::write(ctx.err_w, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

fn check(ctx: &Ctx, r: libc::c_long, stage: Stage) {
    if r < 0 {
        die(ctx, stage);
    }
}

fn shim_main(ctx: &Ctx) -> ! {
    // SAFETY (whole function): only async-signal-safe system calls on pre-allocated data.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        // The shim is a fork of the caller that never execs: without this it would hold the
        // caller's descriptors (other sessions' pipe ends, listening sockets) for its whole
        // life, and a command reading stdin would never see EOF.
        super::shim::close_fds_except(&ctx.keep);
        for &fd in &ctx.ns_fds {
            check(ctx, libc::setns(fd, 0) as libc::c_long, Stage::Setns);
        }
        let cmd = libc::fork();
        if cmd < 0 {
            die(ctx, Stage::Fork);
        }
        if cmd == 0 {
            command_main(ctx);
        }
        libc::close(ctx.err_w);
        for fd in ctx.stdio {
            libc::close(fd);
        }
        let bytes = cmd.to_ne_bytes();
        libc::write(ctx.pid_w, bytes.as_ptr().cast(), 4);
        libc::close(ctx.pid_w);

        super::shim::relay_until_exit(cmd)
    }
}

fn command_main(ctx: &Ctx) -> ! {
    // SAFETY (whole function): only async-signal-safe system calls on pre-allocated data.
    unsafe {
        for sig in 1..65 {
            libc::signal(sig, libc::SIG_DFL);
        }
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::close(ctx.pid_w);
        for &fd in &ctx.cgroup_fds {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                die(ctx, Stage::Cgroup);
            }
        }
        check(
            ctx,
            libc::fchdir(ctx.root_fd) as libc::c_long,
            Stage::Chroot,
        );
        check(
            ctx,
            libc::chroot(c".".as_ptr()) as libc::c_long,
            Stage::Chroot,
        );
        check(ctx, libc::setsid() as libc::c_long, Stage::Setsid);
        for (target, fd) in ctx.stdio.iter().enumerate() {
            check(
                ctx,
                libc::dup2(*fd, target as RawFd) as libc::c_long,
                Stage::Stdio,
            );
        }
        if ctx.tty {
            check(
                ctx,
                libc::ioctl(0, libc::TIOCSCTTY, 0) as libc::c_long,
                Stage::ControllingTty,
            );
        }
        for cap in 0..=ctx.last_cap {
            if ctx.caps & (1u64 << cap) == 0 {
                let r = libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
                if r < 0 && Errno::last() != Errno::EINVAL {
                    die(ctx, Stage::CapBounding);
                }
            }
        }
        let r = libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0);
        check(ctx, r as libc::c_long, Stage::KeepCaps);
        let r = libc::syscall(libc::SYS_setgroups, ctx.groups.len(), ctx.groups.as_ptr());
        check(ctx, r, Stage::SetGroups);
        let r = libc::syscall(libc::SYS_setresgid, ctx.gid, ctx.gid, ctx.gid);
        check(ctx, r, Stage::SetGid);
        let r = libc::syscall(libc::SYS_setresuid, ctx.uid, ctx.uid, ctx.uid);
        check(ctx, r, Stage::SetUid);
        let r = super::shim::capset_all(ctx.caps);
        check(ctx, r, Stage::CapSet);
        if ctx.uid != 0 {
            for cap in 0..=ctx.last_cap {
                if ctx.caps & (1u64 << cap) != 0 {
                    let r = libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                        cap as libc::c_ulong,
                        0,
                        0,
                    );
                    if r < 0 && Errno::last() != Errno::EINVAL {
                        die(ctx, Stage::Ambient);
                    }
                }
            }
        }
        // Changing credentials cleared the parent-death signal: set it again.
        let r = libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        check(ctx, r as libc::c_long, Stage::ParentDeathSignal);
        check(
            ctx,
            libc::chdir(ctx.work_dir.as_ptr()) as libc::c_long,
            Stage::Chdir,
        );
        // Nothing else of the caller's may leak into the command (err_w closes on exec).
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        for c in &ctx.candidates {
            libc::execve(c.as_ptr(), ctx.argv_ptrs.as_ptr(), ctx.envp_ptrs.as_ptr());
            if Errno::last() != Errno::ENOENT && Errno::last() != Errno::ENOTDIR {
                break;
            }
        }
        die(ctx, Stage::Exec)
    }
}

#[cfg(test)]
#[path = "enter_tests.rs"]
mod tests;
