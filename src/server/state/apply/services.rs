//! Service registration writes: a client's sync of its allocations' registrations, and an
//! operator's removal of one.

use crate::server::state::{NsKey, StateError, Txn};
use crate::structs::service::ServiceRegistration;

use super::{Applied, ApplyError};

/// Stores `upsert` and removes `delete` (both checked by the proposer to belong to the
/// syncing node's allocations). A registration whose allocation is gone or no longer runs
/// at apply time is skipped: a client's late sync must not bring back what the
/// allocation's end removed.
pub(super) fn sync(
    txn: &mut Txn,
    upsert: Vec<ServiceRegistration>,
    delete: Vec<NsKey>,
) -> Result<Applied, ApplyError> {
    for (ns, id) in &delete {
        txn.delete_service(ns, id);
    }
    for reg in upsert {
        let live = txn
            .tables()
            .alloc(&reg.alloc_id)
            .is_some_and(|a| !a.client_terminal() && *a.node_id == *reg.node_id);
        if live {
            txn.put_service(reg)?;
        }
    }
    Ok(Applied::Done)
}

/// Removes one registration; an unknown one is refused.
pub(super) fn delete(txn: &mut Txn, ns: &str, id: &str) -> Result<Applied, ApplyError> {
    if txn.delete_service(ns, id) {
        Ok(Applied::Done)
    } else {
        Err(StateError::NotFound(
            "service registration not found".to_string(),
        ))
    }
}
