//! Deployment writes (Nomad's Deployment.* endpoints and the deployment watcher's own
//! decisions): fail (with auto-revert), pause/resume, promote, manual allocation health,
//! unblock. Each is one state write with the evaluation that lets the scheduler act on it;
//! a revert registers the last stable version afterwards as a new version.

use std::sync::Arc;

use super::jobs::same_spec;
use crate::server::http::JobRevertRequest;
use crate::server::state::{Applied, Command, Promotion, Request, StateError, Tables};
use crate::server::{Server, ServerError};
use crate::structs::{
    DESC_FAILED_ALLOCATIONS, DESC_FAILED_BY_USER, DESC_PAUSED, DESC_RUNNING, DESC_SUCCESSFUL,
    Deployment, DeploymentStatus, DeploymentStatusUpdate, DeploymentUpdateResponse, Evaluation,
    Job, desc_no_rollback_target, desc_rollback, desc_rollback_noop, trigger,
};

const TERMINAL_NO_FAIL: &str = "can't fail terminal deployment";
const TERMINAL_NO_PAUSE: &str = "can't pause terminal deployment";
const TERMINAL_NO_RESUME: &str = "can't resume terminal deployment";
const TERMINAL_NO_PROMOTE: &str = "can't promote terminal deployment";
const TERMINAL_NO_UNBLOCK: &str = "can't unblock terminal deployment";
const RUNNING_NO_UNBLOCK: &str = "can't unblock running deployment";
const TERMINAL_NO_SET_HEALTH: &str = "can't set health of allocations for a terminal deployment";

/// The evaluation that lets the scheduler act on a deployment change.
pub fn deployment_eval(d: &Deployment, job: Option<&Job>) -> Evaluation {
    // Follow-up work runs at the priority of the evaluation that created the deployment.
    let priority = if d.eval_priority > 0 {
        d.eval_priority
    } else {
        job.map_or(crate::structs::canonicalize::DEFAULT_PRIORITY, |j| {
            j.priority
        })
    };
    let job_type = job.map_or(crate::structs::JOB_TYPE_SERVICE, |j| j.r#type.as_str());
    let mut e = Server::new_eval(
        &d.namespace,
        &d.job_id,
        job_type,
        priority,
        trigger::DEPLOYMENT_WATCHER,
    );
    e.deployment_id = d.id.clone();
    e.job_modify_index = job.map_or(d.job_spec_modify_index, |j| j.job_modify_index);
    e
}

/// The job version to revert to when `d` fails with `base` as its reason: the latest stable
/// version, unless its spec is the current one's (reverting would loop). Returns the
/// version and the status description.
pub fn rollback_target(snap: &Tables, d: &Deployment, base: &str) -> (Option<Arc<Job>>, String) {
    let Some(current) = snap.job(&d.namespace, &d.job_id) else {
        return (None, desc_no_rollback_target(base));
    };
    let stable = snap
        .job_versions(&d.namespace, &d.job_id)
        .into_iter()
        .find(|j| j.stable);
    match stable {
        None => (None, desc_no_rollback_target(base)),
        Some(s) if same_spec(&current, &s) => (None, desc_rollback_noop(base, s.version)),
        Some(s) => {
            let desc = desc_rollback(base, s.version);
            (Some(s), desc)
        }
    }
}

fn not_found() -> ServerError {
    ServerError::NotFound("deployment not found".to_string())
}

impl Server {
    fn deployment(&self, id: &str) -> Result<Arc<Deployment>, ServerError> {
        if id.is_empty() {
            return Err(ServerError::BadRequest("missing deployment ID".to_string()));
        }
        self.state.snapshot().deployment(id).ok_or_else(not_found)
    }

    /// Writes a status change of `d` with an evaluation (when `eval`), then reverts the job
    /// to `revert` when given.
    async fn commit_status(
        &self,
        d: &Deployment,
        status: DeploymentStatus,
        desc: String,
        eval: bool,
        revert: Option<Arc<Job>>,
        refusal: &'static str,
    ) -> Result<DeploymentUpdateResponse, ServerError> {
        let job = self.state.snapshot().job(&d.namespace, &d.job_id);
        let ev = eval.then(|| deployment_eval(d, job.as_deref()));
        let update = DeploymentStatusUpdate {
            deployment_id: d.id.clone(),
            status,
            status_description: desc,
        };
        let (index, applied) = self
            .state
            .commit(Request::new(Command::DeploymentStatus {
                update,
                eval: ev,
                refusal: refusal.to_string(),
            }))
            .await
            .map_err(state_error)?;
        let stored = applied.into_deployment_eval()?;
        if let Some(e) = &stored {
            self.broker.enqueue((**e).clone());
        }
        let mut resp = DeploymentUpdateResponse {
            eval_id: stored.as_ref().map(|e| e.id.clone()).unwrap_or_default(),
            eval_create_index: if stored.is_some() { index } else { 0 },
            deployment_modify_index: index,
            reverted_job_version: None,
            index,
        };
        if let Some(target) = revert {
            self.revert_after_failure(d, &target, &mut resp).await;
        }
        Ok(resp)
    }

    /// Registers `target` (the last stable version) again as the job's new version, after
    /// `d` failed. The failure is already recorded; a revert that cannot be made is logged.
    async fn revert_after_failure(
        &self,
        d: &Deployment,
        target: &Job,
        resp: &mut DeploymentUpdateResponse,
    ) {
        let req = JobRevertRequest {
            job_id: d.job_id.clone(),
            job_version: target.version,
            enforce_prior_version: None,
        };
        match self.revert_job(&d.namespace, &d.job_id, &req).await {
            Ok(r) => {
                resp.reverted_job_version = Some(target.version);
                resp.index = r.index;
            }
            Err(e) => tracing::error!(deployment_id = %d.id, error = %e, "auto-revert failed"),
        }
    }

    /// Fails a deployment with `base` as the reason, reverting the job to its last stable
    /// version when `rollback` (a group asked for auto-revert).
    pub async fn fail_deployment_with(
        &self,
        d: &Deployment,
        base: &str,
        rollback: bool,
    ) -> Result<DeploymentUpdateResponse, ServerError> {
        let (revert, desc) = if rollback {
            rollback_target(&self.state.snapshot(), d, base)
        } else {
            (None, base.to_string())
        };
        self.commit_status(
            d,
            DeploymentStatus::Failed,
            desc,
            true,
            revert,
            TERMINAL_NO_FAIL,
        )
        .await
    }

    /// `POST /v1/deployment/fail/:id`.
    pub async fn fail_deployment(&self, id: &str) -> Result<DeploymentUpdateResponse, ServerError> {
        let d = self.deployment(id)?;
        if !d.active() {
            return Err(ServerError::Refused(TERMINAL_NO_FAIL.into()));
        }
        let rollback = d.task_groups.values().any(|g| g.auto_revert);
        self.fail_deployment_with(&d, DESC_FAILED_BY_USER, rollback)
            .await
    }

    /// `POST /v1/deployment/pause/:id`: pause, or resume with an evaluation.
    pub async fn pause_deployment(
        &self,
        id: &str,
        pause: bool,
    ) -> Result<DeploymentUpdateResponse, ServerError> {
        let d = self.deployment(id)?;
        if !d.active() {
            let msg = if pause {
                TERMINAL_NO_PAUSE
            } else {
                TERMINAL_NO_RESUME
            };
            return Err(ServerError::Refused(msg.into()));
        }
        let (status, desc) = if pause {
            (DeploymentStatus::Paused, DESC_PAUSED.to_string())
        } else {
            (DeploymentStatus::Running, running_description(&d))
        };
        let refusal = if pause {
            TERMINAL_NO_PAUSE
        } else {
            TERMINAL_NO_RESUME
        };
        self.commit_status(&d, status, desc, !pause, None, refusal)
            .await
    }

    /// `POST /v1/deployment/unblock/:id`: a blocked (multiregion) deployment completes.
    pub async fn unblock_deployment(
        &self,
        id: &str,
    ) -> Result<DeploymentUpdateResponse, ServerError> {
        let d = self.deployment(id)?;
        if !d.active() {
            return Err(ServerError::Refused(TERMINAL_NO_UNBLOCK.into()));
        }
        if d.status != DeploymentStatus::Blocked {
            return Err(ServerError::Refused(RUNNING_NO_UNBLOCK.into()));
        }
        self.commit_status(
            &d,
            DeploymentStatus::Successful,
            DESC_SUCCESSFUL.to_string(),
            true,
            None,
            TERMINAL_NO_UNBLOCK,
        )
        .await
    }

    /// `POST /v1/deployment/promote/:id`: promotes the canaries of every group (`all`) or
    /// of `groups`; refused while a group's canaries are not all healthy.
    pub async fn promote_deployment(
        &self,
        id: &str,
        all: bool,
        groups: &[String],
    ) -> Result<DeploymentUpdateResponse, ServerError> {
        let d = self.deployment(id)?;
        if !d.active() {
            return Err(ServerError::Refused(TERMINAL_NO_PROMOTE.into()));
        }
        let job = self.state.snapshot().job(&d.namespace, &d.job_id);
        let ev = deployment_eval(&d, job.as_deref());
        let promotion = Promotion {
            deployment_id: d.id.clone(),
            all,
            groups: groups.to_vec(),
        };
        let (index, applied) = self
            .state
            .commit(Request::new(Command::DeploymentPromote {
                promotion,
                eval: ev,
                refusal: TERMINAL_NO_PROMOTE.to_string(),
            }))
            .await
            .map_err(state_error)?;
        let stored = created_eval(applied)?;
        self.broker.enqueue((*stored).clone());
        Ok(DeploymentUpdateResponse {
            eval_id: stored.id.clone(),
            eval_create_index: index,
            deployment_modify_index: index,
            reverted_job_version: None,
            index,
        })
    }

    /// `POST /v1/deployment/allocation-health/:id`: sets the health of allocations of the
    /// deployment by hand; an unhealthy one fails the deployment (reverting the job when its
    /// group asks for auto-revert).
    pub async fn set_deployment_alloc_health(
        &self,
        id: &str,
        healthy: &[String],
        unhealthy: &[String],
    ) -> Result<DeploymentUpdateResponse, ServerError> {
        if healthy.is_empty() && unhealthy.is_empty() {
            return Err(ServerError::BadRequest(
                "must specify at least one healthy/unhealthy allocation ID".into(),
            ));
        }
        let d = self.deployment(id)?;
        if !d.active() {
            return Err(ServerError::Refused(TERMINAL_NO_SET_HEALTH.into()));
        }
        let snap = self.state.snapshot();
        let mut rollback = false;
        for alloc_id in healthy.iter().chain(unhealthy) {
            let alloc = snap
                .alloc(alloc_id)
                .ok_or_else(|| ServerError::BadRequest(format!("unknown alloc {alloc_id:?}")))?;
            if alloc.deployment_id != d.id {
                return Err(ServerError::BadRequest(format!(
                    "alloc {alloc_id:?} is not part of deployment {:?}",
                    d.id
                )));
            }
            if unhealthy.contains(alloc_id)
                && d.task_groups
                    .get(&*alloc.task_group)
                    .is_some_and(|g| g.auto_revert)
            {
                rollback = true;
            }
        }
        let (revert, desc) = if rollback {
            rollback_target(&snap, &d, DESC_FAILED_ALLOCATIONS)
        } else {
            (None, DESC_FAILED_ALLOCATIONS.to_string())
        };
        let fail = (!unhealthy.is_empty()).then(|| DeploymentStatusUpdate {
            deployment_id: d.id.clone(),
            status: DeploymentStatus::Failed,
            status_description: desc,
        });
        let ev = deployment_eval(&d, snap.job(&d.namespace, &d.job_id).as_deref());
        let marks: Vec<(String, bool)> = healthy
            .iter()
            .map(|a| (a.clone(), true))
            .chain(unhealthy.iter().map(|a| (a.clone(), false)))
            .collect();
        let (index, applied) = self
            .state
            .commit(Request::new(Command::DeploymentAllocHealth {
                marks,
                fail,
                eval: ev,
            }))
            .await
            .map_err(state_error)?;
        let stored = created_eval(applied)?;
        self.broker.enqueue((*stored).clone());
        let mut resp = DeploymentUpdateResponse {
            eval_id: stored.id.clone(),
            eval_create_index: index,
            deployment_modify_index: index,
            reverted_job_version: None,
            index,
        };
        if let Some(target) = revert {
            self.revert_after_failure(&d, &target, &mut resp).await;
        }
        Ok(resp)
    }
}

/// The description of a running deployment: whether it waits for a promotion.
fn running_description(d: &Deployment) -> String {
    let mut running = d.clone();
    running.status = DeploymentStatus::Running;
    if !running.requires_promotion() {
        DESC_RUNNING
    } else if running.has_auto_promote() {
        crate::structs::DESC_RUNNING_AUTO_PROMOTION
    } else {
        crate::structs::DESC_RUNNING_NEEDS_PROMOTION
    }
    .to_string()
}

/// The evaluation a deployment write that always makes one made.
fn created_eval(applied: Applied) -> Result<Arc<Evaluation>, ServerError> {
    applied.into_deployment_eval()?.ok_or_else(|| {
        ServerError::State(StateError::Storage(
            "deployment write created no evaluation".into(),
        ))
    })
}

/// A refusal found inside the write (a concurrent change) reads like the one found before.
fn state_error(e: StateError) -> ServerError {
    match e {
        StateError::NotFound(_) => not_found(),
        StateError::Conflict(m) => ServerError::Refused(m),
        other => ServerError::State(other),
    }
}
