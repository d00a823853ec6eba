//! Job writes: register (create or update), deregister (stop or purge), force evaluation.

use serde::{Deserialize, Serialize};

use super::namespaces::default_node_pool;
use crate::server::state::{Command, RegisterOptions, Request, StateError};
use crate::server::{Server, ServerError};
use crate::structs::canonicalize::canonicalize_job;
use crate::structs::validate::validate_job;
use crate::structs::{Job, generate_uuid};

/// Body of `PUT /v1/jobs` and `PUT /v1/job/:id`. It stays beside the operation (unlike the
/// other request bodies, which live with their HTTP handlers) because periodic launches,
/// dispatches and reverts register jobs with it too.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobRegisterRequest {
    pub job: Option<Job>,
    pub enforce_index: bool,
    #[serde(deserialize_with = "crate::structs::de::uint")]
    pub job_modify_index: u64,
    #[serde(deserialize_with = "crate::structs::de::int")]
    pub eval_priority: i64,
    pub policy_override: bool,
    pub preserve_counts: bool,
    /// The job file the job was parsed from, kept with the version it registers.
    pub submission: Option<crate::structs::JobSubmission>,
}

/// Answer to a job register.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobRegisterResponse {
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    pub eval_create_index: u64,
    pub job_modify_index: u64,
    pub warnings: String,
    pub index: u64,
    pub last_contact: u64,
    pub known_leader: bool,
}

/// Answer to a job deregister or evaluate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobDeregisterResponse {
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    pub eval_create_index: u64,
    pub job_modify_index: u64,
    pub index: u64,
}

/// True when two versions of a job describe the same thing (server-set fields ignored).
pub use crate::server::state::same_spec;

impl Server {
    /// Hands an evaluation a write created to the broker; its ID and CreateIndex, or empty
    /// ones when the write created none (parent jobs, unchanged specs).
    pub(crate) fn enqueue_created(
        &self,
        eval: Option<std::sync::Arc<crate::structs::Evaluation>>,
    ) -> (String, u64) {
        match eval {
            Some(e) => {
                let out = (e.id.clone(), e.create_index);
                self.broker.enqueue((*e).clone());
                out
            }
            None => (String::new(), 0),
        }
    }

    /// Registers or updates a job and creates the evaluation that schedules it.
    pub async fn register_job(
        &self,
        req: JobRegisterRequest,
        namespace: Option<&str>,
    ) -> Result<JobRegisterResponse, ServerError> {
        let mut job = req
            .job
            .ok_or_else(|| ServerError::BadRequest("Job must be specified".to_string()))?;
        if job.namespace.is_empty()
            && let Some(ns) = namespace.filter(|n| !n.is_empty() && *n != "*")
        {
            job.namespace = ns.to_string();
        }
        if let Some(pool) = default_node_pool(&self.state.snapshot(), &job) {
            job.node_pool = pool;
        }
        canonicalize_job(&mut job, &self.config.region);
        validate_job(&job).map_err(|e| ServerError::BadRequest(e.to_string()))?;
        if let Some(p) = job.periodic.as_ref() {
            crate::server::periodic::validate(p).map_err(|e| {
                let errs =
                    crate::structs::validate::ValidationErrors(vec![format!("Periodic: {e}")]);
                ServerError::BadRequest(errs.to_string())
            })?;
        }
        if job.region != self.config.region {
            return Err(ServerError::BadRequest(format!(
                "No path to region {:?}",
                job.region
            )));
        }
        if req.eval_priority != 0 && !(1..=100).contains(&req.eval_priority) {
            return Err(ServerError::BadRequest(
                "Eval priority must be between 1 and 100".to_string(),
            ));
        }

        let mut warnings = String::new();
        let submission = req.submission.clone().filter(|s| {
            let fits = s.size() <= crate::structs::submission::JOB_MAX_SOURCE_SIZE;
            if !fits {
                warnings = format!(
                    "job source too large to keep ({} bytes, the limit is {})",
                    s.size(),
                    crate::structs::submission::JOB_MAX_SOURCE_SIZE
                );
            }
            fits
        });
        let started = std::time::Instant::now();
        let job_id = job.id.clone();
        let opts = RegisterOptions {
            enforce_index: req.enforce_index,
            job_modify_index: req.job_modify_index,
            preserve_counts: req.preserve_counts,
            submission,
            eval_priority: req.eval_priority,
            eval_id: generate_uuid(),
        };
        let (index, applied) = self
            .state
            .commit(Request::new(Command::JobRegister {
                job: Box::new(job),
                opts,
            }))
            .await
            .map_err(|e| match e {
                StateError::Conflict(m) => ServerError::BadRequest(m),
                other => ServerError::State(other),
            })?;
        let (eval, job_modify_index) = applied.into_job()?;

        tracing::debug!(target: "yurt::latency", step = "job registered", job_id = %job_id, index, us = started.elapsed().as_micros() as u64);
        let (eval_id, eval_index) = self.enqueue_created(eval);
        Ok(JobRegisterResponse {
            eval_id,
            eval_create_index: eval_index,
            job_modify_index,
            warnings,
            index,
            last_contact: 0,
            known_leader: true,
        })
    }

    /// Stops a job (a new version with `Stop`), or purges it, and schedules the stop.
    pub async fn deregister_job(
        &self,
        namespace: &str,
        job_id: &str,
        purge: bool,
        eval_priority: i64,
    ) -> Result<JobDeregisterResponse, ServerError> {
        let (index, applied) = self
            .state
            .commit(Request::new(Command::JobDeregister {
                ns: namespace.to_string(),
                id: job_id.to_string(),
                purge,
                eval_priority,
                eval_id: generate_uuid(),
            }))
            .await
            .map_err(|e| match e {
                StateError::NotFound(m) => ServerError::NotFound(m),
                other => ServerError::State(other),
            })?;
        let (eval, job_modify_index) = applied.into_job()?;
        if let Some(old) = self.blocked.untrack(namespace, job_id) {
            self.cancel_evals(vec![old]).await;
        }
        let (eval_id, eval_create_index) = self.enqueue_created(eval);
        Ok(JobDeregisterResponse {
            eval_id,
            eval_create_index,
            job_modify_index,
            index,
        })
    }

    /// Creates a new evaluation for a job (`POST /v1/job/:id/evaluate`).
    pub async fn evaluate_job(
        &self,
        namespace: &str,
        job_id: &str,
        force_reschedule: bool,
    ) -> Result<JobDeregisterResponse, ServerError> {
        let (index, applied) = self
            .state
            .commit(Request::new(Command::JobEvaluate {
                ns: namespace.to_string(),
                id: job_id.to_string(),
                force_reschedule,
                eval_id: generate_uuid(),
            }))
            .await
            .map_err(|e| match e {
                StateError::NotFound(m) => ServerError::NotFound(m),
                StateError::Conflict(m) => ServerError::BadRequest(m),
                other => ServerError::State(other),
            })?;
        let (Some(eval), job_modify_index) = applied.into_job()? else {
            return Err(ServerError::State(StateError::Storage(
                "job evaluation created no evaluation".into(),
            )));
        };
        self.broker.enqueue((*eval).clone());
        Ok(JobDeregisterResponse {
            eval_id: eval.id.clone(),
            eval_create_index: eval.create_index,
            job_modify_index,
            index,
        })
    }

    /// Marks evaluations cancelled (superseded by newer ones).
    pub async fn cancel_evals(&self, evals: Vec<crate::structs::Evaluation>) {
        if evals.is_empty() {
            return;
        }
        let ids = evals.into_iter().map(|e| e.id).collect();
        let res = self
            .state
            .commit(Request::new(Command::EvalsCancel { ids }))
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "cancelling superseded evaluations");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> std::sync::Arc<Server> {
        Server::open(crate::server::ServerConfig::default()).unwrap()
    }

    fn req(v: serde_json::Value) -> JobRegisterRequest {
        serde_json::from_value(serde_json::json!({ "Job": v })).unwrap()
    }

    fn job_json() -> serde_json::Value {
        serde_json::json!({"ID": "web", "TaskGroups": [{"Name": "g", "Count": 2,
            "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {"command": "sleep"}}]}]})
    }

    #[tokio::test]
    async fn register_creates_version_and_eval() {
        let s = server();
        let r = s.register_job(req(job_json()), None).await.unwrap();
        assert!(!r.eval_id.is_empty());
        assert_eq!(r.job_modify_index, r.index);
        let snap = s.state.snapshot();
        let j = snap.job("default", "web").unwrap();
        assert_eq!(j.version, 0);
        assert_eq!(j.status, Some(crate::structs::JobStatus::Pending));
        let e = snap.eval(&r.eval_id).unwrap();
        assert_eq!(e.triggered_by, "job-register");
        assert_eq!(e.job_modify_index, r.job_modify_index);
        assert_eq!(s.broker.len(), 1);
    }

    #[tokio::test]
    async fn a_status_sent_with_the_job_is_ignored_and_the_server_sets_its_own() {
        for sent in [
            serde_json::json!(null),
            serde_json::json!(""),
            serde_json::json!("running"),
            serde_json::json!("dead"),
            serde_json::json!("not-a-status"),
        ] {
            let s = server();
            let mut job = job_json();
            job["Status"] = sent.clone();
            s.register_job(req(job), None).await.unwrap();
            let snap = s.state.snapshot();
            let j = snap.job("default", "web").unwrap();
            assert_eq!(j.status, Some(crate::structs::JobStatus::Pending), "{sent}");
        }
    }

    #[tokio::test]
    async fn resubmitting_an_inspected_job_makes_no_new_version() {
        let s = server();
        s.register_job(req(job_json()), None).await.unwrap();
        let snap = s.state.snapshot();
        let inspected = serde_json::to_value(&*snap.job("default", "web").unwrap()).unwrap();
        assert_eq!(inspected["Status"], "pending");
        let mut resent = inspected.clone();
        resent["Status"] = serde_json::json!("running");
        s.register_job(req(resent), None).await.unwrap();
        assert_eq!(s.state.snapshot().job("default", "web").unwrap().version, 0);
    }

    #[tokio::test]
    async fn unchanged_reregister_keeps_the_version() {
        let s = server();
        let first = s.register_job(req(job_json()), None).await.unwrap();
        let second = s.register_job(req(job_json()), None).await.unwrap();
        assert_eq!(first.job_modify_index, second.job_modify_index);
        let snap = s.state.snapshot();
        assert_eq!(snap.job("default", "web").unwrap().version, 0);
        assert_eq!(snap.job_versions("default", "web").len(), 1);
        let mut changed = job_json();
        changed["TaskGroups"][0]["Count"] = serde_json::json!(3);
        let third = s.register_job(req(changed), None).await.unwrap();
        assert!(third.job_modify_index > second.job_modify_index);
        assert_eq!(s.state.snapshot().job("default", "web").unwrap().version, 1);
    }

    #[tokio::test]
    async fn enforce_index_is_checked() {
        let s = server();
        let mut r = req(job_json());
        r.enforce_index = true;
        let first = s.register_job(r.clone(), None).await.unwrap();
        let again = s.register_job(r.clone(), None).await;
        assert!(matches!(again, Err(ServerError::BadRequest(_))));
        r.job_modify_index = first.job_modify_index;
        assert!(s.register_job(r, None).await.is_ok());
    }

    #[tokio::test]
    async fn invalid_jobs_are_rejected_with_the_field() {
        let s = server();
        let err = s
            .register_job(req(serde_json::json!({"ID": "x", "Priority": 500})), None)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ServerError::BadRequest(_)));
        assert!(msg.contains("priority"), "{msg}");
        assert!(msg.contains("Missing job task groups"), "{msg}");
        assert!(s.state.snapshot().job("default", "x").is_none());
    }

    #[tokio::test]
    async fn deregister_stops_or_purges() {
        let s = server();
        s.register_job(req(job_json()), None).await.unwrap();
        let r = s.deregister_job("default", "web", false, 0).await.unwrap();
        let snap = s.state.snapshot();
        let j = snap.job("default", "web").unwrap();
        assert!(j.stop);
        assert_eq!(j.version, 1);
        assert_eq!(
            snap.eval(&r.eval_id).unwrap().triggered_by,
            "job-deregister"
        );
        s.deregister_job("default", "web", true, 0).await.unwrap();
        assert!(s.state.snapshot().job("default", "web").is_none());
        assert!(matches!(
            s.deregister_job("default", "nope", false, 0).await,
            Err(ServerError::NotFound(_))
        ));
    }
}
