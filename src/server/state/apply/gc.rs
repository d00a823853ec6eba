//! Garbage collection: the proposer picks candidates; the apply removes those that are
//! still eligible at the request's time (one may have come back to life meanwhile).

use crate::server::gc::collect::{Garbage, Thresholds, collect};
use crate::server::state::Txn;

use super::{Applied, ApplyCtx, ApplyError};

pub(super) fn reap(
    txn: &mut Txn,
    candidates: Garbage,
    thresholds: &Thresholds,
    ctx: &ApplyCtx,
) -> Result<Applied, ApplyError> {
    let eligible = collect(txn.tables(), ctx.now, thresholds);
    let gone = Garbage {
        jobs: candidates
            .jobs
            .into_iter()
            .filter(|j| eligible.jobs.contains(j))
            .collect(),
        evals: candidates
            .evals
            .intersection(&eligible.evals)
            .cloned()
            .collect(),
        allocs: candidates
            .allocs
            .intersection(&eligible.allocs)
            .cloned()
            .collect(),
        deployments: candidates
            .deployments
            .into_iter()
            .filter(|d| eligible.deployments.contains(d))
            .collect(),
        nodes: candidates
            .nodes
            .into_iter()
            .filter(|n| eligible.nodes.contains(n))
            .collect(),
    };
    for id in &gone.allocs {
        txn.delete_alloc(id);
    }
    for id in &gone.evals {
        txn.delete_eval(id);
    }
    for (ns, id) in &gone.jobs {
        txn.delete_job(ns, id);
        if txn.tables().allocs_by_job(ns, id).is_empty() {
            txn.delete_alloc_jobs(ns, id);
        }
    }
    for id in &gone.deployments {
        txn.delete_deployment(id);
    }
    for id in &gone.nodes {
        txn.delete_node(id);
    }
    Ok(Applied::Garbage(gone))
}
