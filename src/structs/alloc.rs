//! Allocations: a task group placed on a node, and what the client reports about it.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::de::{int, null_default as nd, uint};
use super::job::{Job, Opaque, Resources, SharedNetworks, StrMap};
use super::node_scores::NodeScores;
use super::status::{AllocClientStatus, AllocDesiredStatus, TaskStateName, blank_default};
use super::time::zero_time;
use super::vec_map::VecMap;

/// An allocation. `Job` is shared: thousands of allocations point at one job version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Allocation {
    #[serde(rename = "ID", deserialize_with = "nd")]
    pub id: String,
    #[serde(deserialize_with = "nd")]
    pub namespace: Arc<str>,
    #[serde(rename = "EvalID", deserialize_with = "nd")]
    pub eval_id: Arc<str>,
    #[serde(deserialize_with = "nd")]
    pub name: String,
    #[serde(rename = "NodeID", deserialize_with = "nd")]
    pub node_id: Arc<str>,
    #[serde(deserialize_with = "nd")]
    pub node_name: Arc<str>,
    #[serde(rename = "JobID", deserialize_with = "nd")]
    pub job_id: Arc<str>,
    pub job: Option<Arc<Job>>,
    #[serde(deserialize_with = "nd")]
    pub task_group: Arc<str>,
    pub resources: Option<Resources>,
    pub shared_resources: Option<Resources>,
    /// Shared by the allocations of a group whose tasks ask for no networks of their own.
    pub task_resources: Option<Arc<VecMap<String, Resources>>>,
    pub allocated_resources: Option<AllocatedResources>,
    pub metrics: Option<AllocMetric>,
    /// Set by the server; `null` or `""` (a client echoing an allocation back) reads as run.
    #[serde(deserialize_with = "blank_default")]
    pub desired_status: AllocDesiredStatus,
    #[serde(deserialize_with = "nd")]
    pub desired_description: String,
    pub desired_transition: DesiredTransition,
    /// Reported by the client: `null` or `""` reads as pending, an unknown name is refused.
    #[serde(deserialize_with = "blank_default")]
    pub client_status: AllocClientStatus,
    #[serde(deserialize_with = "nd")]
    pub client_description: String,
    pub task_states: Option<BTreeMap<String, TaskState>>,
    pub alloc_states: Opaque,
    #[serde(deserialize_with = "nd")]
    pub previous_allocation: String,
    #[serde(deserialize_with = "nd")]
    pub next_allocation: String,
    #[serde(rename = "DeploymentID", deserialize_with = "nd")]
    pub deployment_id: String,
    pub deployment_status: Option<AllocDeploymentStatus>,
    pub reschedule_tracker: Option<RescheduleTracker>,
    pub network_status: Opaque,
    #[serde(rename = "FollowupEvalID", deserialize_with = "nd")]
    pub followup_eval_id: String,
    pub preempted_allocations: Option<Vec<String>>,
    #[serde(deserialize_with = "nd")]
    pub preempted_by_allocation: String,
    #[serde(deserialize_with = "uint")]
    pub create_index: u64,
    #[serde(deserialize_with = "uint")]
    pub modify_index: u64,
    #[serde(deserialize_with = "uint")]
    pub alloc_modify_index: u64,
    #[serde(deserialize_with = "int")]
    pub create_time: i64,
    #[serde(deserialize_with = "int")]
    pub modify_time: i64,
}

impl Allocation {
    /// Terminal on the server side: the scheduler wants it stopped or evicted.
    pub fn server_terminal(&self) -> bool {
        matches!(
            self.desired_status,
            AllocDesiredStatus::Stop | AllocDesiredStatus::Evict
        )
    }

    /// Terminal on the client side: it has finished, failed or been lost.
    pub fn client_terminal(&self) -> bool {
        matches!(
            self.client_status,
            AllocClientStatus::Complete | AllocClientStatus::Failed | AllocClientStatus::Lost
        )
    }

    /// Either side considers it done; it no longer uses node resources.
    pub fn terminal(&self) -> bool {
        self.server_terminal() || self.client_terminal()
    }

    /// The `[N]` index in the allocation's name.
    pub fn index(&self) -> u64 {
        alloc_index_from_name(&self.name)
    }

    /// The task group this allocation runs, from its embedded job.
    pub fn group(&self) -> Option<&super::job::TaskGroup> {
        self.job.as_ref().and_then(|j| j.group(&self.task_group))
    }
}

/// Parses the index out of `job.group[N]`; 0 when absent.
pub fn alloc_index_from_name(name: &str) -> u64 {
    name.rsplit_once('[')
        .and_then(|(_, rest)| rest.strip_suffix(']'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Builds `job.group[N]`.
pub fn alloc_name(job: &str, group: &str, index: u64) -> String {
    format!("{job}.{group}[{index}]")
}

/// Server-set hints for the scheduler about an allocation's future.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DesiredTransition {
    pub migrate: Option<bool>,
    pub reschedule: Option<bool>,
    pub force_reschedule: Option<bool>,
    pub no_shutdown_delay: Option<bool>,
}

/// What the scheduler gave the allocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedResources {
    /// Shared by the allocations of a group whose tasks ask for no networks of their own.
    pub tasks: Arc<VecMap<String, AllocatedTaskResources>>,
    /// Shared by every allocation of a group.
    pub task_lifecycles: Option<Arc<VecMap<String, Option<super::job::Lifecycle>>>>,
    pub shared: AllocatedSharedResources,
}

/// Resources of one task in an allocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedTaskResources {
    pub cpu: AllocatedCpuResources,
    pub memory: AllocatedMemoryResources,
    pub networks: SharedNetworks,
    pub devices: Opaque,
}

/// CPU of one task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedCpuResources {
    #[serde(deserialize_with = "int")]
    pub cpu_shares: i64,
    pub reserved_cores: Option<Vec<u32>>,
}

/// Memory of one task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedMemoryResources {
    #[serde(rename = "MemoryMB", deserialize_with = "int")]
    pub memory_mb: i64,
    #[serde(rename = "MemoryMaxMB", deserialize_with = "int")]
    pub memory_max_mb: i64,
}

/// Resources shared by the group's tasks: disk, group networks and their ports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedSharedResources {
    pub networks: SharedNetworks,
    #[serde(rename = "DiskMB", deserialize_with = "int")]
    pub disk_mb: i64,
    pub ports: Option<Vec<AllocatedPortMapping>>,
}

/// A group port as allocated: host port `Value`, in-task port `To`, on `HostIP`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedPortMapping {
    #[serde(deserialize_with = "nd")]
    pub label: String,
    #[serde(deserialize_with = "int")]
    pub value: i64,
    #[serde(deserialize_with = "int")]
    pub to: i64,
    #[serde(rename = "HostIP", deserialize_with = "nd")]
    pub host_ip: String,
}

/// The state of one task as the client reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskState {
    #[serde(deserialize_with = "blank_default")]
    pub state: TaskStateName,
    #[serde(deserialize_with = "nd")]
    pub failed: bool,
    #[serde(deserialize_with = "uint")]
    pub restarts: u64,
    pub last_restart: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub events: Option<Vec<TaskEvent>>,
    pub task_handle: Opaque,
}

impl Default for TaskState {
    fn default() -> Self {
        TaskState {
            state: TaskStateName::Pending,
            failed: false,
            restarts: 0,
            last_restart: zero_time(),
            started_at: zero_time(),
            finished_at: zero_time(),
            events: None,
            task_handle: None,
        }
    }
}

/// Most events a task state keeps; the oldest are dropped.
pub const MAX_TASK_EVENTS: usize = 10;

impl TaskState {
    /// Appends an event, keeping at most [`MAX_TASK_EVENTS`].
    pub fn push_event(&mut self, ev: TaskEvent) {
        let events = self.events.get_or_insert_with(Vec::new);
        events.push(ev);
        if events.len() > MAX_TASK_EVENTS {
            let drop = events.len() - MAX_TASK_EVENTS;
            events.drain(..drop);
        }
    }

    /// True when the task finished without failing.
    pub fn successful(&self) -> bool {
        self.state == TaskStateName::Dead && !self.failed
    }
}

/// Task event types, exactly as Nomad spells them.
pub mod event {
    pub const SETUP_FAILURE: &str = "Setup Failure";
    pub const DRIVER_FAILURE: &str = "Driver Failure";
    pub const STARTED: &str = "Started";
    pub const TERMINATED: &str = "Terminated";
    pub const KILLING: &str = "Killing";
    pub const KILLED: &str = "Killed";
    pub const RECEIVED: &str = "Received";
    pub const FAILED_VALIDATION: &str = "Failed Validation";
    pub const RESTARTING: &str = "Restarting";
    pub const NOT_RESTARTING: &str = "Not Restarting";
    pub const DOWNLOADING_ARTIFACTS: &str = "Downloading Artifacts";
    pub const ARTIFACT_DOWNLOAD_FAILED: &str = "Failed Artifact Download";
    pub const RESTART_SIGNAL: &str = "Restart Signaled";
    pub const SIGNALING: &str = "Signaling";
    pub const SIBLING_FAILED: &str = "Sibling Task Failed";
    pub const LEADER_DEAD: &str = "Leader Task Dead";
    pub const MAIN_DEAD: &str = "Main Tasks Dead";
    pub const DRIVER_MESSAGE: &str = "Driver";
    pub const TASK_SETUP: &str = "Task Setup";
    pub const BUILDING_TASK_DIR: &str = "Building Task Directory";
    pub const WAITING_SHUTDOWN_DELAY: &str = "Waiting for shutdown delay";
    pub const FAILED_RESTORING: &str = "Failed Restoring Task";
    pub const PLUGIN_BECAME_HEALTHY: &str = "Plugin became healthy";
    pub const CLIENT_RECONNECTED: &str = "Reconnected";
}

/// Something that happened to a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskEvent {
    #[serde(deserialize_with = "nd")]
    pub r#type: String,
    #[serde(deserialize_with = "int")]
    pub time: i64,
    #[serde(deserialize_with = "nd")]
    pub message: String,
    #[serde(deserialize_with = "nd")]
    pub display_message: String,
    pub details: StrMap,
    #[serde(deserialize_with = "nd")]
    pub fails_task: bool,
    #[serde(deserialize_with = "nd")]
    pub restart_reason: String,
    #[serde(deserialize_with = "nd")]
    pub setup_error: String,
    #[serde(deserialize_with = "nd")]
    pub driver_error: String,
    #[serde(deserialize_with = "int")]
    pub exit_code: i64,
    #[serde(deserialize_with = "int")]
    pub signal: i64,
    #[serde(deserialize_with = "int")]
    pub kill_timeout: i64,
    #[serde(deserialize_with = "nd")]
    pub kill_error: String,
    #[serde(deserialize_with = "nd")]
    pub kill_reason: String,
    #[serde(deserialize_with = "int")]
    pub start_delay: i64,
    #[serde(deserialize_with = "nd")]
    pub download_error: String,
    #[serde(deserialize_with = "nd")]
    pub validation_error: String,
    #[serde(deserialize_with = "int")]
    pub disk_limit: i64,
    #[serde(deserialize_with = "nd")]
    pub failed_sibling: String,
    #[serde(deserialize_with = "nd")]
    pub vault_error: String,
    #[serde(deserialize_with = "nd")]
    pub task_signal_reason: String,
    #[serde(deserialize_with = "nd")]
    pub task_signal: String,
    #[serde(deserialize_with = "nd")]
    pub driver_message: String,
    #[serde(deserialize_with = "nd")]
    pub generic_source: String,
}

impl TaskEvent {
    /// A new event of `kind` stamped now.
    pub fn new(kind: &str) -> Self {
        TaskEvent {
            r#type: kind.to_string(),
            time: super::time::now_nanos(),
            ..Default::default()
        }
    }

    /// Adds a `Details` entry (Nomad mirrors most annotations there).
    pub fn detail(mut self, key: &str, value: impl Into<String>) -> Self {
        self.details
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_string(), value.into());
        self
    }
}

/// Links an allocation to the ones it replaced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RescheduleTracker {
    pub events: Option<Vec<RescheduleEvent>>,
}

/// One reschedule of an allocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RescheduleEvent {
    #[serde(deserialize_with = "int")]
    pub reschedule_time: i64,
    #[serde(rename = "PrevAllocID", deserialize_with = "nd")]
    pub prev_alloc_id: String,
    #[serde(rename = "PrevNodeID", deserialize_with = "nd")]
    pub prev_node_id: String,
    #[serde(deserialize_with = "int")]
    pub delay: i64,
}

/// What the scheduler saw while placing (or failing to place) an allocation. Every placed
/// allocation keeps one, so its maps are compact (a sorted vector each) and what a whole
/// evaluation shares (`NodesAvailable`) is shared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocMetric {
    pub nodes_evaluated: i64,
    pub nodes_filtered: i64,
    pub nodes_in_pool: i64,
    pub nodes_available: Option<Arc<VecMap<String, i64>>>,
    pub class_filtered: Option<VecMap<String, i64>>,
    pub constraint_filtered: Option<VecMap<String, i64>>,
    pub nodes_exhausted: i64,
    pub class_exhausted: Option<VecMap<String, i64>>,
    pub dimension_exhausted: Option<VecMap<String, i64>>,
    pub quota_exhausted: Option<Vec<String>>,
    pub resources_exhausted: Opaque,
    /// Keys are `<node ID>.<scorer>`; the scheduler shares each key among the allocations
    /// of an evaluation that ranked the same node.
    pub scores: Option<VecMap<Arc<str>, f64>>,
    pub score_meta_data: Option<Vec<NodeScoreMeta>>,
    pub allocation_time: i64,
    pub coalesced_failures: i64,
}

impl AllocMetric {
    /// Drops the spare capacity its maps grew while the scheduler filled them: the metric
    /// lives as long as its allocation.
    pub fn shrink_to_fit(&mut self) {
        for map in [
            &mut self.class_filtered,
            &mut self.constraint_filtered,
            &mut self.class_exhausted,
            &mut self.dimension_exhausted,
        ]
        .into_iter()
        .flatten()
        {
            map.shrink_to_fit();
        }
        if let Some(scores) = self.scores.as_mut() {
            scores.shrink_to_fit();
        }
    }
}

/// The scores one node got. The scorer names are shared (see [`NodeScores`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeScoreMeta {
    #[serde(rename = "NodeID")]
    pub node_id: Arc<str>,
    pub scores: NodeScores,
    pub norm_score: f64,
}

/// Deployment health of an allocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocDeploymentStatus {
    pub healthy: Option<bool>,
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "nd")]
    pub canary: bool,
    #[serde(deserialize_with = "uint")]
    pub modify_index: u64,
}

/// The list stub `GET /v1/allocations` returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocListStub {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "EvalID")]
    pub eval_id: Arc<str>,
    pub name: String,
    pub namespace: Arc<str>,
    #[serde(rename = "NodeID")]
    pub node_id: Arc<str>,
    pub node_name: Arc<str>,
    #[serde(rename = "JobID")]
    pub job_id: Arc<str>,
    pub job_type: String,
    pub job_version: i64,
    pub task_group: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocated_resources: Option<AllocatedResources>,
    pub desired_status: AllocDesiredStatus,
    pub desired_description: String,
    pub client_status: AllocClientStatus,
    pub client_description: String,
    pub desired_transition: DesiredTransition,
    pub task_states: Option<BTreeMap<String, TaskState>>,
    pub deployment_status: Option<AllocDeploymentStatus>,
    pub followup_eval_id: String,
    pub reschedule_tracker: Option<RescheduleTracker>,
    pub preempted_allocations: Option<Vec<String>>,
    pub preempted_by_allocation: String,
    pub previous_allocation: String,
    pub next_allocation: String,
    pub create_index: u64,
    pub modify_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
}

impl AllocListStub {
    /// The stub of an allocation; `task_states` and `resources` follow the query flags.
    pub fn new(a: &Allocation, task_states: bool, resources: bool) -> Self {
        AllocListStub {
            id: a.id.clone(),
            eval_id: a.eval_id.clone(),
            name: a.name.clone(),
            namespace: a.namespace.clone(),
            node_id: a.node_id.clone(),
            node_name: a.node_name.clone(),
            job_id: a.job_id.clone(),
            job_type: a.job.as_ref().map(|j| j.r#type.clone()).unwrap_or_default(),
            job_version: a.job.as_ref().map(|j| j.version).unwrap_or_default(),
            task_group: a.task_group.clone(),
            allocated_resources: if resources {
                a.allocated_resources.clone()
            } else {
                None
            },
            desired_status: a.desired_status,
            desired_description: a.desired_description.clone(),
            client_status: a.client_status,
            client_description: a.client_description.clone(),
            desired_transition: a.desired_transition.clone(),
            task_states: if task_states {
                a.task_states.clone()
            } else {
                None
            },
            deployment_status: a.deployment_status.clone(),
            followup_eval_id: a.followup_eval_id.clone(),
            reschedule_tracker: a.reschedule_tracker.clone(),
            preempted_allocations: a.preempted_allocations.clone(),
            preempted_by_allocation: a.preempted_by_allocation.clone(),
            previous_allocation: a.previous_allocation.clone(),
            next_allocation: a.next_allocation.clone(),
            create_index: a.create_index,
            modify_index: a.modify_index,
            create_time: a.create_time,
            modify_time: a.modify_time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_indexes() {
        assert_eq!(alloc_name("web", "cache", 7), "web.cache[7]");
        assert_eq!(alloc_index_from_name("web.cache[7]"), 7);
        assert_eq!(alloc_index_from_name("a.b[c].d[12]"), 12);
        assert_eq!(alloc_index_from_name("nobrackets"), 0);
    }

    #[test]
    fn events_are_capped() {
        let mut s = TaskState::default();
        for i in 0..15 {
            let mut e = TaskEvent::new(event::RESTARTING);
            e.exit_code = i;
            s.push_event(e);
        }
        let ev = s.events.unwrap();
        assert_eq!(ev.len(), MAX_TASK_EVENTS);
        assert_eq!(ev[0].exit_code, 5);
    }

    #[test]
    fn zero_times_serialize_like_go() {
        let v = serde_json::to_value(TaskState::default()).unwrap();
        assert_eq!(v["FinishedAt"], "0001-01-01T00:00:00Z");
        assert_eq!(v["Events"], serde_json::Value::Null);
    }
}

#[cfg(test)]
mod wire_tests {
    use serde_json::{Value, json};

    use super::*;

    /// An allocation as Nomad's API returns it, every compactly stored part populated:
    /// per-task resources, lifecycles, every metric map, score metadata, and empty maps
    /// (`{}`) next to absent ones (`null`).
    fn nomad_alloc() -> Value {
        let net = json!({
            "Mode": "host", "Device": "eth0", "CIDR": "10.0.0.5/32", "IP": "10.0.0.5",
            "Hostname": "", "MBits": 0, "DNS": null, "ReservedPorts": null,
            "DynamicPorts": [{"Label": "http", "Value": 23456, "To": 0, "HostNetwork": "default"}],
        });
        let legacy = |cpu: i64, mem: i64, nets: Value| {
            json!({
                "CPU": cpu, "Cores": 0, "MemoryMB": mem, "MemoryMaxMB": 0, "DiskMB": 0,
                "IOPS": 0, "Networks": nets, "Devices": null, "NUMA": null,
            })
        };
        json!({
            "ID": "5456bd7a-9fc0-c0dd-6131-cbee77f57577",
            "Namespace": "default",
            "EvalID": "d092fdc0-e1fd-2536-67d8-43af8ca798ac",
            "Name": "example.cache[0]",
            "NodeID": "fb2170a8-257d-3c64-b14d-bc06cc94e34c",
            "NodeName": "node-1",
            "JobID": "example",
            "Job": null,
            "TaskGroup": "cache",
            "Resources": {
                "CPU": 600, "Cores": 0, "MemoryMB": 384, "MemoryMaxMB": 0, "DiskMB": 300,
                "IOPS": 0, "Networks": [net.clone()], "Devices": null, "NUMA": null,
            },
            "SharedResources": {
                "CPU": 0, "Cores": 0, "MemoryMB": 0, "MemoryMaxMB": 0, "DiskMB": 300,
                "IOPS": 0, "Networks": [net.clone()], "Devices": null, "NUMA": null,
            },
            "TaskResources": {
                "redis": legacy(500, 256, Value::Null),
                "sidecar": legacy(100, 128, Value::Null),
            },
            "AllocatedResources": {
                "Tasks": {
                    "redis": {
                        "Cpu": {"CpuShares": 500, "ReservedCores": null},
                        "Memory": {"MemoryMB": 256, "MemoryMaxMB": 512},
                        "Networks": null,
                        "Devices": null,
                    },
                    "sidecar": {
                        "Cpu": {"CpuShares": 100, "ReservedCores": null},
                        "Memory": {"MemoryMB": 128, "MemoryMaxMB": 0},
                        "Networks": null,
                        "Devices": null,
                    },
                },
                "TaskLifecycles": {
                    "redis": null,
                    "sidecar": {"Hook": "prestart", "Sidecar": true},
                },
                "Shared": {
                    "Networks": [net],
                    "DiskMB": 300,
                    "Ports": [{"Label": "http", "Value": 23456, "To": 0, "HostIP": "10.0.0.5"}],
                },
            },
            "Metrics": {
                "NodesEvaluated": 3,
                "NodesFiltered": 1,
                "NodesInPool": 3,
                "NodesAvailable": {"dc1": 2, "dc2": 1},
                "ClassFiltered": {"small": 1},
                "ConstraintFiltered": {"${attr.kernel.name} = linux": 1},
                "NodesExhausted": 1,
                "ClassExhausted": {},
                "DimensionExhausted": {"memory": 1},
                "QuotaExhausted": null,
                "ResourcesExhausted": null,
                "Scores": {
                    "fb2170a8-257d-3c64-b14d-bc06cc94e34c.binpack": 0.53,
                    "fb2170a8-257d-3c64-b14d-bc06cc94e34c.job-anti-affinity": -0.5,
                },
                "ScoreMetaData": [{
                    "NodeID": "fb2170a8-257d-3c64-b14d-bc06cc94e34c",
                    "Scores": {
                        "binpack": 0.53,
                        "job-anti-affinity": -0.5,
                        "node-affinity": 0.0,
                        "node-reschedule-penalty": 0.0,
                    },
                    "NormScore": 0.015,
                }],
                "AllocationTime": 46415,
                "CoalescedFailures": 0,
            },
            "DesiredStatus": "run",
            "DesiredDescription": "",
            "DesiredTransition": {
                "Migrate": null, "Reschedule": null, "ForceReschedule": null,
                "NoShutdownDelay": null,
            },
            "ClientStatus": "pending",
            "ClientDescription": "",
            "TaskStates": null,
            "AllocStates": null,
            "PreviousAllocation": "",
            "NextAllocation": "",
            "DeploymentID": "",
            "DeploymentStatus": null,
            "RescheduleTracker": null,
            "NetworkStatus": null,
            "FollowupEvalID": "",
            "PreemptedAllocations": null,
            "PreemptedByAllocation": "",
            "CreateIndex": 12,
            "ModifyIndex": 14,
            "AllocModifyIndex": 12,
            "CreateTime": 1_700_000_000_000_000_000i64,
            "ModifyTime": 1_700_000_000_000_000_001i64,
        })
    }

    #[test]
    fn compact_allocation_keeps_nomads_json() {
        let wire = nomad_alloc();
        let alloc: Allocation = serde_json::from_value(wire.clone()).expect("decode");
        let metric = alloc.metrics.as_ref().expect("metrics");
        assert_eq!(metric.scores.as_ref().expect("scores").len(), 2);
        assert_eq!(metric.class_exhausted.as_ref().map(VecMap::len), Some(0));
        assert_eq!(
            alloc.allocated_resources.as_ref().expect("allocated").tasks["sidecar"]
                .cpu
                .cpu_shares,
            100
        );
        assert_eq!(serde_json::to_value(&alloc).expect("encode"), wire);
    }

    #[test]
    fn shared_parts_encode_like_owned_ones() {
        let wire = nomad_alloc();
        let a: Allocation = serde_json::from_value(wire.clone()).expect("decode");
        // Two allocations pointing at the same per-task maps and NodesAvailable (as the
        // scheduler builds them) encode exactly like an allocation owning its copies.
        let mut b = a.clone();
        b.id = "second".into();
        let (ar_a, ar_b) = (
            a.allocated_resources.as_ref().expect("a"),
            b.allocated_resources.as_ref().expect("b"),
        );
        assert!(Arc::ptr_eq(&ar_a.tasks, &ar_b.tasks));
        // The scheduler points the three network lists at one copy.
        let nets = ar_b.shared.networks.clone();
        assert!(nets.is_some());
        b.resources.as_mut().expect("resources").networks = nets.clone();
        b.shared_resources.as_mut().expect("shared").networks = nets;
        let mut expect = wire;
        expect["ID"] = json!("second");
        assert_eq!(serde_json::to_value(&b).expect("encode"), expect);
    }
}
