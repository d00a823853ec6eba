//! Node writes: registration, heartbeat status, a missed heartbeat, client allocation
//! updates, and what operators and the drainer do to nodes (eligibility, drains, purge).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::server::events::EventType;
use crate::server::state::{StateError, Tables, Txn};
use crate::structs::eval::trigger;
use crate::structs::secret::secrets_equal;
use crate::structs::{
    AllocClientStatus, AllocDeploymentStatus, AllocDesiredStatus, Allocation,
    DRAIN_STATUS_CANCELED, DRAIN_STATUS_COMPLETE, DRAIN_STATUS_DRAINING, DrainMetadata, DrainSpec,
    DrainStrategy, Evaluation, JOB_TYPE_SYSBATCH, JOB_TYPE_SYSTEM, NODE_ELIGIBLE, NODE_INELIGIBLE,
    Node, NodeEvent, NodeStatus, StrMap, TaskState,
};

use super::{Applied, ApplyCtx, ApplyError};

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
/// Node event detail Nomad adds when the deadline ended a drain.
const DETAIL_DEADLINED: &str = "deadline_reached";

/// Nomad's refusal to make a draining node eligible.
pub const DRAINING_NOT_ELIGIBLE: &str =
    "can not set node's scheduling eligibility to eligible while it is draining";

/// The refusal of a registration whose secret is not the stored node's.
pub const SECRET_MISMATCH: &str = "node secret ID does not match. Not registering node.";

fn not_found() -> StateError {
    StateError::NotFound("node not found".to_string())
}

fn node_in(tables: &Tables, node_id: &str) -> Result<Node, StateError> {
    tables
        .node(node_id)
        .map(|n| (*n).clone())
        .ok_or_else(not_found)
}

/// Evaluations for every job with live allocations on a node, plus every system job (a node
/// changing status changes where they should run). Their IDs derive from the job, so they
/// do not depend on the order the tables are visited in.
pub fn node_evals(
    tables: &Tables,
    node_id: &str,
    triggered_by: &str,
    ctx: &ApplyCtx,
) -> Vec<Evaluation> {
    let mut jobs = BTreeSet::new();
    for a in tables.allocs_by_node(node_id) {
        if !a.terminal() {
            jobs.insert((a.namespace.to_string(), a.job_id.to_string()));
        }
    }
    for job in tables.jobs.values() {
        if matches!(job.r#type.as_str(), JOB_TYPE_SYSTEM | JOB_TYPE_SYSBATCH) && !job.stop {
            jobs.insert((job.namespace.clone(), job.id.clone()));
        }
    }
    jobs.into_iter()
        .filter_map(|(ns, id)| {
            let job = tables.job(&ns, &id)?;
            let eval_id = ctx.derive_id("node-eval", &format!("{node_id}\0{ns}\0{id}"));
            let mut e = ctx.new_eval(eval_id, &ns, &id, &job.r#type, job.priority, triggered_by);
            e.node_id = node_id.to_string();
            e.job_modify_index = job.job_modify_index;
            Some(e)
        })
        .collect()
}

/// Stores the evaluations [`node_evals`] finds for the node.
fn put_node_evals(
    txn: &mut Txn,
    node_id: &str,
    ctx: &ApplyCtx,
) -> Result<Vec<Arc<Evaluation>>, StateError> {
    node_evals(txn.tables(), node_id, trigger::NODE_UPDATE, ctx)
        .into_iter()
        .map(|e| txn.put_eval(e))
        .collect()
}

/// Registers or re-registers a node (defaults and computed class set by the proposer).
/// A re-registration keeps the stored status, events, eligibility and drain.
pub(super) fn register(
    txn: &mut Txn,
    mut node: Node,
    ctx: &ApplyCtx,
) -> Result<Applied, ApplyError> {
    txn.set_event_type(EventType::NodeRegistration);
    let existing = txn.tables().node(&node.id);
    if let Some(old) = existing.as_ref() {
        if !secrets_equal(&old.secret_id, &node.secret_id) {
            return Err(StateError::Conflict(SECRET_MISMATCH.to_string()));
        }
        node.status = old.status;
        node.create_index = old.create_index;
        node.events = old.events.clone();
        // Eligibility and drains are the operator's, not the client's.
        node.scheduling_eligibility = old.scheduling_eligibility.clone();
        node.drain_strategy = old.drain_strategy.clone();
        node.drain = old.drain_strategy.is_some();
        node.last_drain = old.last_drain.clone();
    } else {
        node.create_index = 0;
        node.events = Some(vec![NodeEvent {
            message: "Node registered".to_string(),
            subsystem: SUBSYSTEM_CLUSTER.to_string(),
            timestamp: Some(ctx.now_utc()),
            ..Default::default()
        }]);
    }
    if node.scheduling_eligibility.is_empty() {
        node.scheduling_eligibility = NODE_ELIGIBLE.to_string();
    }
    node.status_updated_at = ctx.now / 1_000_000_000;
    let stored = txn.put_node(node)?;
    let evals = if stored.status == NodeStatus::Ready {
        put_node_evals(txn, &stored.id, ctx)?
    } else {
        Vec::new()
    };
    Ok(Applied::Node {
        node: Some(stored),
        evals,
    })
}

/// A heartbeat that changes the node's status.
pub(super) fn status(
    txn: &mut Txn,
    node_id: &str,
    status: NodeStatus,
    ctx: &ApplyCtx,
) -> Result<Applied, ApplyError> {
    txn.set_event_type(EventType::NodeEvent);
    let mut n = node_in(txn.tables(), node_id)?;
    let was_down = n.status == NodeStatus::Down;
    n.status = status;
    n.status_updated_at = ctx.now / 1_000_000_000;
    if was_down {
        n.events.get_or_insert_with(Vec::new).push(NodeEvent {
            message: "Node re-registered".to_string(),
            subsystem: SUBSYSTEM_CLUSTER.to_string(),
            timestamp: Some(ctx.now_utc()),
            ..Default::default()
        });
    }
    let stored = txn.put_node(n)?;
    let evals = put_node_evals(txn, &stored.id, ctx)?;
    Ok(Applied::Node {
        node: Some(stored),
        evals,
    })
}

/// A missed heartbeat: the node goes down and its work is evaluated elsewhere. A node
/// already down (or gone) is left as it is.
pub(super) fn down(txn: &mut Txn, node_id: &str, ctx: &ApplyCtx) -> Result<Applied, ApplyError> {
    txn.set_event_type(EventType::NodeEvent);
    let Some(node) = txn.tables().node(node_id) else {
        return Ok(Applied::Node {
            node: None,
            evals: Vec::new(),
        });
    };
    if matches!(node.status, NodeStatus::Down | NodeStatus::Disconnected) {
        return Ok(Applied::Node {
            node: None,
            evals: Vec::new(),
        });
    }
    // A node running something that may wait out a disconnect (`disconnect { lost_after }`
    // or `max_client_disconnect`) is only disconnected: the scheduler marks those
    // allocations unknown instead of lost, and they may come back with their client.
    let can_wait = txn.tables().allocs_by_node(node_id).iter().any(|a| {
        !a.terminal()
            && a.desired_status == AllocDesiredStatus::Run
            && a.group().and_then(|g| g.disconnect_lost_after()).is_some()
    });
    let mut n = (*node).clone();
    n.status = if can_wait {
        NodeStatus::Disconnected
    } else {
        NodeStatus::Down
    };
    n.status_updated_at = ctx.now / 1_000_000_000;
    n.events.get_or_insert_with(Vec::new).push(NodeEvent {
        message: "Node heartbeat missed".to_string(),
        subsystem: SUBSYSTEM_CLUSTER.to_string(),
        timestamp: Some(ctx.now_utc()),
        ..Default::default()
    });
    let stored = txn.put_node(n)?;
    // Nobody can reach what a node that stopped answering serves, as Nomad has it.
    txn.delete_node_services(node_id);
    let evals = put_node_evals(txn, node_id, ctx)?;
    Ok(Applied::Node {
        node: Some(stored),
        evals,
    })
}

/// What a client reports about one of its allocations: the fields only a client sets.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AllocClientUpdate {
    pub id: String,
    pub client_status: AllocClientStatus,
    pub client_description: String,
    pub task_states: Option<BTreeMap<String, TaskState>>,
    pub deployment_status: Option<AllocDeploymentStatus>,
    pub network_status: crate::structs::Opaque,
}

impl From<Allocation> for AllocClientUpdate {
    fn from(a: Allocation) -> Self {
        AllocClientUpdate {
            id: a.id,
            client_status: a.client_status,
            client_description: a.client_description,
            task_states: a.task_states,
            deployment_status: a.deployment_status,
            network_status: a.network_status,
        }
    }
}

/// Merges a client's reports into its allocations (others' are skipped); a newly failed
/// one gets a retry evaluation per job. Answers the evaluations and whether capacity was
/// freed (some allocation stopped on its client).
pub(super) fn client_update(
    txn: &mut Txn,
    node_id: &str,
    updates: Vec<AllocClientUpdate>,
    ctx: &ApplyCtx,
) -> Result<Applied, ApplyError> {
    txn.set_event_type(EventType::AllocationUpdated);
    let mut evals: BTreeMap<(String, String), Evaluation> = BTreeMap::new();
    let mut freed = false;
    for update in updates {
        let Some(current) = txn.tables().alloc(&update.id) else {
            continue;
        };
        if *current.node_id != *node_id {
            continue;
        }
        let newly_failed = update.client_status == AllocClientStatus::Failed
            && current.client_status != AllocClientStatus::Failed;
        // The client of an allocation the server marked unknown (its node disconnected)
        // is back and says how it is: the scheduler decides between it and its replacement.
        let reconnected = current.client_status == AllocClientStatus::Unknown
            && update.client_status != AllocClientStatus::Unknown;
        let mut merged: Allocation = (*current).clone();
        // An allocation the server declared lost (its node went down) stays lost: a
        // client that comes back only reports how it wound the allocation down.
        let server_says_lost =
            current.client_status == AllocClientStatus::Lost && current.server_terminal();
        if !server_says_lost {
            merged.client_status = update.client_status;
            merged.client_description = update.client_description;
        }
        merged.task_states = update.task_states;
        if update.deployment_status.is_some() {
            merged.deployment_status = update.deployment_status;
        }
        // A failed allocation of a deployment is unhealthy even when its client said
        // nothing about health, so the deployment can react to it.
        if merged.client_status == AllocClientStatus::Failed
            && !merged.deployment_id.is_empty()
            && merged
                .deployment_status
                .as_ref()
                .and_then(|d| d.healthy)
                .is_none()
        {
            let ds = merged
                .deployment_status
                .get_or_insert_with(Default::default);
            ds.healthy = Some(false);
            ds.timestamp = Some(ctx.now_utc());
        }
        if update.network_status.is_some() {
            merged.network_status = update.network_status;
        }
        merged.modify_time = ctx.now;
        if merged.client_terminal() && !current.client_terminal() {
            freed = true;
        }
        txn.put_alloc_client(merged)?;
        if (newly_failed || reconnected)
            && !current.server_terminal()
            && let Some(job) = txn.tables().job(&current.namespace, &current.job_id)
            && !job.stop
        {
            let key = (job.namespace.clone(), job.id.clone());
            if evals.contains_key(&key) {
                continue;
            }
            let why = if newly_failed {
                trigger::RETRY_FAILED_ALLOC
            } else {
                trigger::RECONNECT
            };
            let eval_id = ctx.derive_id(why, &format!("{}\0{}", key.0, key.1));
            let mut e = ctx.new_eval(
                eval_id,
                &job.namespace,
                &job.id,
                &job.r#type,
                job.priority,
                why,
            );
            e.job_modify_index = job.job_modify_index;
            e.node_id = node_id.to_string();
            evals.insert(key, e);
        }
    }
    let evals = evals
        .into_values()
        .map(|e| txn.put_eval(e))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Applied::ClientUpdate { evals, freed })
}

/// Stores the updated node; one that just became eligible gets evaluations, since system
/// jobs may now belong on it.
fn store_node(
    txn: &mut Txn,
    node: Node,
    becomes_eligible: bool,
    ctx: &ApplyCtx,
) -> Result<Applied, StateError> {
    let stored = txn.put_node(node)?;
    let evals = if becomes_eligible {
        put_node_evals(txn, &stored.id, ctx)?
    } else {
        Vec::new()
    };
    Ok(Applied::Node {
        node: Some(stored),
        evals,
    })
}

pub(super) fn eligibility(
    txn: &mut Txn,
    node_id: &str,
    eligibility: &str,
    ctx: &ApplyCtx,
) -> Result<Applied, ApplyError> {
    let mut node = node_in(txn.tables(), node_id)?;
    if node.drain_strategy.is_some() && eligibility == NODE_ELIGIBLE {
        return Err(StateError::Conflict(DRAINING_NOT_ELIGIBLE.to_string()));
    }
    let becomes_eligible =
        node.scheduling_eligibility == NODE_INELIGIBLE && eligibility == NODE_ELIGIBLE;
    let message = if eligibility == NODE_ELIGIBLE {
        EVENT_ELIGIBLE
    } else {
        EVENT_INELIGIBLE
    };
    node.add_event_at(SUBSYSTEM_CLUSTER, message, txn.index(), ctx.now_utc());
    node.scheduling_eligibility = eligibility.to_string();
    node.status_updated_at = ctx.now_utc().timestamp();
    store_node(txn, node, becomes_eligible, ctx)
}

pub(super) fn drain(
    txn: &mut Txn,
    node_id: &str,
    spec: Option<DrainSpec>,
    mark_eligible: bool,
    meta: StrMap,
    ctx: &ApplyCtx,
) -> Result<Applied, ApplyError> {
    let mut node = node_in(txn.tables(), node_id)?;
    let now = ctx.now_utc();
    let strategy = spec.as_ref().map(|spec| DrainStrategy {
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
        node.add_event_at(SUBSYSTEM_DRAIN, m, txn.index(), now);
    }
    let becomes_eligible =
        node.scheduling_eligibility == NODE_INELIGIBLE && mark_eligible && strategy.is_none();
    apply_drain(&mut node, strategy, mark_eligible, meta, false, now);
    store_node(txn, node, becomes_eligible, ctx)
}

pub(super) fn purge(txn: &mut Txn, node_id: &str, ctx: &ApplyCtx) -> Result<Applied, ApplyError> {
    if txn.tables().node(node_id).is_none() {
        return Err(not_found());
    }
    txn.delete_node(node_id);
    let evals = put_node_evals(txn, node_id, ctx)?;
    Ok(Applied::Node { node: None, evals })
}

pub(super) fn evaluate(
    txn: &mut Txn,
    node_id: &str,
    ctx: &ApplyCtx,
) -> Result<Applied, ApplyError> {
    let node = txn.tables().node(node_id).ok_or_else(not_found)?;
    let evals = put_node_evals(txn, node_id, ctx)?;
    Ok(Applied::Node {
        node: Some(node),
        evals,
    })
}

/// Sets a node's drain, keeping LastDrain as Nomad's state store does: a new drain starts a
/// new record, an update or the end of one updates it. `completed` tells a drain the drainer
/// finished from one the operator cancelled.
pub fn apply_drain(
    node: &mut Node,
    drain: Option<DrainStrategy>,
    mark_eligible: bool,
    meta: StrMap,
    completed: bool,
    now: DateTime<Utc>,
) {
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

/// One pass of the drainer: allocations to mark for migration (one evaluation per job) and
/// nodes whose drain is over, with whether the deadline ended it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DrainBatch {
    pub migrate: Vec<String>,
    pub complete: Vec<(String, bool)>,
}

/// Applies a drainer pass, re-checking each decision against the state (the drainer
/// decided on a snapshot that may be a write behind). Answers whether anything changed
/// and the evaluations.
pub(super) fn drain_batch(
    txn: &mut Txn,
    batch: DrainBatch,
    ctx: &ApplyCtx,
) -> Result<Applied, ApplyError> {
    let mut evals: BTreeMap<(String, String), Evaluation> = BTreeMap::new();
    let mut changed = false;
    for id in &batch.migrate {
        let Some(current) = txn.tables().alloc(id) else {
            continue;
        };
        if current.terminal() || current.desired_transition.migrate == Some(true) {
            continue;
        }
        let mut updated = (*current).clone();
        updated.desired_transition.migrate = Some(true);
        txn.put_alloc_server(updated)?;
        changed = true;
        let key = (current.namespace.to_string(), current.job_id.to_string());
        if evals.contains_key(&key) {
            continue;
        }
        let Some(job) = txn.tables().job(&key.0, &key.1) else {
            continue;
        };
        let eval_id = ctx.derive_id("node-drain", &format!("{}\0{}", key.0, key.1));
        let mut e = ctx.new_eval(
            eval_id,
            &job.namespace,
            &job.id,
            &job.r#type,
            job.priority,
            trigger::NODE_DRAIN,
        );
        e.job_modify_index = job.job_modify_index;
        e.node_id = current.node_id.to_string();
        evals.insert(key, e);
    }
    let now = ctx.now_utc();
    for (node_id, deadlined) in &batch.complete {
        let Some(node) = txn.tables().node(node_id) else {
            continue;
        };
        if node.drain_strategy.is_none() {
            continue;
        }
        let mut node = (*node).clone();
        node.add_event_at(SUBSYSTEM_DRAIN, EVENT_DRAIN_COMPLETE, txn.index(), now);
        if *deadlined && let Some(e) = node.events.as_mut().and_then(|e| e.last_mut()) {
            e.details = Some([(DETAIL_DEADLINED.to_string(), "true".to_string())].into());
        }
        apply_drain(&mut node, None, false, None, true, now);
        txn.put_node(node)?;
        changed = true;
    }
    let evals = evals
        .into_values()
        .map(|e| txn.put_eval(e))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Applied::Drained { changed, evals })
}
