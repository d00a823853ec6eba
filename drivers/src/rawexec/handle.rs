//! What a raw_exec task handle stores, and the driver's live per-task entry.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::driver::{DriverError, ExitResult, TaskHandle};
use crate::supervisor::{client, exit_record, proctree};

/// Version of [`RawExecState`] inside `TaskHandle.version`.
pub const HANDLE_VERSION: u32 = 1;

/// `TaskHandle.state` for raw_exec: everything `recover_task` needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawExecState {
    /// The supervisor's unix socket.
    pub socket_path: PathBuf,
    /// PID of the supervisor process.
    pub supervisor_pid: u32,
    /// PID of the task leader (= its process group and session).
    pub task_pid: u32,
    /// The launch spec the supervisor ran.
    pub spec_path: PathBuf,
    /// Where the supervisor writes the durable exit record.
    pub exit_record_path: PathBuf,
    /// Unix milliseconds when the task started.
    pub started_at_ms: u64,
}

impl RawExecState {
    /// Decodes the state of a persisted handle.
    pub fn from_handle(handle: &TaskHandle) -> Result<Self, DriverError> {
        if handle.version != HANDLE_VERSION {
            return Err(DriverError::Failed(format!(
                "raw_exec handle version {} is not {HANDLE_VERSION}",
                handle.version
            )));
        }
        serde_json::from_value(handle.state.clone())
            .map_err(|e| DriverError::Failed(format!("decoding raw_exec handle state: {e}")))
    }

    /// The exit record of this run, if the supervisor wrote one (a record of another task
    /// ID, left by an older run, does not count).
    pub fn read_exit(&self, task_id: &str) -> Option<ExitResult> {
        read_exit_record(&self.exit_record_path, task_id)
    }
}

fn read_exit_record(path: &Path, task_id: &str) -> Option<ExitResult> {
    match exit_record::read(path) {
        Ok(Some(rec)) if rec.task_id == task_id => Some(rec.to_exit_result()),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable exit record");
            None
        }
    }
}

/// The last CPU sample of a task, for percentages.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    /// When it was taken.
    pub at: Instant,
    /// User ticks summed over the tree.
    pub user: u64,
    /// System ticks summed over the tree.
    pub system: u64,
}

/// A tracked task: its handle state and a watch on its exit.
pub struct TaskEntry {
    /// The driver task ID.
    pub task_id: String,
    /// What the handle stores.
    pub state: RawExecState,
    exit: watch::Receiver<Option<ExitResult>>,
    waiter: Option<JoinHandle<()>>,
    /// Previous CPU sample for `task_stats`.
    pub cpu_prev: Mutex<Option<CpuSample>>,
}

impl TaskEntry {
    /// Tracks a task with a live supervisor: a background `wait` call learns its exit.
    pub fn watch(task_id: String, state: RawExecState) -> Self {
        let (tx, rx) = watch::channel(None);
        let waiter = tokio::spawn(watch_exit(task_id.clone(), state.clone(), tx));
        TaskEntry {
            task_id,
            state,
            exit: rx,
            waiter: Some(waiter),
            cpu_prev: Mutex::new(None),
        }
    }

    /// Tracks a task whose exit is already known (recovered from the durable record).
    pub fn exited(task_id: String, state: RawExecState, result: ExitResult) -> Self {
        let (_tx, rx) = watch::channel(Some(result));
        TaskEntry {
            task_id,
            state,
            exit: rx,
            waiter: None,
            cpu_prev: Mutex::new(None),
        }
    }

    /// The exit, if the task has exited.
    pub fn exit_result(&self) -> Option<ExitResult> {
        self.exit.borrow().clone()
    }

    /// Resolves when the task exits.
    pub async fn wait(&self) -> ExitResult {
        let mut rx = self.exit.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone().unwrap_or_default(),
            Err(_) => ExitResult {
                exit_code: -1,
                err: Some("exit watcher stopped without a result".into()),
                ..ExitResult::default()
            },
        }
    }
}

impl Drop for TaskEntry {
    fn drop(&mut self) {
        if let Some(w) = self.waiter.take() {
            w.abort();
        }
    }
}

/// Holds a `wait` call open on the supervisor; falls back to the durable record if it dies.
async fn watch_exit(task_id: String, state: RawExecState, tx: watch::Sender<Option<ExitResult>>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let err = match client::wait(&state.socket_path).await {
            Ok(rec) => {
                let _ = tx.send(Some(rec.to_exit_result()));
                return;
            }
            Err(e) => e,
        };
        if let Some(result) = state.read_exit(&task_id) {
            let _ = tx.send(Some(result));
            return;
        }
        if !proctree::is_alive(state.supervisor_pid) {
            // It may have written the record between our two looks.
            let result = state.read_exit(&task_id).unwrap_or_else(|| ExitResult {
                exit_code: -1,
                err: Some(format!(
                    "supervisor exited without recording the task's exit: {err}"
                )),
                ..ExitResult::default()
            });
            let _ = tx.send(Some(result));
            return;
        }
        tracing::debug!(task_id, error = %err, "supervisor wait failed; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
