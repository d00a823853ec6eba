//! The `raw_exec` driver: runs a command on the host, without isolation, through a supervisor,
//! in its own cgroup when cgroups are usable (accounting, limits, whole-tree kill).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::config::{RawExecPluginConfig, RawExecTaskConfig};
use super::launch;
use crate::cgroups::CgroupManager;
use crate::driver::{
    DriverError, ExitResult, Fingerprint, HealthState, TaskConfig, TaskDriver, TaskHandle,
    TaskResourceUsage,
};
use crate::exec_session::{ExecRequest, ExecSession};
use crate::supervisor_client::SupervisorCommand;
use crate::supervisor_client::{SupervisedTasks, detect_cgroups};

/// The driver's name as jobs spell it.
pub const DRIVER_NAME: &str = "raw_exec";

/// The raw_exec driver; one per agent.
pub struct RawExecDriver {
    plugin: RawExecPluginConfig,
    tasks: SupervisedTasks,
}

impl RawExecDriver {
    /// Raises the task events its supervisors give cause for on `events`.
    pub fn with_events(mut self, events: crate::EventSink) -> Self {
        self.tasks = self.tasks.with_events(events);
        self
    }

    /// A driver with its plugin config and the way to start supervisors; tasks get cgroups
    /// under the default parent when this process can use them.
    pub fn new(plugin: RawExecPluginConfig, supervisor: SupervisorCommand) -> Self {
        Self::with_cgroups(plugin, supervisor, detect_cgroups(None))
    }

    /// A driver placing tasks with `cgroups` (None: no cgroups, e.g. rootless).
    pub fn with_cgroups(
        plugin: RawExecPluginConfig,
        supervisor: SupervisorCommand,
        cgroups: Option<CgroupManager>,
    ) -> Self {
        RawExecDriver {
            plugin,
            tasks: SupervisedTasks::new(DRIVER_NAME, supervisor, cgroups),
        }
    }

    /// The cgroup manager tasks are placed with, if any.
    pub fn cgroups(&self) -> Option<&CgroupManager> {
        self.tasks.cgroups()
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
        let (c, plugin) = (cfg.clone(), self.plugin.clone());
        self.tasks
            .start(cfg, None, move || launch::task_command(&c, &task, &plugin))
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
