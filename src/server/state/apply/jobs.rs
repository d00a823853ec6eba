//! Job writes: register, deregister, evaluate, scale, and a version's stability and tag.

use std::sync::Arc;

use crate::server::events::EventType;
use crate::server::state::{StateError, Tables, Txn};
use crate::structs::eval::trigger;
use crate::structs::{
    AllocClientStatus, Evaluation, JOB_TYPE_SYSTEM, Job, JobSubmission, ScalingEvent,
};

use super::{Applied, ApplyCtx, ApplyError, admit_job};

/// True when two jobs differ only in what the state stamps (versions, indexes, status).
pub fn same_spec(a: &Job, b: &Job) -> bool {
    let strip = |j: &Job| {
        let mut j = Job {
            status: None,
            status_description: String::new(),
            stable: false,
            version: 0,
            version_tag: None,
            submit_time: 0,
            create_index: 0,
            modify_index: 0,
            job_modify_index: 0,
            ..j.clone()
        };
        crate::structs::clear_policy_identity(&mut j);
        j
    };
    strip(a) == strip(b)
}

/// What a job register carries besides the (canonical, validated) job.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RegisterOptions {
    /// Refuse unless the stored job's JobModifyIndex is `job_modify_index` (0: no job).
    pub enforce_index: bool,
    pub job_modify_index: u64,
    /// Keep each group's stored count.
    pub preserve_counts: bool,
    /// The job file, kept with the version it registers.
    pub submission: Option<JobSubmission>,
    /// The evaluation's priority; 0 for the job's.
    pub eval_priority: i64,
    /// The ID of the evaluation the register creates (parent jobs get none).
    pub eval_id: String,
}

pub(super) fn register(
    txn: &mut Txn,
    mut job: Job,
    opts: RegisterOptions,
    ctx: &ApplyCtx,
) -> Result<Applied, ApplyError> {
    txn.set_event_type(EventType::JobRegistered);
    admit_job(txn.tables(), &job).map_err(StateError::Conflict)?;
    let existing = txn.tables().job(&job.namespace, &job.id);
    if opts.enforce_index {
        let current = existing.as_ref().map(|j| j.job_modify_index).unwrap_or(0);
        if opts.job_modify_index == 0 && existing.is_some() {
            return Err(StateError::Conflict(format!(
                "Enforcing job modify index 0: job {:?} already exists",
                job.id
            )));
        }
        if opts.job_modify_index != 0 && opts.job_modify_index != current {
            return Err(StateError::Conflict(format!(
                "Enforcing job modify index {}: job exists with conflicting job modify index: {current}",
                opts.job_modify_index
            )));
        }
    }
    if opts.preserve_counts
        && let Some(old) = existing.as_ref()
    {
        for tg in job.task_groups.iter_mut().flatten() {
            if let Some(old_tg) = old.group(&tg.name) {
                tg.count = old_tg.count;
            }
        }
    }
    let (ns, id, job_type, is_parent) = (
        job.namespace.clone(),
        job.id.clone(),
        job.r#type.clone(),
        job.is_parent(),
    );
    let priority = if opts.eval_priority != 0 {
        opts.eval_priority
    } else {
        job.priority
    };
    let job_modify_index = match existing.as_ref() {
        Some(old) if same_spec(old, &job) => old.job_modify_index,
        Some(old) => {
            job.version = old.version + 1;
            job.create_index = old.create_index;
            job.job_modify_index = txn.index();
            job.submit_time = ctx.now;
            job.status = old.status;
            txn.put_job(job, true)?;
            txn.index()
        }
        None => {
            job.version = 0;
            job.create_index = 0;
            job.job_modify_index = txn.index();
            job.submit_time = ctx.now;
            job.status = None;
            txn.put_job(job, true)?;
            txn.index()
        }
    };
    if let Some(sub) = opts.submission {
        let version = txn.tables().job(&ns, &id).map_or(0, |j| j.version);
        txn.put_job_submission(JobSubmission {
            namespace: ns.clone(),
            job_id: id.clone(),
            version: version.max(0) as u64,
            job_modify_index,
            ..sub
        })?;
    }
    // Parent jobs (periodic, parameterized) only spawn children; they are not placed.
    if is_parent {
        return Ok(Applied::Job {
            eval: None,
            job_modify_index,
        });
    }
    let mut eval = ctx.new_eval(
        opts.eval_id,
        &ns,
        &id,
        &job_type,
        priority,
        trigger::JOB_REGISTER,
    );
    eval.job_modify_index = job_modify_index;
    Ok(Applied::Job {
        eval: Some(txn.put_eval(eval)?),
        job_modify_index,
    })
}

pub(super) fn deregister(
    txn: &mut Txn,
    ns: &str,
    id: &str,
    purge: bool,
    eval_priority: i64,
    eval_id: String,
    ctx: &ApplyCtx,
) -> Result<Applied, ApplyError> {
    txn.set_event_type(EventType::JobDeregistered);
    let Some(job) = txn.tables().job(ns, id) else {
        return Err(StateError::NotFound(format!("job not found: {id}")));
    };
    let job_modify_index = if purge {
        txn.delete_job(ns, id);
        txn.index()
    } else if job.stop {
        job.job_modify_index
    } else {
        let mut stopped = (*job).clone();
        stopped.stop = true;
        stopped.version = job.version + 1;
        stopped.job_modify_index = txn.index();
        stopped.submit_time = ctx.now;
        txn.put_job(stopped, true)?;
        txn.index()
    };
    if job.is_parent() {
        return Ok(Applied::Job {
            eval: None,
            job_modify_index,
        });
    }
    let priority = if eval_priority != 0 {
        eval_priority
    } else {
        job.priority
    };
    let mut eval = ctx.new_eval(
        eval_id,
        ns,
        id,
        &job.r#type,
        priority,
        trigger::JOB_DEREGISTER,
    );
    eval.job_modify_index = job_modify_index;
    Ok(Applied::Job {
        eval: Some(txn.put_eval(eval)?),
        job_modify_index,
    })
}

pub(super) fn evaluate(
    txn: &mut Txn,
    ns: &str,
    id: &str,
    force_reschedule: bool,
    eval_id: String,
    ctx: &ApplyCtx,
) -> Result<Applied, ApplyError> {
    txn.set_event_type(EventType::EvaluationUpdated);
    let Some(job) = txn.tables().job(ns, id) else {
        return Err(StateError::NotFound(format!("job not found: {id}")));
    };
    if job.is_parent() {
        return Err(StateError::Conflict(
            "can't evaluate periodic or parameterized job".to_string(),
        ));
    }
    if force_reschedule {
        for a in txn.tables().allocs_by_job(ns, id) {
            if a.client_status == AllocClientStatus::Failed
                && a.next_allocation.is_empty()
                && !a.server_terminal()
            {
                let mut a = (*a).clone();
                a.desired_transition.force_reschedule = Some(true);
                txn.put_alloc_server(a)?;
            }
        }
    }
    let mut eval = ctx.new_eval(
        eval_id,
        ns,
        id,
        &job.r#type,
        job.priority,
        trigger::JOB_REGISTER,
    );
    eval.job_modify_index = job.job_modify_index;
    Ok(Applied::Job {
        eval: Some(txn.put_eval(eval)?),
        job_modify_index: job.job_modify_index,
    })
}

/// What a scaling request carries (validated by the proposer).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ScaleRequest {
    pub ns: String,
    pub id: String,
    pub group: String,
    /// The new count; None records an event only.
    pub count: Option<i64>,
    pub message: String,
    pub error: bool,
    pub meta: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// Refuse unless the job's JobModifyIndex is this (0: no check).
    pub job_modify_index: u64,
    /// The ID of the `job-scaling` evaluation a count change creates.
    pub eval_id: String,
}

/// Changes a group's count (a new job version and an evaluation) and records a scaling
/// event. A lost check-and-set race is a Conflict, which Nomad answers with a 500.
pub(super) fn scale(txn: &mut Txn, r: ScaleRequest, ctx: &ApplyCtx) -> Result<Applied, ApplyError> {
    txn.set_event_type(EventType::JobRegistered);
    let (ns, id, group) = (r.ns.as_str(), r.id.as_str(), r.group.as_str());
    let Some(job) = txn.tables().job(ns, id) else {
        return Err(StateError::NotFound(format!("job {id:?} not found")));
    };
    if job.r#type == JOB_TYPE_SYSTEM && r.count.is_some_and(|c| !(0..=1).contains(&c)) {
        return Err(StateError::BadRequest(
            "jobs of type \"system\" can only be scaled between 0 and 1".into(),
        ));
    }
    let Some(tg) = job.group(group) else {
        return Err(StateError::BadRequest(format!(
            "task group {group:?} specified for scaling does not exist in job"
        )));
    };
    let previous_count = tg.count;
    let mut eval: Option<Arc<Evaluation>> = None;
    let mut job_modify_index = job.modify_index;
    if let Some(count) = r.count {
        if let Some(why) = policy_bounds(tg.scaling.as_deref(), count) {
            return Err(StateError::BadRequest(why));
        }
        if deployment_active(txn.tables(), &job) {
            return Err(StateError::BadRequest(
                "job scaling blocked due to active deployment".into(),
            ));
        }
        if r.job_modify_index != 0 && r.job_modify_index != job.job_modify_index {
            return Err(StateError::Conflict(format!(
                "Enforcing job modify index {}: job exists with conflicting job modify index: {}",
                r.job_modify_index, job.job_modify_index
            )));
        }
        // Like Nomad: a new version even when the count does not change.
        let mut scaled = (*job).clone();
        for g in scaled.task_groups.iter_mut().flatten() {
            if g.name == group {
                g.count = count;
            }
        }
        scaled.version = job.version + 1;
        scaled.job_modify_index = txn.index();
        scaled.submit_time = ctx.now;
        txn.put_job(scaled, true)?;
        job_modify_index = txn.index();
        if !job.is_parent() {
            let mut e = ctx.new_eval(
                r.eval_id,
                ns,
                id,
                &job.r#type,
                job.priority,
                trigger::SCALING,
            );
            e.job_modify_index = job_modify_index;
            eval = Some(txn.put_eval(e)?);
        }
    }
    let event = ScalingEvent {
        time: ctx.now,
        count: r.count,
        previous_count,
        message: r.message,
        error: r.error,
        meta: r.meta,
        eval_id: eval.as_ref().map(|e| e.id.clone()),
        create_index: 0,
    };
    txn.add_scaling_event(ns, id, group, event)?;
    Ok(Applied::Job {
        eval,
        job_modify_index,
    })
}

/// The group's scaling policy bounds (`scaling { min max }`), checked against `count`.
fn policy_bounds(policy: Option<&serde_json::Value>, count: i64) -> Option<String> {
    let policy = policy?;
    let bound = |k: &str| policy.get(k).and_then(serde_json::Value::as_i64);
    if let Some(min) = bound("Min")
        && count < min
    {
        return Some(format!(
            "group count was less than scaling policy minimum: {count} < {min}"
        ));
    }
    if let Some(max) = bound("Max")
        && count > max
    {
        return Some(format!(
            "group count was greater than scaling policy maximum: {count} > {max}"
        ));
    }
    None
}

/// Whether the job's latest deployment (of this incarnation of the job) is still active.
fn deployment_active(tables: &Tables, job: &Job) -> bool {
    tables
        .latest_deployment(&job.namespace, &job.id)
        .is_some_and(|d| d.active() && d.job_create_index == job.create_index)
}

/// Sets the `Stable` flag of one version; NotFound (with no message: the op names the
/// version) when the job has no such version.
/// Puts `tag` on `version` of a job (`Some`), or takes the tag named `name` off the version
/// that has it (`None`). A name is unique among a job's versions.
pub(super) fn version_tag(
    txn: &mut Txn,
    ns: &str,
    id: &str,
    version: i64,
    name: &str,
    tag: Option<crate::structs::JobVersionTag>,
) -> Result<Applied, ApplyError> {
    let versions = txn.tables().job_versions(ns, id);
    if versions.is_empty() {
        return Err(StateError::NotFound(format!("job {id:?} not found")));
    }
    let holder = versions
        .iter()
        .find(|v| v.version_tag.as_ref().is_some_and(|t| t.name == name));
    match tag {
        Some(tag) => {
            if let Some(other) = holder.filter(|v| v.version != version) {
                return Err(StateError::BadRequest(format!(
                    "tag {name:?} already exists on a different version of job {id:?} (version {})",
                    other.version
                )));
            }
            if !versions.iter().any(|v| v.version == version) {
                return Err(StateError::NotFound(format!(
                    "job {id:?} version {version} not found"
                )));
            }
            txn.update_version(ns, id, version, |j| j.version_tag = Some(tag.clone()))?;
        }
        None => {
            let Some(holder) = holder else {
                return Err(StateError::NotFound(format!(
                    "tag {name:?} not found on job {id:?}"
                )));
            };
            let version = holder.version;
            txn.update_version(ns, id, version, |j| j.version_tag = None)?;
        }
    }
    Ok(Applied::Done)
}

pub(super) fn stability(
    txn: &mut Txn,
    ns: &str,
    id: &str,
    version: i64,
    stable: bool,
) -> Result<Applied, ApplyError> {
    let Some(stored) = txn.tables().job_version(ns, id, version) else {
        return Err(StateError::NotFound(String::new()));
    };
    if stored.stable != stable {
        txn.set_version_stable(ns, id, version, stable)?;
    }
    Ok(Applied::Done)
}
