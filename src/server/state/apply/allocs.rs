//! Allocation writes made by the server.

use crate::server::events::EventType;
use crate::server::state::{StateError, Txn};
use crate::structs::{DesiredTransition, trigger};

use super::{Applied, ApplyCtx, ApplyError};

/// Nomad's `Alloc.Stop`: the allocation is marked for migration and an `alloc-stop`
/// evaluation lets the scheduler stop it and place a replacement.
pub(super) fn stop(
    txn: &mut Txn,
    alloc_id: &str,
    no_shutdown_delay: bool,
    eval_id: String,
    ctx: &ApplyCtx,
) -> Result<Applied, ApplyError> {
    txn.set_event_type(EventType::AllocationUpdateDesiredStatus);
    let Some(alloc) = txn.tables().alloc(alloc_id) else {
        return Err(StateError::NotFound(format!(
            "Unknown allocation \"{alloc_id}\""
        )));
    };
    let mut alloc = (*alloc).clone();
    let (job_type, priority, job_modify_index) = alloc
        .job
        .as_ref()
        .map(|j| (j.r#type.clone(), j.priority, j.job_modify_index))
        .unwrap_or_default();
    let mut eval = ctx.new_eval(
        eval_id,
        &alloc.namespace,
        &alloc.job_id,
        &job_type,
        priority,
        trigger::ALLOC_STOP,
    );
    eval.job_modify_index = job_modify_index;
    alloc.desired_transition = DesiredTransition {
        migrate: Some(true),
        no_shutdown_delay: Some(no_shutdown_delay),
        ..alloc.desired_transition
    };
    txn.put_alloc_server(alloc)?;
    Ok(Applied::Eval(txn.put_eval(eval)?))
}
