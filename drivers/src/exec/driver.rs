//! The `exec` driver: a task isolated in namespaces and a bind-mounted chroot built in its task
//! dir, running as an unprivileged user in its own cgroup, under the same per-task supervisor
//! as raw_exec.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::config::{ExecPluginConfig, ExecTaskConfig};
use super::launch;
use crate::cgroups::CgroupManager;
use crate::driver::{
    DriverError, ExitResult, Fingerprint, HealthState, TaskConfig, TaskDriver, TaskHandle,
    TaskResourceUsage,
};
use crate::exec_session::{ExecRequest, ExecSession};
use crate::supervisor_client::SupervisedTasks;
use crate::supervisor_client::SupervisorCommand;

/// The driver's name as jobs spell it.
pub const DRIVER_NAME: &str = "exec";

/// The exec driver; one per agent.
pub struct ExecDriver {
    plugin: ExecPluginConfig,
    tasks: SupervisedTasks,
}

impl ExecDriver {
    /// Raises the task events its supervisors give cause for on `events`.
    pub fn with_events(mut self, events: crate::EventSink) -> Self {
        self.tasks = self.tasks.with_events(events);
        self
    }

    /// A driver with its plugin config, the way to start supervisors and the agent's cgroup
    /// manager (None: cgroups unusable, the driver is undetected).
    pub fn new(
        plugin: ExecPluginConfig,
        supervisor: SupervisorCommand,
        cgroups: Option<CgroupManager>,
    ) -> Self {
        ExecDriver {
            plugin,
            tasks: SupervisedTasks::new(DRIVER_NAME, supervisor, cgroups),
        }
    }

    /// Why the driver cannot run tasks here, if it cannot: it needs root (namespaces, mounts,
    /// switching users) and cgroups.
    fn unavailable(&self) -> Option<&'static str> {
        if !nix::unistd::geteuid().is_root() {
            Some("Driver must run as root")
        } else if self.tasks.cgroups().is_none() {
            Some("Failed to discover cgroup mount point")
        } else {
            None
        }
    }
}

#[async_trait]
impl TaskDriver for ExecDriver {
    fn name(&self) -> &'static str {
        DRIVER_NAME
    }

    async fn fingerprint(&self) -> Fingerprint {
        if let Some(reason) = self.unavailable() {
            return Fingerprint {
                health: HealthState::Undetected,
                health_description: reason.into(),
                attributes: BTreeMap::new(),
            };
        }
        Fingerprint {
            health: HealthState::Healthy,
            health_description: "Healthy".into(),
            attributes: BTreeMap::from([("driver.exec".to_string(), "true".to_string())]),
        }
    }

    fn validate_config(&self, config: &serde_json::Value) -> Result<(), DriverError> {
        ExecTaskConfig::from_json(config).map(|_| ())
    }

    async fn start_task(&self, cfg: &TaskConfig) -> Result<TaskHandle, DriverError> {
        if let Some(reason) = self.unavailable() {
            return Err(DriverError::Unavailable(format!("exec: {reason}")));
        }
        let task = ExecTaskConfig::from_json(&cfg.driver_config)?;
        let (c, plugin) = (cfg.clone(), self.plugin.clone());
        self.tasks
            .start(cfg, Some(cfg.task_dir.clone()), move || {
                launch::task_command(&c, &task, &plugin)
            })
            .await
    }

    async fn recover_task(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        self.tasks.recover(handle).await
    }

    async fn wait_task(&self, task_id: &str) -> Result<ExitResult, DriverError> {
        self.tasks.wait(task_id).await
    }

    async fn stop_task(
        &self,
        task_id: &str,
        timeout: Duration,
        signal: &str,
    ) -> Result<(), DriverError> {
        self.tasks.stop(task_id, timeout, signal).await
    }

    async fn destroy_task(&self, task_id: &str, force: bool) -> Result<(), DriverError> {
        self.tasks.destroy(task_id, force).await
    }

    async fn signal_task(&self, task_id: &str, signal: &str) -> Result<(), DriverError> {
        self.tasks.signal(task_id, signal).await
    }

    async fn task_stats(&self, task_id: &str) -> Result<TaskResourceUsage, DriverError> {
        self.tasks.stats(task_id).await
    }

    async fn exec_task(&self, task_id: &str, req: ExecRequest) -> Result<ExecSession, DriverError> {
        let entry = self.tasks.entry(task_id).await?;
        super::alloc_exec::exec(&entry, &req)
    }
}
