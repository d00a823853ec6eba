//! Where templates get Nomad variables from: the servers, asked with the task's allocation
//! as its identity, by blocking queries so a change is seen as soon as it is written.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::rpc::{RpcError, ServerApi, WorkloadVarRequest};
use crate::structs::variable::{VariableDecrypted, VariableMetadata};

/// Reads variables for one task's templates.
#[async_trait]
pub trait VarSource: Send + Sync {
    /// The variable at `path` (None: there is none) and its index, once the index passes
    /// `min_index` or `wait` is over.
    async fn read(
        &self,
        path: &str,
        min_index: u64,
        wait: Duration,
    ) -> Result<(u64, Option<VariableDecrypted>), RpcError>;

    /// The variables under `prefix` the task may list, with the table's index.
    async fn list(
        &self,
        prefix: &str,
        min_index: u64,
        wait: Duration,
    ) -> Result<(u64, Vec<VariableMetadata>), RpcError>;
}

/// [`VarSource`] over the client's connection to the servers.
pub struct ServerVars {
    pub server: Arc<dyn ServerApi>,
    pub node_id: String,
    pub secret_id: String,
    pub alloc_id: String,
    pub task: String,
}

impl ServerVars {
    fn request(&self, path: &str, min_index: u64, wait: Duration) -> WorkloadVarRequest {
        WorkloadVarRequest {
            node_id: self.node_id.clone(),
            secret_id: self.secret_id.clone(),
            alloc_id: self.alloc_id.clone(),
            task: self.task.clone(),
            path: path.to_string(),
            min_query_index: min_index,
            max_query_time: i64::try_from(wait.as_nanos()).unwrap_or(i64::MAX),
        }
    }
}

#[async_trait]
impl VarSource for ServerVars {
    async fn read(
        &self,
        path: &str,
        min_index: u64,
        wait: Duration,
    ) -> Result<(u64, Option<VariableDecrypted>), RpcError> {
        let resp = self
            .server
            .read_workload_var(self.request(path, min_index, wait))
            .await?;
        Ok((resp.index, resp.data))
    }

    async fn list(
        &self,
        prefix: &str,
        min_index: u64,
        wait: Duration,
    ) -> Result<(u64, Vec<VariableMetadata>), RpcError> {
        let resp = self
            .server
            .list_workload_vars(self.request(prefix, min_index, wait))
            .await?;
        Ok((resp.index, resp.data))
    }
}

/// For a task runner with no servers to ask (tests): every read fails.
pub struct NoServers;

#[async_trait]
impl VarSource for NoServers {
    async fn read(
        &self,
        _path: &str,
        _min_index: u64,
        _wait: Duration,
    ) -> Result<(u64, Option<VariableDecrypted>), RpcError> {
        Err(RpcError::Unavailable(
            "this client has no servers to read variables from".into(),
        ))
    }

    async fn list(
        &self,
        _prefix: &str,
        _min_index: u64,
        _wait: Duration,
    ) -> Result<(u64, Vec<VariableMetadata>), RpcError> {
        Err(RpcError::Unavailable(
            "this client has no servers to read variables from".into(),
        ))
    }
}

/// What a client needs to give its tasks' templates a [`ServerVars`].
#[derive(Clone)]
pub struct ServerAccess {
    pub server: Arc<dyn ServerApi>,
    pub node_id: String,
    pub secret_id: String,
}

impl ServerAccess {
    /// The variable source of one task.
    pub fn for_task(&self, alloc_id: &str, task: &str) -> Arc<dyn VarSource> {
        Arc::new(ServerVars {
            server: self.server.clone(),
            node_id: self.node_id.clone(),
            secret_id: self.secret_id.clone(),
            alloc_id: alloc_id.to_string(),
            task: task.to_string(),
        })
    }
}
