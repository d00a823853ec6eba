//! The driver's live entry for one supervised task, with a watch on its exit.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::connection;
use super::handle_state::SupervisedState;
use crate::cgroups::TaskCgroup;
use crate::driver::{DriverError, DriverEvent, EventSink, ExitResult};
use crate::supervisor::LaunchSpec;
use crate::supervisor::Request;
use crate::supervisor::proctree;

/// Where every cgroup filesystem is mounted.
const CGROUP_MOUNTS: &str = "/sys/fs/cgroup/";

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
    pub state: SupervisedState,
    exit: watch::Receiver<Option<ExitResult>>,
    waiter: Option<JoinHandle<()>>,
    /// The task cgroup (stats, tree kill, removal); None when cgroups are unavailable.
    pub cgroup: Option<Arc<TaskCgroup>>,
    /// Previous CPU sample for `task_stats` from /proc (used without a cgroup).
    pub cpu_prev: Mutex<Option<CpuSample>>,
}

impl TaskEntry {
    /// Tracks a task with a live supervisor: a background `wait` call learns its exit, and,
    /// given `events`, a slow status poll raises an event when its logs stop (or resume)
    /// being written.
    pub fn watch(
        task_id: String,
        state: SupervisedState,
        cgroup: Option<Arc<TaskCgroup>>,
        events: Option<EventSink>,
    ) -> Self {
        let (tx, rx) = watch::channel(None);
        let exit = watch_exit(task_id.clone(), state.clone(), tx);
        let waiter = match events {
            Some(sink) => {
                let logs = watch_logs(task_id.clone(), state.socket_path.clone(), sink);
                tokio::spawn(async move {
                    // The poll never ends on its own; the task's exit ends both.
                    tokio::select! {
                        _ = exit => {}
                        _ = logs => {}
                    }
                })
            }
            None => tokio::spawn(exit),
        };
        TaskEntry {
            task_id,
            state,
            exit: rx,
            waiter: Some(waiter),
            cgroup,
            cpu_prev: Mutex::new(None),
        }
    }

    /// Tracks a task whose exit is already known (recovered from the durable record).
    pub fn exited(
        task_id: String,
        state: SupervisedState,
        cgroup: Option<Arc<TaskCgroup>>,
        result: ExitResult,
    ) -> Self {
        let (_tx, rx) = watch::channel(Some(result));
        TaskEntry {
            task_id,
            state,
            exit: rx,
            waiter: None,
            cgroup,
            cpu_prev: Mutex::new(None),
        }
    }

    /// The exit, if the task has exited.
    pub fn exit_result(&self) -> Option<ExitResult> {
        self.exit.borrow().clone()
    }

    /// The launch spec this task runs, read back for `alloc exec` (its environment, user,
    /// working dir, capabilities and cgroup files). Read only as our own file, never through
    /// a link, and checked against what the agent knows without it: its socket, exit record,
    /// cgroup and chroot. That matters for tasks an older build started, whose spec lies in
    /// the task's own directory.
    pub fn launch_spec(&self) -> Result<LaunchSpec, DriverError> {
        let spec = LaunchSpec::load(&self.state.spec_path)
            .map_err(|e| DriverError::Failed(format!("reading task spec: {e}")))?;
        let mismatch = |what: &str| {
            DriverError::Failed(format!(
                "task spec {} does not match the task's {what}; refusing to use it",
                self.state.spec_path.display()
            ))
        };
        if spec.task_id != self.task_id {
            return Err(mismatch("ID"));
        }
        if spec.socket_path != self.state.socket_path
            || spec.exit_record_path != self.state.exit_record_path
        {
            return Err(mismatch("supervisor"));
        }
        let cgroup_ok = match &self.cgroup {
            Some(cg) => spec.cgroup_procs == cg.procs_files(),
            // Handles from before the cgroup was recorded: cgroup.procs files, nothing else.
            None => spec.cgroup_procs.iter().all(|p| {
                p.starts_with(CGROUP_MOUNTS)
                    && p.file_name().is_some_and(|n| n == "cgroup.procs")
                    && !p.components().any(|c| c == std::path::Component::ParentDir)
            }),
        };
        if !cgroup_ok {
            return Err(mismatch("cgroup"));
        }
        let root = spec.isolation.as_ref().map(|i| &i.root);
        if self.state.chroot.is_some() && root != self.state.chroot.as_ref() {
            return Err(mismatch("chroot"));
        }
        Ok(spec)
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

/// How often a running task's supervisor is asked whether its logs are being written.
const LOG_POLL: Duration = Duration::from_secs(3);

/// Raises a `Disk full`-style event when the supervisor reports that the task's output no
/// longer reaches its log files, and another when it does again. Polled slowly: the
/// supervisor keeps draining the task's pipes meanwhile, so nothing waits on this.
async fn watch_logs(task_id: String, socket: PathBuf, sink: EventSink) {
    let mut failing = false;
    loop {
        tokio::time::sleep(LOG_POLL).await;
        let Ok(status) = connection::call(&socket, &Request::Status, LOG_POLL).await else {
            continue;
        };
        let message = match (&status.log_error, failing) {
            (Some(why), false) => {
                failing = true;
                format!("Disk full: task output is being dropped ({why})")
            }
            (None, true) => {
                failing = false;
                "Task output is being written to its logs again".to_string()
            }
            _ => continue,
        };
        tracing::warn!(task_id, %message, "task log health changed");
        let ev = DriverEvent {
            task_id: task_id.clone(),
            message,
            annotations: BTreeMap::new(),
        };
        if sink.send(ev).is_err() {
            return;
        }
    }
}

/// Holds a `wait` call open on the supervisor; falls back to the durable record if it dies.
async fn watch_exit(
    task_id: String,
    state: SupervisedState,
    tx: watch::Sender<Option<ExitResult>>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let err = match connection::wait(&state.socket_path).await {
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
