//! The caller's side of the fork chain: the pid and error channels, forking the shim, and
//! reading what the shim and its child report.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::unistd::Pid;

use super::prepare::{socket_pair, sys};
use super::shim::{self, ShimFds};
use super::stage::{ErrorChannel, decode};
use crate::isolation::{IsolationError, Result};

/// The ends the shim and its child write to; the caller closes its copies once it forked.
#[derive(Debug)]
pub(in crate::isolation) struct ChildEnds {
    pid_w: OwnedFd,
    err_w: OwnedFd,
}

impl ChildEnds {
    pub(in crate::isolation) fn pid_w(&self) -> RawFd {
        self.pid_w.as_raw_fd()
    }

    pub(in crate::isolation) fn err(&self) -> ErrorChannel {
        ErrorChannel(self.err_w.as_raw_fd())
    }
}

/// The caller's ends, before the shim exists.
#[derive(Debug)]
pub(in crate::isolation) struct Handshake {
    pid_r: OwnedFd,
    err_r: OwnedFd,
}

impl Handshake {
    pub(in crate::isolation) fn new() -> Result<(Handshake, ChildEnds)> {
        let (pid_r, pid_w) = socket_pair()?;
        let (err_r, err_w) = socket_pair()?;
        Ok((Handshake { pid_r, err_r }, ChildEnds { pid_w, err_w }))
    }

    /// Forks the shim (see [`shim::run`]: `enter` is its namespace step, `child` the body of
    /// the process it forks) and closes the caller's copies of `ends`, so EOF on the channels
    /// means what it should.
    ///
    /// # Safety
    /// `enter` and `child` run in forked children of a possibly multi-threaded process: they
    /// may only make async-signal-safe calls on memory prepared before this call.
    pub(in crate::isolation) unsafe fn fork_shim<C>(
        self,
        ends: ChildEnds,
        fds: ShimFds<'_>,
        ctx: &C,
        enter: fn(&C, ErrorChannel),
        child: fn(&C, ErrorChannel) -> !,
    ) -> Result<Shim> {
        // SAFETY: the shim only runs shim::run, under the caller's guarantee.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(sys("fork", Errno::last()));
        }
        if pid == 0 {
            // SAFETY: this is the freshly forked shim.
            unsafe { shim::run(fds, ctx, enter, child) }
        }
        drop(ends);
        Ok(Shim {
            pid: Pid::from_raw(pid),
            pid_r: self.pid_r,
            err_r: self.err_r,
        })
    }
}

/// A forked shim, seen from the caller.
#[derive(Debug)]
pub(in crate::isolation) struct Shim {
    pid: Pid,
    pid_r: OwnedFd,
    err_r: OwnedFd,
}

impl Shim {
    pub(in crate::isolation) fn pid(&self) -> Pid {
        self.pid
    }

    /// The host pid of the shim's child; when the shim failed first, its report, else a
    /// [`IsolationError::Sys`] named `gone` (the shim exited without saying why).
    pub(in crate::isolation) fn child_pid(&self, gone: &'static str) -> Result<i32> {
        let mut buf = [0u8; 4];
        if read_full(self.pid_r.as_raw_fd(), &mut buf) != 4 {
            return Err(self
                .setup_error()
                .unwrap_or_else(|| sys(gone, Errno::ECHILD)));
        }
        Ok(i32::from_ne_bytes(buf))
    }

    /// Blocks until the child exec'd (the error channel closes: None) or reported a failure.
    pub(in crate::isolation) fn setup_error(&self) -> Option<IsolationError> {
        let mut buf = [0u8; 8];
        if read_full(self.err_r.as_raw_fd(), &mut buf) != 8 {
            return None;
        }
        Some(decode(buf))
    }

    /// Kills and reaps the shim (its child dies with it) and hands `err` back for returning.
    pub(in crate::isolation) fn abort(&self, err: IsolationError) -> IsolationError {
        if let Err(e) = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL) {
            tracing::warn!(pid = %self.pid, error = %e, "killing a failed isolation shim");
        }
        if let Err(e) = nix::sys::wait::waitpid(self.pid, None) {
            tracing::warn!(pid = %self.pid, error = %e, "reaping a failed isolation shim");
        }
        err
    }
}

/// Reads until `buf` is full or EOF; returns the byte count (EINTR retried).
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
