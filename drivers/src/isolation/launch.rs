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
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::unistd::Pid;

use super::caps::CapSet;
use super::fork::handshake::Handshake;
use super::fork::identity::{
    Identity, install_stdio, prepare_exec, reset_signals_and_die_with_shim,
};
use super::fork::prepare::{
    CStringArray, cstr, cstr_path, dup_high, open_devnull, socket_pair, sys,
};
use super::fork::shim::ShimFds;
use super::fork::stage::{ErrorChannel, Stage};
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

/// What the task needs besides the shared fork chain, prepared before fork.
struct TaskCtx {
    root: CString,
    proc_target: CString,
    sys_target: Option<CString>,
    program: CString,
    argv: CStringArray,
    envp: CStringArray,
    work_dir: CString,
    hostname: Option<CString>,
    oom_score_adj: Vec<u8>,
    identity: Identity,
    unshare_flags: libc::c_int,
    no_pivot_root: bool,
    /// The caller's pid when `die_with_parent` is set, else 0.
    parent_pid: libc::pid_t,
    stdio: [RawFd; 3],
    /// caller → task: one byte once the cgroups are written.
    release_r: RawFd,
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
    let stdin = dup_high(spec.stdin.unwrap_or(devnull.as_fd()))?;
    let stdout = dup_high(spec.stdout.unwrap_or(devnull.as_fd()))?;
    let stderr = dup_high(spec.stderr.unwrap_or(devnull.as_fd()))?;
    let (handshake, ends) = Handshake::new()?;
    let (release_r, release_w) = socket_pair()?;

    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWUTS;
    if spec.pid_mode == NamespaceMode::Private {
        flags |= libc::CLONE_NEWPID;
    }
    if spec.ipc_mode == NamespaceMode::Private {
        flags |= libc::CLONE_NEWIPC;
    }
    let argv = if spec.args.is_empty() {
        CStringArray::new(vec![cstr_path(&spec.program)?])
    } else {
        CStringArray::argv(&spec.args)?
    };
    let sys_dir = spec.root.join("sys");
    let ctx = TaskCtx {
        root: cstr_path(&spec.root)?,
        proc_target: cstr_path(&spec.root.join("proc"))?,
        sys_target: if sys_dir.is_dir() {
            Some(cstr_path(&sys_dir)?)
        } else {
            None
        },
        program: cstr_path(&spec.program)?,
        argv,
        envp: CStringArray::envp(&spec.env)?,
        work_dir: cstr_path(&spec.work_dir)?,
        hostname: spec.hostname.as_deref().map(cstr).transpose()?,
        oom_score_adj: spec.oom_score_adj.to_string().into_bytes(),
        identity: Identity::new(&user, spec.capabilities),
        unshare_flags: flags,
        no_pivot_root: spec.no_pivot_root,
        parent_pid: if spec.die_with_parent {
            std::process::id() as libc::pid_t
        } else {
            0
        },
        stdio: [stdin.as_raw_fd(), stdout.as_raw_fd(), stderr.as_raw_fd()],
        release_r: release_r.as_raw_fd(),
    };
    let mut keep = [
        ends.pid_w(),
        ctx.release_r,
        ends.err().0,
        ctx.stdio[0],
        ctx.stdio[1],
        ctx.stdio[2],
    ];
    keep.sort_unstable();
    let child_only = [ctx.release_r, ctx.stdio[0], ctx.stdio[1], ctx.stdio[2]];
    let fds = ShimFds {
        keep: &keep,
        pid_w: ends.pid_w(),
        err: ends.err(),
        child_only: &child_only,
    };

    // SAFETY: the shim only runs async-signal-safe system calls on memory prepared above.
    let shim = unsafe { handshake.fork_shim(ends, fds, &ctx, enter_namespaces, task_main)? };
    // The children hold their own copies; ours must go so EOF means what it should.
    drop((release_r, stdin, stdout, stderr));

    let task_pid = shim
        .child_pid("shim exited before starting the task")
        .map_err(|e| shim.abort(e))?;
    for f in &spec.cgroup_procs {
        if let Err(source) = std::fs::write(f, task_pid.to_string()) {
            // Dropping release_w (EOF) makes the task exit; killing the shim covers the rest.
            drop(release_w);
            return Err(shim.abort(IsolationError::Cgroup {
                pid: task_pid,
                path: f.clone(),
                source,
            }));
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
    let send_errno = Errno::last();
    drop(release_w);
    if sent != 1 {
        let err = shim
            .setup_error()
            .unwrap_or_else(|| sys("release task", send_errno));
        return Err(shim.abort(err));
    }
    if let Some(err) = shim.setup_error() {
        return Err(shim.abort(err));
    }
    drop(ctx);
    Ok(IsolatedChild {
        pid: shim.pid(),
        task_pid: Pid::from_raw(task_pid),
    })
}

// ---- after fork: raw system calls only -----------------------------------------------------

/// The shim's namespace step: die with the caller if asked, then new namespaces (the task,
/// forked next, is PID 1 of the new PID namespace).
fn enter_namespaces(ctx: &TaskCtx, err: ErrorChannel) {
    // SAFETY: prctl/getppid/unshare/_exit are async-signal-safe.
    unsafe {
        if ctx.parent_pid != 0 {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            // The caller may already have died between fork and prctl.
            if libc::getppid() != ctx.parent_pid {
                libc::_exit(127);
            }
        }
        if libc::unshare(ctx.unshare_flags) < 0 {
            err.fail(Stage::Unshare);
        }
    }
}

fn task_main(ctx: &TaskCtx, err: ErrorChannel) -> ! {
    // SAFETY (whole function): only async-signal-safe system calls on pre-allocated data.
    unsafe {
        reset_signals_and_die_with_shim();

        // Wait until the caller has placed us in the task cgroup (EOF: caller gave up), so
        // everything the task runs is charged there from its first page.
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

        err.check(libc::setsid() as libc::c_long, Stage::Setsid);

        let fd = libc::open(
            c"/proc/self/oom_score_adj".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        );
        err.check(fd as libc::c_long, Stage::OomScoreAdj);
        let w = libc::write(
            fd,
            ctx.oom_score_adj.as_ptr().cast(),
            ctx.oom_score_adj.len(),
        );
        err.check(w as libc::c_long, Stage::OomScoreAdj);
        libc::close(fd);

        enter_root(ctx, err);

        if let Some(h) = &ctx.hostname {
            let r = libc::sethostname(h.as_ptr(), h.as_bytes().len());
            err.check(r as libc::c_long, Stage::Hostname);
        }
        ctx.identity.assume(err);
        err.check(
            libc::chdir(ctx.work_dir.as_ptr()) as libc::c_long,
            Stage::Chdir,
        );
        install_stdio(ctx.stdio, err);
        prepare_exec();
        libc::execve(ctx.program.as_ptr(), ctx.argv.as_ptr(), ctx.envp.as_ptr());
        err.fail(Stage::Exec)
    }
}

/// Makes the prepared chroot the task's `/`, with its own `/proc` (and `/sys`), and runc's
/// masked and read-only `/proc` paths.
///
/// # Safety
/// Only in the forked task.
unsafe fn enter_root(ctx: &TaskCtx, err: ErrorChannel) {
    // SAFETY (whole function): only async-signal-safe system calls on pre-allocated data.
    unsafe {
        let null = std::ptr::null::<libc::c_char>();
        // Nothing we mount from here on may propagate back to the host.
        let r = libc::mount(
            null,
            c"/".as_ptr(),
            null,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        );
        err.check(r as libc::c_long, Stage::MakePrivate);
        // pivot_root needs the new root to be a mount point; MS_REC brings the chroot's mounts.
        let r = libc::mount(
            ctx.root.as_ptr(),
            ctx.root.as_ptr(),
            null,
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        );
        err.check(r as libc::c_long, Stage::BindRoot);
        // A fresh procfs belongs to the mounter's PID namespace: the task sees only its own tree.
        let r = libc::mount(
            c"proc".as_ptr(),
            ctx.proc_target.as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        );
        err.check(r as libc::c_long, Stage::MountProc);
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

        err.check(
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
            err.check(r as libc::c_long, Stage::PivotRoot);
            err.check(
                libc::chroot(c".".as_ptr()) as libc::c_long,
                Stage::PivotRoot,
            );
        } else {
            // pivot_root(".", ".") stacks the old root on top of the new one; detaching it
            // leaves only the new root (runc's approach, no temporary directory needed).
            let r = libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr());
            err.check(r, Stage::PivotRoot);
            let r = libc::umount2(c".".as_ptr(), libc::MNT_DETACH);
            err.check(r as libc::c_long, Stage::PivotRoot);
        }
        err.check(libc::chdir(c"/".as_ptr()) as libc::c_long, Stage::PivotRoot);

        // runc's masked and read-only /proc paths.
        if libc::access(c"/proc/kcore".as_ptr(), libc::F_OK) == 0 {
            let r = libc::mount(
                c"/dev/null".as_ptr(),
                c"/proc/kcore".as_ptr(),
                null,
                libc::MS_BIND,
                std::ptr::null(),
            );
            err.check(r as libc::c_long, Stage::MaskProc);
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
            err.check(r as libc::c_long, Stage::MaskProc);
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
            err.check(r as libc::c_long, Stage::MaskProc);
        }
    }
}
