//! Nodes: the machines clients register.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::de::{int, null_default as nd, uint};
use super::job::{NetworkResource, Opaque, StrMap};
use super::node_drain::{DrainMetadata, DrainStrategy};
use super::status::{NodeStatus, blank_default};

/// Scheduling eligibility values.
pub const NODE_ELIGIBLE: &str = "eligible";
pub const NODE_INELIGIBLE: &str = "ineligible";

/// Events kept per node (Nomad's `MaxRetainedNodeEvents`).
pub const MAX_NODE_EVENTS: usize = 10;

/// A client node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Node {
    #[serde(rename = "ID", deserialize_with = "nd")]
    pub id: String,
    #[serde(rename = "SecretID", deserialize_with = "nd")]
    pub secret_id: String,
    #[serde(deserialize_with = "nd")]
    pub datacenter: String,
    #[serde(deserialize_with = "nd")]
    pub name: String,
    #[serde(rename = "HTTPAddr", deserialize_with = "nd")]
    pub http_addr: String,
    #[serde(rename = "TLSEnabled", deserialize_with = "nd")]
    pub tls_enabled: bool,
    pub attributes: Option<BTreeMap<String, String>>,
    pub node_resources: Option<NodeResources>,
    pub reserved_resources: Option<NodeReservedResources>,
    pub links: StrMap,
    pub meta: StrMap,
    #[serde(deserialize_with = "nd")]
    pub node_class: String,
    #[serde(deserialize_with = "nd")]
    pub node_pool: String,
    #[serde(deserialize_with = "nd")]
    pub cgroup_parent: String,
    #[serde(deserialize_with = "nd")]
    pub computed_class: String,
    pub drain_strategy: Option<DrainStrategy>,
    #[serde(deserialize_with = "nd")]
    pub scheduling_eligibility: String,
    /// `null` or `""` from a registering client means "initializing".
    #[serde(deserialize_with = "blank_default")]
    pub status: NodeStatus,
    #[serde(deserialize_with = "nd")]
    pub status_description: String,
    #[serde(deserialize_with = "int")]
    pub status_updated_at: i64,
    pub events: Option<Vec<NodeEvent>>,
    pub drivers: Option<BTreeMap<String, DriverInfo>>,
    pub host_volumes: Opaque,
    pub host_networks: Opaque,
    pub last_drain: Option<DrainMetadata>,
    #[serde(deserialize_with = "nd")]
    pub drain: bool,
    #[serde(deserialize_with = "uint")]
    pub create_index: u64,
    #[serde(deserialize_with = "uint")]
    pub modify_index: u64,
}

impl Node {
    /// An attribute by key (`kernel.name`), if set.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.as_ref()?.get(key).map(String::as_str)
    }

    /// A meta value by key, if set.
    pub fn meta_value(&self, key: &str) -> Option<&str> {
        self.meta.as_ref()?.get(key).map(String::as_str)
    }

    /// Ready and eligible: the scheduler may place work here.
    pub fn ready(&self) -> bool {
        self.status == NodeStatus::Ready
            && self.scheduling_eligibility != NODE_INELIGIBLE
            && self.drain_strategy.is_none()
            && !self.drain
    }

    /// Records something that happened to the node, keeping the newest
    /// [`MAX_NODE_EVENTS`] as Nomad does.
    pub fn add_event(&mut self, subsystem: &str, message: &str, create_index: u64) {
        self.add_event_at(subsystem, message, create_index, chrono::Utc::now());
    }

    /// [`Node::add_event`] stamped `at` (a state write's time, the same on every server).
    pub fn add_event_at(
        &mut self,
        subsystem: &str,
        message: &str,
        create_index: u64,
        at: chrono::DateTime<chrono::Utc>,
    ) {
        let events = self.events.get_or_insert_with(Vec::new);
        events.push(NodeEvent {
            message: message.to_string(),
            subsystem: subsystem.to_string(),
            timestamp: Some(at),
            create_index,
            ..Default::default()
        });
        let excess = events.len().saturating_sub(MAX_NODE_EVENTS);
        events.drain(..excess);
    }

    /// Whether the named driver is detected and healthy.
    pub fn driver_healthy(&self, driver: &str) -> bool {
        match self.drivers.as_ref().and_then(|d| d.get(driver)) {
            Some(info) => info.detected && info.healthy,
            // Old clients only set the attribute.
            None => self
                .attr(&format!("driver.{driver}"))
                .is_some_and(|v| v == "1" || v == "true"),
        }
    }

    /// The Nomad version the node runs (`nomad.version`).
    pub fn version(&self) -> String {
        self.attr("nomad.version").unwrap_or_default().to_string()
    }
}

/// A driver as the node fingerprinted it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DriverInfo {
    pub attributes: StrMap,
    #[serde(deserialize_with = "nd")]
    pub detected: bool,
    #[serde(deserialize_with = "nd")]
    pub healthy: bool,
    #[serde(deserialize_with = "nd")]
    pub health_description: String,
    pub update_time: Option<DateTime<Utc>>,
}

/// Something that happened to a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeEvent {
    #[serde(deserialize_with = "nd")]
    pub message: String,
    #[serde(deserialize_with = "nd")]
    pub subsystem: String,
    pub details: StrMap,
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "uint")]
    pub create_index: u64,
}

/// What a node offers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeResources {
    pub cpu: NodeCpuResources,
    pub memory: NodeMemoryResources,
    pub disk: NodeDiskResources,
    pub networks: Option<Vec<NetworkResource>>,
    pub node_networks: Opaque,
    pub devices: Opaque,
    pub processors: Opaque,
    #[serde(deserialize_with = "int")]
    pub min_dynamic_port: i64,
    #[serde(deserialize_with = "int")]
    pub max_dynamic_port: i64,
}

/// CPU a node offers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeCpuResources {
    #[serde(deserialize_with = "int")]
    pub cpu_shares: i64,
    #[serde(deserialize_with = "int")]
    pub total_cpu_cores: i64,
    pub reservable_cpu_cores: Option<Vec<u32>>,
}

/// Memory a node offers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeMemoryResources {
    #[serde(rename = "MemoryMB", deserialize_with = "int")]
    pub memory_mb: i64,
}

/// Disk a node offers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeDiskResources {
    #[serde(rename = "DiskMB", deserialize_with = "int")]
    pub disk_mb: i64,
}

/// What a node keeps for itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeReservedResources {
    pub cpu: NodeReservedCpu,
    pub memory: NodeMemoryResources,
    pub disk: NodeDiskResources,
    pub networks: NodeReservedNetworks,
}

/// CPU a node keeps for itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeReservedCpu {
    #[serde(deserialize_with = "int")]
    pub cpu_shares: i64,
    pub reserved_cpu_cores: Option<Vec<u32>>,
}

/// Ports a node keeps for itself, as `"80,443,1000-2000"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeReservedNetworks {
    #[serde(deserialize_with = "nd")]
    pub reserved_host_ports: String,
}

/// The list stub `GET /v1/nodes` returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeListStub {
    pub address: String,
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
    pub datacenter: String,
    pub name: String,
    pub node_class: String,
    pub node_pool: String,
    pub version: String,
    pub drain: bool,
    pub scheduling_eligibility: String,
    pub status: NodeStatus,
    pub status_description: String,
    pub drivers: Option<BTreeMap<String, DriverInfo>>,
    pub host_volumes: Opaque,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_resources: Option<NodeResources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved_resources: Option<NodeReservedResources>,
    pub last_drain: Option<DrainMetadata>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl NodeListStub {
    /// The stub of a node; `resources` adds its resources, `os` its `os.name` attribute.
    pub fn new(n: &Node, resources: bool, os: bool) -> Self {
        let address = n
            .http_addr
            .rsplit_once(':')
            .map(|(h, _)| h.to_string())
            .unwrap_or_else(|| n.http_addr.clone());
        NodeListStub {
            address,
            id: n.id.clone(),
            attributes: if os {
                n.attr("os.name")
                    .map(|v| BTreeMap::from([("os.name".to_string(), v.to_string())]))
            } else {
                None
            },
            datacenter: n.datacenter.clone(),
            name: n.name.clone(),
            node_class: n.node_class.clone(),
            node_pool: n.node_pool.clone(),
            version: n.version(),
            drain: n.drain_strategy.is_some(),
            scheduling_eligibility: n.scheduling_eligibility.clone(),
            status: n.status,
            status_description: n.status_description.clone(),
            drivers: n.drivers.clone(),
            host_volumes: n.host_volumes.clone(),
            node_resources: if resources {
                n.node_resources.clone()
            } else {
                None
            },
            reserved_resources: if resources {
                n.reserved_resources.clone()
            } else {
                None
            },
            last_drain: n.last_drain.clone(),
            create_index: n.create_index,
            modify_index: n.modify_index,
        }
    }
}
