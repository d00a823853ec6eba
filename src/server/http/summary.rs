//! Job summaries, derived from the job's allocations and evaluations rather than stored:
//! they can then never drift from what they summarize.

use std::collections::BTreeMap;

use crate::server::state::Tables;
use crate::structs::{
    AllocClientStatus, Job, JobChildrenSummary, JobStatus, JobSummary, TaskGroupSummary,
};

/// The summary of a job as of `tables`.
pub fn job_summary(tables: &Tables, job: &Job) -> JobSummary {
    let mut summary: BTreeMap<String, TaskGroupSummary> = job
        .groups()
        .iter()
        .map(|g| (g.name.clone(), TaskGroupSummary::default()))
        .collect();
    let mut modify_index = job.modify_index;
    for a in tables.allocs_by_job(&job.namespace, &job.id) {
        // Allocations of an earlier job with the same ID (purged, then registered again) are
        // not this job's.
        if a.job
            .as_ref()
            .is_some_and(|j| j.create_index != job.create_index)
        {
            continue;
        }
        modify_index = modify_index.max(a.modify_index);
        let Some(s) = summary.get_mut(&*a.task_group) else {
            continue;
        };
        match a.client_status {
            AllocClientStatus::Pending => s.starting += 1,
            AllocClientStatus::Running => s.running += 1,
            AllocClientStatus::Complete => s.complete += 1,
            AllocClientStatus::Failed => s.failed += 1,
            AllocClientStatus::Lost => s.lost += 1,
            AllocClientStatus::Unknown => s.unknown += 1,
        }
    }
    // Queued comes from the newest evaluation that recorded it.
    if let Some(latest) = tables
        .evals_by_job(&job.namespace, &job.id)
        .into_iter()
        .filter(|e| e.queued_allocations.is_some())
        .max_by_key(|e| e.modify_index)
    {
        modify_index = modify_index.max(latest.modify_index);
        for (group, queued) in latest.queued_allocations.iter().flatten() {
            if let Some(s) = summary.get_mut(group) {
                s.queued = *queued;
            }
        }
    }
    let children = if job.is_parent() {
        let mut c = JobChildrenSummary::default();
        for child in tables
            .jobs
            .values()
            .filter(|j| j.parent_id == job.id && j.namespace == job.namespace)
        {
            match child.status {
                Some(JobStatus::Running) => c.running += 1,
                Some(JobStatus::Dead) => c.dead += 1,
                Some(JobStatus::Pending) | None => c.pending += 1,
            }
        }
        c
    } else {
        JobChildrenSummary::default()
    };
    JobSummary {
        job_id: job.id.clone(),
        namespace: job.namespace.clone(),
        summary,
        children: Some(children),
        create_index: job.create_index,
        modify_index,
    }
}
