//! What the children need, built before the first fork: after it they may not allocate.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

use crate::isolation::{IsolationError, Result, io_err};

pub(in crate::isolation) fn sys(call: &'static str, source: Errno) -> IsolationError {
    IsolationError::Sys { call, source }
}

pub(in crate::isolation) fn cstr(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| IsolationError::InvalidSpec(format!("NUL byte in {s:?}")))
}

pub(in crate::isolation) fn cstr_path(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| IsolationError::InvalidSpec(format!("NUL byte in {}", p.display())))
}

/// A NULL-terminated array of C strings, as `execve` takes argv and envp.
#[derive(Debug)]
pub(in crate::isolation) struct CStringArray {
    // Owns what `ptrs` points into; never touched after construction.
    _strings: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl CStringArray {
    pub(in crate::isolation) fn new(strings: Vec<CString>) -> CStringArray {
        let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|c| c.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        CStringArray {
            _strings: strings,
            ptrs,
        }
    }

    /// An argv of the given strings.
    pub(in crate::isolation) fn argv(args: &[String]) -> Result<CStringArray> {
        Ok(CStringArray::new(
            args.iter().map(|a| cstr(a)).collect::<Result<_>>()?,
        ))
    }

    /// A complete environment; names must be non-empty and free of `=`.
    pub(in crate::isolation) fn envp(env: &[(String, String)]) -> Result<CStringArray> {
        let strings = env
            .iter()
            .map(|(k, v)| {
                if k.is_empty() || k.contains('=') {
                    return Err(IsolationError::InvalidSpec(format!("bad env name {k:?}")));
                }
                cstr(&format!("{k}={v}"))
            })
            .collect::<Result<_>>()?;
        Ok(CStringArray::new(strings))
    }

    pub(in crate::isolation) fn as_ptr(&self) -> *const *const libc::c_char {
        self.ptrs.as_ptr()
    }
}

/// A close-on-exec copy of `fd` numbered ≥ 3, so dup2 onto 0..2 in the child can never clobber
/// another source.
pub(in crate::isolation) fn dup_high(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    // SAFETY: fcntl on a valid fd; the result is a new fd we own.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if n < 0 {
        return Err(sys("fcntl(F_DUPFD_CLOEXEC)", Errno::last()));
    }
    // SAFETY: n is fresh and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

pub(in crate::isolation) fn open_devnull() -> Result<OwnedFd> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map(OwnedFd::from)
        .map_err(|e| io_err("open", "/dev/null", e))
}

/// A close-on-exec stream socket pair. Sockets rather than pipes so a child reporting to a
/// caller that gave up gets EPIPE (MSG_NOSIGNAL) instead of dying of SIGPIPE.
pub(in crate::isolation) fn socket_pair() -> Result<(OwnedFd, OwnedFd)> {
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
