//! Namespace writes, and the admission check every job write makes against its namespace.

use crate::server::state::{StateError, Tables, Txn};
use crate::structs::validate::ValidationErrors;
use crate::structs::{Job, JobStatus, Namespace};

use super::{Applied, ApplyError};

/// Refuses a job whose namespace does not exist or whose capabilities forbid what it uses,
/// with Nomad's messages.
pub fn admit_job(tables: &Tables, job: &Job) -> Result<(), String> {
    let Some(ns) = tables.namespace(&job.namespace) else {
        return Err(format!(
            "job {:?} is in nonexistent namespace {:?}",
            job.id, job.namespace
        ));
    };
    ns.check_job(job)
}

/// True when every allocation of `ns` has stopped on its client.
fn allocs_terminal(tables: &Tables, ns: &str) -> bool {
    tables
        .allocs_by_job
        .iter()
        .filter(|((alloc_ns, _), _)| alloc_ns == ns)
        .flat_map(|(_, ids)| ids.iter())
        .filter_map(|id| tables.alloc(id))
        .all(|a| a.client_terminal())
}

pub(super) fn upsert(txn: &mut Txn, ns: Namespace) -> Result<Applied, ApplyError> {
    txn.put_namespace(ns)?;
    Ok(Applied::Done)
}

pub(super) fn delete(txn: &mut Txn, name: &str, region: &str) -> Result<Applied, ApplyError> {
    let tables = txn.tables();
    if tables.namespace(name).is_none() {
        return Err(StateError::NotFound("namespace not found".to_string()));
    }
    let mut errs = Vec::new();
    let jobs_terminal = tables
        .jobs_with_prefix(name, "")
        .iter()
        .all(|j| j.status == Some(JobStatus::Dead));
    if !jobs_terminal {
        errs.push(format!(
            "namespace {name:?} has non-terminal jobs in regions: [{region}]"
        ));
    }
    if !allocs_terminal(tables, name) {
        errs.push(format!(
            "namespace {name:?} has non-terminal allocations in regions: [{region}]"
        ));
    }
    if !errs.is_empty() {
        return Err(StateError::Conflict(ValidationErrors(errs).to_string()));
    }
    txn.delete_namespace(name);
    Ok(Applied::Done)
}
