//! The task table shared by raw_exec and exec: start through a supervisor, recover, wait,
//! stop, destroy, signal and stats. The drivers only parse their configs and say what to run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::RwLock;

use super::cleanup::release;
use super::connection::{self, ClientError};
use super::handle_state::{HANDLE_VERSION, SupervisedState};
use super::launcher::SupervisorCommand;
use super::launcher::runs_supervisor_of;
use super::spec_file::{TaskCommand, prepare};
use super::task_entry::TaskEntry;
use super::{cgroup, proc_stats, stray};
use crate::cgroups::{CgroupManager, TaskCgroup};
use crate::driver::{
    DriverError, EventSink, ExitResult, TaskConfig, TaskHandle, TaskResourceUsage,
};
use crate::supervisor::Request;
use crate::supervisor::signals::parse_signal;

/// How long a supervisor may take to report that its task runs.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Quick calls (status, signal).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Added to the kill timeout for a `stop` answer (the supervisor waits ≤ 2 s for the tree).
const STOP_SLACK: Duration = Duration::from_secs(15);
/// How long `destroy` waits for a supervisor to drain and exit.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// The supervised tasks of one driver.
pub struct SupervisedTasks {
    driver: &'static str,
    supervisor: SupervisorCommand,
    cgroups: Option<CgroupManager>,
    tasks: RwLock<HashMap<String, Arc<TaskEntry>>>,
    /// Where trouble a supervisor reports on its own (logs not written) is raised.
    events: Option<EventSink>,
}

/// Runs blocking work (cgroupfs, mounts, the launcher) off the async threads.
async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T, DriverError> + Send + 'static,
) -> Result<T, DriverError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DriverError::Failed(format!("{what}: {e}")))?
}

impl SupervisedTasks {
    /// An empty table for `driver`; tasks get a cgroup under `cgroups` when it is set.
    pub fn new(
        driver: &'static str,
        supervisor: SupervisorCommand,
        cgroups: Option<CgroupManager>,
    ) -> Self {
        SupervisedTasks {
            driver,
            supervisor,
            cgroups,
            tasks: RwLock::new(HashMap::new()),
            events: None,
        }
    }

    /// Raises the task events supervisors give cause for (a task's logs no longer being
    /// written, and written again) on `events`.
    pub fn with_events(mut self, events: EventSink) -> Self {
        self.events = Some(events);
        self
    }

    /// The cgroup manager tasks are placed with, if cgroups are in use.
    pub fn cgroups(&self) -> Option<&CgroupManager> {
        self.cgroups.as_ref()
    }

    /// The tracked task `task_id`.
    pub async fn entry(&self, task_id: &str) -> Result<Arc<TaskEntry>, DriverError> {
        self.tasks
            .read()
            .await
            .get(task_id)
            .cloned()
            .ok_or_else(|| DriverError::TaskNotFound(task_id.to_string()))
    }

    /// Starts `cfg`: creates its cgroup, runs `command` (blocking: it may build a chroot and
    /// resolve the program), writes the spec and launches the supervisor. On failure the
    /// cgroup and the mounts under `chroot` are released again.
    pub async fn start<F>(
        &self,
        cfg: &TaskConfig,
        chroot: Option<PathBuf>,
        command: F,
    ) -> Result<TaskHandle, DriverError>
    where
        F: FnOnce() -> Result<TaskCommand, DriverError> + Send + 'static,
    {
        // Checked before the cgroup exists: a duplicate must not touch the running task's.
        if self.tasks.read().await.contains_key(&cfg.id) {
            return Err(DriverError::Failed(format!(
                "task with ID {:?} already started",
                cfg.id
            )));
        }
        let (manager, sv, c, root) = (
            self.cgroups.clone(),
            self.supervisor.clone(),
            cfg.clone(),
            chroot.clone(),
        );
        let queued = std::time::Instant::now();
        let (prepared, ready, cg) = blocking("task launcher", move || {
            let started = std::time::Instant::now();
            let cg = manager
                .as_ref()
                .map(|m| cgroup::create(m, &c))
                .transpose()?;
            let cg_us = started.elapsed().as_micros() as u64;
            let launched = command().and_then(|cmd| {
                let p = prepare(&c, &sv, cmd, cg.as_deref())?;
                let prepared_us = started.elapsed().as_micros() as u64;
                let ready = sv
                    .launch(&p.spec_path, &p.log_path, START_TIMEOUT)
                    .map_err(|e| DriverError::Failed(format!("failed to start task: {e}")))?;
                tracing::debug!(target: "yurt::latency", step = "supervisor ready", task_id = %c.id,
                    queued_us = started.duration_since(queued).as_micros() as u64, cgroup_us = cg_us,
                    prepared_us, us = started.elapsed().as_micros() as u64);
                Ok((p, ready))
            });
            match launched {
                Ok((p, ready)) => Ok((p, ready, cg)),
                Err(e) => {
                    if let Err(re) = release(cg.as_deref(), root.as_deref()) {
                        tracing::warn!(error = %re, "releasing a task that failed to start");
                    }
                    Err(e)
                }
            }
        })
        .await?;
        let state = SupervisedState {
            socket_path: prepared.spec.socket_path.clone(),
            supervisor_pid: ready.supervisor_pid,
            task_pid: ready.task_pid,
            spec_path: prepared.spec_path,
            exit_record_path: prepared.spec.exit_record_path.clone(),
            started_at_ms: ready.started_at_ms,
            cgroup: cg.as_ref().map(|c| c.name().to_string()),
            chroot,
        };
        let handle = TaskHandle {
            version: HANDLE_VERSION,
            driver: self.driver.into(),
            task_id: cfg.id.clone(),
            state: serde_json::to_value(&state)
                .map_err(|e| DriverError::Failed(format!("encoding handle: {e}")))?,
        };
        let entry = Arc::new(TaskEntry::watch(
            cfg.id.clone(),
            state,
            cg,
            self.events.clone(),
        ));
        self.tasks.write().await.insert(cfg.id.clone(), entry);
        Ok(handle)
    }

    /// Re-attaches to a task started by an earlier agent: its supervisor (or its durable exit
    /// record) and its cgroup by name. A tracked task is a no-op.
    pub async fn recover(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        if self.tasks.read().await.contains_key(&handle.task_id) {
            return Ok(());
        }
        let state = SupervisedState::from_handle(handle, self.driver)?;
        let id = handle.task_id.clone();
        let cg = match (&self.cgroups, &state.cgroup) {
            (Some(m), Some(name)) => {
                let (m, name) = (m.clone(), name.clone());
                blocking("reattaching cgroup", move || {
                    Ok(cgroup::reattach(&m, &name))
                })
                .await?
            }
            _ => None,
        };
        let entry = match connection::call(&state.socket_path, &Request::Status, CALL_TIMEOUT).await
        {
            Ok(status) if status.task_pid == state.task_pid => {
                TaskEntry::watch(id.clone(), state, cg, self.events.clone())
            }
            Ok(status) => {
                return Err(DriverError::Failed(format!(
                    "failed to recover task {id}: supervisor runs pid {}, handle says {}",
                    status.task_pid, state.task_pid
                )));
            }
            Err(e) => match state.read_exit(&id) {
                Some(result) => TaskEntry::exited(id.clone(), state, cg, result),
                None => {
                    // The task runner starts the task anew after a failed recovery: whatever
                    // is left of this instance must not run beside the new one.
                    blocking("abandoning the unrecoverable task", move || {
                        abandon(&state, cg.as_deref());
                        Ok(())
                    })
                    .await?;
                    return Err(DriverError::Failed(format!(
                        "failed to recover task {id}: supervisor unreachable ({e}) and no exit record"
                    )));
                }
            },
        };
        self.tasks.write().await.insert(id, Arc::new(entry));
        Ok(())
    }

    /// Resolves when the task exits.
    pub async fn wait(&self, task_id: &str) -> Result<ExitResult, DriverError> {
        let entry = self.entry(task_id).await?;
        Ok(entry.wait().await)
    }

    /// Sends `signal` (empty: SIGINT), escalates to SIGKILL after `timeout`, then kills
    /// whatever is left in the task cgroup.
    pub async fn stop(
        &self,
        task_id: &str,
        timeout: Duration,
        signal: &str,
    ) -> Result<(), DriverError> {
        let entry = self.entry(task_id).await?;
        let name = if signal.is_empty() { "SIGINT" } else { signal };
        let sig = parse_signal(name).ok_or_else(|| DriverError::InvalidSignal(name.into()))?;
        self.stop_entry(&entry, timeout, sig).await
    }

    async fn stop_entry(
        &self,
        entry: &TaskEntry,
        timeout: Duration,
        sig: i32,
    ) -> Result<(), DriverError> {
        let stopped = self.stop_supervised(entry, timeout, sig).await;
        // The supervisor stops the leader's group and its own descendants; the cgroup also
        // holds what escaped both (a daemon that double-forked into its own session).
        let killed = match entry.cgroup.clone() {
            Some(cg) => blocking("killing the task cgroup", move || cgroup::kill_tree(&cg)).await,
            None => Ok(()),
        };
        stopped.and(killed)
    }

    /// Sends `stop`; a supervisor that is already gone after recording the exit is a success.
    async fn stop_supervised(
        &self,
        entry: &TaskEntry,
        timeout: Duration,
        sig: i32,
    ) -> Result<(), DriverError> {
        let req = Request::Stop {
            signal: sig,
            timeout_ms: timeout.as_millis().min(u128::from(u64::MAX)) as u64,
        };
        match connection::call(&entry.state.socket_path, &req, timeout + STOP_SLACK).await {
            Ok(_) => Ok(()),
            Err(e @ (ClientError::Unreachable { .. } | ClientError::Io(_))) => {
                if entry.state.read_exit(&entry.task_id).is_some() {
                    Ok(())
                } else {
                    Err(DriverError::Failed(format!("stopping task: {e}")))
                }
            }
            Err(e) => Err(DriverError::Failed(format!("stopping task: {e}"))),
        }
    }

    /// Kills the task if `force`, ends its supervisor, removes its cgroup and unmounts its
    /// chroot, then forgets it. A running task without `force` is refused.
    pub async fn destroy(&self, task_id: &str, force: bool) -> Result<(), DriverError> {
        let entry = self.entry(task_id).await?;
        if entry.exit_result().is_none() {
            if !force {
                return Err(DriverError::Failed("cannot destroy running task".into()));
            }
            self.stop_entry(&entry, Duration::ZERO, libc::SIGKILL)
                .await?;
        }
        match connection::shutdown(&entry.state.socket_path, SHUTDOWN_TIMEOUT).await {
            Ok(()) | Err(ClientError::Unreachable { .. }) => {}
            // The exit arrives in the watch just after the stop answer; a shutdown that raced
            // it is refused as "running": wait for the exit, then ask again.
            Err(ClientError::Refused(_)) => {
                // A timeout here is answered by the second shutdown's refusal below.
                let _exited = tokio::time::timeout(CALL_TIMEOUT, entry.wait()).await;
                match connection::shutdown(&entry.state.socket_path, SHUTDOWN_TIMEOUT).await {
                    Ok(()) | Err(ClientError::Unreachable { .. }) => {}
                    Err(e) => return Err(DriverError::Failed(format!("supervisor shutdown: {e}"))),
                }
            }
            Err(e) => return Err(DriverError::Failed(format!("supervisor shutdown: {e}"))),
        }
        // The supervisor removes its socket; this covers one that died first.
        match std::fs::remove_file(&entry.state.socket_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => tracing::warn!(
                task_id,
                socket = %entry.state.socket_path.display(),
                error = %e,
                "removing a destroyed task's supervisor socket"
            ),
            _ => {}
        }
        let (cg, chroot) = (entry.cgroup.clone(), entry.state.chroot.clone());
        // On failure the task stays tracked, so a retried destroy tries again.
        blocking("releasing the task", move || {
            release(cg.as_deref(), chroot.as_deref())
        })
        .await?;
        self.remove_control_dir(&entry.state);
        self.tasks.write().await.remove(task_id);
        Ok(())
    }

    /// Removes the task's control directory (spec, exit record, supervisor log) once nothing
    /// will read it again. Only one under our state dir: an older build's lies in the task dir
    /// and goes with the allocation.
    fn remove_control_dir(&self, state: &SupervisedState) {
        let Some(dir) = state.spec_path.parent() else {
            return;
        };
        if dir.parent() != Some(self.supervisor.state_dir.as_path()) {
            return;
        }
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => tracing::warn!(
                dir = %dir.display(),
                error = %e,
                "removing a destroyed task's control directory"
            ),
            _ => {}
        }
    }

    /// Delivers a named signal to the task.
    pub async fn signal(&self, task_id: &str, signal: &str) -> Result<(), DriverError> {
        let entry = self.entry(task_id).await?;
        let sig = parse_signal(signal).ok_or_else(|| DriverError::InvalidSignal(signal.into()))?;
        if entry.exit_result().is_some() {
            return Err(DriverError::TaskNotRunning);
        }
        let req = Request::Signal { signal: sig };
        match connection::call(&entry.state.socket_path, &req, CALL_TIMEOUT).await {
            Ok(_) => Ok(()),
            Err(ClientError::Refused(msg)) if msg == "Task not running" => {
                Err(DriverError::TaskNotRunning)
            }
            Err(ClientError::Unreachable { .. }) => Err(DriverError::TaskNotRunning),
            Err(e) => Err(DriverError::Failed(format!("signalling task: {e}"))),
        }
    }

    /// Usage from the task cgroup, or from /proc over the process tree without one.
    pub async fn stats(&self, task_id: &str) -> Result<TaskResourceUsage, DriverError> {
        let entry = self.entry(task_id).await?;
        if entry.exit_result().is_some() {
            return Err(DriverError::TaskNotRunning);
        }
        blocking("collecting stats", move || match &entry.cgroup {
            Some(cg) => cgroup_stats(cg),
            None => Ok(proc_stats::collect(&entry)),
        })
        .await
    }
}

fn cgroup_stats(cg: &TaskCgroup) -> Result<TaskResourceUsage, DriverError> {
    cg.stats()
        .map_err(|e| DriverError::Failed(format!("reading task cgroup stats: {e}")))
}

/// Ends an instance that can be neither reattached nor shown to have exited: a supervisor
/// that is hung (or was killed while its task ran). Its supervisor is killed with its process
/// tree (only if that PID still runs the supervisor of this task), then everything in the
/// task cgroup, then the cgroup and the chroot are released. Best effort: failures are logged.
fn abandon(state: &SupervisedState, cg: Option<&crate::cgroups::TaskCgroup>) {
    let pid = state.supervisor_pid;
    // Empty when the process is gone: nothing matches then.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    // Either form, so a supervisor an older build started (`yurt supervise <spec>`) is
    // found too; a reused PID does not match.
    let supervisor_runs = pid > 1 && runs_supervisor_of(&cmdline, &state.spec_path);
    if supervisor_runs {
        tracing::warn!(
            supervisor_pid = pid,
            "killing an unrecoverable task's supervisor and its tree"
        );
        stray::kill_tree(pid);
    }
    if cg.is_none() && !supervisor_runs {
        tracing::warn!(
            task_pid = state.task_pid,
            "unrecoverable task has neither a cgroup nor a supervisor; its processes cannot be found safely"
        );
    }
    if let Err(e) = release(cg, state.chroot.as_deref()) {
        tracing::warn!(error = %e, "releasing an unrecoverable task");
    }
}
