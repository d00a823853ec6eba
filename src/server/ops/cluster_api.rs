//! The Cluster API's writes (seed 001): starting a template registers its job, stopping
//! deregisters it, and count changes go through [`Server::scale_job`] exactly as
//! `POST /v1/job/:id/scale` does (a new job version, an evaluation, a scaling event).

use std::collections::BTreeMap;

use super::jobs::{JobDeregisterResponse, JobRegisterRequest, JobRegisterResponse};
use crate::server::cluster_api::Template;
use crate::server::{Server, ServerError};
use crate::structs::ScalingRequest;

/// How many times a count change is retried when another write changed the job between
/// reading its count and scaling it.
const COUNT_ATTEMPTS: usize = 5;

/// A task group count change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountChange {
    /// `updatecounts`: add this (possibly negative) delta, never going below 0; a delta of
    /// 0 sets the count to 0.
    Add(i64),
    /// `settaskgroupcount`: set it (never negative).
    Set(i64),
}

impl CountChange {
    /// The count `current` becomes.
    pub fn apply(self, current: i64) -> i64 {
        match self {
            CountChange::Add(0) => 0,
            CountChange::Add(delta) => current.saturating_add(delta).max(0),
            CountChange::Set(count) => count,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            CountChange::Add(_) => "updatecounts",
            CountChange::Set(_) => "settaskgroupcount",
        }
    }
}

impl Server {
    /// Registers the template's job. When the job already runs, it is refreshed from the
    /// template with its live task group counts kept, unless `force`.
    pub async fn start_template(
        &self,
        t: &Template,
        force: bool,
    ) -> Result<JobRegisterResponse, ServerError> {
        let mut job = t
            .job
            .clone()
            .map_err(|e| ServerError::BadRequest(format!("template {:?}: {e}", t.name)))?;
        if t.by_cluster {
            // Every region this server knows is its own: a job meant for each region is
            // registered here, in it.
            job.region = self.config.region.clone();
        }
        job.namespace = t.namespace.clone();
        let running = self
            .state
            .snapshot()
            .job(&t.namespace, &t.name)
            .is_some_and(|j| !j.stop);
        let req = JobRegisterRequest {
            job: Some(job),
            preserve_counts: running && !force,
            submission: Some(t.submission.clone()),
            ..JobRegisterRequest::default()
        };
        self.register_job(req, Some(&t.namespace)).await
    }

    /// Deregisters the template's job (purging it when asked); None when it is not
    /// registered (nothing to stop).
    pub async fn stop_template(
        &self,
        t: &Template,
        purge: bool,
    ) -> Result<Option<JobDeregisterResponse>, ServerError> {
        if self.state.snapshot().job(&t.namespace, &t.name).is_none() {
            return Ok(None);
        }
        match self.deregister_job(&t.namespace, &t.name, purge, 0).await {
            Ok(r) => Ok(Some(r)),
            // Purged by someone else in between: it is stopped either way.
            Err(ServerError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Changes the count of `group` in the registered job `job_id`.
    pub async fn change_group_count(
        &self,
        namespace: &str,
        job_id: &str,
        group: &str,
        change: CountChange,
    ) -> Result<JobRegisterResponse, ServerError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(job) = self.state.snapshot().job(namespace, job_id) else {
                return Err(ServerError::NotFound(format!(
                    "job {job_id:?} is not started"
                )));
            };
            let Some(tg) = job.group(group) else {
                return Err(ServerError::BadRequest(format!(
                    "taskGroup: job {job_id:?} has no task group {group:?}"
                )));
            };
            let target: BTreeMap<String, String> =
                [("Namespace", namespace), ("Job", job_id), ("Group", group)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
            let req = ScalingRequest {
                count: Some(change.apply(tg.count)),
                target,
                message: format!("Cluster API {}", change.verb()),
                // The count was read from this version: scaling another one would lose
                // a concurrent change.
                job_modify_index: job.job_modify_index,
                ..ScalingRequest::default()
            };
            match self.scale_job(namespace, job_id, &req).await {
                Err(ServerError::Refused(m))
                    if m.starts_with("Enforcing job modify index") && attempt < COUNT_ATTEMPTS =>
                {
                    continue;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ServerConfig;
    use std::path::Path;

    fn template(count: i64) -> Template {
        let text = format!(
            r#"{{"ID": "web", "TaskGroups": [{{"Name": "g", "Count": {count},
                "Tasks": [{{"Name": "t", "Driver": "raw_exec", "Config": {{"command": "sleep"}}}}]}}]}}"#
        );
        Template::read(Path::new("/t/web.json"), &text)
    }

    fn count(s: &Server) -> i64 {
        s.state.snapshot().job("default", "web").unwrap().groups()[0].count
    }

    #[test]
    fn count_changes_never_go_below_zero_and_a_zero_delta_sets_zero() {
        assert_eq!(CountChange::Add(2).apply(1), 3);
        assert_eq!(CountChange::Add(-1).apply(3), 2);
        assert_eq!(CountChange::Add(-5).apply(3), 0);
        assert_eq!(CountChange::Add(0).apply(3), 0);
        assert_eq!(CountChange::Set(7).apply(3), 7);
        assert_eq!(CountChange::Add(i64::MAX).apply(3), i64::MAX);
    }

    #[tokio::test]
    async fn start_keeps_live_counts_unless_forced() {
        let s = Server::open(ServerConfig::default()).unwrap();
        s.start_template(&template(2), false).await.unwrap();
        assert_eq!(count(&s), 2);
        s.change_group_count("default", "web", "g", CountChange::Add(3))
            .await
            .unwrap();
        assert_eq!(count(&s), 5);
        s.start_template(&template(1), false).await.unwrap();
        assert_eq!(count(&s), 5, "refresh keeps the live count");
        s.start_template(&template(1), true).await.unwrap();
        assert_eq!(count(&s), 1, "force takes the template's");
    }

    #[tokio::test]
    async fn count_changes_make_a_version_an_eval_and_a_scaling_event() {
        let s = Server::open(ServerConfig::default()).unwrap();
        s.start_template(&template(1), false).await.unwrap();
        let r = s
            .change_group_count("default", "web", "g", CountChange::Set(4))
            .await
            .unwrap();
        let snap = s.state.snapshot();
        assert_eq!(snap.job("default", "web").unwrap().version, 1);
        assert_eq!(snap.eval(&r.eval_id).unwrap().triggered_by, "job-scaling");
        let status = crate::server::ops::job_scale::scale_status(&snap, "default", "web").unwrap();
        let events = status.task_groups["g"].events.clone().unwrap();
        assert_eq!(events[0].count, Some(4));
        assert_eq!(events[0].previous_count, 1);
        assert!(matches!(
            s.change_group_count("default", "web", "nope", CountChange::Set(1))
                .await,
            Err(ServerError::BadRequest(m)) if m.starts_with("taskGroup")
        ));
        assert!(matches!(
            s.change_group_count("default", "other", "g", CountChange::Set(1))
                .await,
            Err(ServerError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn stop_deregisters_or_purges_and_ignores_unregistered_jobs() {
        let s = Server::open(ServerConfig::default()).unwrap();
        let t = template(1);
        assert!(s.stop_template(&t, false).await.unwrap().is_none());
        s.start_template(&t, false).await.unwrap();
        s.stop_template(&t, false).await.unwrap().unwrap();
        assert!(s.state.snapshot().job("default", "web").unwrap().stop);
        s.start_template(&t, false).await.unwrap();
        assert!(!s.state.snapshot().job("default", "web").unwrap().stop);
        s.stop_template(&t, true).await.unwrap().unwrap();
        assert!(s.state.snapshot().job("default", "web").is_none());
    }

    #[tokio::test]
    async fn a_broken_template_is_refused_with_its_error() {
        let s = Server::open(ServerConfig::default()).unwrap();
        let t = Template::read(Path::new("/t/bad.json"), "{\"ID\": ");
        let e = s.start_template(&t, false).await.unwrap_err();
        assert!(matches!(e, ServerError::BadRequest(m) if m.contains("invalid JSON job")));
    }
}
