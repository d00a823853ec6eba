//! Variables read by task templates (`nomadVar`, `nomadVarList`), answered to the client
//! that runs the task with the task's allocation as its identity, as Nomad's workload
//! identities are: a task may read and list `nomad/jobs`, `nomad/jobs/<job>`,
//! `nomad/jobs/<job>/<group>` and `nomad/jobs/<job>/<group>/<task>` in its namespace, plus
//! what the ACL policies attached to its job (`JobACL`) grant. With ACLs off it may read
//! everything, as in Nomad.

use std::time::Duration;

use super::nodes::authenticate;
use crate::acl::{Acl, VarOp};
use crate::rpc::{RpcError, WorkloadVarListResponse, WorkloadVarRequest, WorkloadVarResponse};
use crate::server::Server;
use crate::server::state::{Table, Tables};

/// Who a workload is: the claims Nomad puts in a task's identity.
#[derive(Debug, Clone)]
struct Claim {
    namespace: String,
    job: String,
    group: String,
    task: String,
}

impl Claim {
    /// The paths every task may read without a policy.
    fn implicit(&self, ns: &str, path: &str) -> bool {
        if ns != self.namespace {
            return false;
        }
        let Some(rest) = path.strip_prefix("nomad/jobs") else {
            return false;
        };
        let own = [
            String::new(),
            format!("/{}", self.job),
            format!("/{}/{}", self.job, self.group),
            format!("/{}/{}/{}", self.job, self.group, self.task),
        ];
        own.iter().any(|p| p == rest)
    }

    /// Whether a policy's `JobACL` attaches it to this workload.
    fn attached(&self, job_acl: &serde_json::Value) -> bool {
        let field = |k: &str| job_acl.get(k).and_then(|v| v.as_str()).unwrap_or("");
        let ns = match field("Namespace") {
            "" => crate::structs::DEFAULT_NAMESPACE,
            ns => ns,
        };
        ns == self.namespace
            && field("JobID") == self.job
            && (field("Group").is_empty() || field("Group") == self.group)
            && (field("Task").is_empty() || field("Task") == self.task)
    }
}

/// How long a request may block: its `MaxQueryTime`, capped like every blocking query, with
/// the usual jitter; 0 answers at once.
fn wait_of(req: &WorkloadVarRequest) -> Duration {
    match u64::try_from(req.max_query_time) {
        Ok(0) | Err(_) => Duration::ZERO,
        Ok(n) => crate::http::blocking::with_jitter(
            Duration::from_nanos(n).min(crate::http::query::MAX_WAIT),
        ),
    }
}

impl Server {
    /// Checks that the request comes from the node running the allocation and names one of
    /// its tasks; answers the task's claim and what its job's policies grant.
    fn workload(&self, snap: &Tables, req: &WorkloadVarRequest) -> Result<(Claim, Acl), RpcError> {
        let node = authenticate(snap, &req.node_id, &req.secret_id)?;
        let alloc = snap.alloc(&req.alloc_id).ok_or_else(|| {
            RpcError::BadRequest(format!("unknown allocation {:?}", req.alloc_id))
        })?;
        if *alloc.node_id != *node.id {
            tracing::warn!(node_id = %node.id, alloc_id = %alloc.id, "node asked for variables as an allocation of another node");
            return Err(RpcError::PermissionDenied);
        }
        let has_task = alloc
            .group()
            .is_some_and(|g| g.tasks().iter().any(|t| t.name == req.task));
        if !has_task {
            return Err(RpcError::BadRequest(format!(
                "allocation {} has no task {:?}",
                alloc.id, req.task
            )));
        }
        let claim = Claim {
            namespace: alloc.namespace.to_string(),
            job: alloc.job_id.to_string(),
            group: alloc.task_group.to_string(),
            task: req.task.clone(),
        };
        let acl = if self.config.acl.enabled {
            let rules: Vec<_> = snap
                .acl
                .policies
                .values()
                .filter(|p| p.job_acl.as_ref().is_some_and(|j| claim.attached(j)))
                .filter_map(|p| crate::acl::parse(&p.rules).ok())
                .collect();
            Acl::from_policies(&rules)
        } else {
            Acl::management()
        };
        Ok((claim, acl))
    }

    fn workload_may(acl: &Acl, claim: &Claim, ns: &str, path: &str, op: VarOp) -> bool {
        claim.implicit(ns, path) || acl.allow_variable_op(ns, path, op)
    }

    /// One variable for a task's template, as a blocking query on the variables table.
    pub async fn read_workload_var(
        &self,
        req: WorkloadVarRequest,
    ) -> Result<WorkloadVarResponse, RpcError> {
        if req.path.is_empty() {
            return Err(RpcError::BadRequest("missing variable path".into()));
        }
        let deadline = tokio::time::Instant::now() + wait_of(&req);
        let mut watch = self.state.watch(Table::Variables);
        loop {
            watch.borrow_and_update();
            let snap = self.state.snapshot();
            let (claim, acl) = self.workload(&snap, &req)?;
            if !Self::workload_may(&acl, &claim, &claim.namespace, &req.path, VarOp::Read) {
                return Err(RpcError::PermissionDenied);
            }
            let found = snap.vars.get(&claim.namespace, &req.path);
            let index = found.as_ref().map_or_else(
                || snap.table_index(Table::Variables),
                |v| v.meta.modify_index,
            );
            if index > req.min_query_index || tokio::time::Instant::now() >= deadline {
                let data = match found {
                    Some(v) => {
                        let mut var = self
                            .open_variable(&v)
                            .map_err(|e| RpcError::Unavailable(e.to_string()))?;
                        var.meta.lock = None;
                        Some(var)
                    }
                    None => None,
                };
                return Ok(WorkloadVarResponse { data, index });
            }
            tokio::select! {
                changed = watch.changed() => if changed.is_err() {
                    return Err(RpcError::Unavailable("server shutting down".into()));
                },
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// The variables under a prefix a task's template may list, as a blocking query.
    pub async fn list_workload_vars(
        &self,
        req: WorkloadVarRequest,
    ) -> Result<WorkloadVarListResponse, RpcError> {
        let deadline = tokio::time::Instant::now() + wait_of(&req);
        let mut watch = self.state.watch(Table::Variables);
        loop {
            watch.borrow_and_update();
            let snap = self.state.snapshot();
            let (claim, acl) = self.workload(&snap, &req)?;
            let index = snap.table_index(Table::Variables);
            if index > req.min_query_index || tokio::time::Instant::now() >= deadline {
                let data = snap
                    .vars
                    .with_prefix(&claim.namespace, &req.path)
                    .iter()
                    .filter(|v| {
                        Self::workload_may(
                            &acl,
                            &claim,
                            &v.meta.namespace,
                            &v.meta.path,
                            VarOp::List,
                        )
                    })
                    .map(|v| {
                        let mut meta = v.meta.clone();
                        meta.lock = None;
                        meta
                    })
                    .collect();
                return Ok(WorkloadVarListResponse { data, index });
            }
            tokio::select! {
                changed = watch.changed() => if changed.is_err() {
                    return Err(RpcError::Unavailable("server shutting down".into()));
                },
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> Claim {
        Claim {
            namespace: "default".into(),
            job: "web".into(),
            group: "g".into(),
            task: "t".into(),
        }
    }

    #[test]
    fn a_task_reads_its_own_job_paths_and_nothing_else_by_default() {
        let c = claim();
        for ok in [
            "nomad/jobs",
            "nomad/jobs/web",
            "nomad/jobs/web/g",
            "nomad/jobs/web/g/t",
        ] {
            assert!(c.implicit("default", ok), "{ok}");
        }
        for no in [
            "nomad/jobs/other",
            "nomad/jobs/web/g/t/deeper",
            "nomad/jobs/web/h",
            "nomad/jobsx",
            "app/db",
        ] {
            assert!(!c.implicit("default", no), "{no}");
        }
        assert!(!c.implicit("prod", "nomad/jobs/web"));
    }

    #[test]
    fn job_acl_attaches_a_policy_to_a_job_group_or_task() {
        let c = claim();
        let j = |v: serde_json::Value| c.attached(&v);
        assert!(j(serde_json::json!({"JobID": "web"})));
        assert!(j(
            serde_json::json!({"Namespace": "default", "JobID": "web", "Group": "g"})
        ));
        assert!(j(
            serde_json::json!({"JobID": "web", "Group": "g", "Task": "t"})
        ));
        assert!(!j(
            serde_json::json!({"JobID": "web", "Group": "g", "Task": "u"})
        ));
        assert!(!j(serde_json::json!({"JobID": "api"})));
        assert!(!j(serde_json::json!({"Namespace": "prod", "JobID": "web"})));
    }
}
