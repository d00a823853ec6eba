//! What operators do to nodes: scheduling eligibility (`Node.UpdateEligibility`), drains
//! (`Node.UpdateDrain`), purge (`Node.Deregister`) and forced re-evaluation
//! (`Node.Evaluate`). The drain itself is carried out by [`crate::server::drainer`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::rpc::NodeUpdateResponse;
use crate::server::state::{Applied, Command, Request, StateError};
use crate::server::{Server, ServerError};
use crate::structs::de::null_default as nd;
use crate::structs::{DrainSpec, Evaluation, NODE_ELIGIBLE, NODE_INELIGIBLE, Node, StrMap};

use crate::server::state::apply::DRAINING_NOT_ELIGIBLE;
pub use crate::server::state::apply::{
    EVENT_DRAIN_COMPLETE, EVENT_DRAIN_DISABLED, EVENT_DRAIN_SET, EVENT_DRAIN_UPDATED,
    EVENT_ELIGIBLE, EVENT_INELIGIBLE, SUBSYSTEM_CLUSTER, SUBSYSTEM_DRAIN, apply_drain,
};

/// `POST /v1/node/:id/eligibility`'s body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeEligibilityRequest {
    #[serde(rename = "NodeID", deserialize_with = "nd")]
    pub node_id: String,
    #[serde(deserialize_with = "nd")]
    pub eligibility: String,
}

/// `POST /v1/node/:id/drain`'s body (`DrainSpec: null` cancels the drain).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeDrainRequest {
    pub drain_spec: Option<DrainSpec>,
    #[serde(deserialize_with = "nd")]
    pub mark_eligible: bool,
    pub meta: StrMap,
}

/// The answer to eligibility and drain updates (Nomad's NodeDrainUpdateResponse and
/// NodeEligibilityUpdateResponse share this shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeWriteResponse {
    pub node_modify_index: u64,
    /// `null` when no evaluation was created, as Nomad encodes a nil slice.
    #[serde(rename = "EvalIDs")]
    pub eval_ids: Option<Vec<String>>,
    pub eval_create_index: u64,
    pub index: u64,
}

fn not_found() -> StateError {
    StateError::NotFound("node not found".to_string())
}

fn server_error(e: StateError) -> ServerError {
    match e {
        StateError::NotFound(m) => ServerError::NotFound(m),
        StateError::Conflict(m) => ServerError::BadRequest(m),
        other => ServerError::State(other),
    }
}

/// The node and evaluations of a write that stores a node.
fn stored_node(applied: Applied) -> Result<(Arc<Node>, Vec<Arc<Evaluation>>), ServerError> {
    match applied.into_node()? {
        (Some(node), evals) => Ok((node, evals)),
        (None, _) => Err(ServerError::State(StateError::Storage(
            "node write stored no node".into(),
        ))),
    }
}

fn eval_summary(evals: &[Arc<Evaluation>]) -> (Option<Vec<String>>, u64) {
    if evals.is_empty() {
        return (None, 0);
    }
    let ids = evals.iter().map(|e| e.id.clone()).collect();
    (
        Some(ids),
        evals.iter().map(|e| e.create_index).max().unwrap_or(0),
    )
}

impl Server {
    /// Marks a node eligible or ineligible for new placements.
    pub async fn update_node_eligibility(
        &self,
        node_id: &str,
        req: NodeEligibilityRequest,
    ) -> Result<NodeWriteResponse, ServerError> {
        if req.eligibility != NODE_ELIGIBLE && req.eligibility != NODE_INELIGIBLE {
            return Err(ServerError::BadRequest(format!(
                "invalid scheduling eligibility {:?}",
                req.eligibility
            )));
        }
        let snap = self.state.snapshot();
        let current = snap
            .node(node_id)
            .ok_or_else(|| server_error(not_found()))?;
        if current.drain_strategy.is_some() && req.eligibility == NODE_ELIGIBLE {
            return Err(ServerError::BadRequest(DRAINING_NOT_ELIGIBLE.to_string()));
        }
        if current.scheduling_eligibility == req.eligibility {
            // Nothing to do; Nomad answers with an empty response.
            return Ok(NodeWriteResponse::default());
        }
        let (index, applied) = self
            .state
            .commit(Request::new(Command::NodeEligibility {
                node_id: node_id.to_string(),
                eligibility: req.eligibility,
            }))
            .await
            .map_err(server_error)?;
        let (node, evals) = stored_node(applied)?;
        tracing::info!(node_id, eligibility = %node.scheduling_eligibility, "node eligibility changed");
        Ok(self.node_written(&node, &evals, index))
    }

    /// Starts, updates or cancels a node's drain.
    pub async fn update_node_drain(
        &self,
        node_id: &str,
        req: NodeDrainRequest,
    ) -> Result<NodeWriteResponse, ServerError> {
        let (index, applied) = self
            .state
            .commit(Request::new(Command::NodeDrain {
                node_id: node_id.to_string(),
                spec: req.drain_spec,
                mark_eligible: req.mark_eligible,
                meta: req.meta,
            }))
            .await
            .map_err(server_error)?;
        let (node, evals) = stored_node(applied)?;
        tracing::info!(
            node_id,
            draining = node.drain_strategy.is_some(),
            "node drain updated"
        );
        Ok(self.node_written(&node, &evals, index))
    }

    /// Removes a node from the cluster: its allocations are lost and replaced elsewhere.
    pub async fn purge_node(
        self: &Arc<Self>,
        node_id: &str,
    ) -> Result<NodeUpdateResponse, ServerError> {
        let (index, applied) = self
            .state
            .commit(Request::new(Command::NodePurge {
                node_id: node_id.to_string(),
            }))
            .await
            .map_err(server_error)?;
        let (_, evals) = applied.into_node()?;
        self.heartbeats.clear(node_id);
        tracing::info!(node_id, "node purged");
        self.enqueue_all(&evals);
        let (eval_ids, eval_create_index) = eval_summary(&evals);
        Ok(NodeUpdateResponse {
            eval_ids: eval_ids.unwrap_or_default(),
            eval_create_index,
            node_modify_index: index,
            index,
            leader_rpc_addr: self.config.rpc_advertise.clone(),
            num_nodes: self.state.snapshot().nodes.len() as i64,
            ..Default::default()
        })
    }

    /// Creates evaluations for every job that has work on the node (or may want it).
    pub async fn evaluate_node(
        self: &Arc<Self>,
        node_id: &str,
    ) -> Result<NodeUpdateResponse, ServerError> {
        let (_, applied) = self
            .state
            .commit(Request::new(Command::NodeEvaluate {
                node_id: node_id.to_string(),
            }))
            .await
            .map_err(server_error)?;
        let (node, evals) = stored_node(applied)?;
        self.enqueue_all(&evals);
        let (eval_ids, eval_create_index) = eval_summary(&evals);
        let snap = self.state.snapshot();
        Ok(NodeUpdateResponse {
            heartbeat_ttl: self.heartbeats.ttl(snap.nodes.len()).as_nanos() as i64,
            eval_ids: eval_ids.unwrap_or_default(),
            eval_create_index,
            node_modify_index: node.modify_index,
            index: eval_create_index,
            leader_rpc_addr: self.config.rpc_advertise.clone(),
            num_nodes: snap.nodes.len() as i64,
            scheduling_eligibility: node.scheduling_eligibility.clone(),
        })
    }

    /// After an eligibility or drain write: queues its evaluations (a node newly eligible
    /// may unblock waiting ones) and builds the answer.
    fn node_written(
        &self,
        node: &Node,
        evals: &[Arc<Evaluation>],
        index: u64,
    ) -> NodeWriteResponse {
        self.enqueue_all(evals);
        if !evals.is_empty() {
            self.unblock();
        }
        let (eval_ids, eval_create_index) = eval_summary(evals);
        NodeWriteResponse {
            node_modify_index: node.modify_index,
            eval_ids,
            eval_create_index,
            index,
        }
    }

    /// Hands freshly written evaluations to the broker.
    pub(crate) fn enqueue_all(&self, evals: &[Arc<Evaluation>]) {
        for e in evals {
            self.broker.enqueue((**e).clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::{
        DRAIN_STATUS_CANCELED, DRAIN_STATUS_COMPLETE, DRAIN_STATUS_DRAINING, DrainStrategy,
    };

    #[test]
    fn last_drain_follows_the_drain() {
        let now = chrono::Utc::now();
        let mut n = Node::default();
        apply_drain(
            &mut n,
            Some(DrainStrategy::default()),
            false,
            Some([("reason".to_string(), "kernel".to_string())].into()),
            false,
            now,
        );
        assert_eq!(n.scheduling_eligibility, NODE_INELIGIBLE);
        assert!(n.drain);
        let last = n.last_drain.clone().unwrap();
        assert_eq!(last.status, DRAIN_STATUS_DRAINING);
        assert_eq!(last.meta.as_ref().unwrap()["reason"], "kernel");

        apply_drain(&mut n, None, false, None, false, now);
        let done = n.last_drain.clone().unwrap();
        assert_eq!(done.status, DRAIN_STATUS_CANCELED);
        assert_eq!(done.started_at, last.started_at);
        assert_eq!(done.meta, last.meta, "meta kept when none is given");
        assert_eq!(
            n.scheduling_eligibility, NODE_INELIGIBLE,
            "not marked eligible"
        );

        apply_drain(
            &mut n,
            Some(DrainStrategy::default()),
            false,
            None,
            false,
            now,
        );
        apply_drain(&mut n, None, true, None, true, now);
        assert_eq!(n.last_drain.unwrap().status, DRAIN_STATUS_COMPLETE);
        assert_eq!(n.scheduling_eligibility, NODE_ELIGIBLE);
        assert!(!n.drain);
    }
}
