//! The scheduler configuration.

use crate::server::state::Txn;
use crate::structs::SchedulerConfiguration;

use super::{Applied, ApplyError};

/// Writes `config` when none is stored yet (a new cluster), so that it has real indexes and
/// check-and-set works from the start.
pub(super) fn ensure_config(
    txn: &mut Txn,
    config: SchedulerConfiguration,
) -> Result<Applied, ApplyError> {
    let missing = txn.tables().scheduler_config.is_none();
    if missing {
        txn.put_scheduler_config(config)?;
    }
    Ok(Applied::Written(missing))
}

pub(super) fn set_config(
    txn: &mut Txn,
    config: SchedulerConfiguration,
    cas: Option<u64>,
) -> Result<Applied, ApplyError> {
    let current = txn
        .tables()
        .scheduler_config
        .as_ref()
        .map_or(0, |c| c.modify_index);
    if cas.is_some_and(|cas| cas != current) {
        return Ok(Applied::Written(false));
    }
    txn.put_scheduler_config(config)?;
    Ok(Applied::Written(true))
}
