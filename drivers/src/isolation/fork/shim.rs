//! The shim: the caller's child that owns the task (or the entered command). After its own
//! namespace step it forks the child, reports the child's host pid, then relays every signal
//! it gets to the child and exits the way the child exits. Also the capability-set call the
//! child uses. Everything here runs after `fork` and uses only async-signal-safe system calls.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;

use super::stage::{ErrorChannel, Stage};

/// The descriptors a shim works with, all prepared by the caller.
#[derive(Debug, Clone, Copy)]
pub(in crate::isolation) struct ShimFds<'a> {
    /// Every descriptor the shim and its child need, sorted; all others inherited from the
    /// caller are closed first (its sockets and pipe ends must not live on in the shim).
    pub keep: &'a [RawFd],
    /// Where the shim reports the child's host pid (4 bytes, native endian).
    pub pid_w: RawFd,
    /// The error channel; the shim closes its copy once the child is forked.
    pub err: ErrorChannel,
    /// Descriptors only the child uses (stdio copies, ...), closed in the shim after the fork.
    pub child_only: &'a [RawFd],
}

/// Runs the shim: all signals blocked, foreign descriptors closed, `enter` (its namespace
/// step, reporting failures on the error channel), fork; the child runs `child`, the shim
/// reports its pid and relays signals until it exits.
///
/// # Safety
/// Call only in the freshly forked shim; `enter` and `child` must only make async-signal-safe
/// calls on data prepared before the fork.
pub(super) unsafe fn run<C>(
    fds: ShimFds<'_>,
    ctx: &C,
    enter: fn(&C, ErrorChannel),
    child: fn(&C, ErrorChannel) -> !,
) -> ! {
    // SAFETY: async-signal-safe calls on pre-allocated data, as the caller guarantees.
    unsafe {
        // Blocked until the forwarding handlers are in place: a signal arriving early stays
        // pending and is forwarded afterwards instead of killing the shim.
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        close_fds_except(fds.keep);
        enter(ctx, fds.err);
        let pid = libc::fork();
        if pid < 0 {
            fds.err.fail(Stage::Fork);
        }
        if pid == 0 {
            libc::close(fds.pid_w);
            child(ctx, fds.err);
        }
        libc::close(fds.err.0);
        for &fd in fds.child_only {
            libc::close(fd);
        }
        let bytes = pid.to_ne_bytes();
        libc::send(fds.pid_w, bytes.as_ptr().cast(), 4, libc::MSG_NOSIGNAL);
        libc::close(fds.pid_w);
        relay_until_exit(pid)
    }
}

/// The child a shim relays signals to (one per shim process).
static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Forwards every catchable signal to `child`, waits for it, and exits with its status —
/// re-raising the signal that killed it (without a core dump of the shim).
///
/// # Safety
/// Call only in a forked child, with all signals blocked; it unblocks them itself.
unsafe fn relay_until_exit(child: libc::pid_t) -> ! {
    CHILD.store(child, Ordering::Relaxed);
    // SAFETY: async-signal-safe calls on stack data, as the caller guarantees the context.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = forward_signal as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigfillset(&mut sa.sa_mask);
        for sig in 1..32 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP || sig == libc::SIGCHLD {
                continue;
            }
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());

        let mut status: libc::c_int = 0;
        loop {
            let r = libc::waitpid(child, &mut status, 0);
            if r == child {
                break;
            }
            if r < 0 && Errno::last() != Errno::EINTR {
                libc::_exit(127);
            }
        }
        if libc::WIFSIGNALED(status) {
            let sig = libc::WTERMSIG(status);
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            libc::signal(sig, libc::SIG_DFL);
            libc::kill(libc::getpid(), sig);
            libc::_exit(128 + sig);
        }
        libc::_exit(libc::WEXITSTATUS(status));
    }
}

/// capset(2) structures (not exported by libc).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Sets `caps` as this thread's effective, permitted and inheritable set; the raw syscall
/// result (negative on failure, errno set).
///
/// # Safety
/// Async-signal-safe; meant for a forked child just before exec.
pub(in crate::isolation) unsafe fn capset_all(caps: u64) -> libc::c_long {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let half = |v: u64| CapData {
        effective: v as u32,
        permitted: v as u32,
        inheritable: v as u32,
    };
    let data = [half(caps), half(caps >> 32)];
    // SAFETY: both pointers are valid for the duration of the call.
    unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) }
}

/// Closes every fd except those in the sorted `keep` list (close_range over the gaps).
fn close_fds_except(keep: &[RawFd]) {
    let mut next: u32 = 3;
    for &k in keep {
        if k < 3 || (k as u32) < next {
            continue;
        }
        if (k as u32) > next {
            close_range(next, k as u32 - 1);
        }
        next = k as u32 + 1;
    }
    close_range(next, u32::MAX);
}

fn close_range(first: u32, last: u32) {
    // SAFETY: close_range only closes descriptors; ENOSYS (kernel < 5.9) falls back to a loop.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    if r < 0 {
        let end = last.min(4096);
        for fd in first..=end {
            // SAFETY: closing possibly-unused descriptors is harmless.
            unsafe { libc::close(fd as RawFd) };
        }
    }
}
