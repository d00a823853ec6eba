//! The server side of the server ↔ client interface: node registration, heartbeats, the
//! blocking allocation fetch and client status updates; plus what happens when a node dies.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::rpc::{
    ClientAllocs, ClientAllocsRequest, GetAllocsRequest, GetAllocsResponse, NodeStatusRequest,
    NodeUpdateResponse, RpcError, ServerApi, UpdateAllocsRequest, WriteResponse,
};
use crate::server::Server;
use crate::server::state::{AllocClientUpdate, Applied, Command, Request, StateError, Table};
use crate::structs::secret::secrets_equal;
use crate::structs::{Evaluation, Node, NodeStatus};

impl From<StateError> for RpcError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::NotFound(m) if m == "node not found" => RpcError::NodeNotFound,
            StateError::NotFound(m) | StateError::Conflict(m) | StateError::BadRequest(m) => {
                RpcError::BadRequest(m)
            }
            StateError::Storage(m) => RpcError::Unavailable(m),
        }
    }
}

/// The node a request names, when the request carries that node's SecretID: every call a
/// client makes after registering proves which node it is this way (as Nomad's clients do
/// with their secret as the RPC auth token), ACLs or not.
pub(super) fn authenticate(
    tables: &crate::server::state::Tables,
    node_id: &str,
    secret_id: &str,
) -> Result<Arc<Node>, RpcError> {
    let node = tables.node(node_id).ok_or(RpcError::NodeNotFound)?;
    if !secrets_equal(&node.secret_id, secret_id) {
        return Err(RpcError::SecretMismatch);
    }
    Ok(node)
}

impl Server {
    fn node_update_response(
        &self,
        node: &Node,
        ttl: Duration,
        index: u64,
        evals: &[Arc<Evaluation>],
    ) -> NodeUpdateResponse {
        let snap = self.state.snapshot();
        NodeUpdateResponse {
            heartbeat_ttl: ttl.as_nanos() as i64,
            eval_ids: evals.iter().map(|e| e.id.clone()).collect(),
            eval_create_index: evals.iter().map(|e| e.create_index).max().unwrap_or(0),
            node_modify_index: node.modify_index,
            index,
            leader_rpc_addr: self.config.rpc_advertise.clone(),
            num_nodes: snap.nodes.len() as i64,
            scheduling_eligibility: node.scheduling_eligibility.clone(),
        }
    }

    /// Registers or re-registers a node (never changing an existing node's status).
    pub async fn register_node(
        self: &Arc<Self>,
        mut node: Node,
    ) -> Result<NodeUpdateResponse, RpcError> {
        if node.id.is_empty() {
            return Err(RpcError::BadRequest(
                "missing node ID for client registration".into(),
            ));
        }
        if node.datacenter.is_empty() {
            return Err(RpcError::BadRequest(
                "missing datacenter for client registration".into(),
            ));
        }
        if node.name.is_empty() {
            return Err(RpcError::BadRequest(
                "missing node name for client registration".into(),
            ));
        }
        if node.attributes.as_ref().is_none_or(|a| a.is_empty()) {
            return Err(RpcError::BadRequest(
                "missing attributes for client registration".into(),
            ));
        }
        if node.secret_id.is_empty() {
            return Err(RpcError::BadRequest(
                "missing node secret ID for client registration".into(),
            ));
        }
        if node.node_pool.is_empty() {
            node.node_pool = "default".to_string();
        }
        node.computed_class = computed_class(&node);
        let (index, applied) = self
            .state
            .commit(Request::new(Command::NodeRegister {
                node: Box::new(node),
            }))
            .await
            .map_err(|e| match e {
                StateError::Conflict(_) => RpcError::SecretMismatch,
                other => other.into(),
            })?;
        let (Some(stored), evals) = applied.into_node()? else {
            return Err(RpcError::Unavailable(
                "node registration stored no node".into(),
            ));
        };
        for e in &evals {
            self.broker.enqueue((**e).clone());
        }
        if stored.status == NodeStatus::Ready {
            self.unblock();
        }
        let ttl = self
            .heartbeats
            .reset(self, &stored.id, self.state.snapshot().nodes.len());
        Ok(self.node_update_response(&stored, ttl, index, &evals))
    }

    /// A heartbeat: the node is alive and reports `status`.
    pub async fn update_node_status(
        self: &Arc<Self>,
        req: NodeStatusRequest,
    ) -> Result<NodeUpdateResponse, RpcError> {
        let status = match req.status.as_str() {
            "" => NodeStatus::Ready,
            s => match s.parse() {
                Ok(s @ (NodeStatus::Initializing | NodeStatus::Ready | NodeStatus::Down)) => s,
                _ => {
                    return Err(RpcError::BadRequest(format!(
                        "invalid status for node: {s:?}"
                    )));
                }
            },
        };
        let snap = self.state.snapshot();
        let node = authenticate(&snap, &req.node_id, &req.secret_id)?;
        let (index, node, evals) = if node.status != status {
            let (index, applied) = self
                .state
                .commit(Request::new(Command::NodeStatus {
                    node_id: req.node_id.clone(),
                    status,
                }))
                .await?;
            let (Some(stored), evals) = applied.into_node()? else {
                return Err(RpcError::Unavailable("node status stored no node".into()));
            };
            for e in &evals {
                self.broker.enqueue((**e).clone());
            }
            if stored.status == NodeStatus::Ready {
                self.unblock();
            }
            (index, stored, evals)
        } else {
            (snap.table_index(Table::Nodes), node, Vec::new())
        };
        let ttl = self
            .heartbeats
            .reset(self, &node.id, self.state.snapshot().nodes.len());
        Ok(self.node_update_response(&node, ttl, index, &evals))
    }

    /// Called when a node's heartbeat timer runs out: the node goes down and its work is
    /// rescheduled elsewhere.
    pub async fn node_heartbeat_expired(self: &Arc<Self>, node_id: &str) {
        let res = self
            .state
            .commit(Request::new(Command::NodeDown {
                node_id: node_id.to_string(),
            }))
            .await
            .and_then(|(_, applied)| applied.into_node());
        match res {
            Ok((None, _)) => {}
            Ok((Some(_), evals)) => {
                tracing::warn!(node_id, "node missed its heartbeat; marked down");
                for e in evals {
                    self.broker.enqueue((*e).clone());
                }
            }
            Err(e) => tracing::error!(node_id, error = %e, "marking node down"),
        }
    }

    /// The node's allocation map (ID → AllocModifyIndex) and its index, as of now.
    fn client_allocs_now(&self, node_id: &str) -> ClientAllocs {
        let snap = self.state.snapshot();
        let allocs = snap.allocs_by_node(node_id);
        let index = allocs
            .iter()
            .map(|a| a.modify_index)
            .max()
            .unwrap_or_else(|| snap.table_index(Table::Allocs))
            .max(1);
        ClientAllocs {
            allocs: allocs
                .iter()
                .map(|a| (a.id.clone(), a.alloc_modify_index))
                .collect(),
            index,
        }
    }

    /// Blocks until the node's allocations change past `min_query_index` or `wait` passes.
    pub async fn client_allocs(
        &self,
        req: ClientAllocsRequest,
        wait: Duration,
    ) -> Result<ClientAllocs, RpcError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut watch = self.state.watch(Table::Allocs);
        loop {
            watch.borrow_and_update();
            authenticate(&self.state.snapshot(), &req.node_id, &req.secret_id)?;
            let out = self.client_allocs_now(&req.node_id);
            if out.index > req.min_query_index {
                return Ok(out);
            }
            tokio::select! {
                changed = watch.changed() => {
                    if changed.is_err() {
                        return Ok(out);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return Ok(out),
            }
        }
    }

    /// Applies a batch of client-reported allocation states.
    pub async fn update_allocs_from_client(
        self: &Arc<Self>,
        req: UpdateAllocsRequest,
    ) -> Result<WriteResponse, RpcError> {
        if req.alloc.is_empty() {
            return Err(RpcError::BadRequest(
                "Must update at least one allocation".into(),
            ));
        }
        let snap = self.state.snapshot();
        let node = authenticate(&snap, &req.node_id, &req.secret_id)?;
        // A node reports only on its own allocations; one naming another node's is refused
        // whole rather than partly applied.
        let foreign = req
            .alloc
            .iter()
            .filter_map(|u| snap.alloc(&u.id))
            .find(|a| *a.node_id != *node.id);
        if let Some(a) = foreign {
            tracing::warn!(node_id = %node.id, alloc_id = %a.id, "node tried to update an allocation placed on another node");
            return Err(RpcError::PermissionDenied);
        }
        // Refused until the node's next heartbeat brings it back, as Nomad does; a passing
        // state, so the client keeps the updates and retries them (503) rather than
        // dropping them as malformed: they are how the server learns what became of the
        // allocations while the node was away.
        if matches!(node.status, NodeStatus::Down | NodeStatus::Disconnected) {
            return Err(RpcError::Unavailable(format!(
                "node {} is not allowed to update allocs while in status {}",
                node.id, node.status
            )));
        }
        let started = std::time::Instant::now();
        let (first_id, first_status, count) = (
            req.alloc[0].id.clone(),
            req.alloc[0].client_status,
            req.alloc.len(),
        );
        let updates = req.alloc.into_iter().map(AllocClientUpdate::from).collect();
        let (index, applied) = self
            .state
            .commit(Request::new(Command::AllocClientUpdate {
                node_id: req.node_id,
                updates,
            }))
            .await?;
        let (evals, freed) = match applied {
            Applied::ClientUpdate { evals, freed } => (evals, freed),
            other => return Err(other.unexpected().into()),
        };
        tracing::debug!(target: "yurt::latency", step = "client update committed", alloc_id = %first_id, status = %first_status, count, us = started.elapsed().as_micros() as u64);
        for e in evals {
            self.broker.enqueue((*e).clone());
        }
        if freed {
            self.unblock();
        }
        Ok(WriteResponse { index })
    }
}

/// A class hash of the node's scheduling-relevant properties (Nomad's ComputedClass idea).
fn computed_class(node: &Node) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    node.datacenter.hash(&mut h);
    node.node_class.hash(&mut h);
    node.node_pool.hash(&mut h);
    if let Some(attrs) = &node.attributes {
        for (k, v) in attrs {
            if !k.starts_with("unique.") {
                k.hash(&mut h);
                v.hash(&mut h);
            }
        }
    }
    if let Some(meta) = &node.meta {
        meta.hash(&mut h);
    }
    format!("v1:{}", h.finish())
}

/// The in-process implementation used by `-dev` agents.
#[async_trait]
impl ServerApi for Arc<Server> {
    async fn resolve_token(
        &self,
        req: crate::rpc::ResolveTokenRequest,
    ) -> Result<crate::rpc::ResolvedToken, RpcError> {
        Ok(self.resolve_token_grant(req.secret_id.as_deref()))
    }

    async fn register_node(&self, node: Node) -> Result<NodeUpdateResponse, RpcError> {
        Server::register_node(self, node).await
    }

    async fn update_status(&self, req: NodeStatusRequest) -> Result<NodeUpdateResponse, RpcError> {
        self.update_node_status(req).await
    }

    async fn get_client_allocs(
        &self,
        req: ClientAllocsRequest,
        wait: Duration,
    ) -> Result<ClientAllocs, RpcError> {
        self.client_allocs(req, wait).await
    }

    async fn get_allocs(&self, req: GetAllocsRequest) -> Result<GetAllocsResponse, RpcError> {
        let snap = self.state.snapshot();
        let node = authenticate(&snap, &req.node_id, &req.secret_id)?;
        let mut allocs = Vec::with_capacity(req.alloc_ids.len());
        for id in &req.alloc_ids {
            // Gone (garbage-collected) allocations are left out, as Nomad does.
            let Some(a) = snap.alloc(id) else { continue };
            if *a.node_id != *node.id {
                tracing::warn!(node_id = %node.id, alloc_id = %a.id, "node asked for an allocation placed on another node");
                return Err(RpcError::PermissionDenied);
            }
            allocs.push((*a).clone());
        }
        Ok(GetAllocsResponse {
            allocs,
            index: snap.table_index(Table::Allocs),
        })
    }

    async fn update_allocs(&self, req: UpdateAllocsRequest) -> Result<WriteResponse, RpcError> {
        self.update_allocs_from_client(req).await
    }

    async fn read_workload_var(
        &self,
        req: crate::rpc::WorkloadVarRequest,
    ) -> Result<crate::rpc::WorkloadVarResponse, RpcError> {
        Server::read_workload_var(self, req).await
    }

    async fn list_workload_vars(
        &self,
        req: crate::rpc::WorkloadVarRequest,
    ) -> Result<crate::rpc::WorkloadVarListResponse, RpcError> {
        Server::list_workload_vars(self, req).await
    }
    async fn sync_services(
        &self,
        req: crate::rpc::ServiceSyncRequest,
    ) -> Result<WriteResponse, RpcError> {
        Server::sync_services(self, req).await
    }
}
