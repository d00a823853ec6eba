//! The narrow server ↔ client interface: register a node, heartbeat, fetch the node's
//! allocations with a blocking index, and report allocation status in batches.
//!
//! In `-dev` the client calls the server in-process through [`ServerApi`]; across machines the
//! same trait is implemented over HTTP/JSON against the server's RPC port (see
//! `docs/server-client-protocol.md`).
//!
//! [`ServerLookup`] is the agent's read-only view of an in-process server (where an
//! allocation runs, for forwarding).

mod lookup;

pub use lookup::ServerLookup;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::acl::{Acl, parse};
use crate::structs::acl::AclPolicy;
use crate::structs::service::ServiceRegistration;
use crate::structs::{Allocation, Node};

/// Why an RPC failed; the client decides between retrying and re-registering.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The server does not know the node (it must register again).
    #[error("node not found")]
    NodeNotFound,
    /// The node's secret does not match the registered one.
    #[error("node secret ID does not match")]
    SecretMismatch,
    /// The node asked for or about something that is not its own (another node's
    /// allocations).
    #[error("Permission denied")]
    PermissionDenied,
    /// The request was malformed or refused.
    #[error("{0}")]
    BadRequest(String),
    /// The server could not be reached or answered with a fault; retry later.
    #[error("server unavailable: {0}")]
    Unavailable(String),
}

/// The server's answer to register and heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeUpdateResponse {
    /// How long the server waits for the next heartbeat, in nanoseconds.
    #[serde(rename = "HeartbeatTTL")]
    pub heartbeat_ttl: i64,
    #[serde(rename = "EvalIDs")]
    pub eval_ids: Vec<String>,
    pub eval_create_index: u64,
    pub node_modify_index: u64,
    pub index: u64,
    #[serde(rename = "LeaderRPCAddr")]
    pub leader_rpc_addr: String,
    pub num_nodes: i64,
    pub scheduling_eligibility: String,
}

/// The node's allocations as the server sees them: ID → AllocModifyIndex.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ClientAllocs {
    pub allocs: BTreeMap<String, u64>,
    pub index: u64,
}

/// Node status update (heartbeat) request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeStatusRequest {
    #[serde(rename = "NodeID")]
    pub node_id: String,
    #[serde(rename = "SecretID")]
    pub secret_id: String,
    pub status: String,
}

/// Blocking fetch of a node's allocation map.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ClientAllocsRequest {
    #[serde(rename = "NodeID")]
    pub node_id: String,
    #[serde(rename = "SecretID")]
    pub secret_id: String,
    pub min_query_index: u64,
    /// Longest wait in nanoseconds (0 = the server default of 5 minutes).
    pub max_query_time: i64,
}

/// Fetch of full allocations by ID; only the asking node's own allocations are given out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GetAllocsRequest {
    #[serde(rename = "NodeID")]
    pub node_id: String,
    #[serde(rename = "SecretID")]
    pub secret_id: String,
    #[serde(rename = "AllocIDs")]
    pub alloc_ids: Vec<String>,
}

/// Full allocations (with their Job).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GetAllocsResponse {
    pub allocs: Vec<Allocation>,
    pub index: u64,
}

/// A batch of client-side allocation updates (ID, NodeID, TaskStates, ClientStatus,
/// ClientDescription, DeploymentStatus).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateAllocsRequest {
    #[serde(rename = "NodeID")]
    pub node_id: String,
    #[serde(rename = "SecretID")]
    pub secret_id: String,
    pub alloc: Vec<Allocation>,
}

/// One service registration by its key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceKey {
    pub namespace: String,
    #[serde(rename = "ID")]
    pub id: String,
}

/// A client's changes to the service registrations of its allocations: what to register
/// (or refresh) and what to remove, in one write.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceSyncRequest {
    #[serde(rename = "NodeID")]
    pub node_id: String,
    #[serde(rename = "SecretID")]
    pub secret_id: String,
    pub upsert: Vec<ServiceRegistration>,
    pub delete: Vec<ServiceKey>,
}

/// Generic write acknowledgement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WriteResponse {
    pub index: u64,
}

/// A client agent asking what a token grants (Nomad's `ResolveToken`).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ResolveTokenRequest {
    /// The caller's secret; None for a request without a token.
    #[serde(rename = "SecretID")]
    pub secret_id: Option<String>,
}

impl std::fmt::Debug for ResolveTokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResolveTokenRequest { .. }")
    }
}

/// What a token grants, in a form that travels: management, or a set of policies. `error`
/// carries a refusal ("ACL token not found", "ACL token expired").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ResolvedToken {
    pub management: bool,
    pub policies: Vec<AclPolicy>,
    pub error: Option<String>,
    /// When the token stops being valid; a cached answer is not used past it.
    pub expiration_time: Option<chrono::DateTime<chrono::Utc>>,
}

impl ResolvedToken {
    /// Compiles the grant. Rules that no longer parse (stored by an older version) grant
    /// nothing rather than failing every request of the token.
    pub fn compile(&self) -> Acl {
        if self.management {
            return Acl::management();
        }
        let parsed: Vec<_> = self
            .policies
            .iter()
            .filter_map(|p| match parse(&p.rules) {
                Ok(rules) => Some(rules),
                Err(e) => {
                    tracing::warn!(policy = %p.name, error = %e, "stored ACL policy does not parse; it grants nothing");
                    None
                }
            })
            .collect();
        Acl::from_policies(&parsed)
    }
}

/// A task's template reading a variable, with its allocation as its identity (Nomad's
/// workload identity): the server checks that the allocation runs on the asking node and
/// that the task may read the path. Blocks until the variable changes past
/// `MinQueryIndex` when that is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WorkloadVarRequest {
    #[serde(rename = "NodeID")]
    pub node_id: String,
    #[serde(rename = "SecretID")]
    pub secret_id: String,
    #[serde(rename = "AllocID")]
    pub alloc_id: String,
    pub task: String,
    /// The variable's path (a read) or the prefix to list.
    pub path: String,
    pub min_query_index: u64,
    /// Longest wait for a change, in nanoseconds; 0 answers at once.
    pub max_query_time: i64,
}

/// A variable a workload read: `Data` is null when there is none at the path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WorkloadVarResponse {
    pub data: Option<crate::structs::variable::VariableDecrypted>,
    pub index: u64,
}

/// The variables under a prefix that a workload may list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WorkloadVarListResponse {
    pub data: Vec<crate::structs::variable::VariableMetadata>,
    pub index: u64,
}

/// What a client agent needs from the servers.
#[async_trait]
pub trait ServerApi: Send + Sync {
    /// Registers (or re-registers) the node; never changes an existing node's status.
    async fn register_node(&self, node: Node) -> Result<NodeUpdateResponse, RpcError>;

    /// Heartbeat: the node is alive and `status` (normally `ready`).
    async fn update_status(&self, req: NodeStatusRequest) -> Result<NodeUpdateResponse, RpcError>;

    /// Blocks until the node's allocation map changes past `min_query_index` or `wait` passes.
    async fn get_client_allocs(
        &self,
        req: ClientAllocsRequest,
        wait: Duration,
    ) -> Result<ClientAllocs, RpcError>;

    /// Full allocations by ID, all placed on the asking node.
    async fn get_allocs(&self, req: GetAllocsRequest) -> Result<GetAllocsResponse, RpcError>;

    /// Reports client status for a batch of allocations.
    async fn update_allocs(&self, req: UpdateAllocsRequest) -> Result<WriteResponse, RpcError>;

    /// What a token grants, for a client agent enforcing ACLs on its own endpoints.
    async fn resolve_token(&self, req: ResolveTokenRequest) -> Result<ResolvedToken, RpcError>;

    /// A variable read by a task's template; blocks up to `req.max_query_time` for a
    /// change past `req.min_query_index`.
    async fn read_workload_var(
        &self,
        req: WorkloadVarRequest,
    ) -> Result<WorkloadVarResponse, RpcError>;

    /// The variables under `req.path` a task's template may list; blocks like
    /// [`ServerApi::read_workload_var`].
    async fn list_workload_vars(
        &self,
        req: WorkloadVarRequest,
    ) -> Result<WorkloadVarListResponse, RpcError>;
    /// Registers and deregisters the native services of the node's allocations.
    async fn sync_services(&self, req: ServiceSyncRequest) -> Result<WriteResponse, RpcError>;
}
