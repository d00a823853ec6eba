//! Restore on agent start: rebuilds an alloc runner for every allocation in the state db so
//! the client reattaches to tasks an earlier agent process started (Nomad's
//! `Client.restoreState`).

use std::collections::BTreeMap;

use super::Inner;
use super::state_db::TaskRecord;

/// Recreates and starts the runners of every persisted allocation. Terminal ones come back
/// terminal (and are garbage collected as usual); unreadable ones are skipped with a warning.
pub(super) fn restore_allocs(inner: &Inner) {
    let allocs = match inner.db.get_allocs() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot read client state; no allocation restored");
            return;
        }
    };
    for alloc in allocs {
        let id = alloc.id.clone();
        let Some(records) = task_records(inner, &alloc) else {
            // Nothing was ever recorded for its tasks, so nothing of it can be running: drop
            // it rather than resurrect an allocation that may since have been collected. The
            // servers send it again if it still belongs here.
            tracing::info!(alloc_id = %id, "dropping allocation without task state");
            if let Err(e) = inner.db.delete_alloc(&id) {
                tracing::warn!(alloc_id = %id, error = %e, "removing allocation state");
            }
            continue;
        };
        match inner.spawn_runner(alloc, Some(records)) {
            Ok(()) => tracing::info!(alloc_id = %id, "restored allocation"),
            // The state stays, so a later agent with the missing driver can still reattach.
            Err(e) => tracing::error!(alloc_id = %id, error = %e, "cannot restore allocation"),
        }
    }
}

/// The persisted records of the allocation's tasks, or `None` when there are none at all.
fn task_records(
    inner: &Inner,
    alloc: &crate::structs::Allocation,
) -> Option<BTreeMap<String, TaskRecord>> {
    let group = alloc.group()?;
    let mut records = BTreeMap::new();
    for task in group.tasks() {
        match inner.db.get_task(&alloc.id, &task.name) {
            Ok(Some(rec)) if rec.state.is_some() || rec.handle.is_some() => {
                records.insert(task.name.clone(), rec);
            }
            Ok(_) => {}
            // A torn record cannot be trusted either way; the task starts like a new one.
            Err(e) => tracing::warn!(alloc_id = %alloc.id, task = %task.name, error = %e,
                "ignoring unreadable task state"),
        }
    }
    (!records.is_empty()).then_some(records)
}
