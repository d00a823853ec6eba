//! What operators do to nodes: scheduling eligibility (`Node.UpdateEligibility`), drains
//! (`Node.UpdateDrain`), purge (`Node.Deregister`) and forced re-evaluation
//! (`Node.Evaluate`). The drain itself is carried out by [`crate::server::drainer`].

use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::nodes::node_evals;
use crate::rpc::NodeUpdateResponse;
use crate::server::state::{StateError, Tables, Txn};
use crate::server::{Server, ServerError};
use crate::structs::de::null_default as nd;
use crate::structs::eval::trigger;
use crate::structs::{
    DRAIN_STATUS_CANCELED, DRAIN_STATUS_COMPLETE, DRAIN_STATUS_DRAINING, DrainMetadata, DrainSpec,
    DrainStrategy, Evaluation, NODE_ELIGIBLE, NODE_INELIGIBLE, Node, StrMap,
};

/// Node event subsystem of drain events.
pub const SUBSYSTEM_DRAIN: &str = "Drain";
/// Node event subsystem of eligibility and membership events.
pub const SUBSYSTEM_CLUSTER: &str = "Cluster";
pub const EVENT_DRAIN_SET: &str = "Node drain strategy set";
pub const EVENT_DRAIN_UPDATED: &str = "Node drain strategy updated";
pub const EVENT_DRAIN_DISABLED: &str = "Node drain disabled";
pub const EVENT_DRAIN_COMPLETE: &str = "Node drain complete";
pub const EVENT_ELIGIBLE: &str = "Node marked as eligible for scheduling";
pub const EVENT_INELIGIBLE: &str = "Node marked as ineligible for scheduling";

/// Nomad's refusal to make a draining node eligible.
const DRAINING_NOT_ELIGIBLE: &str =
    "can not set node's scheduling eligibility to eligible while it is draining";

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

/// Stores the evaluations `node_evals` finds for the node.
fn put_node_evals(
    txn: &mut Txn,
    node_id: &str,
    triggered_by: &str,
) -> Result<Vec<Arc<Evaluation>>, StateError> {
    node_evals(txn.tables(), node_id, triggered_by)
        .into_iter()
        .map(|e| txn.put_eval(e))
        .collect()
}

/// Stores the updated node; one that just became eligible gets evaluations, since system
/// jobs may now belong on it.
fn store_node(
    txn: &mut Txn,
    node: Node,
    becomes_eligible: bool,
) -> Result<(Arc<Node>, Vec<Arc<Evaluation>>), StateError> {
    let stored = txn.put_node(node)?;
    let evals = if becomes_eligible {
        put_node_evals(txn, &stored.id, trigger::NODE_UPDATE)?
    } else {
        Vec::new()
    };
    Ok((stored, evals))
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

/// Sets a node's drain, keeping LastDrain as Nomad's state store does: a new drain starts a
/// new record, an update or the end of one updates it. `completed` tells a drain the drainer
/// finished from one the operator cancelled.
pub(crate) fn apply_drain(
    node: &mut Node,
    drain: Option<DrainStrategy>,
    mark_eligible: bool,
    meta: StrMap,
    completed: bool,
) {
    let now = Utc::now();
    let was_draining = node.drain_strategy.is_some();
    node.status_updated_at = now.timestamp();
    if drain.is_some() {
        node.scheduling_eligibility = NODE_INELIGIBLE.to_string();
    } else if mark_eligible {
        node.scheduling_eligibility = NODE_ELIGIBLE.to_string();
    }
    let draining = drain.is_some();
    node.drain = draining;
    node.drain_strategy = drain;
    if !was_draining && !draining {
        return;
    }
    let last = match (was_draining, node.last_drain.take()) {
        (true, Some(last)) => last,
        _ => DrainMetadata {
            started_at: now,
            ..Default::default()
        },
    };
    let mut last = last;
    last.updated_at = now;
    if meta.as_ref().is_some_and(|m| !m.is_empty()) {
        last.meta = meta;
    }
    last.status = if draining {
        DRAIN_STATUS_DRAINING
    } else if completed {
        DRAIN_STATUS_COMPLETE
    } else {
        DRAIN_STATUS_CANCELED
    }
    .to_string();
    node.last_drain = Some(last);
}

fn node_in(tables: &Tables, node_id: &str) -> Result<Node, StateError> {
    tables
        .node(node_id)
        .map(|n| (*n).clone())
        .ok_or_else(not_found)
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
        let (index, (node, evals)) = self
            .state
            .write(|txn| {
                let mut node = node_in(txn.tables(), node_id)?;
                if node.drain_strategy.is_some() && req.eligibility == NODE_ELIGIBLE {
                    return Err(StateError::Conflict(DRAINING_NOT_ELIGIBLE.to_string()));
                }
                let becomes_eligible = node.scheduling_eligibility == NODE_INELIGIBLE
                    && req.eligibility == NODE_ELIGIBLE;
                let message = if req.eligibility == NODE_ELIGIBLE {
                    EVENT_ELIGIBLE
                } else {
                    EVENT_INELIGIBLE
                };
                node.add_event(SUBSYSTEM_CLUSTER, message, txn.index());
                node.scheduling_eligibility = req.eligibility.clone();
                node.status_updated_at = Utc::now().timestamp();
                store_node(txn, node, becomes_eligible)
            })
            .await
            .map_err(server_error)?;
        tracing::info!(node_id, eligibility = %node.scheduling_eligibility, "node eligibility changed");
        Ok(self.node_written(&node, &evals, index))
    }

    /// Starts, updates or cancels a node's drain.
    pub async fn update_node_drain(
        &self,
        node_id: &str,
        req: NodeDrainRequest,
    ) -> Result<NodeWriteResponse, ServerError> {
        let (index, (node, evals)) = self
            .state
            .write(|txn| {
                let mut node = node_in(txn.tables(), node_id)?;
                let now = Utc::now();
                let strategy = req.drain_spec.as_ref().map(|spec| DrainStrategy {
                    deadline: spec.deadline,
                    ignore_system_jobs: spec.ignore_system_jobs,
                    force_deadline: if spec.deadline > 0 {
                        now + chrono::Duration::nanoseconds(spec.deadline)
                    } else {
                        crate::structs::time::zero_time()
                    },
                    started_at: node
                        .drain_strategy
                        .as_ref()
                        .map_or(now, |old| old.started_at),
                });
                let message = match (node.drain_strategy.is_some(), strategy.is_some()) {
                    (false, true) => Some(EVENT_DRAIN_SET),
                    (true, true) => Some(EVENT_DRAIN_UPDATED),
                    (true, false) => Some(EVENT_DRAIN_DISABLED),
                    (false, false) => None,
                };
                if let Some(m) = message {
                    node.add_event(SUBSYSTEM_DRAIN, m, txn.index());
                }
                let becomes_eligible = node.scheduling_eligibility == NODE_INELIGIBLE
                    && req.mark_eligible
                    && strategy.is_none();
                apply_drain(
                    &mut node,
                    strategy,
                    req.mark_eligible,
                    req.meta.clone(),
                    false,
                );
                store_node(txn, node, becomes_eligible)
            })
            .await
            .map_err(server_error)?;
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
        let (index, evals) = self
            .state
            .write(|txn| {
                if txn.tables().node(node_id).is_none() {
                    return Err(not_found());
                }
                txn.delete_node(node_id);
                put_node_evals(txn, node_id, trigger::NODE_UPDATE)
            })
            .await
            .map_err(server_error)?;
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
        let (_, (node, evals)) = self
            .state
            .write(|txn| {
                let node = txn.tables().node(node_id).ok_or_else(not_found)?;
                Ok((node, put_node_evals(txn, node_id, trigger::NODE_UPDATE)?))
            })
            .await
            .map_err(server_error)?;
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

    #[test]
    fn last_drain_follows_the_drain() {
        let mut n = Node::default();
        apply_drain(
            &mut n,
            Some(DrainStrategy::default()),
            false,
            Some([("reason".to_string(), "kernel".to_string())].into()),
            false,
        );
        assert_eq!(n.scheduling_eligibility, NODE_INELIGIBLE);
        assert!(n.drain);
        let last = n.last_drain.clone().unwrap();
        assert_eq!(last.status, DRAIN_STATUS_DRAINING);
        assert_eq!(last.meta.as_ref().unwrap()["reason"], "kernel");

        apply_drain(&mut n, None, false, None, false);
        let done = n.last_drain.clone().unwrap();
        assert_eq!(done.status, DRAIN_STATUS_CANCELED);
        assert_eq!(done.started_at, last.started_at);
        assert_eq!(done.meta, last.meta, "meta kept when none is given");
        assert_eq!(
            n.scheduling_eligibility, NODE_INELIGIBLE,
            "not marked eligible"
        );

        apply_drain(&mut n, Some(DrainStrategy::default()), false, None, false);
        apply_drain(&mut n, None, true, None, true);
        assert_eq!(n.last_drain.unwrap().status, DRAIN_STATUS_COMPLETE);
        assert_eq!(n.scheduling_eligibility, NODE_ELIGIBLE);
        assert!(!n.drain);
    }
}
