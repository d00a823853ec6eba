//! What `GET /jobs` and `GET /job/{jobName}/summary` answer for a template (seed 001):
//! camelCase, the job's live counts and summary when it is registered, the template's
//! counts otherwise.

use serde::Serialize;

use super::template::Template;
use crate::server::http::job_summary;
use crate::server::state::Tables;
use crate::structs::TaskGroupSummary;

/// `status` of a template whose job is not registered.
pub const STATUS_STOPPED: &str = "stopped";

/// One template as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub name: String,
    pub status: String,
    pub autostart: bool,
    pub by_cluster: bool,
    pub task_groups: Vec<TaskGroupView>,
    pub hclv1: bool,
    /// Why the template cannot be started (it does not parse or is invalid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One task group of a template's job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskGroupView {
    pub name: String,
    pub count: i64,
    pub summary: GroupSummary,
}

/// The group's allocations by client status (from the job summary).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSummary {
    pub queued: i64,
    pub complete: i64,
    pub failed: i64,
    pub running: i64,
    pub starting: i64,
    pub lost: i64,
}

/// The seed's subset of a group's job summary (it has no `unknown`).
impl From<&TaskGroupSummary> for GroupSummary {
    fn from(s: &TaskGroupSummary) -> Self {
        GroupSummary {
            queued: s.queued,
            complete: s.complete,
            failed: s.failed,
            running: s.running,
            starting: s.starting,
            lost: s.lost,
        }
    }
}

/// The view of `t` as of `tables`.
pub fn job_view(tables: &Tables, t: &Template) -> JobView {
    let registered = t
        .job
        .as_ref()
        .ok()
        .and_then(|_| tables.job(&t.namespace, &t.name));
    let (status, task_groups) = match (&registered, &t.job) {
        (Some(job), _) => {
            let summary = job_summary(tables, job);
            let groups = job
                .groups()
                .iter()
                .map(|g| {
                    let s = summary.summary.get(&g.name).cloned().unwrap_or_default();
                    TaskGroupView {
                        name: g.name.clone(),
                        count: g.count,
                        summary: GroupSummary::from(&s),
                    }
                })
                .collect();
            let status = job.status.map_or("pending", |s| s.as_str());
            (status.to_string(), groups)
        }
        (None, Ok(job)) => {
            let groups = job
                .groups()
                .iter()
                .map(|g| TaskGroupView {
                    name: g.name.clone(),
                    count: g.count,
                    summary: GroupSummary::default(),
                })
                .collect();
            (STATUS_STOPPED.to_string(), groups)
        }
        (None, Err(_)) => (STATUS_STOPPED.to_string(), Vec::new()),
    };
    JobView {
        name: t.name.clone(),
        status,
        autostart: t.autostart,
        by_cluster: t.by_cluster,
        task_groups,
        hclv1: t.hclv1,
        error: t.job.as_ref().err().cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_the_seed_field_names_in_order() {
        let v = JobView {
            name: "jobName".into(),
            status: "running".into(),
            autostart: true,
            by_cluster: true,
            task_groups: vec![TaskGroupView {
                name: "takGroupName".into(),
                count: 0,
                summary: GroupSummary::default(),
            }],
            hclv1: false,
            error: None,
        };
        // The seed's example response, byte for byte.
        let seed = r#"{ "name": "jobName", "status": "running", "autostart": true, "byCluster": true, "taskGroups": [ { "name": "takGroupName", "count": 0, "summary": { "queued": 0, "complete": 0, "failed": 0, "running": 0, "starting": 0, "lost": 0 } } ], "hclv1": false }"#;
        let value: serde_json::Value = serde_json::from_str(seed).unwrap();
        assert_eq!(serde_json::to_value(&v).unwrap(), value);
        // Same order too (the seed's values hold no spaces).
        assert_eq!(serde_json::to_string(&v).unwrap(), seed.replace(' ', ""));
    }
}
