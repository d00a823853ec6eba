//! What the task handle of a supervised task stores: everything `recover_task` needs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::driver::{DriverError, ExitResult, TaskHandle};
use crate::supervisor::exit_record::{self, ExitRecord};

/// Version of [`SupervisedState`] inside `TaskHandle.version`.
pub const HANDLE_VERSION: u32 = 1;

/// `TaskHandle.state` for raw_exec and exec.
///
/// `cgroup` and `chroot` were added after version 1 shipped; they default to None so older
/// handles still decode (such tasks are recovered without cgroup stats or teardown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisedState {
    /// The supervisor's unix socket.
    pub socket_path: PathBuf,
    /// PID of the supervisor process.
    pub supervisor_pid: u32,
    /// PID of the task (raw_exec: the leader = its process group and session; exec: the task
    /// process as the host sees it, PID 1 of its namespace).
    pub task_pid: u32,
    /// The launch spec the supervisor ran.
    pub spec_path: PathBuf,
    /// Where the supervisor writes the durable exit record.
    pub exit_record_path: PathBuf,
    /// Unix milliseconds when the task started.
    pub started_at_ms: u64,
    /// Name of the task cgroup under the agent's cgroup parent (`<alloc_id>.<task>`), if the
    /// task got one; reattached by name on recovery.
    #[serde(default)]
    pub cgroup: Option<String>,
    /// The task dir holding the task's chroot mounts (exec), torn down on destroy.
    #[serde(default)]
    pub chroot: Option<PathBuf>,
}

impl SupervisedState {
    /// Decodes the state of a persisted handle of `driver`.
    pub fn from_handle(handle: &TaskHandle, driver: &str) -> Result<Self, DriverError> {
        if handle.version != HANDLE_VERSION {
            return Err(DriverError::Failed(format!(
                "{driver} handle version {} is not {HANDLE_VERSION}",
                handle.version
            )));
        }
        serde_json::from_value(handle.state.clone())
            .map_err(|e| DriverError::Failed(format!("decoding {driver} handle state: {e}")))
    }

    /// The exit record of this run, if the supervisor wrote one. A task ID is reused by every
    /// restart of the task, so a record counts only when it also names this run's task PID
    /// and start time (both from the supervisor's ready line, which the handle stores).
    pub fn read_exit(&self, task_id: &str) -> Option<ExitResult> {
        read_exit_record(&self.exit_record_path, |rec| {
            rec.task_id == task_id
                && rec.task_pid == self.task_pid
                && rec.started_at_ms == self.started_at_ms
        })
    }
}

fn read_exit_record(path: &Path, this_run: impl Fn(&ExitRecord) -> bool) -> Option<ExitResult> {
    match exit_record::read(path) {
        Ok(Some(rec)) if this_run(&rec) => Some(rec.to_exit_result()),
        Ok(Some(rec)) => {
            tracing::warn!(path = %path.display(), task_id = %rec.task_id,
                task_pid = rec.task_pid, started_at_ms = rec.started_at_ms,
                "ignoring an exit record of another run");
            None
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable exit record");
            None
        }
    }
}
