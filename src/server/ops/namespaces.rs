//! Namespace writes (Nomad's Namespace.UpsertNamespaces and Namespace.DeleteNamespaces), and
//! the admission check every job write makes against the job's namespace.

use crate::server::state::{Command, Request, Tables};
use crate::server::{Server, ServerError};
use crate::structs::{DEFAULT_NAMESPACE, Job, Namespace};

pub use crate::server::state::admit_job;

/// The node pool a job without one gets from its namespace's configuration, if any.
pub fn default_node_pool(tables: &Tables, job: &Job) -> Option<String> {
    if !job.node_pool.is_empty() {
        return None;
    }
    let ns = tables.namespace(&job.namespace)?;
    let pool = &ns.node_pool_configuration.as_ref()?.default;
    (!pool.is_empty()).then(|| pool.clone())
}

impl Server {
    /// Creates or updates a namespace. `path_name` is the name the URL named, if any.
    pub async fn upsert_namespace(
        &self,
        ns: Namespace,
        path_name: Option<&str>,
    ) -> Result<u64, ServerError> {
        if let Some(name) = path_name
            && ns.name != name
        {
            return Err(ServerError::BadRequest(
                "Namespace name does not match request path".to_string(),
            ));
        }
        if let Err(errs) = ns.validate() {
            return Err(ServerError::BadRequest(format!(
                "Invalid namespace {:?}: {errs}",
                ns.name
            )));
        }
        // Quotas are an Enterprise feature: no quota exists, so none can be named.
        if !ns.quota.is_empty() {
            return Err(ServerError::BadRequest(format!(
                "namespace {:?} using non-existent quota {:?}",
                ns.name, ns.quota
            )));
        }
        let (index, _) = self
            .state
            .commit(Request::new(Command::NamespaceUpsert { ns }))
            .await
            .map_err(ServerError::State)?;
        Ok(index)
    }

    /// Deletes a namespace that holds nothing still running.
    pub async fn delete_namespace(&self, name: &str) -> Result<u64, ServerError> {
        if name == DEFAULT_NAMESPACE {
            return Err(ServerError::BadRequest(
                "can not delete default namespace".to_string(),
            ));
        }
        let region = self.config.region.clone();
        let (index, _) = self
            .state
            .commit(Request::new(Command::NamespaceDelete {
                name: name.to_string(),
                region,
            }))
            .await
            .map_err(ServerError::refused_write)?;
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ops::jobs::JobRegisterRequest;

    fn server() -> std::sync::Arc<Server> {
        Server::open(crate::server::ServerConfig::default()).unwrap()
    }

    fn ns(v: serde_json::Value) -> Namespace {
        serde_json::from_value(v).unwrap()
    }

    fn job_in(ns: &str, driver: &str) -> JobRegisterRequest {
        serde_json::from_value(serde_json::json!({"Job": {"ID": "web", "Namespace": ns,
            "TaskGroups": [{"Name": "g", "Count": 1,
                "Tasks": [{"Name": "t", "Driver": driver, "Config": {"command": "sleep"}}]}]}}))
        .unwrap()
    }

    #[tokio::test]
    async fn default_exists_and_cannot_be_deleted() {
        let s = server();
        let d = s.state.snapshot().namespace("default").unwrap();
        assert_eq!(d.description, "Default shared namespace");
        assert_eq!((d.create_index, d.modify_index), (1, 1));
        let err = s.delete_namespace("default").await.unwrap_err();
        assert!(matches!(err, ServerError::BadRequest(_)));
        assert_eq!(err.to_string(), "can not delete default namespace");
        assert!(matches!(
            s.delete_namespace("nope").await,
            Err(ServerError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn upsert_keeps_create_index_and_validates() {
        let s = server();
        let first = s
            .upsert_namespace(ns(serde_json::json!({"Name": "team"})), None)
            .await
            .unwrap();
        let second = s
            .upsert_namespace(
                ns(serde_json::json!({"Name": "team", "Description": "d"})),
                Some("team"),
            )
            .await
            .unwrap();
        let n = s.state.snapshot().namespace("team").unwrap();
        assert_eq!((n.create_index, n.modify_index), (first, second));
        assert_eq!(n.description, "d");

        let err = s
            .upsert_namespace(ns(serde_json::json!({"Name": "other"})), Some("team"))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Namespace name does not match request path"
        );
        let err = s
            .upsert_namespace(ns(serde_json::json!({"Name": "a b"})), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("Invalid namespace \"a b\": 1 error occurred:"),
            "{err}"
        );
        let err = s
            .upsert_namespace(ns(serde_json::json!({"Name": "q", "Quota": "gold"})), None)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(err, "namespace \"q\" using non-existent quota \"gold\"");
    }

    #[tokio::test]
    async fn jobs_need_their_namespace_and_its_drivers() {
        let s = server();
        let err = s
            .register_job(job_in("team", "raw_exec"), None)
            .await
            .unwrap_err();
        assert!(matches!(err, ServerError::BadRequest(_)));
        assert_eq!(
            err.to_string(),
            "job \"web\" is in nonexistent namespace \"team\""
        );
        s.upsert_namespace(
            ns(serde_json::json!({"Name": "team",
                "Capabilities": {"DisabledTaskDrivers": ["raw_exec"]}})),
            None,
        )
        .await
        .unwrap();
        let err = s
            .register_job(job_in("team", "raw_exec"), None)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "used task driver \"raw_exec\" is not allowed in namespace \"team\""
        );
        assert!(s.state.snapshot().job("team", "web").is_none());
        s.register_job(job_in("team", "exec"), None).await.unwrap();
        assert!(s.state.snapshot().job("team", "web").is_some());
    }

    #[tokio::test]
    async fn a_namespace_with_live_jobs_cannot_be_deleted() {
        let s = server();
        s.upsert_namespace(ns(serde_json::json!({"Name": "team"})), None)
            .await
            .unwrap();
        s.register_job(job_in("team", "exec"), None).await.unwrap();
        let err = s.delete_namespace("team").await.unwrap_err();
        assert!(matches!(err, ServerError::BadRequest(_)));
        assert_eq!(
            err.to_string(),
            "1 error occurred:\n\t* namespace \"team\" has non-terminal jobs in regions: [global]\n"
        );
        s.deregister_job("team", "web", false, 0).await.unwrap();
        s.delete_namespace("team").await.unwrap();
        assert!(s.state.snapshot().namespace("team").is_none());
    }

    #[tokio::test]
    async fn a_job_without_a_pool_gets_its_namespaces_default_pool() {
        let s = server();
        s.upsert_namespace(
            ns(serde_json::json!({"Name": "team",
                "NodePoolConfiguration": {"Default": "prod"}})),
            None,
        )
        .await
        .unwrap();
        s.register_job(job_in("team", "exec"), None).await.unwrap();
        assert_eq!(
            s.state.snapshot().job("team", "web").unwrap().node_pool,
            "prod"
        );
        let mut own = job_in("team", "exec");
        own.job.as_mut().unwrap().node_pool = "gpu".into();
        s.register_job(own, None).await.unwrap();
        assert_eq!(
            s.state.snapshot().job("team", "web").unwrap().node_pool,
            "gpu"
        );
        s.register_job(job_in("default", "exec"), None)
            .await
            .unwrap();
        assert_eq!(
            s.state.snapshot().job("default", "web").unwrap().node_pool,
            "default"
        );
        let err = s
            .upsert_namespace(
                ns(serde_json::json!({"Name": "x",
                    "NodePoolConfiguration": {"Allowed": ["a"], "Denied": ["b"]}})),
                None,
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("only one of Allowed and Denied"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_state_dir_from_before_namespaces_gets_default_and_keeps_its_jobs() {
        let dir = std::env::temp_dir().join(format!("yurt-ns-old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // What an older build left: its tables, none for namespaces, one job in plain JSON.
        {
            let db = redb::Database::create(dir.join("state.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let jobs: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("jobs");
                let mut t = txn.open_table(jobs).unwrap();
                let job = serde_json::json!({"ID": "old", "Namespace": "default",
                    "TaskGroups": [], "CreateIndex": 5, "ModifyIndex": 5});
                let bytes = serde_json::to_vec(&job).unwrap();
                t.insert("default\0old", bytes.as_slice()).unwrap();
                let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
                let mut m = txn.open_table(meta).unwrap();
                m.insert("index", b"5".as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        let s = Server::open(crate::server::ServerConfig {
            data_dir: Some(dir.clone()),
            ..Default::default()
        })
        .unwrap();
        let snap = s.state.snapshot();
        assert!(snap.job("default", "old").is_some());
        assert_eq!(
            snap.namespace("default").unwrap().description,
            "Default shared namespace"
        );
        assert_eq!(snap.namespaces.len(), 1);
        drop(snap);
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn namespaces_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("yurt-ns-restart-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = crate::server::ServerConfig {
            data_dir: Some(dir.clone()),
            ..Default::default()
        };
        {
            let s = Server::open(config.clone()).unwrap();
            s.upsert_namespace(
                ns(serde_json::json!({"Name": "team", "Meta": {"owner": "ops"}})),
                None,
            )
            .await
            .unwrap();
        }
        let s = Server::open(config).unwrap();
        let snap = s.state.snapshot();
        let team = snap.namespace("team").unwrap();
        assert_eq!(team.meta.as_ref().unwrap()["owner"], "ops");
        assert!(snap.namespace("default").is_some());
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
