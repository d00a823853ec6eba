//! The agent ↔ supervisor protocol: one JSON object per line over a unix stream socket.
//!
//! Requests (`op` tagged):
//! - `{"op":"status"}`: current state, answered at once.
//! - `{"op":"signal","signal":10}`: deliver a signal to the task's leader process.
//! - `{"op":"stop","signal":2,"timeout_ms":5000}`: signal the task's process group, wait up to
//!   the timeout for the leader, then SIGKILL the group and every remaining descendant;
//!   answered once the leader is dead and the tree is gone (or 2 s after the final kill).
//! - `{"op":"wait"}`: answered when the task exits (at once if it already has).
//! - `{"op":"shutdown"}`: refused while the task runs; otherwise answered at once, then the
//!   supervisor kills any leftover descendants, drains the logs and exits, which closes the
//!   connection (the client learns it is gone from EOF).
//!
//! Every answer is a [`Response`] carrying the full [`Status`]. A connection may carry several
//! requests in sequence; `wait` and `stop` block only their own connection.

use serde::{Deserialize, Serialize};

use super::exit_record::ExitRecord;

/// One request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Report the current state.
    Status,
    /// Deliver `signal` (a number from the Nomad table) to the task leader.
    Signal {
        /// Signal number.
        signal: i32,
    },
    /// Graceful stop with escalation to SIGKILL after `timeout_ms`.
    Stop {
        /// First signal, sent to the task's process group (0 = go straight to SIGKILL).
        signal: i32,
        /// Grace period before SIGKILL.
        timeout_ms: u64,
    },
    /// Block until the task has exited.
    Wait,
    /// Exit once the task is dead and its output is drained.
    Shutdown,
}

/// The supervisor's view of its task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// PID of the supervisor process.
    pub supervisor_pid: u32,
    /// PID of the task's leader process (also its process group and session ID).
    pub task_pid: u32,
    /// Unix milliseconds when the task was started.
    pub started_at_ms: u64,
    /// Whether the leader process is still alive.
    pub running: bool,
    /// The exit, once the leader has been reaped.
    pub exit: Option<ExitRecord>,
    /// Whether both output pipes reached EOF (every writer, background children too, is gone).
    pub output_closed: bool,
    /// Why the task's output is not reaching its log files (e.g. the disk is full), while
    /// that lasts; the output read meanwhile is dropped so the task never blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_error: Option<String>,
}

/// One answer line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// False when the request was refused or failed; `error` says why.
    pub ok: bool,
    /// Why the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// State after handling the request.
    pub status: Status,
}

/// The single line the supervisor writes to its stdout once the task runs (or failed to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// False when the task could not be started; `error` says why.
    pub ok: bool,
    /// Why the start failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// PID of the supervisor (the daemonized grandchild, not the process the launcher forked).
    #[serde(default)]
    pub supervisor_pid: u32,
    /// PID of the task leader.
    #[serde(default)]
    pub task_pid: u32,
    /// Unix milliseconds when the task was started.
    #[serde(default)]
    pub started_at_ms: u64,
}

/// Longest request line the supervisor accepts.
pub const MAX_REQUEST_LINE: usize = 512;

/// Decodes one request line (its newline already stripped). The error is the text the
/// supervisor answers with: the line came from a socket, so it may be anything.
pub fn decode_request(line: &[u8]) -> Result<Request, String> {
    serde_json::from_slice(line).map_err(|e| format!("bad request: {e}"))
}
