//! The driver interface every task driver implements.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Errors a driver reports; the agent turns them into task events.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The task's driver config is invalid (unknown or malformed options).
    #[error("invalid driver config: {0}")]
    InvalidConfig(String),
    /// The driver knows no task with this ID.
    #[error("task not found: {0}")]
    TaskNotFound(String),
    /// The task is not running (signal or exec against a dead task).
    #[error("Task not running")]
    TaskNotRunning,
    /// An unknown signal name.
    #[error("invalid signal: {0}")]
    InvalidSignal(String),
    /// The driver is not usable on this machine (disabled, not detected, unhealthy).
    #[error("driver unavailable: {0}")]
    Unavailable(String),
    /// A recoverable failure (the restart policy decides what follows).
    #[error("{0}")]
    Failed(String),
    /// The driver cannot run commands inside its tasks (Nomad's exact message).
    #[error("task driver does not support exec")]
    ExecUnsupported,
    /// I/O failure with context.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl DriverError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DriverError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Health of a driver as the fingerprint sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    Undetected,
    Unhealthy,
    Healthy,
}

/// One fingerprint of a driver: its health and the attributes it adds to the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub health: HealthState,
    pub health_description: String,
    /// Attributes as display strings, keyed like `driver.docker.version`.
    pub attributes: BTreeMap<String, String>,
}

/// Resource limits the driver applies (cgroups, container limits).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskResources {
    /// CPU in MHz as the job asked; drivers derive shares/weight from it.
    pub cpu_mhz: u64,
    /// Soft memory limit in MB.
    pub memory_mb: u64,
    /// Hard memory limit in MB (0 = same as memory_mb).
    pub memory_max_mb: u64,
    /// Maximum number of processes (0 = driver default).
    pub pids_limit: u64,
}

/// Where and how a task's stdout/stderr are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogSink {
    /// The alloc's `alloc/logs` directory.
    pub dir: PathBuf,
    /// File name prefix: the task name (files are `<prefix>.stdout.<n>`).
    pub prefix: String,
    pub max_files: u32,
    pub max_file_size_mb: u64,
}

/// A published port: the host port the scheduler allocated and the port inside the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortMapping {
    pub label: String,
    pub host_ip: String,
    pub value: u16,
    pub to: u16,
}

/// Everything a driver needs to start one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskConfig {
    /// Unique per task instance: `<alloc_id>/<task_name>`.
    pub id: String,
    pub name: String,
    pub alloc_id: String,
    pub job_name: String,
    pub group_name: String,
    pub namespace: String,
    pub env: BTreeMap<String, String>,
    /// User to run as; empty means the driver default.
    pub user: String,
    pub resources: TaskResources,
    /// The allocation directory (holds `alloc/`).
    pub alloc_dir: PathBuf,
    /// The task directory (holds `local/`, `secrets/`, `tmp/`, `private/`).
    pub task_dir: PathBuf,
    pub logs: LogSink,
    pub ports: Vec<PortMapping>,
    /// The task's `config` block, already interpolated.
    pub driver_config: serde_json::Value,
}

/// What a driver returns from start; persisted by the agent to recover the task later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskHandle {
    pub version: u32,
    pub driver: String,
    pub task_id: String,
    /// Driver-specific state (pid, supervisor socket, container ID, ...).
    pub state: serde_json::Value,
}

/// How a task ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitResult {
    pub exit_code: i32,
    pub signal: i32,
    pub oom_killed: bool,
    /// Set when the driver could not determine the exit (e.g. lost process).
    pub err: Option<String>,
}

impl ExitResult {
    /// A clean exit: code 0, no signal, no OOM, no error.
    pub fn successful(&self) -> bool {
        self.exit_code == 0 && self.signal == 0 && !self.oom_killed && self.err.is_none()
    }
}

/// Memory usage in bytes, Nomad's MemoryStats.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MemoryStats {
    #[serde(rename = "RSS")]
    pub rss: u64,
    pub cache: u64,
    pub swap: u64,
    pub usage: u64,
    pub max_usage: u64,
    pub kernel_usage: u64,
    pub kernel_max_usage: u64,
    pub measured: Vec<String>,
}

/// CPU usage, Nomad's CpuStats.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CpuStats {
    pub system_mode: f64,
    pub user_mode: f64,
    pub total_ticks: f64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
    pub percent: f64,
    pub measured: Vec<String>,
}

/// A task's resource usage at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskResourceUsage {
    pub memory: MemoryStats,
    pub cpu: CpuStats,
    /// Unix nanoseconds.
    pub timestamp: i64,
}

/// A task event a driver raises on its own, outside any call's result (image pull progress).
///
/// Addition to the interface: the agent turns each into a `Driver` task event for `task_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverEvent {
    /// The task the event is about (the `TaskConfig::id` it was started with).
    pub task_id: String,
    /// Human-readable message, Nomad's wording (`Downloading image busybox:1`).
    pub message: String,
    /// Extra key/values Nomad attaches to the event (`image`).
    pub annotations: BTreeMap<String, String>,
}

/// Where a driver sends the [`DriverEvent`]s it raises; given to the driver at construction.
pub type EventSink = tokio::sync::mpsc::UnboundedSender<DriverEvent>;

/// A driver's per-driver view: every method takes the task ID the handle carries.
#[async_trait]
pub trait TaskDriver: Send + Sync {
    /// The driver's name as jobs spell it (`raw_exec`, `exec`, `docker`).
    fn name(&self) -> &'static str;

    /// Current health and attributes; called at start and periodically.
    async fn fingerprint(&self) -> Fingerprint;

    /// Rejects a task config the driver cannot run, naming the offending options.
    fn validate_config(&self, config: &serde_json::Value) -> Result<(), DriverError>;

    /// Starts the task and returns a handle the agent persists.
    async fn start_task(&self, cfg: &TaskConfig) -> Result<TaskHandle, DriverError>;

    /// Re-attaches to a task started by an earlier agent process.
    async fn recover_task(&self, handle: &TaskHandle) -> Result<(), DriverError>;

    /// Resolves when the task exits.
    async fn wait_task(&self, task_id: &str) -> Result<ExitResult, DriverError>;

    /// Sends `signal`, waits up to `timeout`, then kills the whole task.
    async fn stop_task(
        &self,
        task_id: &str,
        timeout: Duration,
        signal: &str,
    ) -> Result<(), DriverError>;

    /// Releases everything the task held (cgroup, container, mounts).
    async fn destroy_task(&self, task_id: &str, force: bool) -> Result<(), DriverError>;

    /// Delivers a named signal (`SIGHUP`) to the task.
    async fn signal_task(&self, task_id: &str, signal: &str) -> Result<(), DriverError>;

    /// Current resource usage of the task.
    async fn task_stats(&self, task_id: &str) -> Result<TaskResourceUsage, DriverError>;

    /// Starts `req` inside the running task (`alloc exec`); drivers without exec support
    /// keep this default, which the agent reports as Nomad's "does not support exec".
    async fn exec_task(
        &self,
        task_id: &str,
        req: crate::exec_session::ExecRequest,
    ) -> Result<crate::exec_session::ExecSession, DriverError> {
        let _ = (task_id, req);
        Err(DriverError::ExecUnsupported)
    }
}
