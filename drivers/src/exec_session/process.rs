//! An exec session over a local process: pipes (non-TTY) or a PTY, non-blocking I/O on the
//! parent's ends (no helper threads, so output is forwarded the moment it is written), the
//! exit learned from a pidfd.
//!
//! The caller supplies the spawn step (raw_exec: a host process; exec: a process entered into
//! the task's namespaces), which receives the child's stdio and returns its pid. The command
//! must lead its own process group (`setsid`): killing the session kills that group.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{ExecInput, ExecOutput, ExecRequest, ExecSession, pty};
use crate::driver::{DriverError, ExitResult};

/// Largest chunk read at once (one output frame).
const READ_CHUNK: usize = 32 * 1024;
/// How long output may still drain after the command exited (a background child can keep the
/// pipes open forever; Nomad's executor likewise stops copying once the process is gone).
const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// The terminal EOF character (^D) written for a stdin close on a TTY.
const TTY_EOF: u8 = 0x04;

/// The command's side of its stdio, for the spawn step (all close-on-exec in the parent).
#[derive(Debug)]
pub struct ChildStdio {
    /// stdin for the command.
    pub stdin: OwnedFd,
    /// stdout for the command.
    pub stdout: OwnedFd,
    /// stderr for the command.
    pub stderr: OwnedFd,
    /// The three are the same PTY slave: the command must `setsid` and make it its
    /// controlling terminal (`TIOCSCTTY` on fd 0).
    pub tty: bool,
}

/// What the spawn step started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpawnedExec {
    /// The process to wait for (our child).
    pub pid: i32,
    /// Process group to kill with the session (the command's own, after `setsid`).
    pub pgid: i32,
}

/// Parent ends of the stdio.
enum Ends {
    Pipes {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    Pty {
        master: OwnedFd,
    },
}

/// Starts a session: sets up stdio, calls `spawn`, and pumps I/O on the current runtime.
/// `kill_when` (e.g. "the task exited") kills the command when it resolves first.
pub fn start<F>(
    req: &ExecRequest,
    kill_when: Option<BoxFuture<'static, ()>>,
    spawn: F,
) -> Result<ExecSession, DriverError>
where
    F: FnOnce(ChildStdio) -> Result<SpawnedExec, DriverError>,
{
    let (ends, child) = if req.tty {
        let (master, slave) = pty::open(req.tty_size)?;
        let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| DriverError::io("dup pty", e));
        let child = ChildStdio {
            stdin: dup(&slave)?,
            stdout: dup(&slave)?,
            stderr: slave,
            tty: true,
        };
        (Ends::Pty { master }, child)
    } else {
        let (in_r, in_w) = pipe()?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let ends = Ends::Pipes {
            stdin: in_w,
            stdout: out_r,
            stderr: err_r,
        };
        let child = ChildStdio {
            stdin: in_r,
            stdout: out_w,
            stderr: err_w,
            tty: false,
        };
        (ends, child)
    };
    // `spawn` consumes the child ends, so ours are closed once it returns and EOF works.
    let spawned = spawn(child)?;
    let waiter = ExitWaiter::new(spawned.pid);
    let (session, in_rx, out_tx) = ExecSession::channel();
    let ends = match register(ends) {
        Ok(e) => e,
        Err(e) => {
            kill(spawned);
            return Err(e);
        }
    };
    tokio::spawn(run(spawned, waiter, ends, in_rx, out_tx, kill_when));
    Ok(session)
}

/// The parent ends, registered with the reactor.
enum AsyncEnds {
    Pipes {
        stdin: Arc<AsyncFd<OwnedFd>>,
        stdout: Arc<AsyncFd<OwnedFd>>,
        stderr: Arc<AsyncFd<OwnedFd>>,
    },
    Pty {
        master: Arc<AsyncFd<OwnedFd>>,
    },
}

fn register(ends: Ends) -> Result<AsyncEnds, DriverError> {
    let reg = |fd: OwnedFd| -> Result<Arc<AsyncFd<OwnedFd>>, DriverError> {
        set_nonblocking(fd.as_raw_fd()).map_err(|e| DriverError::io("O_NONBLOCK", e))?;
        register_fd(fd)
            .map(Arc::new)
            .map_err(|e| DriverError::io("registering exec stdio", e))
    };
    Ok(match ends {
        Ends::Pipes {
            stdin,
            stdout,
            stderr,
        } => AsyncEnds::Pipes {
            stdin: reg(stdin)?,
            stdout: reg(stdout)?,
            stderr: reg(stderr)?,
        },
        Ends::Pty { master } => AsyncEnds::Pty {
            master: reg(master)?,
        },
    })
}

/// Pumps one session until the command exited and its output drained (or the caller left).
async fn run(
    spawned: SpawnedExec,
    mut waiter: ExitWaiter,
    ends: AsyncEnds,
    mut in_rx: mpsc::Receiver<ExecInput>,
    out_tx: mpsc::Sender<ExecOutput>,
    kill_when: Option<BoxFuture<'static, ()>>,
) {
    // The writer owns the only reference to a stdin pipe, so finishing it closes stdin.
    let (writer_fd, master, mut readers, is_tty) = match ends {
        AsyncEnds::Pipes {
            stdin,
            stdout,
            stderr,
        } => (
            stdin,
            None,
            vec![
                reader(stdout, out_tx.clone(), Stream::Stdout),
                reader(stderr, out_tx.clone(), Stream::Stderr),
            ],
            false,
        ),
        AsyncEnds::Pty { master } => (
            master.clone(),
            Some(master.clone()),
            vec![reader(master, out_tx.clone(), Stream::Stdout)],
            true,
        ),
    };
    let (stdin_tx, stdin_rx) = mpsc::channel::<Option<Bytes>>(super::CHANNEL_CAPACITY);
    let writer = Some(tokio::spawn(write_stdin(writer_fd, stdin_rx, is_tty)));
    let mut stdin_tx = Some(stdin_tx);

    let mut kill_when = kill_when.unwrap_or_else(|| Box::pin(std::future::pending()));
    let mut killed = false;
    let exit = loop {
        tokio::select! {
            status = waiter.wait() => break status,
            input = in_rx.recv() => match input {
                Some(ExecInput::Stdin(data)) => {
                    if let Some(tx) = &stdin_tx && tx.send(Some(data)).await.is_err() {
                        stdin_tx = None;
                    }
                }
                Some(ExecInput::CloseStdin) => {
                    if let Some(tx) = stdin_tx.take() {
                        let _ = tx.send(None).await;
                    }
                }
                Some(ExecInput::Resize(size)) => {
                    if let Some(m) = &master && let Err(e) = pty::resize(m.get_ref(), size) {
                        tracing::debug!(error = %e, "exec tty resize failed");
                    }
                }
                None => {
                    // The caller went away: nobody will read the output or send an exit.
                    kill(spawned);
                    let _ = waiter.wait().await;
                    abort_all(&mut readers, writer);
                    return;
                }
            },
            () = &mut kill_when, if !killed => {
                killed = true;
                kill(spawned);
            }
        }
    };
    drop(stdin_tx);
    if let Some(w) = writer {
        w.abort();
    }
    // Output written just before the exit is still in the pipes: drain it, boundedly.
    let drained = tokio::time::timeout(DRAIN_GRACE, futures::future::join_all(readers.iter_mut()))
        .await
        .ok();
    let mut closed = [false, false];
    match drained {
        Some(results) => {
            for r in results.into_iter().flatten().flatten() {
                closed[r as usize] = true;
            }
        }
        None => {
            // A leftover background process holds the output open; stop listening to it.
            for r in &readers {
                r.abort();
            }
        }
    }
    for (stream, done) in [(Stream::Stdout, closed[0]), (Stream::Stderr, closed[1])] {
        if !done && out_tx.send(stream.closed()).await.is_err() {
            return;
        }
    }
    let _ = out_tx.send(ExecOutput::Exited(exit)).await;
}

fn abort_all(readers: &mut [JoinHandle<Option<Stream>>], writer: Option<JoinHandle<()>>) {
    for r in readers.iter() {
        r.abort();
    }
    if let Some(w) = writer {
        w.abort();
    }
}

/// Kills the command's process group and the waited process.
fn kill(s: SpawnedExec) {
    // SAFETY: kill(2) with plain integers; a stale group is simply ESRCH.
    unsafe {
        if s.pgid > 0 {
            libc::kill(-s.pgid, libc::SIGKILL);
        }
        libc::kill(s.pid, libc::SIGKILL);
    }
}

/// Which output stream a reader serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout = 0,
    Stderr = 1,
}

impl Stream {
    fn data(self, b: Bytes) -> ExecOutput {
        match self {
            Stream::Stdout => ExecOutput::Stdout(b),
            Stream::Stderr => ExecOutput::Stderr(b),
        }
    }
    fn closed(self) -> ExecOutput {
        match self {
            Stream::Stdout => ExecOutput::StdoutClosed,
            Stream::Stderr => ExecOutput::StderrClosed,
        }
    }
}

/// Forwards one stream until EOF; returns the stream if its close was sent.
fn reader(
    fd: Arc<AsyncFd<OwnedFd>>,
    tx: mpsc::Sender<ExecOutput>,
    stream: Stream,
) -> JoinHandle<Option<Stream>> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            match read_some(&fd, &mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    if tx
                        .send(stream.data(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        return None;
                    }
                }
                // EIO: every PTY slave is closed (the TTY equivalent of EOF).
                Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "exec output read failed");
                    break;
                }
            }
        }
        tx.send(stream.closed()).await.ok().map(|()| stream)
    })
}

/// Writes stdin chunks; `None` closes stdin (pipes) or types ^D (TTY).
async fn write_stdin(
    fd: Arc<AsyncFd<OwnedFd>>,
    mut rx: mpsc::Receiver<Option<Bytes>>,
    is_tty: bool,
) {
    while let Some(msg) = rx.recv().await {
        let data = match msg {
            Some(d) => d,
            None if is_tty => Bytes::from_static(&[TTY_EOF]),
            None => return,
        };
        if let Err(e) = write_all(&fd, &data).await {
            tracing::debug!(error = %e, "exec stdin write failed");
            return;
        }
    }
}

async fn read_some(fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        let res = guard.try_io(|inner| {
            // SAFETY: read into a live buffer of the given length.
            let n = unsafe { libc::read(inner.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        if let Ok(r) = res {
            return r;
        }
    }
}

async fn write_all(fd: &AsyncFd<OwnedFd>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let mut guard = fd.writable().await?;
        let res = guard.try_io(|inner| {
            // SAFETY: write from a live buffer of the given length.
            let n = unsafe { libc::write(inner.as_raw_fd(), data.as_ptr().cast(), data.len()) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        if let Ok(r) = res {
            data = &data[r?..];
        }
    }
    Ok(())
}

/// Waits for our child through a pidfd (no thread, no SIGCHLD games), then reaps it.
struct ExitWaiter {
    pid: i32,
    pidfd: Option<AsyncFd<OwnedFd>>,
    result: Option<ExitResult>,
}

impl ExitWaiter {
    fn new(pid: i32) -> Self {
        // SAFETY: pidfd_open takes a pid and flags; the result is a new fd we own.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let pidfd = (fd >= 0)
            // SAFETY: fd is fresh and owned by nobody else.
            .then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
            .and_then(|fd| register_fd(fd).ok());
        ExitWaiter {
            pid,
            pidfd,
            result: None,
        }
    }

    /// The exit status (cached; safe to call again after it resolved).
    async fn wait(&mut self) -> ExitResult {
        if let Some(r) = &self.result {
            return r.clone();
        }
        let r = match &self.pidfd {
            Some(fd) => loop {
                if let Some(r) = try_reap(self.pid) {
                    break r;
                }
                match fd.readable().await {
                    Ok(mut g) => g.clear_ready(),
                    Err(_) => break blocking_reap(self.pid).await,
                }
            },
            None => blocking_reap(self.pid).await,
        };
        self.result = Some(r.clone());
        r
    }
}

fn try_reap(pid: i32) -> Option<ExitResult> {
    let mut status = 0;
    // SAFETY: waitpid on our own child with a valid out pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    match r {
        0 => None,
        r if r == pid => Some(decode_status(status)),
        _ => Some(lost(io::Error::last_os_error())),
    }
}

async fn blocking_reap(pid: i32) -> ExitResult {
    tokio::task::spawn_blocking(move || {
        let mut status = 0;
        loop {
            // SAFETY: as in try_reap, blocking.
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            if r == pid {
                return decode_status(status);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return lost(e);
            }
        }
    })
    .await
    .unwrap_or_else(|e| lost(io::Error::other(e.to_string())))
}

fn lost(e: io::Error) -> ExitResult {
    ExitResult {
        exit_code: -1,
        err: Some(format!("waiting for exec process: {e}")),
        ..ExitResult::default()
    }
}

/// A wait status as Nomad-style exit result; a signal death reads as the shell's `128+sig`.
pub fn decode_status(status: i32) -> ExitResult {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        ExitResult {
            exit_code: 128 + sig,
            signal: sig,
            ..ExitResult::default()
        }
    } else {
        ExitResult {
            exit_code: libc::WEXITSTATUS(status),
            ..ExitResult::default()
        }
    }
}

/// Registers an owned descriptor with the reactor.
fn register_fd(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the OwnedFd moves into the AsyncFd, so it stays open and unchanged until the
    // AsyncFd drops it.
    unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)
}

fn pipe() -> Result<(OwnedFd, OwnedFd), DriverError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| DriverError::io("pipe", io::Error::from(e)))
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl get/set flags on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
