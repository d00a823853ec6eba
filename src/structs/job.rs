//! Job, TaskGroup, Task and everything a job specification holds.
//!
//! Scalars that Nomad's Go API sends as pointers accept `null` (→ default); fields that are
//! nil-able slices, maps or objects in Nomad are `Option` here so they serialize as `null`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::de::{count, int, null_default as nd, one, uint};
use super::status::{JobStatus, server_owned};

/// Opaque JSON kept as sent (blocks yurt stores and returns but does not interpret). Boxed:
/// nearly always absent, and every allocation carries several (8 bytes each instead of 32).
pub type Opaque = Option<Box<Value>>;
/// A string map that serializes as `null` when unset.
pub type StrMap = Option<BTreeMap<String, String>>;

/// Networks as allocations carry them: an allocation repeats its group's networks in
/// `Resources`, `SharedResources` and `AllocatedResources.Shared`, and all three point at one
/// copy. Encodes exactly like the plain list.
pub type SharedNetworks = Option<std::sync::Arc<Vec<NetworkResource>>>;

/// Job types.
pub const JOB_TYPE_SERVICE: &str = "service";
pub const JOB_TYPE_BATCH: &str = "batch";
pub const JOB_TYPE_SYSTEM: &str = "system";
pub const JOB_TYPE_SYSBATCH: &str = "sysbatch";

/// A job: the desired state a user submits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Job {
    #[serde(deserialize_with = "nd")]
    pub region: String,
    #[serde(deserialize_with = "nd")]
    pub namespace: String,
    #[serde(rename = "ID", deserialize_with = "nd")]
    pub id: String,
    #[serde(rename = "ParentID", deserialize_with = "nd")]
    pub parent_id: String,
    #[serde(deserialize_with = "nd")]
    pub name: String,
    #[serde(deserialize_with = "nd")]
    pub r#type: String,
    #[serde(deserialize_with = "int")]
    pub priority: i64,
    #[serde(deserialize_with = "nd")]
    pub all_at_once: bool,
    pub datacenters: Option<Vec<String>>,
    #[serde(deserialize_with = "nd")]
    pub node_pool: String,
    pub constraints: Option<Vec<Constraint>>,
    pub affinities: Option<Vec<Affinity>>,
    pub spreads: Option<Vec<Spread>>,
    pub task_groups: Option<Vec<TaskGroup>>,
    pub update: Option<UpdateStrategy>,
    pub multiregion: Opaque,
    pub periodic: Option<PeriodicConfig>,
    pub parameterized_job: Option<ParameterizedJobConfig>,
    #[serde(deserialize_with = "nd")]
    pub dispatched: bool,
    #[serde(deserialize_with = "nd")]
    pub dispatch_idempotency_token: String,
    pub payload: Option<String>,
    pub meta: StrMap,
    #[serde(deserialize_with = "nd")]
    pub consul_token: String,
    #[serde(deserialize_with = "nd")]
    pub consul_namespace: String,
    #[serde(deserialize_with = "nd")]
    pub vault_token: String,
    #[serde(deserialize_with = "nd")]
    pub vault_namespace: String,
    #[serde(rename = "NomadTokenID", deserialize_with = "nd")]
    pub nomad_token_id: String,
    /// Set by the server on register; `None` (`""` on the wire) before that.
    #[serde(with = "server_owned")]
    pub status: Option<JobStatus>,
    #[serde(deserialize_with = "nd")]
    pub status_description: String,
    #[serde(deserialize_with = "nd")]
    pub stable: bool,
    #[serde(deserialize_with = "int")]
    pub version: i64,
    /// A name given to this version (`job tag apply`); unique among the job's versions.
    pub version_tag: Option<JobVersionTag>,
    #[serde(deserialize_with = "int")]
    pub submit_time: i64,
    #[serde(deserialize_with = "uint")]
    pub create_index: u64,
    #[serde(deserialize_with = "uint")]
    pub modify_index: u64,
    #[serde(deserialize_with = "uint")]
    pub job_modify_index: u64,
    #[serde(deserialize_with = "nd")]
    pub stop: bool,
    /// Nomad spells it `UI`; plain PascalCase (`Ui`) is still read.
    #[serde(rename = "UI", alias = "Ui")]
    pub ui: Opaque,
}

/// The name (and description) a user gave one version of a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobVersionTag {
    #[serde(deserialize_with = "nd")]
    pub name: String,
    #[serde(deserialize_with = "nd")]
    pub description: String,
    /// When it was applied, in Unix nanoseconds.
    #[serde(deserialize_with = "int")]
    pub tagged_time: i64,
}

impl Job {
    /// The job's task groups, empty when unset.
    pub fn groups(&self) -> &[TaskGroup] {
        self.task_groups.as_deref().unwrap_or(&[])
    }

    /// Looks a task group up by name.
    pub fn group(&self, name: &str) -> Option<&TaskGroup> {
        self.groups().iter().find(|g| g.name == name)
    }

    /// A new child job `id` of this parent (a periodic launch or a dispatch, Nomad's
    /// `deriveJob`): the same spec, without the server's bookkeeping of the parent.
    pub fn derive_child(&self, id: String) -> Job {
        Job {
            name: id.clone(),
            id,
            parent_id: self.id.clone(),
            status: None,
            status_description: String::new(),
            stable: false,
            version: 0,
            create_index: 0,
            modify_index: 0,
            job_modify_index: 0,
            ..self.clone()
        }
    }

    /// True for jobs that only spawn children (periodic or parameterized parents).
    pub fn is_parent(&self) -> bool {
        self.periodic.as_ref().is_some_and(|p| p.enabled) || self.parameterized_job.is_some()
    }

    /// True when the scheduler should not place this job's groups (stopped or a parent).
    pub fn stopped(&self) -> bool {
        self.stop
    }
}

/// A task group: the unit of placement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskGroup {
    #[serde(deserialize_with = "nd")]
    pub name: String,
    #[serde(deserialize_with = "count")]
    pub count: i64,
    pub constraints: Option<Vec<Constraint>>,
    pub affinities: Option<Vec<Affinity>>,
    pub spreads: Option<Vec<Spread>>,
    pub tasks: Option<Vec<Task>>,
    pub volumes: Opaque,
    pub restart_policy: Option<RestartPolicy>,
    pub reschedule_policy: Option<ReschedulePolicy>,
    pub ephemeral_disk: Option<EphemeralDisk>,
    pub update: Option<UpdateStrategy>,
    pub migrate: Option<MigrateStrategy>,
    pub networks: Option<Vec<NetworkResource>>,
    pub meta: StrMap,
    pub services: Option<Vec<Service>>,
    #[serde(deserialize_with = "super::de::opt_int")]
    pub shutdown_delay: Option<i64>,
    #[serde(deserialize_with = "super::de::opt_int")]
    pub stop_after_client_disconnect: Option<i64>,
    #[serde(deserialize_with = "super::de::opt_int")]
    pub max_client_disconnect: Option<i64>,
    pub scaling: Opaque,
    pub consul: Opaque,
    pub disconnect: Opaque,
    #[serde(deserialize_with = "nd")]
    pub prevent_reschedule_on_lost: bool,
}

impl Default for TaskGroup {
    fn default() -> Self {
        TaskGroup {
            name: String::new(),
            count: one(),
            constraints: None,
            affinities: None,
            spreads: None,
            tasks: None,
            volumes: None,
            restart_policy: None,
            reschedule_policy: None,
            ephemeral_disk: None,
            update: None,
            migrate: None,
            networks: None,
            meta: None,
            services: None,
            shutdown_delay: None,
            stop_after_client_disconnect: None,
            max_client_disconnect: None,
            scaling: None,
            consul: None,
            disconnect: None,
            prevent_reschedule_on_lost: false,
        }
    }
}

impl TaskGroup {
    /// The group's tasks, empty when unset.
    pub fn tasks(&self) -> &[Task] {
        self.tasks.as_deref().unwrap_or(&[])
    }

    /// Looks a task up by name.
    pub fn task(&self, name: &str) -> Option<&Task> {
        self.tasks().iter().find(|t| t.name == name)
    }

    /// How long (ns) an allocation of this group may stay on a disconnected node before it
    /// is lost: `disconnect { lost_after }`, or the older `max_client_disconnect`. None when
    /// it is lost as soon as its node misses its heartbeat.
    pub fn disconnect_lost_after(&self) -> Option<i64> {
        self.disconnect
            .as_deref()
            .and_then(|d| d.get("LostAfter"))
            .and_then(Value::as_i64)
            .filter(|n| *n > 0)
            .or(self.max_client_disconnect.filter(|n| *n > 0))
    }

    /// How long (ns) a client that cannot heartbeat keeps this group's allocations running
    /// before it stops them itself: `disconnect { stop_on_client_after }`, or the older
    /// `stop_after_client_disconnect`. None: it keeps them running.
    pub fn stop_on_client_after(&self) -> Option<i64> {
        self.disconnect
            .as_deref()
            .and_then(|d| d.get("StopOnClientAfter"))
            .and_then(Value::as_i64)
            .or(self.stop_after_client_disconnect)
            .filter(|n| *n > 0)
    }

    /// Whether an allocation on a disconnected node is replaced while it waits
    /// (`disconnect { replace }`, true unless set false).
    pub fn replace_on_disconnect(&self) -> bool {
        self.disconnect
            .as_deref()
            .and_then(|d| d.get("Replace"))
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }
}

/// A task: one process (or container) the driver runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Task {
    #[serde(deserialize_with = "nd")]
    pub name: String,
    #[serde(deserialize_with = "nd")]
    pub driver: String,
    #[serde(deserialize_with = "nd")]
    pub user: String,
    pub lifecycle: Option<Lifecycle>,
    pub config: Option<serde_json::Map<String, Value>>,
    pub constraints: Option<Vec<Constraint>>,
    pub affinities: Option<Vec<Affinity>>,
    pub env: StrMap,
    pub services: Option<Vec<Service>>,
    pub resources: Option<Resources>,
    pub restart_policy: Option<RestartPolicy>,
    pub meta: StrMap,
    #[serde(deserialize_with = "int")]
    pub kill_timeout: i64,
    pub log_config: Option<LogConfig>,
    pub artifacts: Option<Vec<Artifact>>,
    pub vault: Opaque,
    pub templates: Option<Vec<Template>>,
    pub dispatch_payload: Option<DispatchPayloadConfig>,
    pub volume_mounts: Opaque,
    #[serde(rename = "CSIPluginConfig")]
    pub csi_plugin_config: Opaque,
    #[serde(deserialize_with = "nd")]
    pub leader: bool,
    #[serde(deserialize_with = "int")]
    pub shutdown_delay: i64,
    #[serde(deserialize_with = "nd")]
    pub kill_signal: String,
    #[serde(deserialize_with = "nd")]
    pub kind: String,
    pub scaling_policies: Opaque,
    pub identity: Opaque,
    pub identities: Opaque,
    pub actions: Opaque,
    pub schedule: Opaque,
}

impl Task {
    /// The task's resources, or the defaults when unset.
    pub fn resources(&self) -> Resources {
        self.resources.clone().unwrap_or_default()
    }

    /// The lifecycle hook name (`prestart`, `poststart`, `poststop`), empty for main tasks.
    pub fn lifecycle_hook(&self) -> &str {
        self.lifecycle
            .as_ref()
            .map(|l| l.hook.as_str())
            .unwrap_or("")
    }
}

/// A task's lifecycle hook.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Lifecycle {
    #[serde(deserialize_with = "nd")]
    pub hook: String,
    #[serde(deserialize_with = "nd")]
    pub sidecar: bool,
}

/// Lifecycle hook names.
pub const LIFECYCLE_PRESTART: &str = "prestart";
pub const LIFECYCLE_POSTSTART: &str = "poststart";
pub const LIFECYCLE_POSTSTOP: &str = "poststop";

/// Resources a task asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Resources {
    #[serde(rename = "CPU", deserialize_with = "int")]
    pub cpu: i64,
    #[serde(deserialize_with = "int")]
    pub cores: i64,
    #[serde(rename = "MemoryMB", deserialize_with = "int")]
    pub memory_mb: i64,
    #[serde(rename = "MemoryMaxMB", deserialize_with = "int")]
    pub memory_max_mb: i64,
    #[serde(rename = "DiskMB", deserialize_with = "int")]
    pub disk_mb: i64,
    #[serde(rename = "IOPS", deserialize_with = "int")]
    pub iops: i64,
    pub networks: SharedNetworks,
    pub devices: Opaque,
    #[serde(rename = "NUMA")]
    pub numa: Opaque,
}

/// A network a task group or task asks for, and (in allocations) what it was given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkResource {
    #[serde(deserialize_with = "nd")]
    pub mode: String,
    #[serde(deserialize_with = "nd")]
    pub device: String,
    #[serde(rename = "CIDR", deserialize_with = "nd")]
    pub cidr: String,
    #[serde(rename = "IP", deserialize_with = "nd")]
    pub ip: String,
    #[serde(deserialize_with = "nd")]
    pub hostname: String,
    #[serde(rename = "MBits", deserialize_with = "int")]
    pub mbits: i64,
    #[serde(rename = "DNS")]
    pub dns: Opaque,
    pub reserved_ports: Option<Vec<Port>>,
    pub dynamic_ports: Option<Vec<Port>>,
    /// CNI arguments (`cni { args = {...} }`), kept as sent; left out of the JSON when unset
    /// so allocations encode as before.
    #[serde(rename = "CNI", skip_serializing_if = "Option::is_none")]
    pub cni: Opaque,
}

impl NetworkResource {
    /// Reserved and dynamic ports together.
    pub fn all_ports(&self) -> impl Iterator<Item = &Port> {
        self.reserved_ports
            .iter()
            .flatten()
            .chain(self.dynamic_ports.iter().flatten())
    }
}

/// A labelled port: `Value` is the host port, `To` the port inside the task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Port {
    #[serde(deserialize_with = "nd")]
    pub label: String,
    #[serde(deserialize_with = "int")]
    pub value: i64,
    #[serde(deserialize_with = "int")]
    pub to: i64,
    #[serde(deserialize_with = "nd")]
    pub host_network: String,
}

/// The group's scratch disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EphemeralDisk {
    #[serde(deserialize_with = "nd")]
    pub sticky: bool,
    #[serde(rename = "SizeMB", deserialize_with = "int")]
    pub size_mb: i64,
    #[serde(deserialize_with = "nd")]
    pub migrate: bool,
}

/// How the client restarts a failed task in place.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    #[serde(deserialize_with = "int")]
    pub attempts: i64,
    #[serde(deserialize_with = "int")]
    pub interval: i64,
    #[serde(deserialize_with = "int")]
    pub delay: i64,
    #[serde(deserialize_with = "nd")]
    pub mode: String,
    #[serde(deserialize_with = "nd")]
    pub render_templates: bool,
}

/// Restart modes.
pub const RESTART_MODE_DELAY: &str = "delay";
pub const RESTART_MODE_FAIL: &str = "fail";

/// How the server replaces a failed allocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ReschedulePolicy {
    #[serde(deserialize_with = "int")]
    pub attempts: i64,
    #[serde(deserialize_with = "int")]
    pub interval: i64,
    #[serde(deserialize_with = "int")]
    pub delay: i64,
    #[serde(deserialize_with = "nd")]
    pub delay_function: String,
    #[serde(deserialize_with = "int")]
    pub max_delay: i64,
    #[serde(deserialize_with = "nd")]
    pub unlimited: bool,
}

/// Rolling update settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateStrategy {
    #[serde(deserialize_with = "int")]
    pub stagger: i64,
    /// `None` until canonicalized: an explicit 0 turns deployments off, absent means 1.
    #[serde(deserialize_with = "super::de::opt_int")]
    pub max_parallel: Option<i64>,
    #[serde(deserialize_with = "nd")]
    pub health_check: String,
    #[serde(deserialize_with = "int")]
    pub min_healthy_time: i64,
    #[serde(deserialize_with = "int")]
    pub healthy_deadline: i64,
    #[serde(deserialize_with = "int")]
    pub progress_deadline: i64,
    #[serde(deserialize_with = "nd")]
    pub auto_revert: bool,
    #[serde(deserialize_with = "nd")]
    pub auto_promote: bool,
    #[serde(deserialize_with = "int")]
    pub canary: i64,
}

/// Node drain migration settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MigrateStrategy {
    #[serde(deserialize_with = "int")]
    pub max_parallel: i64,
    #[serde(deserialize_with = "nd")]
    pub health_check: String,
    #[serde(deserialize_with = "int")]
    pub min_healthy_time: i64,
    #[serde(deserialize_with = "int")]
    pub healthy_deadline: i64,
}

/// A placement constraint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Constraint {
    #[serde(rename = "LTarget", deserialize_with = "nd")]
    pub l_target: String,
    #[serde(rename = "RTarget", deserialize_with = "nd")]
    pub r_target: String,
    #[serde(deserialize_with = "nd")]
    pub operand: String,
}

/// A placement preference.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Affinity {
    #[serde(rename = "LTarget", deserialize_with = "nd")]
    pub l_target: String,
    #[serde(rename = "RTarget", deserialize_with = "nd")]
    pub r_target: String,
    #[serde(deserialize_with = "nd")]
    pub operand: String,
    #[serde(deserialize_with = "int")]
    pub weight: i64,
}

/// Spread allocations over the values of an attribute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Spread {
    #[serde(deserialize_with = "nd")]
    pub attribute: String,
    #[serde(deserialize_with = "int")]
    pub weight: i64,
    pub spread_target: Option<Vec<SpreadTarget>>,
}

/// One target value of a spread and the share it should get.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SpreadTarget {
    #[serde(deserialize_with = "nd")]
    pub value: String,
    #[serde(deserialize_with = "int")]
    pub percent: i64,
}

/// Log rotation settings of a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    #[serde(deserialize_with = "int")]
    pub max_files: i64,
    #[serde(rename = "MaxFileSizeMB", deserialize_with = "int")]
    pub max_file_size_mb: i64,
    #[serde(deserialize_with = "nd")]
    pub disabled: bool,
}

/// Something to download before the task starts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Artifact {
    #[serde(deserialize_with = "nd")]
    pub getter_source: String,
    pub getter_options: StrMap,
    pub getter_headers: StrMap,
    #[serde(deserialize_with = "nd")]
    pub getter_mode: String,
    #[serde(deserialize_with = "nd")]
    pub relative_dest: String,
    #[serde(deserialize_with = "nd")]
    pub getter_insecure: bool,
    #[serde(deserialize_with = "nd")]
    pub chown: bool,
}

/// A file rendered into the task dir.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Template {
    #[serde(deserialize_with = "nd")]
    pub source_path: String,
    #[serde(deserialize_with = "nd")]
    pub dest_path: String,
    #[serde(deserialize_with = "nd")]
    pub embedded_tmpl: String,
    #[serde(deserialize_with = "nd")]
    pub change_mode: String,
    #[serde(deserialize_with = "nd")]
    pub change_signal: String,
    pub change_script: Opaque,
    #[serde(deserialize_with = "int")]
    pub splay: i64,
    #[serde(deserialize_with = "nd")]
    pub perms: String,
    pub uid: Option<i64>,
    pub gid: Option<i64>,
    #[serde(deserialize_with = "nd")]
    pub left_delim: String,
    #[serde(deserialize_with = "nd")]
    pub right_delim: String,
    #[serde(deserialize_with = "nd")]
    pub envvars: bool,
    #[serde(deserialize_with = "int")]
    pub vault_grace: i64,
    pub wait: Opaque,
    /// Nomad's API spells it `ErrMissingKey` (written so); `ErrorOnMissingKey` is read too.
    #[serde(
        rename = "ErrMissingKey",
        alias = "ErrorOnMissingKey",
        deserialize_with = "nd"
    )]
    pub error_on_missing_key: bool,
    /// Render once and never again (no watching, no change mode).
    #[serde(deserialize_with = "nd")]
    pub once: bool,
}

/// A service the task or group registers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Service {
    #[serde(deserialize_with = "nd")]
    pub name: String,
    #[serde(deserialize_with = "nd")]
    pub task_name: String,
    #[serde(deserialize_with = "nd")]
    pub port_label: String,
    #[serde(deserialize_with = "nd")]
    pub address_mode: String,
    #[serde(deserialize_with = "nd")]
    pub address: String,
    pub tags: Option<Vec<String>>,
    pub canary_tags: Option<Vec<String>>,
    pub checks: Option<Vec<ServiceCheck>>,
    pub meta: StrMap,
    #[serde(deserialize_with = "nd")]
    pub provider: String,
    pub connect: Opaque,
    /// Restarts the task when the service's checks stay unhealthy (checks inherit it).
    pub check_restart: Option<CheckRestart>,
    #[serde(deserialize_with = "nd")]
    pub on_update: String,
}

/// When unhealthy checks restart their task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CheckRestart {
    /// Consecutive unhealthy results that restart the task (0: never).
    #[serde(deserialize_with = "int")]
    pub limit: i64,
    /// Nanoseconds after the task (re)starts during which results are not counted.
    #[serde(deserialize_with = "int")]
    pub grace: i64,
    #[serde(deserialize_with = "nd")]
    pub ignore_warnings: bool,
}

/// A health check of a service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceCheck {
    #[serde(deserialize_with = "nd")]
    pub name: String,
    #[serde(deserialize_with = "nd")]
    pub r#type: String,
    #[serde(deserialize_with = "nd")]
    pub command: String,
    pub args: Option<Vec<String>>,
    #[serde(deserialize_with = "nd")]
    pub path: String,
    #[serde(deserialize_with = "nd")]
    pub protocol: String,
    #[serde(deserialize_with = "nd")]
    pub port_label: String,
    #[serde(deserialize_with = "nd")]
    pub address_mode: String,
    #[serde(deserialize_with = "int")]
    pub interval: i64,
    #[serde(deserialize_with = "int")]
    pub timeout: i64,
    #[serde(deserialize_with = "nd")]
    pub initial_status: String,
    #[serde(rename = "TLSSkipVerify", deserialize_with = "nd")]
    pub tls_skip_verify: bool,
    #[serde(deserialize_with = "nd")]
    pub method: String,
    pub header: Opaque,
    #[serde(deserialize_with = "nd")]
    pub task_name: String,
    #[serde(deserialize_with = "nd")]
    pub body: String,
    #[serde(rename = "GRPCService", deserialize_with = "nd")]
    pub grpc_service: String,
    #[serde(rename = "GRPCUseTLS", deserialize_with = "nd")]
    pub grpc_use_tls: bool,
    #[serde(deserialize_with = "int")]
    pub success_before_passing: i64,
    #[serde(deserialize_with = "int")]
    pub failures_before_critical: i64,
    #[serde(deserialize_with = "int")]
    pub failures_before_warning: i64,
    pub check_restart: Option<CheckRestart>,
    #[serde(deserialize_with = "nd")]
    pub on_update: String,
}

/// Where a dispatched job's payload is written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DispatchPayloadConfig {
    #[serde(deserialize_with = "nd")]
    pub file: String,
}

/// Makes a job a template that is dispatched with a payload and meta.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ParameterizedJobConfig {
    #[serde(deserialize_with = "nd")]
    pub payload: String,
    pub meta_required: Option<Vec<String>>,
    pub meta_optional: Option<Vec<String>>,
}

/// Launches a job on a cron schedule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PeriodicConfig {
    /// Absent or null means enabled, as Nomad's API canonicalizes a periodic block that does
    /// not say `enabled = false`.
    #[serde(default = "enabled_by_default", deserialize_with = "null_true")]
    pub enabled: bool,
    #[serde(deserialize_with = "nd")]
    pub spec: String,
    pub specs: Option<Vec<String>>,
    #[serde(deserialize_with = "nd")]
    pub spec_type: String,
    #[serde(deserialize_with = "nd")]
    pub prohibit_overlap: bool,
    #[serde(deserialize_with = "nd")]
    pub time_zone: String,
}

fn enabled_by_default() -> bool {
    true
}

fn null_true<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(true))
}

/// Per-group allocation counts by client status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskGroupSummary {
    pub queued: i64,
    pub complete: i64,
    pub failed: i64,
    pub running: i64,
    pub starting: i64,
    pub lost: i64,
    pub unknown: i64,
}

/// Counts of a parent job's children.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobChildrenSummary {
    pub pending: i64,
    pub running: i64,
    pub dead: i64,
}

/// A job's allocation counts per group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobSummary {
    #[serde(rename = "JobID")]
    pub job_id: String,
    pub namespace: String,
    pub summary: BTreeMap<String, TaskGroupSummary>,
    pub children: Option<JobChildrenSummary>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// The list stub `GET /v1/jobs` returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobListStub {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "ParentID")]
    pub parent_id: String,
    pub name: String,
    pub namespace: String,
    pub datacenters: Option<Vec<String>>,
    pub node_pool: String,
    pub multiregion: Opaque,
    pub r#type: String,
    pub priority: i64,
    pub periodic: bool,
    pub parameterized_job: bool,
    pub stop: bool,
    #[serde(with = "server_owned")]
    pub status: Option<JobStatus>,
    pub status_description: String,
    pub job_summary: Option<JobSummary>,
    pub create_index: u64,
    pub modify_index: u64,
    pub job_modify_index: u64,
    pub submit_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: StrMap,
}

impl JobListStub {
    /// Builds the stub of a job with its summary; `meta` adds the job's Meta.
    pub fn new(job: &Job, summary: Option<JobSummary>, meta: bool) -> Self {
        JobListStub {
            id: job.id.clone(),
            parent_id: job.parent_id.clone(),
            name: job.name.clone(),
            namespace: job.namespace.clone(),
            datacenters: job.datacenters.clone(),
            node_pool: job.node_pool.clone(),
            multiregion: job.multiregion.clone(),
            r#type: job.r#type.clone(),
            priority: job.priority,
            periodic: job.periodic.as_ref().is_some_and(|p| p.enabled),
            parameterized_job: job.parameterized_job.is_some(),
            stop: job.stop,
            status: job.status,
            status_description: job.status_description.clone(),
            job_summary: summary,
            create_index: job.create_index,
            modify_index: job.modify_index,
            job_modify_index: job.job_modify_index,
            submit_time: job.submit_time,
            meta: if meta { job.meta.clone() } else { None },
        }
    }
}

#[cfg(test)]
mod periodic_tests {
    use super::PeriodicConfig;
    use serde_json::json;

    #[test]
    fn a_periodic_block_is_enabled_unless_it_says_otherwise() {
        let parse = |v| serde_json::from_value::<PeriodicConfig>(v).unwrap().enabled;
        assert!(parse(json!({"Specs": ["0 0 1 1 *"]})));
        assert!(parse(json!({"Enabled": null, "Spec": "@daily"})));
        assert!(!parse(json!({"Enabled": false, "Spec": "@daily"})));
    }
}
