//! Deployment writes: status changes (fail, pause, resume, unblock), promotion, manual
//! allocation health, and the watcher's rescheduling of unhealthy allocations. Each comes
//! with the evaluation (built by the proposer) that lets the scheduler act on it.

use std::collections::HashSet;

use crate::server::state::{StateError, Txn};
use crate::structs::{
    AllocDeploymentStatus, DESC_RUNNING, DeploymentStatus, DeploymentStatusUpdate, Evaluation,
};

use super::{Applied, ApplyCtx, ApplyError};

/// Changes an active deployment's status; `refusal` is the Conflict when something ended
/// it since the proposer read it.
pub(super) fn status(
    txn: &mut Txn,
    update: &DeploymentStatusUpdate,
    eval: Option<Evaluation>,
    refusal: String,
) -> Result<Applied, ApplyError> {
    let Some(current) = txn.tables().deployment(&update.deployment_id) else {
        return Err(StateError::NotFound("deployment not found".into()));
    };
    if !current.active() {
        return Err(StateError::Conflict(refusal));
    }
    txn.update_deployment_status(update)?;
    let eval = eval.map(|e| txn.put_eval(e)).transpose()?;
    Ok(Applied::DeploymentEval(eval))
}

/// Which groups a promotion names.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Promotion {
    pub deployment_id: String,
    /// Every group with canaries.
    pub all: bool,
    pub groups: Vec<String>,
}

/// Promotes the canaries of the named groups; refused while one of them has fewer healthy
/// canaries than it wants.
pub(super) fn promote(
    txn: &mut Txn,
    p: Promotion,
    eval: Evaluation,
    refusal: String,
    ctx: &ApplyCtx,
) -> Result<Applied, ApplyError> {
    let Some(current) = txn.tables().deployment(&p.deployment_id) else {
        return Err(StateError::NotFound("deployment not found".into()));
    };
    if !current.active() {
        return Err(StateError::Conflict(refusal));
    }
    let wanted: HashSet<&str> = p.groups.iter().map(String::as_str).collect();
    let mut unhealthy = Vec::new();
    let mut d = (*current).clone();
    for (name, g) in d.task_groups.iter_mut() {
        if (!p.all && !wanted.contains(name.as_str())) || g.desired_canaries == 0 {
            continue;
        }
        let healthy = g
            .placed_canaries
            .iter()
            .flatten()
            .filter_map(|a| txn.tables().alloc(a))
            .filter(|a| {
                a.deployment_status
                    .as_ref()
                    .is_some_and(|s| s.healthy == Some(true))
            })
            .count() as i64;
        if healthy < g.desired_canaries {
            unhealthy.push(format!(
                "Task group {name:?} has {healthy}/{} healthy allocations",
                g.desired_canaries
            ));
            continue;
        }
        g.promoted = true;
    }
    if !unhealthy.is_empty() {
        return Err(StateError::Conflict(multi_error(&unhealthy)));
    }
    if d.status == DeploymentStatus::Running && !d.requires_promotion() {
        d.status_description = DESC_RUNNING.to_string();
    }
    d.modify_time = ctx.now;
    txn.put_deployment(d)?;
    Ok(Applied::DeploymentEval(Some(txn.put_eval(eval)?)))
}

/// Sets allocations' health by hand (`healthy` true or false for each), failing the
/// deployment with `fail` when given.
pub(super) fn alloc_health(
    txn: &mut Txn,
    marks: Vec<(String, bool)>,
    fail: Option<DeploymentStatusUpdate>,
    eval: Evaluation,
    ctx: &ApplyCtx,
) -> Result<Applied, ApplyError> {
    let now = ctx.now_utc();
    for (alloc_id, ok) in &marks {
        let Some(a) = txn.tables().alloc(alloc_id) else {
            continue;
        };
        let mut a = (*a).clone();
        let prior = a.deployment_status.take().unwrap_or_default();
        a.deployment_status = Some(AllocDeploymentStatus {
            healthy: Some(*ok),
            timestamp: Some(now),
            ..prior
        });
        a.modify_time = ctx.now;
        // Server-side, so the client learns the verdict and reports it back.
        txn.put_alloc_server(a)?;
    }
    if let Some(u) = &fail {
        txn.update_deployment_status(u)?;
    }
    Ok(Applied::DeploymentEval(Some(txn.put_eval(eval)?)))
}

/// The watcher's replacement of allocations: each is marked to be rescheduled.
pub(super) fn reschedule(
    txn: &mut Txn,
    alloc_ids: &[String],
    eval: Evaluation,
) -> Result<Applied, ApplyError> {
    for id in alloc_ids {
        if let Some(a) = txn.tables().alloc(id) {
            let mut a = (*a).clone();
            a.desired_transition.reschedule = Some(true);
            txn.put_alloc_server(a)?;
        }
    }
    Ok(Applied::DeploymentEval(Some(txn.put_eval(eval)?)))
}

/// Several refusals as Go's multierror prints them.
fn multi_error(errs: &[String]) -> String {
    let head = if errs.len() == 1 {
        "1 error occurred:".to_string()
    } else {
        format!("{} errors occurred:", errs.len())
    };
    let body: String = errs.iter().map(|e| format!("\n\t* {e}")).collect();
    format!("{head}{body}\n\n")
}
