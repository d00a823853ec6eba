//! The identity a child takes on just before exec, and the last steps before `execve`.

use std::os::fd::RawFd;

use nix::errno::Errno;

use super::stage::{ErrorChannel, Stage};
use crate::isolation::caps::{CapSet, last_cap};
use crate::isolation::user::ResolvedUser;

/// User, groups and capabilities, resolved before fork.
#[derive(Debug, Clone)]
pub(in crate::isolation) struct Identity {
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
    caps: u64,
    last_cap: u32,
}

impl Identity {
    pub(in crate::isolation) fn new(user: &ResolvedUser, caps: CapSet) -> Identity {
        Identity {
            uid: user.uid,
            gid: user.gid,
            groups: user.groups.clone(),
            caps: caps.0,
            last_cap: last_cap(),
        }
    }

    /// Drops to this identity keeping exactly its capabilities: the bounding set shrunk while
    /// still root (needs CAP_SETPCAP), the permitted set kept across the uid change, then the
    /// task's set made effective, permitted and inheritable — and ambient for a non-root user,
    /// so it survives execve of ordinary binaries. The parent-death signal, which changing
    /// credentials clears, is set again.
    ///
    /// # Safety
    /// Only in a forked child: async-signal-safe system calls on data prepared before fork.
    pub(in crate::isolation) unsafe fn assume(&self, err: ErrorChannel) {
        // SAFETY: raw system calls on pre-allocated data, as the caller guarantees.
        unsafe {
            for cap in 0..=self.last_cap {
                if self.caps & (1u64 << cap) == 0 {
                    let r = libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
                    if r < 0 && Errno::last() != Errno::EINVAL {
                        err.fail(Stage::CapBounding);
                    }
                }
            }
            let r = libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0);
            err.check(r as libc::c_long, Stage::KeepCaps);
            let r = libc::syscall(libc::SYS_setgroups, self.groups.len(), self.groups.as_ptr());
            err.check(r, Stage::SetGroups);
            let r = libc::syscall(libc::SYS_setresgid, self.gid, self.gid, self.gid);
            err.check(r, Stage::SetGid);
            let r = libc::syscall(libc::SYS_setresuid, self.uid, self.uid, self.uid);
            err.check(r, Stage::SetUid);
            let r = super::shim::capset_all(self.caps);
            err.check(r, Stage::CapSet);
            if self.uid != 0 {
                for cap in 0..=self.last_cap {
                    if self.caps & (1u64 << cap) != 0 {
                        let r = libc::prctl(
                            libc::PR_CAP_AMBIENT,
                            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                            cap as libc::c_ulong,
                            0,
                            0,
                        );
                        if r < 0 && Errno::last() != Errno::EINVAL {
                            err.fail(Stage::Ambient);
                        }
                    }
                }
            }
            let r = libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            err.check(r as libc::c_long, Stage::ParentDeathSignal);
        }
    }
}

/// A freshly forked child's first step: default dispositions for every signal (handlers of the
/// caller must not run here, and an ignored SIGPIPE would survive exec), and death with the
/// shim even while still setting up.
///
/// # Safety
/// Only in a forked child.
pub(in crate::isolation) unsafe fn reset_signals_and_die_with_shim() {
    // SAFETY: signal/prctl are async-signal-safe.
    unsafe {
        for sig in 1..65 {
            libc::signal(sig, libc::SIG_DFL);
        }
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
    }
}

/// `dup2`s the prepared copies onto 0, 1, 2.
///
/// # Safety
/// Only in a forked child.
pub(in crate::isolation) unsafe fn install_stdio(stdio: [RawFd; 3], err: ErrorChannel) {
    for (target, fd) in stdio.iter().enumerate() {
        // SAFETY: dup2 is async-signal-safe.
        let r = unsafe { libc::dup2(*fd, target as RawFd) };
        err.check(r as libc::c_long, Stage::Stdio);
    }
}

/// The last steps before `execve`: nothing else still open may leak into the program (the
/// error channel is closed by exec itself), and the signal mask is emptied.
///
/// # Safety
/// Only in a forked child.
pub(in crate::isolation) unsafe fn prepare_exec() {
    // SAFETY: close_range/sigprocmask are async-signal-safe; the set lives on the stack.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}
