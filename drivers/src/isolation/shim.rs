//! Pieces shared by the two forked helpers of this module (the launch shim that owns an
//! isolated task, and the exec shim that owns a command entered into one): relaying signals
//! to the child and dying the way it died, and setting a capability set. Everything here runs
//! after `fork` and uses only async-signal-safe system calls.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;

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
pub(super) unsafe fn relay_until_exit(child: libc::pid_t) -> ! {
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
pub(super) unsafe fn capset_all(caps: u64) -> libc::c_long {
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
pub(super) fn close_fds_except(keep: &[RawFd]) {
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
