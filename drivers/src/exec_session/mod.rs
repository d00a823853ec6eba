//! `alloc exec` sessions: what every driver shares for running a command inside a task — the
//! request, the channels it answers through, and the local-process plumbing. Driver-agnostic:
//! the HTTP layer only sees [`ExecSession`]. Each driver has exactly one module of its own
//! for what differs: `rawexec::alloc_exec` (a host process with the task's identity),
//! `exec::alloc_exec` (entering the isolated task) and `docker::alloc_exec` (`docker exec`).
//!
//! - [`process`]: a session over a local process (pipes or a PTY), used by raw_exec and exec;
//! - [`pty`]: opening and resizing pseudo-terminals.
//!
//! Lifecycle: the driver sends output and, last, [`ExecOutput::Exited`]. Dropping the session
//! (both channel ends) tells the driver the caller went away: it kills the command.

pub mod process;
pub mod pty;

use std::collections::BTreeMap;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::driver::ExitResult;

/// Terminal size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TtySize {
    /// Rows.
    pub height: u16,
    /// Columns.
    pub width: u16,
}

/// A command to run inside a running task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecRequest {
    /// argv; must not be empty.
    pub command: Vec<String>,
    /// Allocate a pseudo-terminal (stderr is then merged into stdout).
    pub tty: bool,
    /// Variables added to (and overriding) the task's environment.
    pub env: BTreeMap<String, String>,
    /// Initial terminal size when `tty` is set.
    pub tty_size: Option<TtySize>,
}

/// Caller → command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecInput {
    /// Bytes for the command's stdin.
    Stdin(Bytes),
    /// End of stdin (on a TTY: the EOF character).
    CloseStdin,
    /// The caller's terminal changed size (ignored without a TTY).
    Resize(TtySize),
}

/// Command → caller, in order; `Exited` comes last, after both streams closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    /// Bytes the command wrote to stdout (or to its TTY).
    Stdout(Bytes),
    /// Bytes the command wrote to stderr.
    Stderr(Bytes),
    /// stdout reached EOF.
    StdoutClosed,
    /// stderr reached EOF (sent right away with a TTY, where stderr is merged into stdout).
    StderrClosed,
    /// The command ended.
    Exited(ExitResult),
}

/// Capacity of the input and output channels (frames, not bytes).
pub const CHANNEL_CAPACITY: usize = 64;

/// A running exec: send input, receive output until `Exited`. Drop to kill the command.
#[derive(Debug)]
pub struct ExecSession {
    /// Stdin, stdin close and resizes.
    pub input: mpsc::Sender<ExecInput>,
    /// Output and the final exit.
    pub output: mpsc::Receiver<ExecOutput>,
}

impl ExecSession {
    /// A session and the driver's ends of its two channels.
    pub fn channel() -> (
        ExecSession,
        mpsc::Receiver<ExecInput>,
        mpsc::Sender<ExecOutput>,
    ) {
        let (in_tx, in_rx) = mpsc::channel(CHANNEL_CAPACITY);
        let (out_tx, out_rx) = mpsc::channel(CHANNEL_CAPACITY);
        (
            ExecSession {
                input: in_tx,
                output: out_rx,
            },
            in_rx,
            out_tx,
        )
    }
}
