//! The `raw_exec` driver: runs a command on the host, without isolation, through a supervisor.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::RwLock;

use super::config::{RawExecPluginConfig, RawExecTaskConfig};
use super::handle::{HANDLE_VERSION, RawExecState, TaskEntry};
use super::launch;
use super::stats;
use crate::driver::{
    DriverError, ExitResult, Fingerprint, HealthState, TaskConfig, TaskDriver, TaskHandle,
    TaskResourceUsage,
};
use crate::exec_session::{ExecRequest, ExecSession};
use crate::supervisor::client::{self, ClientError};
use crate::supervisor::signals::parse_signal;
use crate::supervisor::{Request, SupervisorCommand};

/// The driver's name as jobs spell it.
pub const DRIVER_NAME: &str = "raw_exec";
/// How long a supervisor may take to report that its task runs.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Quick calls (status, signal).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Added to the kill timeout for a `stop` answer (the supervisor waits ≤ 2 s for the tree).
const STOP_SLACK: Duration = Duration::from_secs(15);
/// How long `destroy_task` waits for a supervisor to drain and exit.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// The raw_exec driver; one per agent.
pub struct RawExecDriver {
    plugin: RawExecPluginConfig,
    supervisor: SupervisorCommand,
    tasks: RwLock<HashMap<String, Arc<TaskEntry>>>,
}

impl RawExecDriver {
    /// A driver with its plugin config and the way to start supervisors.
    pub fn new(plugin: RawExecPluginConfig, supervisor: SupervisorCommand) -> Self {
        RawExecDriver {
            plugin,
            supervisor,
            tasks: RwLock::new(HashMap::new()),
        }
    }

    async fn entry(&self, task_id: &str) -> Result<Arc<TaskEntry>, DriverError> {
        self.tasks
            .read()
            .await
            .get(task_id)
            .cloned()
            .ok_or_else(|| DriverError::TaskNotFound(task_id.to_string()))
    }

    /// Sends `stop`; a supervisor that is already gone after recording the exit is a success.
    async fn stop(
        &self,
        entry: &TaskEntry,
        timeout: Duration,
        sig: i32,
    ) -> Result<(), DriverError> {
        let req = Request::Stop {
            signal: sig,
            timeout_ms: timeout.as_millis().min(u128::from(u64::MAX)) as u64,
        };
        match client::call(&entry.state.socket_path, &req, timeout + STOP_SLACK).await {
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
}

#[async_trait]
impl TaskDriver for RawExecDriver {
    fn name(&self) -> &'static str {
        DRIVER_NAME
    }

    async fn fingerprint(&self) -> Fingerprint {
        if !self.plugin.enabled {
            return Fingerprint {
                health: HealthState::Undetected,
                health_description: "disabled".into(),
                attributes: BTreeMap::new(),
            };
        }
        Fingerprint {
            health: HealthState::Healthy,
            health_description: "Healthy".into(),
            attributes: BTreeMap::from([("driver.raw_exec".to_string(), "true".to_string())]),
        }
    }

    fn validate_config(&self, config: &serde_json::Value) -> Result<(), DriverError> {
        RawExecTaskConfig::from_json(config).map(|_| ())
    }

    async fn start_task(&self, cfg: &TaskConfig) -> Result<TaskHandle, DriverError> {
        if !self.plugin.enabled {
            return Err(DriverError::Unavailable("raw_exec is disabled".into()));
        }
        let task = RawExecTaskConfig::from_json(&cfg.driver_config)?;
        if self.tasks.read().await.contains_key(&cfg.id) {
            return Err(DriverError::Failed(format!(
                "task with ID {:?} already started",
                cfg.id
            )));
        }
        let prepared = launch::prepare(cfg, &task, &self.plugin, &self.supervisor)?;
        let sv = self.supervisor.clone();
        let (spec_path, log_path) = (prepared.spec_path.clone(), prepared.log_path.clone());
        let ready =
            tokio::task::spawn_blocking(move || sv.launch(&spec_path, &log_path, START_TIMEOUT))
                .await
                .map_err(|e| DriverError::Failed(format!("supervisor launcher: {e}")))?
                .map_err(|e| DriverError::Failed(format!("failed to start task: {e}")))?;
        let state = RawExecState {
            socket_path: prepared.spec.socket_path.clone(),
            supervisor_pid: ready.supervisor_pid,
            task_pid: ready.task_pid,
            spec_path: prepared.spec_path,
            exit_record_path: prepared.spec.exit_record_path.clone(),
            started_at_ms: ready.started_at_ms,
        };
        let handle = TaskHandle {
            version: HANDLE_VERSION,
            driver: DRIVER_NAME.into(),
            task_id: cfg.id.clone(),
            state: serde_json::to_value(&state)
                .map_err(|e| DriverError::Failed(format!("encoding handle: {e}")))?,
        };
        let entry = Arc::new(TaskEntry::watch(cfg.id.clone(), state));
        self.tasks.write().await.insert(cfg.id.clone(), entry);
        Ok(handle)
    }

    async fn recover_task(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        if self.tasks.read().await.contains_key(&handle.task_id) {
            return Ok(());
        }
        let state = RawExecState::from_handle(handle)?;
        let id = handle.task_id.clone();
        let entry = match client::call(&state.socket_path, &Request::Status, CALL_TIMEOUT).await {
            Ok(status) if status.task_pid == state.task_pid => TaskEntry::watch(id.clone(), state),
            Ok(status) => {
                return Err(DriverError::Failed(format!(
                    "failed to recover task {id}: supervisor runs pid {}, handle says {}",
                    status.task_pid, state.task_pid
                )));
            }
            Err(e) => match state.read_exit(&id) {
                Some(result) => TaskEntry::exited(id.clone(), state, result),
                None => {
                    return Err(DriverError::Failed(format!(
                        "failed to recover task {id}: supervisor unreachable ({e}) and no exit record"
                    )));
                }
            },
        };
        self.tasks.write().await.insert(id, Arc::new(entry));
        Ok(())
    }

    async fn wait_task(&self, task_id: &str) -> Result<ExitResult, DriverError> {
        let entry = self.entry(task_id).await?;
        Ok(entry.wait().await)
    }

    async fn stop_task(
        &self,
        task_id: &str,
        timeout: Duration,
        signal: &str,
    ) -> Result<(), DriverError> {
        let entry = self.entry(task_id).await?;
        let name = if signal.is_empty() { "SIGINT" } else { signal };
        let sig = parse_signal(name).ok_or_else(|| DriverError::InvalidSignal(name.into()))?;
        self.stop(&entry, timeout, sig).await
    }

    async fn destroy_task(&self, task_id: &str, force: bool) -> Result<(), DriverError> {
        let entry = self.entry(task_id).await?;
        if entry.exit_result().is_none() {
            if !force {
                return Err(DriverError::Failed("cannot destroy running task".into()));
            }
            self.stop(&entry, Duration::ZERO, libc::SIGKILL).await?;
        }
        match client::shutdown(&entry.state.socket_path, SHUTDOWN_TIMEOUT).await {
            Ok(()) | Err(ClientError::Unreachable { .. }) => {}
            // The exit arrives in the watch just after the stop answer; a shutdown that raced
            // it is refused as "running": wait for the exit, then ask again.
            Err(ClientError::Refused(_)) => {
                let _ = tokio::time::timeout(CALL_TIMEOUT, entry.wait()).await;
                match client::shutdown(&entry.state.socket_path, SHUTDOWN_TIMEOUT).await {
                    Ok(()) | Err(ClientError::Unreachable { .. }) => {}
                    Err(e) => return Err(DriverError::Failed(format!("supervisor shutdown: {e}"))),
                }
            }
            Err(e) => return Err(DriverError::Failed(format!("supervisor shutdown: {e}"))),
        }
        // The supervisor removes its socket; this covers one that died first.
        let _ = std::fs::remove_file(&entry.state.socket_path);
        self.tasks.write().await.remove(task_id);
        Ok(())
    }

    async fn signal_task(&self, task_id: &str, signal: &str) -> Result<(), DriverError> {
        let entry = self.entry(task_id).await?;
        let sig = parse_signal(signal).ok_or_else(|| DriverError::InvalidSignal(signal.into()))?;
        if entry.exit_result().is_some() {
            return Err(DriverError::TaskNotRunning);
        }
        let req = Request::Signal { signal: sig };
        match client::call(&entry.state.socket_path, &req, CALL_TIMEOUT).await {
            Ok(_) => Ok(()),
            Err(ClientError::Refused(msg)) if msg == "Task not running" => {
                Err(DriverError::TaskNotRunning)
            }
            Err(ClientError::Unreachable { .. }) => Err(DriverError::TaskNotRunning),
            Err(e) => Err(DriverError::Failed(format!("signalling task: {e}"))),
        }
    }

    async fn task_stats(&self, task_id: &str) -> Result<TaskResourceUsage, DriverError> {
        let entry = self.entry(task_id).await?;
        if entry.exit_result().is_some() {
            return Err(DriverError::TaskNotRunning);
        }
        let e = entry.clone();
        tokio::task::spawn_blocking(move || stats::collect(&e))
            .await
            .map_err(|e| DriverError::Failed(format!("collecting stats: {e}")))
    }

    async fn exec_task(&self, task_id: &str, req: ExecRequest) -> Result<ExecSession, DriverError> {
        let entry = self.entry(task_id).await?;
        super::exec::exec(&entry, &req)
    }
}
