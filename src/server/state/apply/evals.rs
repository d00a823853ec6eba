//! Evaluation writes.

use crate::server::events::EventType;
use crate::server::state::Txn;
use crate::structs::{EvalStatus, Evaluation};

use super::{Applied, ApplyCtx, ApplyError};

pub(super) fn update(txn: &mut Txn, evals: Vec<Evaluation>) -> Result<Applied, ApplyError> {
    let stored = evals
        .into_iter()
        .map(|e| txn.put_eval(e))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Applied::Evals(stored))
}

/// Cancels the stored evaluations `ids` that have not finished (a superseded blocked one,
/// typically); one that finished meanwhile keeps its outcome.
pub(super) fn cancel(txn: &mut Txn, ids: &[String], ctx: &ApplyCtx) -> Result<Applied, ApplyError> {
    txn.set_event_type(EventType::EvaluationUpdated);
    for id in ids {
        let Some(stored) = txn.tables().evals.get(id).cloned() else {
            continue;
        };
        if stored.terminal() {
            continue;
        }
        let mut e = (*stored).clone();
        e.status = EvalStatus::Canceled;
        e.status_description = "canceled after more recent eval was processed".to_string();
        e.modify_time = ctx.now;
        txn.put_eval(e)?;
    }
    Ok(Applied::Done)
}
