//! Pseudo-terminals for TTY exec sessions.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::pty::{OpenptyResult, Winsize, openpty};

use super::TtySize;
use crate::driver::DriverError;

/// Size used when the caller gave none (a classic terminal).
const DEFAULT_SIZE: TtySize = TtySize {
    height: 24,
    width: 80,
};

fn winsize(size: TtySize) -> Winsize {
    Winsize {
        ws_row: size.height,
        ws_col: size.width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Opens a PTY pair of `size`: `(master, slave)`, both close-on-exec.
pub fn open(size: Option<TtySize>) -> Result<(OwnedFd, OwnedFd), DriverError> {
    let ws = winsize(
        size.filter(|s| s.height > 0 && s.width > 0)
            .unwrap_or(DEFAULT_SIZE),
    );
    let OpenptyResult { master, slave } = openpty(Some(&ws), None)
        .map_err(|e| DriverError::io("openpty", std::io::Error::from(e)))?;
    for fd in [&master, &slave] {
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok((master, slave))
}

/// Sets the terminal size on the master side; the kernel sends SIGWINCH to the foreground group.
pub fn resize(master: &impl AsRawFd, size: TtySize) -> std::io::Result<()> {
    let ws = winsize(size);
    // SAFETY: TIOCSWINSZ reads a winsize struct that lives for the call.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws as *const Winsize) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
