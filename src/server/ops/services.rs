//! Native service registrations: a client's sync of its allocations' services, and an
//! operator's removal of one (`DELETE /v1/service/:name/:id`).

use std::sync::Arc;

use crate::rpc::{RpcError, ServiceSyncRequest, WriteResponse};
use crate::server::state::{Command, Request, StateError};
use crate::server::{Server, ServerError};

impl Server {
    /// Applies a client's registrations and removals. Everything named must belong to the
    /// client's own allocations (Nomad's same-node check): a request naming anything else is
    /// refused whole.
    pub async fn sync_services(
        self: &Arc<Self>,
        req: ServiceSyncRequest,
    ) -> Result<WriteResponse, RpcError> {
        let snap = self.state.snapshot();
        let node = super::nodes::authenticate(&snap, &req.node_id, &req.secret_id)?;
        for reg in &req.upsert {
            let own = reg.node_id == node.id
                && snap
                    .alloc(&reg.alloc_id)
                    .is_some_and(|a| *a.node_id == *node.id);
            if !own {
                tracing::warn!(node_id = %node.id, alloc_id = %reg.alloc_id, "node tried to register a service of an allocation it does not run");
                return Err(RpcError::PermissionDenied);
            }
            if reg.id.is_empty() || reg.service_name.is_empty() || reg.namespace.is_empty() {
                return Err(RpcError::BadRequest(
                    "service registration needs an ID, a ServiceName and a Namespace".into(),
                ));
            }
            reg.validate().map_err(RpcError::BadRequest)?;
        }
        let mut delete = Vec::with_capacity(req.delete.len());
        for key in req.delete {
            match snap.services.get(&key.namespace, &key.id) {
                Some(reg) if reg.node_id != node.id => return Err(RpcError::PermissionDenied),
                // Already gone (its allocation ended first): nothing to do.
                None => {}
                Some(_) => delete.push((key.namespace, key.id)),
            }
        }
        if req.upsert.is_empty() && delete.is_empty() {
            return Ok(WriteResponse {
                index: snap.table_index(crate::server::state::Table::Services),
            });
        }
        let (index, _) = self
            .state
            .commit(Request::new(Command::ServicesSync {
                upsert: req.upsert,
                delete,
            }))
            .await
            .map_err(|e| RpcError::Unavailable(e.to_string()))?;
        Ok(WriteResponse { index })
    }

    /// Removes one registration; 404 when there is none in `ns` with that ID.
    pub async fn delete_service(&self, ns: &str, id: &str) -> Result<u64, ServerError> {
        let (index, _) = self
            .state
            .commit(Request::new(Command::ServiceDelete {
                ns: ns.to_string(),
                id: id.to_string(),
            }))
            .await
            .map_err(|e| match e {
                StateError::NotFound(m) => ServerError::NotFound(m),
                other => ServerError::State(other),
            })?;
        Ok(index)
    }
}
