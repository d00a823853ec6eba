//! `POST /v1/job/:id/plan`: a dry run of the scheduler against the submitted job. Nothing is
//! written: the job is swapped into a private copy of the state and scheduled there.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::jobs::same_spec;
use super::namespaces::{admit_job, default_node_pool};
use crate::server::http::JobPlanRequest;
use crate::server::job_diff::job_diff_from;
use crate::server::scheduler::{self, Plan};
use crate::server::state::ns_key;
use crate::server::{Server, ServerError};
use crate::structs::canonicalize::canonicalize_job;
use crate::structs::eval::trigger;
use crate::structs::validate::validate_job;
use crate::structs::{AllocMetric, DesiredUpdates, Evaluation, Job};

/// The plan's annotations.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlanAnnotations {
    #[serde(rename = "DesiredTGUpdates")]
    pub desired_tg_updates: BTreeMap<String, DesiredUpdates>,
    pub preempted_allocs: Option<Vec<Value>>,
}

/// Answer to a job plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobPlanResponse {
    pub annotations: PlanAnnotations,
    #[serde(rename = "FailedTGAllocs")]
    pub failed_tg_allocs: Option<BTreeMap<String, AllocMetric>>,
    pub job_modify_index: u64,
    pub created_evals: Option<Vec<Evaluation>>,
    pub diff: Option<Value>,
    /// The next launch of a periodic job (RFC 3339), Go's zero time otherwise.
    pub next_periodic_launch: String,
    pub warnings: String,
    pub index: u64,
}

/// Go's zero `time.Time`, which Nomad returns for jobs that are not periodic.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl Server {
    /// Schedules `req.Job` as if it were registered now, without committing anything.
    pub fn plan_job(
        &self,
        path_id: &str,
        namespace: &str,
        req: JobPlanRequest,
    ) -> Result<JobPlanResponse, ServerError> {
        let mut job = req
            .job
            .ok_or_else(|| ServerError::BadRequest("Job must be specified".to_string()))?;
        if job.id.is_empty() {
            return Err(ServerError::BadRequest("Job must have a valid ID".into()));
        }
        if job.id != path_id {
            return Err(ServerError::BadRequest("Job ID does not match".into()));
        }
        if job.namespace.is_empty() && !namespace.is_empty() && namespace != "*" {
            job.namespace = namespace.to_string();
        }
        let snap = self.state.snapshot();
        if let Some(pool) = default_node_pool(&snap, &job) {
            job.node_pool = pool;
        }
        canonicalize_job(&mut job, &self.config.region);
        validate_job(&job).map_err(|e| ServerError::BadRequest(e.to_string()))?;
        admit_job(&snap, &job).map_err(ServerError::BadRequest)?;

        let existing = snap.job(&job.namespace, &job.id);
        let mut planned = job.clone();
        match existing.as_ref() {
            Some(old) if same_spec(old, &job) => planned = (**old).clone(),
            Some(old) => {
                planned.version = old.version + 1;
                planned.create_index = old.create_index;
                planned.job_modify_index = snap.index + 1;
            }
            None => {
                planned.version = 0;
                planned.job_modify_index = snap.index + 1;
            }
        }
        let mut view = (*snap).clone();
        view.jobs.insert(
            ns_key(&planned.namespace, &planned.id),
            Arc::new(planned.clone()),
        );
        let mut eval = Server::new_eval(
            &planned.namespace,
            &planned.id,
            &planned.r#type,
            planned.priority,
            trigger::JOB_REGISTER,
        );
        eval.annotate_plan = true;
        eval.job_modify_index = planned.job_modify_index;
        // Periodic and parameterized jobs only spawn children: nothing of theirs is placed.
        let outcome = if planned.is_parent() {
            scheduler::SchedulerOutcome::default()
        } else {
            scheduler::schedule(&eval, &view).map_err(|e| ServerError::Refused(e.to_string()))?
        };

        let mut desired = outcome.desired_updates;
        if desired.is_empty() {
            desired = count_plan(&outcome.plan);
        }
        let diff = req.diff.then(|| {
            let mut d = job_diff_from(existing.as_deref(), &job);
            annotate_diff(&mut d, &job, &desired);
            d
        });
        let mut created: Vec<Evaluation> = outcome.followup_evals;
        if let Some(blocked) = outcome.blocked_eval {
            created.insert(0, blocked);
        }
        Ok(JobPlanResponse {
            annotations: PlanAnnotations {
                desired_tg_updates: desired,
                preempted_allocs: None,
            },
            failed_tg_allocs: (!outcome.failed_tg_allocs.is_empty())
                .then_some(outcome.failed_tg_allocs),
            job_modify_index: existing.as_ref().map_or(0, |j| j.job_modify_index),
            created_evals: (!created.is_empty()).then_some(created),
            diff,
            next_periodic_launch: job
                .periodic
                .as_ref()
                .filter(|p| p.enabled)
                .and_then(|p| {
                    crate::server::periodic::next_launch(p, chrono::Utc::now())
                        .ok()
                        .flatten()
                })
                .map_or_else(
                    || ZERO_TIME.to_string(),
                    |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ),
            warnings: String::new(),
            index: 0,
        })
    }
}

/// Puts each group's decisions into its diff as Nomad's `Updates` map (`create`, `destroy`,
/// `in-place update`, …; the CLI prints these), adding an unchanged (`None`) entry for groups
/// the diff does not otherwise list.
fn annotate_diff(diff: &mut Value, job: &Job, desired: &BTreeMap<String, DesiredUpdates>) {
    let mut groups: Vec<Value> = diff["TaskGroups"].as_array().cloned().unwrap_or_default();
    for g in job.groups() {
        if !groups.iter().any(|d| d["Name"] == g.name.as_str()) {
            groups.push(serde_json::json!({
                "Type": "None", "Name": g.name, "Fields": null, "Objects": null, "Tasks": null,
            }));
        }
    }
    for entry in &mut groups {
        let Some(d) = entry["Name"].as_str().and_then(|n| desired.get(n)) else {
            continue;
        };
        let counts = [
            ("ignore", d.ignore),
            ("create", d.place),
            ("migrate", d.migrate),
            ("destroy", d.stop),
            ("in-place update", d.in_place_update),
            ("create/destroy update", d.destructive_update),
            ("canary", d.canary),
        ];
        let updates: serde_json::Map<String, Value> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.to_string(), Value::from(*n)))
            .collect();
        if !updates.is_empty() {
            entry["Updates"] = Value::Object(updates);
        }
    }
    groups.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    diff["TaskGroups"] = if groups.is_empty() {
        Value::Null
    } else {
        Value::Array(groups)
    };
}

/// Decisions counted from a plan, for schedulers that do not count them (system jobs):
/// new allocations are placements, changed existing ones in-place updates.
fn count_plan(plan: &Plan) -> BTreeMap<String, DesiredUpdates> {
    let mut out: BTreeMap<String, DesiredUpdates> = BTreeMap::new();
    for a in plan.node_update.values().flatten() {
        out.entry(a.task_group.to_string()).or_default().stop += 1;
    }
    for a in plan.node_allocation.values().flatten() {
        let d = out.entry(a.task_group.to_string()).or_default();
        if a.create_index == 0 {
            d.place += 1;
        } else {
            d.in_place_update += 1;
        }
    }
    out
}
