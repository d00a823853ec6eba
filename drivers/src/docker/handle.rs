//! What the driver persists in a `TaskHandle` and what it tracks per running task.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::stats::CpuSample;
use crate::{DriverError, ExitResult, LogSink, TaskHandle};

/// Version of [`HandleState`]'s schema (0 is reserved by Nomad for pre-0.9 handles).
pub const HANDLE_VERSION: u32 = 1;

/// The driver's part of a task handle: enough to find the container and its logs again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandleState {
    /// Engine container ID.
    pub container_id: String,
    /// Container name (`<task>-<alloc_id>`).
    pub container_name: String,
    /// Image reference the task asked for.
    pub image: String,
    /// Engine image ID (the GC refcount key).
    pub image_id: String,
    /// Alloc ID, for dangling-container bookkeeping.
    pub alloc_id: String,
    /// Where the logs go.
    pub logs: LogSink,
}

impl HandleState {
    /// Wraps the state in a handle for `task_id`.
    pub fn to_handle(&self, task_id: &str) -> Result<TaskHandle, DriverError> {
        Ok(TaskHandle {
            version: HANDLE_VERSION,
            driver: "docker".to_string(),
            task_id: task_id.to_string(),
            state: serde_json::to_value(self)
                .map_err(|e| DriverError::Failed(format!("encoding task handle: {e}")))?,
        })
    }

    /// Reads the state back from a handle this driver produced.
    pub fn from_handle(handle: &TaskHandle) -> Result<Self, DriverError> {
        if handle.driver != "docker" {
            return Err(DriverError::Failed(format!(
                "handle of driver {:?} given to the docker driver",
                handle.driver
            )));
        }
        if handle.version != HANDLE_VERSION {
            return Err(DriverError::Failed(format!(
                "unsupported docker handle version {}",
                handle.version
            )));
        }
        serde_json::from_value(handle.state.clone())
            .map_err(|e| DriverError::Failed(format!("decoding docker task handle: {e}")))
    }
}

/// A task the driver is tracking.
pub struct DockerTask {
    /// The persisted part.
    pub state: HandleState,
    /// Becomes `Some` once when the container has exited and its logs are written.
    pub exit: watch::Receiver<Option<ExitResult>>,
    /// Background work (wait, logs) aborted when the task is destroyed or the driver dropped.
    pub workers: Mutex<Vec<JoinHandle<()>>>,
    /// CPU counters of the last stats call.
    pub last_cpu: Mutex<Option<CpuSample>>,
}

impl DockerTask {
    /// The exit result if the container has exited.
    pub fn exited(&self) -> Option<ExitResult> {
        self.exit.borrow().clone()
    }

    /// Stops the background work.
    pub fn abort_workers(&self) {
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        for w in workers.drain(..) {
            w.abort();
        }
    }
}
