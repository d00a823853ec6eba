//! Job scaling: `POST /v1/job/:id/scale` changes a group's count (a new job version plus a
//! `job-scaling` evaluation) and records a scaling event; `GET` reads the scale status.

use super::jobs::JobRegisterResponse;
use crate::server::state::{Command, Request, ScaleRequest, StateError, Tables};
use crate::server::{Server, ServerError};
use crate::structs::{
    AllocClientStatus, JobScaleStatus, ScalingRequest, TaskGroupScaleStatus, generate_uuid,
};

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

        let scale = ScaleRequest {
            ns: namespace.to_string(),
            id: job_id.to_string(),
            group,
            count: req.count,
            message: req.message.clone(),
            error: req.error,
            meta: req.meta.clone(),
            job_modify_index: req.job_modify_index,
            eval_id: generate_uuid(),
        };
        let (index, applied) = self
            .state
            .commit(Request::new(Command::JobScale(scale)))
            .await
            .map_err(|e| match e {
                StateError::BadRequest(m) => ServerError::BadRequest(m),
                StateError::NotFound(m) => ServerError::NotFound(m),
                // Nomad reports a lost check-and-set race as a 500 carrying the message.
                StateError::Conflict(m) => ServerError::Refused(m),
                other => ServerError::State(other),
            })?;
        let (eval, job_modify_index) = applied.into_job()?;
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
