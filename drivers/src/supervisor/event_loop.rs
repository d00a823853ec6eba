//! The supervisor's single-threaded poll loop: task output, child reaping, agent requests.
//!
//! One thread and one 64 KiB buffer shared by both streams keep the process small: poll(2)
//! watches the listening socket, a signalfd for SIGCHLD, the task's two pipes and up to
//! [`MAX_CLIENTS`] agent connections. Nothing grows after start: the client table is
//! preallocated and each client has a fixed request buffer.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signalfd::SignalFd;

use super::exit_record::{self, ExitRecord};
use super::oom;
use super::proctree::{children_of, send_signal};
use super::protocol::{MAX_REQUEST_LINE, Request, Response, Status, decode_request};
use super::signals::is_known;
use crate::logrotate::FileRotator;

/// Size of the one read buffer (a default pipe holds 64 KiB).
const BUF_SIZE: usize = 64 * 1024;
/// Most agent connections served at once; more are refused.
pub const MAX_CLIENTS: usize = 16;
/// After the final SIGKILL, how long `stop` waits for the rest of the tree before answering.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// After `shutdown`, how long output is still drained before the supervisor exits regardless.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Pipe capacity asked for the task's output: a fast writer then blocks (and context-switches)
/// four times less often. Kernel memory, used only while the pipe actually holds data.
const PIPE_SIZE: i32 = 256 * 1024;
/// Reads per stream per wakeup, so one chatty stream cannot starve the other or the socket.
const READS_PER_WAKEUP: usize = 16;

/// One of the task's output streams.
struct Stream {
    fd: OwnedFd,
    rotator: FileRotator,
    /// Why the last write to the log failed; cleared by the next one that succeeds.
    write_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Idle,
    Wait,
    Stop,
}

/// One agent connection.
struct Client {
    sock: UnixStream,
    buf: [u8; MAX_REQUEST_LINE],
    len: usize,
    pending: Pending,
    dead: bool,
}

/// Fixed facts about the task, set at start.
pub struct TaskInfo {
    /// The driver's task ID.
    pub task_id: String,
    /// The process reaped and signalled: the leader (= process group = session), or the
    /// isolation shim that mirrors an isolated task.
    pub pid: u32,
    /// The task's own PID as the host sees it (reported in status; equals `pid` on the host).
    pub task_pid: u32,
    /// Signals go to the process group `-pid` (host task) or to `pid` alone (the shim).
    pub signal_group: bool,
    /// Unix milliseconds at start.
    pub started_at_ms: u64,
    /// Where the exit record goes.
    pub exit_record_path: PathBuf,
    /// The cgroup OOM counter file, if the cgroup code provided one.
    pub oom_events: Option<PathBuf>,
    /// The OOM kill count when the task started.
    pub oom_baseline: Option<u64>,
    /// How long to stay after exit + EOF without a `shutdown`.
    pub linger: Duration,
}

/// The running supervisor.
pub struct Supervisor {
    info: TaskInfo,
    my_pid: u32,
    listener: UnixListener,
    sigfd: SignalFd,
    streams: [Option<Stream>; 2],
    buf: Vec<u8>,
    clients: Vec<Client>,
    exit: Option<ExitRecord>,
    exited_at: Option<Instant>,
    has_children: bool,
    stop_deadline: Option<Instant>,
    killing_since: Option<Instant>,
    shutdown_at: Option<Instant>,
    output_closed_at: Option<Instant>,
}

impl Supervisor {
    /// Assembles the loop; the pipes are switched to non-blocking here.
    pub fn new(
        info: TaskInfo,
        listener: UnixListener,
        sigfd: SignalFd,
        stdout: (OwnedFd, FileRotator),
        stderr: (OwnedFd, FileRotator),
    ) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let mk = |(fd, rotator): (OwnedFd, FileRotator)| -> io::Result<Option<Stream>> {
            set_nonblocking(&fd)?;
            // Best effort: a lowered /proc/sys/fs/pipe-max-size just keeps the default.
            let _ = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
            Ok(Some(Stream {
                fd,
                rotator,
                write_error: None,
            }))
        };
        Ok(Supervisor {
            info,
            my_pid: std::process::id(),
            listener,
            sigfd,
            streams: [mk(stdout)?, mk(stderr)?],
            buf: vec![0u8; BUF_SIZE],
            clients: Vec::with_capacity(MAX_CLIENTS),
            exit: None,
            exited_at: None,
            has_children: true,
            stop_deadline: None,
            killing_since: None,
            shutdown_at: None,
            output_closed_at: None,
        })
    }

    /// Runs until `shutdown` (or the linger time) ends it.
    pub fn run(mut self) {
        const FIXED: usize = 4;
        let mut fds = [libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        }; FIXED + MAX_CLIENTS];
        loop {
            let now = Instant::now();
            self.on_timers(now);
            if self.should_exit(now) {
                return;
            }
            let timeout = self.poll_timeout(now);
            let watch = |fd: i32| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            fds[0] = watch(self.listener.as_raw_fd());
            fds[1] = watch(self.sigfd.as_fd().as_raw_fd());
            for (i, s) in self.streams.iter().enumerate() {
                // A negative fd makes poll skip the slot.
                fds[2 + i] = watch(s.as_ref().map_or(-1, |s| s.fd.as_raw_fd()));
            }
            let n_clients = self.clients.len();
            for (i, c) in self.clients.iter().enumerate() {
                fds[FIXED + i] = watch(c.sock.as_raw_fd());
            }
            let nfds = (FIXED + n_clients) as libc::nfds_t;
            // SAFETY: `fds` is a live array of at least `nfds` pollfd entries.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), nfds, timeout) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    eprintln!("yurt-supervisor: poll: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            for i in 0..2 {
                if fds[2 + i].revents != 0 {
                    self.pump(i, READS_PER_WAKEUP);
                }
            }
            if fds[1].revents != 0 {
                self.reap();
            }
            for i in 0..n_clients {
                if fds[FIXED + i].revents != 0 {
                    self.read_client(i);
                }
            }
            if fds[0].revents != 0 {
                self.accept();
            }
            self.clients.retain(|c| !c.dead);
        }
    }

    fn status(&self) -> Status {
        Status {
            supervisor_pid: self.my_pid,
            task_pid: self.info.task_pid,
            started_at_ms: self.info.started_at_ms,
            running: self.exit.is_none(),
            exit: self.exit.clone(),
            output_closed: self.streams.iter().all(Option::is_none),
            log_error: self
                .streams
                .iter()
                .flatten()
                .find_map(|s| s.write_error.clone()),
        }
    }

    /// Copies what stream `i` has ready into its rotator; at most `max_reads` reads.
    fn pump(&mut self, i: usize, max_reads: usize) {
        let Some(stream) = self.streams[i].as_mut() else {
            return;
        };
        for _ in 0..max_reads {
            match nix::unistd::read(stream.fd.as_fd(), &mut self.buf) {
                Ok(0) => {
                    self.close_stream(i);
                    return;
                }
                Ok(n) => {
                    if let Err(e) = stream.rotator.write_all(&self.buf[..n]) {
                        // Keep reading so the task never blocks on a full pipe (a full disk
                        // must not stop the task); the output is dropped until writes work
                        // again. Said once, and reported in the status for the agent.
                        if stream.write_error.is_none() {
                            let name = if i == 0 { "stdout" } else { "stderr" };
                            let why = format!("writing the {name} log: {e}");
                            eprintln!("yurt-supervisor: {why}; output is dropped");
                            stream.write_error = Some(why);
                        }
                    } else {
                        stream.write_error = None;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    eprintln!("yurt-supervisor: reading stream {i}: {e}");
                    self.close_stream(i);
                    return;
                }
            }
        }
    }

    fn close_stream(&mut self, i: usize) {
        self.streams[i] = None;
        if self.streams.iter().all(Option::is_none) {
            self.output_closed_at = Some(Instant::now());
        }
    }

    /// Reaps every exited child; the leader's exit is recorded and announced.
    fn reap(&mut self) {
        while let Ok(Some(_)) = self.sigfd.read_signal() {}
        loop {
            let mut status: libc::c_int = 0;
            // SAFETY: waitpid writes into a local integer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid == 0 {
                break;
            }
            if pid < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ECHILD) {
                    self.has_children = false;
                } else if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            if pid as u32 == self.info.pid {
                self.on_task_exit(status);
            }
        }
        if self.killing_since.is_some() && self.has_children {
            // Orphans of the task re-parent to us (we are a subreaper): kill them too.
            self.kill_children();
        }
    }

    fn on_task_exit(&mut self, status: libc::c_int) {
        // Whatever the leader wrote before dying is already in the pipes: land it on disk
        // before anyone learns of the exit.
        for i in 0..2 {
            self.pump(i, 64);
        }
        let mut rec = ExitRecord::from_wait_status(&self.info.task_id, self.info.task_pid, status);
        rec.started_at_ms = self.info.started_at_ms;
        rec.finished_at_ms = unix_ms();
        rec.oom_killed = match (&self.info.oom_events, self.info.oom_baseline) {
            (Some(path), Some(before)) => oom::oom_kills(path).is_ok_and(|now| now > before),
            _ => false,
        };
        if let Err(e) = exit_record::write_durable(&self.info.exit_record_path, &rec) {
            eprintln!(
                "yurt-supervisor: writing exit record {}: {e}",
                self.info.exit_record_path.display()
            );
        }
        self.exit = Some(rec);
        self.exited_at = Some(Instant::now());
        if self.stop_deadline.is_some() {
            self.escalate();
        }
        self.answer_pending(Pending::Wait);
    }

    /// Where a signal for "the task" goes: its process group, or the shim alone.
    fn signal_target(&self) -> i32 {
        if self.info.signal_group {
            -(self.info.pid as i32)
        } else {
            self.info.pid as i32
        }
    }

    /// SIGKILLs the task's group and every descendant we can see.
    fn escalate(&mut self) {
        self.stop_deadline = None;
        if let Err(e) = send_signal(self.signal_target(), libc::SIGKILL) {
            eprintln!("yurt-supervisor: killing the task: {e}");
        }
        if !self.info.signal_group && self.exit.is_none() {
            // The isolated task itself (its PID namespace dies with it); the shim, reaped as
            // our child below, then mirrors the SIGKILL.
            let _ = send_signal(self.info.task_pid as i32, libc::SIGKILL);
        }
        self.kill_children();
        self.killing_since.get_or_insert_with(Instant::now);
    }

    fn kill_children(&self) {
        for pid in children_of(self.my_pid) {
            let _ = send_signal(pid as i32, libc::SIGKILL);
        }
    }

    fn on_timers(&mut self, now: Instant) {
        if self.stop_deadline.is_some_and(|d| now >= d) && self.exit.is_none() {
            self.escalate();
        }
        let tree_gone = !self.has_children
            || self
                .killing_since
                .is_some_and(|since| now.duration_since(since) >= KILL_GRACE);
        if self.exit.is_some() && self.killing_since.is_some() && tree_gone {
            self.answer_pending(Pending::Stop);
        }
    }

    fn should_exit(&self, now: Instant) -> bool {
        if self.exit.is_none() || self.clients.iter().any(|c| c.pending == Pending::Stop) {
            return false;
        }
        let closed = self.streams.iter().all(Option::is_none);
        if let Some(at) = self.shutdown_at {
            return closed || now.duration_since(at) >= DRAIN_GRACE;
        }
        self.linger_deadline().is_some_and(|d| now >= d)
    }

    fn linger_deadline(&self) -> Option<Instant> {
        let closed = self.output_closed_at?;
        let exited = self.exited_at?;
        Some(closed.max(exited) + self.info.linger)
    }

    /// Milliseconds until the next timer, -1 for none.
    fn poll_timeout(&self, now: Instant) -> i32 {
        let mut next: Option<Instant> = self.stop_deadline;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if self.clients.iter().any(|c| c.pending == Pending::Stop) {
            consider(self.killing_since.map(|s| s + KILL_GRACE));
        }
        consider(self.shutdown_at.map(|s| s + DRAIN_GRACE));
        if self.shutdown_at.is_none() {
            consider(self.linger_deadline());
        }
        match next {
            None => -1,
            // Round up so we do not wake a millisecond early and spin.
            Some(t) => t
                .saturating_duration_since(now)
                .as_millis()
                .saturating_add(1)
                .min(i32::MAX as u128) as i32,
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    if self.clients.len() >= MAX_CLIENTS {
                        let _ = write_line(&sock, &self.reply(Err("too many connections")));
                        continue;
                    }
                    if sock.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.clients.push(Client {
                        sock,
                        buf: [0; MAX_REQUEST_LINE],
                        len: 0,
                        pending: Pending::Idle,
                        dead: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    fn read_client(&mut self, i: usize) {
        loop {
            let c = &mut self.clients[i];
            if c.dead {
                return;
            }
            if c.len == c.buf.len() {
                let resp = self.reply(Err("request line too long"));
                let c = &mut self.clients[i];
                let _ = write_line(&c.sock, &resp);
                c.dead = true;
                return;
            }
            let len = c.len;
            match c.sock.read(&mut c.buf[len..]) {
                Ok(0) => {
                    c.dead = true;
                    return;
                }
                Ok(n) => c.len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    c.dead = true;
                    return;
                }
            }
            while let Some(nl) = {
                let c = &self.clients[i];
                c.buf[..c.len].iter().position(|&b| b == b'\n')
            } {
                let parsed = decode_request(&self.clients[i].buf[..nl]);
                let c = &mut self.clients[i];
                c.buf.copy_within(nl + 1..c.len, 0);
                c.len -= nl + 1;
                match parsed {
                    Ok(req) => self.handle(i, req),
                    Err(msg) => self.answer(i, Err(&msg)),
                }
            }
        }
    }

    fn handle(&mut self, i: usize, req: Request) {
        if self.clients[i].pending != Pending::Idle {
            self.answer(
                i,
                Err("a request is already in progress on this connection"),
            );
            return;
        }
        match req {
            Request::Status => self.answer(i, Ok(())),
            Request::Signal { signal } => {
                let res = if !is_known(signal) {
                    Err(format!("unknown signal {signal}"))
                } else if self.exit.is_some() {
                    Err("Task not running".to_string())
                } else {
                    send_signal(self.info.pid as i32, signal).map_err(|e| e.to_string())
                };
                self.answer(i, res.as_ref().map(|_| ()).map_err(String::as_str));
            }
            Request::Stop { signal, timeout_ms } => {
                if !is_known(signal) {
                    self.answer(i, Err(&format!("unknown signal {signal}")));
                    return;
                }
                self.clients[i].pending = Pending::Stop;
                if self.exit.is_some() || timeout_ms == 0 {
                    self.escalate();
                    return;
                }
                if signal != 0 {
                    let _ = send_signal(self.signal_target(), signal);
                }
                let deadline = Instant::now() + Duration::from_millis(timeout_ms);
                self.stop_deadline = Some(self.stop_deadline.map_or(deadline, |d| d.min(deadline)));
            }
            Request::Wait => {
                if self.exit.is_some() {
                    self.answer(i, Ok(()));
                } else {
                    self.clients[i].pending = Pending::Wait;
                }
            }
            Request::Shutdown => {
                if self.exit.is_none() {
                    self.answer(i, Err("task is running; stop it first"));
                    return;
                }
                self.answer(i, Ok(()));
                // Leftover descendants would keep the pipes open forever.
                self.escalate();
                self.shutdown_at.get_or_insert_with(Instant::now);
            }
        }
    }

    fn reply(&self, res: Result<(), &str>) -> Response {
        Response {
            ok: res.is_ok(),
            error: res.err().map(str::to_string),
            status: self.status(),
        }
    }

    fn answer(&mut self, i: usize, res: Result<(), &str>) {
        let resp = self.reply(res);
        let c = &mut self.clients[i];
        c.pending = Pending::Idle;
        if write_line(&c.sock, &resp).is_err() {
            c.dead = true;
        }
    }

    fn answer_pending(&mut self, kind: Pending) {
        for i in 0..self.clients.len() {
            if self.clients[i].pending == kind && !self.clients[i].dead {
                self.answer(i, Ok(()));
            }
        }
    }
}

/// Writes one response line; a client too slow to take a few hundred bytes is dropped.
fn write_line(mut sock: &UnixStream, resp: &Response) -> io::Result<()> {
    let mut line = serde_json::to_vec(resp).map_err(io::Error::other)?;
    line.push(b'\n');
    sock.write_all(&line)
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
