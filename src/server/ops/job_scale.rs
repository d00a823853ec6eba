//! Job scaling: `POST /v1/job/:id/scale` changes a group's count (a new job version plus a
//! `job-scaling` evaluation) and records a scaling event; `GET` reads the scale status.

use super::jobs::JobRegisterResponse;
use crate::server::events::EventType;
use crate::server::state::{StateError, Tables};
use crate::server::{Server, ServerError};
use crate::structs::eval::trigger;
use crate::structs::{
    AllocClientStatus, JOB_TYPE_SYSTEM, JobScaleStatus, ScalingEvent, ScalingRequest,
    TaskGroupScaleStatus, time::now_nanos,
};

/// A refusal from inside the scale write, with the status Nomad answers it with.
enum Refusal {
    BadRequest(String),
    NotFound(String),
    Internal(String),
}

impl Server {
    /// Carries out a scaling request against group `Target.Group` of job `job_id`.
    pub async fn scale_job(
        &self,
        namespace: &str,
        job_id: &str,
        req: &ScalingRequest,
    ) -> Result<JobRegisterResponse, ServerError> {
        if req
            .target
            .get("Namespace")
            .is_some_and(|ns| !ns.is_empty() && ns != namespace)
        {
            return Err(ServerError::BadRequest(
                "namespace in payload did not match header".into(),
            ));
        }
        let group = req.target.get("Group").cloned().unwrap_or_default();
        if group.is_empty() {
            return Err(ServerError::BadRequest(
                "missing task group name for scaling action".into(),
            ));
        }
        if let Some(count) = req.count {
            if count < 0 {
                return Err(ServerError::BadRequest(
                    "scaling action count can't be negative".into(),
                ));
            }
            if req.error {
                return Err(ServerError::BadRequest(
                    "scaling action should not contain count if error is true".into(),
                ));
            }
        }

        let mut refusal = None;
        let result = self.state.write(|txn| {
            txn.set_event_type(EventType::JobRegistered);
            let refuse = |r: Refusal, slot: &mut Option<Refusal>| {
                *slot = Some(r);
                StateError::Conflict(String::new())
            };
            let Some(job) = txn.tables().job(namespace, job_id) else {
                return Err(refuse(
                    Refusal::NotFound(format!("job {job_id:?} not found")),
                    &mut refusal,
                ));
            };
            if job.r#type == JOB_TYPE_SYSTEM && req.count.is_some_and(|c| !(0..=1).contains(&c))
            {
                return Err(refuse(
                    Refusal::BadRequest(
                        "jobs of type \"system\" can only be scaled between 0 and 1".into(),
                    ),
                    &mut refusal,
                ));
            }
            let Some(tg) = job.group(&group) else {
                return Err(refuse(
                    Refusal::BadRequest(format!(
                        "task group {group:?} specified for scaling does not exist in job"
                    )),
                    &mut refusal,
                ));
            };
            let previous_count = tg.count;
            let mut eval = None;
            let mut job_modify_index = job.modify_index;
            if let Some(count) = req.count {
                if let Some(r) = policy_bounds(tg.scaling.as_deref(), count) {
                    return Err(refuse(Refusal::BadRequest(r), &mut refusal));
                }
                if deployment_active(txn.tables(), &job) {
                    return Err(refuse(
                        Refusal::BadRequest("job scaling blocked due to active deployment".into()),
                        &mut refusal,
                    ));
                }
                if req.job_modify_index != 0 && req.job_modify_index != job.job_modify_index {
                    return Err(refuse(
                        Refusal::Internal(format!(
                            "Enforcing job modify index {}: job exists with conflicting job modify index: {}",
                            req.job_modify_index, job.job_modify_index
                        )),
                        &mut refusal,
                    ));
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
                scaled.submit_time = now_nanos();
                txn.put_job(scaled, true)?;
                job_modify_index = txn.index();
                if !job.is_parent() {
                    let mut e = Server::new_eval(
                        namespace,
                        job_id,
                        &job.r#type,
                        job.priority,
                        trigger::SCALING,
                    );
                    e.job_modify_index = job_modify_index;
                    eval = Some(txn.put_eval(e)?);
                }
            }
            let event = ScalingEvent {
                time: now_nanos(),
                count: req.count,
                previous_count,
                message: req.message.clone(),
                error: req.error,
                meta: req.meta.clone(),
                eval_id: eval.as_ref().map(|e| e.id.clone()),
                create_index: 0,
            };
            txn.add_scaling_event(namespace, job_id, &group, event)?;
            Ok((eval, job_modify_index))
        })
        .await;
        let (index, (eval, job_modify_index)) = match result {
            Ok(r) => r,
            Err(e) => {
                return Err(match refusal {
                    Some(Refusal::BadRequest(m)) => ServerError::BadRequest(m),
                    Some(Refusal::NotFound(m)) => ServerError::NotFound(m),
                    Some(Refusal::Internal(m)) => ServerError::Refused(m),
                    None => ServerError::State(e),
                });
            }
        };
        let (eval_id, eval_create_index) = self.enqueue_created(eval);
        Ok(JobRegisterResponse {
            eval_id,
            eval_create_index,
            job_modify_index,
            warnings: String::new(),
            index,
            last_contact: 0,
            known_leader: true,
        })
    }
}

/// The scale status of a job as of `tables`; None when the job does not exist.
pub fn scale_status(tables: &Tables, namespace: &str, job_id: &str) -> Option<JobScaleStatus> {
    let job = tables.job(namespace, job_id)?;
    let events = tables
        .scaling_events
        .get(&(namespace.to_string(), job_id.to_string()));
    let mut groups: std::collections::BTreeMap<String, TaskGroupScaleStatus> = job
        .groups()
        .iter()
        .map(|g| {
            let status = TaskGroupScaleStatus {
                desired: g.count,
                events: events.and_then(|e| e.scaling_events.get(&g.name).cloned()),
                ..TaskGroupScaleStatus::default()
            };
            (g.name.clone(), status)
        })
        .collect();
    for a in tables.allocs_by_job(namespace, job_id) {
        let canary = a.deployment_status.as_ref().is_some_and(|d| d.canary);
        if canary || a.terminal() {
            continue;
        }
        let Some(g) = groups.get_mut(&*a.task_group) else {
            continue;
        };
        g.placed += 1;
        if a.client_status == AllocClientStatus::Running {
            g.running += 1;
        }
        match a.deployment_status.as_ref().and_then(|d| d.healthy) {
            Some(true) => g.healthy += 1,
            Some(false) => g.unhealthy += 1,
            None => {}
        }
    }
    Some(JobScaleStatus {
        job_id: job.id.clone(),
        namespace: job.namespace.clone(),
        job_create_index: job.create_index,
        job_modify_index: job.modify_index,
        job_stopped: job.stop,
        task_groups: groups,
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
fn deployment_active(tables: &Tables, job: &crate::structs::Job) -> bool {
    tables
        .latest_deployment(&job.namespace, &job.id)
        .is_some_and(|d| d.active() && d.job_create_index == job.create_index)
}
