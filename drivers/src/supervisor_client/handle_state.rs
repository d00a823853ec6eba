//! What the task handle of a supervised task stores: everything `recover_task` needs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::driver::{DriverError, ExitResult, TaskHandle};
use crate::supervisor::exit_record;

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
