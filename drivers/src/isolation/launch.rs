//! Starting a task in new namespaces inside a prepared chroot.
//!
//! # Process structure
//!
//! ```text
//! caller (supervisor) ── fork ──▶ shim ── unshare(NEWNS|NEWUTS[|NEWPID][|NEWIPC]) ── fork ──▶ task
//! waitpid(shim)                   forwards signals,                                    PID 1 of the
//!                                 exits like the task                                  new PID ns
//! ```
//!
//! * The **shim** is the returned [`IsolatedChild::pid`]: the caller `waitpid`s it. It waits
//!   for the task and exits with the task's exit code, or re-raises the signal that killed the
//!   task (core dumps suppressed), so the caller sees the task's own wait status.
//! * **Signals**: every catchable signal sent to the shim (SIGTERM, SIGINT, SIGHUP, SIGUSR1, ...)
//!   is forwarded to the task. Because the task is PID 1 of its PID namespace, the kernel only
//!   delivers signals for which the task installed a handler (exactly as for a runc/Nomad
//!   container init); SIGKILL is always effective. SIGKILL to the shim (which cannot be caught)
//!   kills the task too: the task has `PR_SET_PDEATHSIG=SIGKILL`, and when PID 1 dies the kernel
//!   kills everything else in its PID namespace.
//! * **Cgroups**: the task waits on a socket until the caller has written its host pid into
//!   every [`IsolatedSpec::cgroup_procs`] file, so everything it runs is accounted. The shim
//!   stays in the caller's cgroup, so `kill_all` on the task cgroup never kills the shim
//!   directly: the shim then reports the task's SIGKILL.
//! * **Parent death**: with [`IsolatedSpec::die_with_parent`] (default) the shim gets
//!   `PR_SET_PDEATHSIG=SIGKILL`, so the task dies with the supervisor as Nomad's exec tasks die
//!   with their executor. The kernel ties this to the forking *thread*.
//! * **Async-signal-safety**: everything (paths, argv, env, groups, capability masks) is
//!   allocated before `fork`; the children only make raw system calls.
//!
//! In the task, before `execve`: `setsid`, `oom_score_adj`, `/` made rprivate, the root
//! bind-mounted onto itself, `/proc` (new instance for the new PID namespace) and a read-only
//! `/sys` mounted, `/proc/kcore` masked and `/proc/{sys,sysrq-trigger,irq,bus}` made
//! read-only, `pivot_root` (or MS_MOVE + chroot), hostname, capability bounding set reduced,
//! groups/gid/uid switched keeping the capability set (permitted, effective, inheritable and
//! ambient for non-root users), parent-death signal, `chdir(work_dir)`, stdio, signal
//! dispositions and mask reset.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::Pid;

use super::caps::{CapSet, last_cap};
use super::user::resolve_user;
use super::{IsolationError, Result};

/// Whether a namespace is new for the task (`private`) or shared with the host (`host`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceMode {
    /// A new namespace (Nomad's default).
    #[default]
    Private,
    /// The host's namespace.
    Host,
}

impl NamespaceMode {
    /// Parses Nomad's `pid_mode`/`ipc_mode` values (`""` means `default`).
    pub fn parse(value: &str, default: NamespaceMode) -> Result<NamespaceMode> {
        match value {
            "" => Ok(default),
            "private" => Ok(NamespaceMode::Private),
            "host" => Ok(NamespaceMode::Host),
            other => Err(IsolationError::InvalidSpec(format!(
                "namespace mode must be \"private\" or \"host\", got {other:?}"
            ))),
        }
    }
}

/// Everything needed to start one isolated task.
#[derive(Debug, Clone)]
pub struct IsolatedSpec<'a> {
    /// The prepared chroot (the task dir after [`super::chroot::build`]).
    pub root: PathBuf,
    /// Absolute path of the program *inside* the root (the driver resolves it beforehand).
    pub program: PathBuf,
    /// argv; empty means `[program]`.
    pub args: Vec<String>,
    /// The complete environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// Working directory inside the root (Nomad's default is `/`).
    pub work_dir: PathBuf,
    /// Host user name to run as (empty: `nobody`).
    pub user: String,
    /// Hostname in the new UTS namespace (None keeps the host's name).
    pub hostname: Option<String>,
    /// PID namespace mode; `Private` makes the task PID 1.
    pub pid_mode: NamespaceMode,
    /// IPC namespace mode.
    pub ipc_mode: NamespaceMode,
    /// The task's capabilities (see [`super::caps::task_capabilities`]).
    pub capabilities: CapSet,
    /// stdin for the task (None: `/dev/null`). Borrowed; the caller keeps ownership.
    pub stdin: Option<BorrowedFd<'a>>,
    /// stdout for the task (None: `/dev/null`).
    pub stdout: Option<BorrowedFd<'a>>,
    /// stderr for the task (None: `/dev/null`).
    pub stderr: Option<BorrowedFd<'a>>,
    /// `cgroup.procs` files the task pid is written into before it is released.
    pub cgroup_procs: Vec<PathBuf>,
    /// The task's `oom_score_adj` (Nomad sets 0 explicitly).
    pub oom_score_adj: i32,
    /// Use MS_MOVE + chroot instead of pivot_root (roots on initramfs cannot be pivoted).
    pub no_pivot_root: bool,
    /// Kill the shim (and so the task) when the calling *thread* exits, like Nomad's exec
    /// tasks die with their executor (`PR_SET_PDEATHSIG`). The kernel ties this to the thread
    /// that forked, so call [`spawn_isolated`] from a thread that outlives the task (the
    /// supervisor's main thread), or set this to false.
    pub die_with_parent: bool,
}

impl<'a> IsolatedSpec<'a> {
    /// A spec with Nomad's defaults: user `nobody`, private PID/IPC, default capabilities,
    /// `/` as work dir, stdio on `/dev/null`, no cgroup.
    pub fn new(root: impl Into<PathBuf>, program: impl Into<PathBuf>) -> IsolatedSpec<'a> {
        IsolatedSpec {
            root: root.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            work_dir: PathBuf::from("/"),
            user: super::user::DEFAULT_USER.to_string(),
            hostname: None,
            pid_mode: NamespaceMode::Private,
            ipc_mode: NamespaceMode::Private,
            capabilities: CapSet::nomad_default(),
            stdin: None,
            stdout: None,
            stderr: None,
            cgroup_procs: Vec::new(),
            oom_score_adj: 0,
            no_pivot_root: false,
            die_with_parent: true,
        }
    }
}

/// A started isolated task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsolatedChild {
    /// The shim: the caller's child. `waitpid` it for the task's exit status; signal it to
    /// signal the task.
    pub pid: Pid,
    /// The task's pid as the host sees it (PID 1 inside its namespace), e.g. for InspectTask.
    pub task_pid: Pid,
}

/// Setup steps, reported by the task when one fails before exec.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
enum Stage {
    Unshare,
    Fork,
    Setsid,
    OomScoreAdj,
    MakePrivate,
    BindRoot,
    MountProc,
    MaskProc,
    PivotRoot,
    Hostname,
    CapBounding,
    KeepCaps,
    SetGroups,
    SetGid,
    SetUid,
    CapSet,
    Ambient,
    ParentDeathSignal,
    Chdir,
    Stdio,
    Exec,
}

const STAGES: [(Stage, &str); 21] = [
    (Stage::Unshare, "unshare"),
    (Stage::Fork, "fork"),
    (Stage::Setsid, "setsid"),
    (Stage::OomScoreAdj, "oom_score_adj"),
    (Stage::MakePrivate, "make / rprivate"),
    (Stage::BindRoot, "bind root"),
    (Stage::MountProc, "mount /proc"),
    (Stage::MaskProc, "mask /proc paths"),
    (Stage::PivotRoot, "pivot_root"),
    (Stage::Hostname, "sethostname"),
    (Stage::CapBounding, "drop bounding capabilities"),
    (Stage::KeepCaps, "PR_SET_KEEPCAPS"),
    (Stage::SetGroups, "setgroups"),
    (Stage::SetGid, "setresgid"),
    (Stage::SetUid, "setresuid"),
    (Stage::CapSet, "capset"),
    (Stage::Ambient, "raise ambient capabilities"),
    (Stage::ParentDeathSignal, "PR_SET_PDEATHSIG"),
    (Stage::Chdir, "chdir work_dir"),
    (Stage::Stdio, "dup2 stdio"),
    (Stage::Exec, "execve"),
];

fn stage_name(code: u32) -> &'static str {
    STAGES
        .iter()
        .find(|(s, _)| *s as u32 == code)
        .map(|(_, n)| *n)
        .unwrap_or("unknown stage")
}

/// Everything the children need, prepared before fork (no allocation after fork).
struct ChildCtx {
    root: CString,
    proc_target: CString,
    sys_target: Option<CString>,
    program: CString,
    argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
    work_dir: CString,
    hostname: Option<CString>,
    oom_score_adj: Vec<u8>,
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
    caps: u64,
    last_cap: u32,
    unshare_flags: libc::c_int,
    no_pivot_root: bool,
    /// The caller's pid when `die_with_parent` is set, else 0.
    parent_pid: libc::pid_t,
    stdio: [RawFd; 3],
    /// shim → caller: the task's host pid.
    pid_w: RawFd,
    /// caller → task: one byte once the cgroups are written.
    release_r: RawFd,
    /// children → caller: (stage, errno) on failure; EOF on successful exec.
    err_w: RawFd,
    /// fds the shim keeps until it forks the task, sorted.
    keep: [RawFd; 6],
}

/// Starts `spec` in new namespaces and returns once the task has exec'd (or failed to).
///
/// Blocks until the task's `execve` succeeds or reports an error; a failure before exec is
/// returned as [`IsolationError::ChildSetup`] naming the step, and the shim is reaped.
pub fn spawn_isolated(spec: &IsolatedSpec<'_>) -> Result<IsolatedChild> {
    let user = resolve_user(&spec.user)?;
    for (what, p) in [
        ("root", &spec.root),
        ("program", &spec.program),
        ("work_dir", &spec.work_dir),
    ] {
        if !p.is_absolute() {
            return Err(IsolationError::InvalidSpec(format!(
                "{what} must be absolute: {}",
                p.display()
            )));
        }
    }
    if !spec.root.is_dir() {
        return Err(IsolationError::InvalidSpec(format!(
            "root {} is not a directory",
            spec.root.display()
        )));
    }

    let devnull = open_devnull()?;
    let dup = |fd: Option<BorrowedFd<'_>>| -> Result<OwnedFd> {
        let src = fd.map(|f| f.as_raw_fd()).unwrap_or(devnull.as_raw_fd());
        // Copies ≥ 3 so dup2 onto 0..2 in the child can never clobber another source.
        // SAFETY: fcntl on a valid fd; the result is a new fd we own.
        let n = unsafe { libc::fcntl(src, libc::F_DUPFD_CLOEXEC, 3) };
        if n < 0 {
            return Err(sys("fcntl(F_DUPFD_CLOEXEC)", Errno::last()));
        }
        // SAFETY: n is a fresh fd owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(n) })
    };
    let stdin = dup(spec.stdin)?;
    let stdout = dup(spec.stdout)?;
    let stderr = dup(spec.stderr)?;

    let (pid_r, pid_w) = socket_pair()?;
    let (release_r, release_w) = socket_pair()?;
    let (err_r, err_w) = socket_pair()?;

    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWUTS;
    if spec.pid_mode == NamespaceMode::Private {
        flags |= libc::CLONE_NEWPID;
    }
    if spec.ipc_mode == NamespaceMode::Private {
        flags |= libc::CLONE_NEWIPC;
    }

    let mut argv = if spec.args.is_empty() {
        vec![cstr_path(&spec.program)?]
    } else {
        spec.args
            .iter()
            .map(|a| cstr(a))
            .collect::<Result<Vec<_>>>()?
    };
    argv.shrink_to_fit();
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
    let sys_dir = spec.root.join("sys");
    let mut keep = [
        pid_w.as_raw_fd(),
        release_r.as_raw_fd(),
        err_w.as_raw_fd(),
        stdin.as_raw_fd(),
        stdout.as_raw_fd(),
        stderr.as_raw_fd(),
    ];
    keep.sort_unstable();
    let mut ctx = ChildCtx {
        root: cstr_path(&spec.root)?,
        proc_target: cstr_path(&spec.root.join("proc"))?,
        sys_target: if sys_dir.is_dir() {
            Some(cstr_path(&sys_dir)?)
        } else {
            None
        },
        program: cstr_path(&spec.program)?,
        argv_ptrs: Vec::new(),
        argv,
        envp_ptrs: Vec::new(),
        envp,
        work_dir: cstr_path(&spec.work_dir)?,
        hostname: spec.hostname.as_deref().map(cstr).transpose()?,
        oom_score_adj: spec.oom_score_adj.to_string().into_bytes(),
        uid: user.uid,
        gid: user.gid,
        groups: user.groups.clone(),
        caps: spec.capabilities.0,
        last_cap: last_cap(),
        unshare_flags: flags,
        no_pivot_root: spec.no_pivot_root,
        parent_pid: if spec.die_with_parent {
            std::process::id() as libc::pid_t
        } else {
            0
        },
        stdio: [stdin.as_raw_fd(), stdout.as_raw_fd(), stderr.as_raw_fd()],
        pid_w: pid_w.as_raw_fd(),
        release_r: release_r.as_raw_fd(),
        err_w: err_w.as_raw_fd(),
        keep,
    };
    ctx.argv_ptrs = ctx.argv.iter().map(|c| c.as_ptr()).collect();
    ctx.argv_ptrs.push(std::ptr::null());
    ctx.envp_ptrs = ctx.envp.iter().map(|c| c.as_ptr()).collect();
    ctx.envp_ptrs.push(std::ptr::null());

    // SAFETY: the child only runs shim_main, which makes raw async-signal-safe calls on
    // memory prepared above and never returns.
    let shim = unsafe { libc::fork() };
    if shim < 0 {
        return Err(sys("fork", Errno::last()));
    }
    if shim == 0 {
        shim_main(&ctx);
    }
    let shim = Pid::from_raw(shim);
    // The children hold their own copies; ours must go so EOF means what it should.
    drop((pid_w, release_r, err_w, stdin, stdout, stderr));

    let fail = |e: IsolationError| -> Result<IsolatedChild> {
        let _ = nix::sys::signal::kill(shim, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(shim, None);
        Err(e)
    };

    let mut buf = [0u8; 4];
    let n = read_full(pid_r.as_raw_fd(), &mut buf);
    if n != 4 {
        let err = read_child_error(err_r.as_raw_fd())
            .unwrap_or_else(|| sys("shim exited before starting the task", Errno::ECHILD));
        return fail(err);
    }
    let task_pid = i32::from_ne_bytes(buf);
    for f in &spec.cgroup_procs {
        if let Err(source) = std::fs::write(f, task_pid.to_string()) {
            // Dropping release_w (EOF) makes the task exit; killing the shim covers the rest.
            drop(release_w);
            return fail(IsolationError::Cgroup {
                pid: task_pid,
                path: f.clone(),
                source,
            });
        }
    }
    // SAFETY: send on a socket we own; MSG_NOSIGNAL avoids SIGPIPE if the task died.
    let sent = unsafe {
        libc::send(
            release_w.as_raw_fd(),
            b"go".as_ptr().cast(),
            1,
            libc::MSG_NOSIGNAL,
        )
    };
    drop(release_w);
    if sent != 1 {
        let err = read_child_error(err_r.as_raw_fd())
            .unwrap_or_else(|| sys("release task", Errno::last()));
        return fail(err);
    }
    if let Some(err) = read_child_error(err_r.as_raw_fd()) {
        return fail(err);
    }
    drop(ctx);
    Ok(IsolatedChild {
        pid: shim,
        task_pid: Pid::from_raw(task_pid),
    })
}

fn sys(call: &'static str, source: Errno) -> IsolationError {
    IsolationError::Sys { call, source }
}

fn cstr(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| IsolationError::InvalidSpec(format!("NUL byte in {s:?}")))
}

fn cstr_path(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| IsolationError::InvalidSpec(format!("NUL byte in {}", p.display())))
}

fn open_devnull() -> Result<OwnedFd> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map(OwnedFd::from)
        .map_err(|e| super::io_err("open", "/dev/null", e))
}

fn socket_pair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: socketpair writes two fds into the array on success.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(sys("socketpair", Errno::last()));
    }
    // SAFETY: both fds are fresh and owned by us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Reads until `buf` is full or EOF; returns the byte count (EINTR retried).
fn read_full(fd: RawFd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reading into the unfilled tail of buf.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n < 0 {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            break;
        }
        if n == 0 {
            break;
        }
        got += n as usize;
    }
    got
}

/// Blocks until the error channel closes; returns the reported failure, if any.
fn read_child_error(fd: RawFd) -> Option<IsolationError> {
    let mut buf = [0u8; 8];
    if read_full(fd, &mut buf) != 8 {
        return None;
    }
    let stage = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let errno = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
    Some(IsolationError::ChildSetup {
        stage: stage_name(stage),
        source: Errno::from_raw(errno),
    })
}

// ---- after fork: raw system calls only -----------------------------------------------------

/// Reports `(stage, errno)` to the caller and exits.
fn die(ctx: &ChildCtx, stage: Stage) -> ! {
    let errno = Errno::last_raw();
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&(stage as u32).to_ne_bytes());
    msg[4..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: send/_exit are async-signal-safe; msg lives on the stack.
    unsafe {
        libc::send(
            ctx.err_w,
            msg.as_ptr().cast(),
            msg.len(),
            libc::MSG_NOSIGNAL,
        );
        libc::_exit(127)
    }
}

fn check(ctx: &ChildCtx, r: libc::c_long, stage: Stage) {
    if r < 0 {
        die(ctx, stage);
    }
}

fn shim_main(ctx: &ChildCtx) -> ! {
    // SAFETY (whole function): only async-signal-safe system calls on pre-allocated data.
    unsafe {
        // Block everything until the forwarding handlers are in place: a signal arriving early
        // stays pending and is forwarded afterwards instead of killing the shim.
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());

        // Drop every inherited descriptor (the supervisor's sockets, log pipes, ...).
        super::shim::close_fds_except(&ctx.keep);

        if ctx.parent_pid != 0 {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            // The caller may already have died between fork and prctl.
            if libc::getppid() != ctx.parent_pid {
                libc::_exit(127);
            }
        }

        if libc::unshare(ctx.unshare_flags) < 0 {
            die(ctx, Stage::Unshare);
        }
        let task = libc::fork();
        if task < 0 {
            die(ctx, Stage::Fork);
        }
        if task == 0 {
            task_main(ctx);
        }
        libc::close(ctx.release_r);
        libc::close(ctx.err_w);
        for fd in ctx.stdio {
            libc::close(fd);
        }
        let bytes = task.to_ne_bytes();
        libc::send(ctx.pid_w, bytes.as_ptr().cast(), 4, libc::MSG_NOSIGNAL);
        libc::close(ctx.pid_w);

        super::shim::relay_until_exit(task)
    }
}

fn task_main(ctx: &ChildCtx) -> ! {
    // SAFETY (whole function): only async-signal-safe system calls on pre-allocated data.
    unsafe {
        // Handlers installed by the supervisor must not run here; exec resets them anyway, but
        // ignored signals (SIGPIPE under Rust) would otherwise stay ignored in the task.
        for sig in 1..65 {
            libc::signal(sig, libc::SIG_DFL);
        }
        // Dies with the shim even while still setting up.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::close(ctx.pid_w);

        // Wait until the caller has placed us in the task cgroup (EOF: caller gave up).
        let mut b = [0u8; 1];
        loop {
            let n = libc::read(ctx.release_r, b.as_mut_ptr().cast(), 1);
            if n == 1 {
                break;
            }
            if n < 0 && Errno::last() == Errno::EINTR {
                continue;
            }
            libc::_exit(127);
        }
        libc::close(ctx.release_r);

        check(ctx, libc::setsid() as libc::c_long, Stage::Setsid);

        let fd = libc::open(
            c"/proc/self/oom_score_adj".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        );
        check(ctx, fd as libc::c_long, Stage::OomScoreAdj);
        let w = libc::write(
            fd,
            ctx.oom_score_adj.as_ptr().cast(),
            ctx.oom_score_adj.len(),
        );
        check(ctx, w as libc::c_long, Stage::OomScoreAdj);
        libc::close(fd);

        let null = std::ptr::null::<libc::c_char>();
        // Nothing we mount from here on may propagate back to the host.
        let r = libc::mount(
            null,
            c"/".as_ptr(),
            null,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        );
        check(ctx, r as libc::c_long, Stage::MakePrivate);
        // pivot_root needs the new root to be a mount point; MS_REC brings the chroot's mounts.
        let r = libc::mount(
            ctx.root.as_ptr(),
            ctx.root.as_ptr(),
            null,
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        );
        check(ctx, r as libc::c_long, Stage::BindRoot);
        // A fresh procfs belongs to the mounter's PID namespace: the task sees only its own tree.
        let r = libc::mount(
            c"proc".as_ptr(),
            ctx.proc_target.as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        );
        check(ctx, r as libc::c_long, Stage::MountProc);
        if let Some(sys) = &ctx.sys_target {
            // Best effort, as an empty /sys only hides information.
            libc::mount(
                c"sysfs".as_ptr(),
                sys.as_ptr(),
                c"sysfs".as_ptr(),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            );
        }

        check(
            ctx,
            libc::chdir(ctx.root.as_ptr()) as libc::c_long,
            Stage::PivotRoot,
        );
        if ctx.no_pivot_root {
            let r = libc::mount(
                ctx.root.as_ptr(),
                c"/".as_ptr(),
                null,
                libc::MS_MOVE,
                std::ptr::null(),
            );
            check(ctx, r as libc::c_long, Stage::PivotRoot);
            check(
                ctx,
                libc::chroot(c".".as_ptr()) as libc::c_long,
                Stage::PivotRoot,
            );
        } else {
            // pivot_root(".", ".") stacks the old root on top of the new one; detaching it
            // leaves only the new root (runc's approach, no temporary directory needed).
            let r = libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr());
            check(ctx, r, Stage::PivotRoot);
            let r = libc::umount2(c".".as_ptr(), libc::MNT_DETACH);
            check(ctx, r as libc::c_long, Stage::PivotRoot);
        }
        check(
            ctx,
            libc::chdir(c"/".as_ptr()) as libc::c_long,
            Stage::PivotRoot,
        );

        // runc's masked and read-only /proc paths.
        if libc::access(c"/proc/kcore".as_ptr(), libc::F_OK) == 0 {
            let r = libc::mount(
                c"/dev/null".as_ptr(),
                c"/proc/kcore".as_ptr(),
                null,
                libc::MS_BIND,
                std::ptr::null(),
            );
            check(ctx, r as libc::c_long, Stage::MaskProc);
        }
        for p in [
            c"/proc/sys",
            c"/proc/sysrq-trigger",
            c"/proc/irq",
            c"/proc/bus",
        ] {
            if libc::access(p.as_ptr(), libc::F_OK) != 0 {
                continue;
            }
            let r = libc::mount(
                p.as_ptr(),
                p.as_ptr(),
                null,
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            );
            check(ctx, r as libc::c_long, Stage::MaskProc);
            let r = libc::mount(
                null,
                p.as_ptr(),
                null,
                libc::MS_BIND
                    | libc::MS_REMOUNT
                    | libc::MS_RDONLY
                    | libc::MS_NOSUID
                    | libc::MS_NODEV
                    | libc::MS_NOEXEC,
                std::ptr::null(),
            );
            check(ctx, r as libc::c_long, Stage::MaskProc);
        }

        if let Some(h) = &ctx.hostname {
            let r = libc::sethostname(h.as_ptr(), h.as_bytes().len());
            check(ctx, r as libc::c_long, Stage::Hostname);
        }

        // Capabilities: shrink the bounding set while still root (needs CAP_SETPCAP) ...
        for cap in 0..=ctx.last_cap {
            if ctx.caps & (1u64 << cap) == 0 {
                let r = libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
                if r < 0 && Errno::last() != Errno::EINVAL {
                    die(ctx, Stage::CapBounding);
                }
            }
        }
        // ... keep the permitted set across the uid change ...
        let r = libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0);
        check(ctx, r as libc::c_long, Stage::KeepCaps);
        let r = libc::syscall(libc::SYS_setgroups, ctx.groups.len(), ctx.groups.as_ptr());
        check(ctx, r, Stage::SetGroups);
        let r = libc::syscall(libc::SYS_setresgid, ctx.gid, ctx.gid, ctx.gid);
        check(ctx, r, Stage::SetGid);
        let r = libc::syscall(libc::SYS_setresuid, ctx.uid, ctx.uid, ctx.uid);
        check(ctx, r, Stage::SetUid);
        // ... then set exactly the task's set as effective, permitted and inheritable ...
        let r = super::shim::capset_all(ctx.caps);
        check(ctx, r, Stage::CapSet);
        // ... and ambient, so a non-root user keeps them across execve of ordinary binaries.
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

        for (target, fd) in ctx.stdio.iter().enumerate() {
            check(
                ctx,
                libc::dup2(*fd, target as RawFd) as libc::c_long,
                Stage::Stdio,
            );
        }
        // Anything else still open must not leak into the task (err_w is closed by exec).
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );

        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());

        libc::execve(
            ctx.program.as_ptr(),
            ctx.argv_ptrs.as_ptr(),
            ctx.envp_ptrs.as_ptr(),
        );
        die(ctx, Stage::Exec)
    }
}
