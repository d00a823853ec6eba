//! The client agent: fingerprints the machine, registers and heartbeats with the servers,
//! watches the node's allocations and runs them.
//!
//! ```no_run
//! # async fn demo(server: std::sync::Arc<dyn yurt::rpc::ServerApi>,
//! #               drivers: Vec<std::sync::Arc<dyn yurt_drivers::TaskDriver>>) {
//! use yurt::client::{Client, ClientConfig, ShutdownMode};
//! let cfg = ClientConfig { data_dir: "/tmp/yurt".into(), dev_mode: true, ..Default::default() };
//! let client = Client::new(cfg, server, drivers).await.unwrap();
//! let runner = tokio::spawn({ let c = client.clone(); async move { c.run().await } });
//! // ...
//! client.shutdown(ShutdownMode::Detach);
//! runner.await.unwrap();
//! # }
//! ```

pub mod alloc_runner;
pub mod alloc_watcher;
pub mod allocdir;
pub mod artifact;
pub mod checks;
pub mod config;
mod driver_events;
pub mod fingerprint;
pub mod gauges;
pub mod gc;
pub mod heartbeat;
pub mod heartbeat_stop;
pub mod http;
pub mod node_state;
pub mod registration;
mod restore;
pub mod server_http;
pub mod server_list;
pub mod services;
pub mod state_db;
pub mod status_sync;
pub mod task_runner;
pub mod taskenv;
pub mod template;
pub mod util;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use tokio::sync::watch;

use crate::rpc::ServerApi;
use crate::structs::{AllocClientStatus, AllocDeploymentStatus, Allocation, Node};
use yurt_drivers::TaskDriver;

pub use config::{ClientConfig, GcConfig, Timings};
pub use server_http::HttpServerApi;
pub use server_list::ServerList;

use alloc_runner::{AllocRunner, AllocRunnerConfig, AllocRunnerHandle};
use node_state::NodeState;
use state_db::{JsonStateDb, StateDb};
use status_sync::StatusSync;

/// Why the client could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Fingerprinting or the node identity failed.
    #[error("fingerprinting: {0}")]
    Fingerprint(#[from] fingerprint::FingerprintError),
    /// The state db could not be opened.
    #[error("state db: {0}")]
    StateDb(#[from] state_db::StateDbError),
    /// A client directory could not be created or made private.
    #[error("{context} {path}: {source}")]
    Dir {
        /// What was being done.
        context: &'static str,
        /// The directory.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// What happens to running allocations when the client stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Leave tasks running (a later agent reattaches to them); Nomad's graceful stop.
    Detach,
    /// Kill every task and remove the allocations (dev mode and tests).
    KillAllocs,
}

/// Client state shared by its loops.
pub(crate) struct Inner {
    cfg: ClientConfig,
    server: Arc<dyn ServerApi>,
    drivers: BTreeMap<String, Arc<dyn TaskDriver>>,
    node: NodeState,
    db: Arc<dyn StateDb>,
    allocs: Mutex<BTreeMap<String, AllocRunnerHandle>>,
    invalid: Mutex<HashSet<String>>,
    status: StatusSync,
    services: services::ServiceSync,
    checks: checks::CheckStore,
    host_env: Arc<BTreeMap<String, String>>,
    node_values: taskenv::SharedNodeValues,
    shutdown: watch::Sender<bool>,
    mode: Mutex<ShutdownMode>,
    contacted: watch::Sender<bool>,
}

/// The client agent. Cheap to clone; all clones are the same client.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Fingerprints the machine, loads the node identity and opens the state db. `server`
    /// is the in-process server in `-dev` or an [`HttpServerApi`] otherwise.
    pub async fn new(
        cfg: ClientConfig,
        server: Arc<dyn ServerApi>,
        drivers: Vec<Arc<dyn TaskDriver>>,
    ) -> Result<Client, ClientError> {
        use std::os::unix::fs::PermissionsExt;
        for (dir, mode) in [(cfg.state_dir(), 0o700), (cfg.alloc_root(), 0o711)] {
            if !dir.exists() {
                std::fs::create_dir_all(&dir).map_err(|source| ClientError::Dir {
                    context: "creating",
                    path: dir.clone(),
                    source,
                })?;
                // The state dir holds task handles and the alloc root other users' tasks:
                // a mode that could not be set is a fault, not a detail.
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).map_err(
                    |source| ClientError::Dir {
                        context: "setting the mode of",
                        path: dir.clone(),
                        source,
                    },
                )?;
            }
        }
        let drivers: BTreeMap<String, Arc<dyn TaskDriver>> = drivers
            .into_iter()
            .map(|d| (d.name().to_string(), d))
            .collect();
        let node = fingerprint::fingerprint_node(&cfg, &drivers).await?;
        let db = Arc::new(JsonStateDb::open(cfg.state_dir().join("state"))?);
        let denylist: Vec<&str> = cfg.env_denylist.iter().map(String::as_str).collect();
        let host_env = taskenv::filtered_host_env(&denylist);
        Ok(Client {
            inner: Arc::new(Inner {
                server,
                drivers,
                node: NodeState::new(node),
                db,
                allocs: Mutex::new(BTreeMap::new()),
                invalid: Mutex::new(HashSet::new()),
                status: StatusSync::new(),
                services: services::ServiceSync::new(),
                checks: checks::CheckStore::default(),
                host_env: Arc::new(host_env),
                node_values: taskenv::SharedNodeValues::default(),
                shutdown: watch::Sender::new(false),
                mode: Mutex::new(ShutdownMode::Detach),
                contacted: watch::Sender::new(false),
                cfg,
            }),
        })
    }

    /// Restores the allocations an earlier agent process left (reattaching to their running
    /// tasks), then runs registration, heartbeats, the alloc watcher, status sync, driver
    /// re-fingerprinting and GC until [`Client::shutdown`]; then detaches from or kills the
    /// allocations as asked.
    pub async fn run(&self) {
        let inner = &self.inner;
        // Before the alloc watcher's first diff, so restored allocations count as known.
        restore::restore_allocs(inner);
        let t = &inner.cfg.timings;
        let rx = || inner.shutdown.subscribe();
        let mut set = tokio::task::JoinSet::new();
        set.spawn(registration::run(
            inner.server.clone(),
            inner.node.clone(),
            (t.register_backoff_min, t.register_backoff_max),
            rx(),
        ));
        set.spawn(heartbeat::run(
            inner.server.clone(),
            inner.node.clone(),
            (t.retry_backoff_min, t.retry_backoff_max),
            rx(),
        ));
        set.spawn(alloc_watcher::run(inner.clone(), rx()));
        set.spawn(heartbeat_stop::run(inner.clone(), rx()));
        set.spawn(inner.status.clone().run(
            inner.server.clone(),
            inner.node.clone(),
            inner.contacted.subscribe(),
            status_sync::SyncTiming {
                tick: t.status_sync_tick,
                batch_ticks: t.status_sync_batch_ticks,
                backoff: (t.retry_backoff_min, t.retry_backoff_max),
            },
            rx(),
        ));
        set.spawn(inner.services.clone().run(
            inner.server.clone(),
            inner.node.clone(),
            inner.contacted.subscribe(),
            (t.retry_backoff_min, t.retry_backoff_max),
            rx(),
        ));
        set.spawn(fingerprint::run_driver_fingerprinter(
            inner.node.clone(),
            inner.drivers.clone(),
            inner.cfg.driver_fingerprint_interval,
            rx(),
        ));
        set.spawn(gc_loop(inner.clone(), rx()));
        while set.join_next().await.is_some() {}

        let mode = *inner.mode.lock().unwrap_or_else(|p| p.into_inner());
        let runners: Vec<AllocRunnerHandle> = inner
            .allocs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        match mode {
            ShutdownMode::Detach => {
                runners.iter().for_each(AllocRunnerHandle::detach);
                // Returning sooner lets the agent tear the runtime down under running task
                // runners, whose drivers' exit watchers it cancels: a runner that saw that
                // as its task's exit would record it and forget the handle, and the next
                // agent would start the task a second time.
                let detached = runners
                    .iter()
                    .flat_map(|r| r.tasks().values().map(|t| t.wait_done()));
                futures::future::join_all(detached).await;
            }
            ShutdownMode::KillAllocs => {
                futures::future::join_all(runners.iter().map(AllocRunnerHandle::destroy)).await;
            }
        }
    }

    /// Stops the client's loops; [`Client::run`] returns once allocations are handled per
    /// `mode`.
    pub fn shutdown(&self, mode: ShutdownMode) {
        *self.inner.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
        self.inner.shutdown.send_replace(true);
    }

    /// The node as last fingerprinted.
    pub fn node(&self) -> Node {
        self.inner.node.node()
    }

    /// The node's ID.
    pub fn node_id(&self) -> String {
        self.inner.node.identity().0
    }

    /// Whether the servers currently know the node.
    pub fn is_registered(&self) -> bool {
        self.inner.node.is_registered()
    }

    /// The client's data and alloc directories and other settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    /// The runner of an allocation on this node.
    pub fn alloc(&self, id: &str) -> Option<AllocRunnerHandle> {
        self.inner
            .allocs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Every allocation runner on this node.
    pub fn allocs(&self) -> Vec<AllocRunnerHandle> {
        self.inner
            .allocs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The node's service registrations (for inspection).
    pub fn service_sync(&self) -> &services::ServiceSync {
        &self.inner.services
    }

    /// The latest results of an allocation's checks, by check ID; None when this client
    /// does not run the allocation.
    pub fn check_results(
        &self,
        alloc_id: &str,
    ) -> Option<BTreeMap<String, crate::structs::service::CheckQueryResult>> {
        self.alloc(alloc_id)?;
        Some(self.inner.checks.results(alloc_id))
    }

    /// The outgoing status queue (for inspection).
    pub fn status_sync(&self) -> &StatusSync {
        &self.inner.status
    }

    /// Destroys a terminal allocation's runner and directory now (`/v1/client/allocation/<id>/gc`).
    pub async fn gc_alloc(&self, id: &str) -> bool {
        match self.alloc(id) {
            Some(a) if a.finished_at().is_some() && !a.is_destroyed() => {
                a.destroy().await;
                true
            }
            _ => false,
        }
    }

    /// Destroys every terminal allocation's runner and directory now (`/v1/client/gc`);
    /// returns how many went.
    pub async fn gc_terminal_allocs(&self) -> usize {
        let finished: Vec<AllocRunnerHandle> = self
            .allocs()
            .into_iter()
            .filter(|a| a.finished_at().is_some() && !a.is_destroyed())
            .collect();
        for a in &finished {
            a.destroy().await;
        }
        finished.len()
    }
}

impl Inner {
    /// The current alloc runners.
    fn allocs_snapshot(&self) -> Vec<AllocRunnerHandle> {
        self.allocs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn local_indexes(&self) -> HashMap<String, u64> {
        self.allocs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, a)| (id.clone(), a.alloc().alloc_modify_index))
            .collect()
    }

    fn invalid_ids(&self) -> HashSet<String> {
        self.invalid
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Creates and starts the runner of an allocation the server sent.
    fn add_alloc(&self, alloc: Allocation) {
        let id = alloc.id.clone();
        if alloc.server_terminal() && alloc.client_terminal() {
            // Done on both sides before this client ever ran it (e.g. marked lost while the
            // node was down): a fresh runner would only report a made-up `complete` over
            // the server's verdict and wipe its task history. Skip it like an invalid alloc
            // so it is not pulled again; it leaves the set when the server drops it.
            tracing::debug!(alloc_id = %id, client_status = %alloc.client_status, "ignoring allocation already terminal on the server");
            self.invalid
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id);
            return;
        }
        let node_id = alloc.node_id.clone();
        if let Err(e) = self.spawn_runner(alloc, None) {
            tracing::error!(alloc_id = %id, error = %e, "cannot run allocation");
            self.invalid
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone());
            self.status.push(Allocation {
                id,
                node_id,
                client_status: AllocClientStatus::Failed,
                client_description: format!("Unable to add allocation due to error: {e}"),
                deployment_status: Some(AllocDeploymentStatus {
                    healthy: Some(false),
                    timestamp: Some(Utc::now()),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }

    /// The servers as task templates reach them: with this node's identity.
    fn server_access(&self) -> template::source::ServerAccess {
        let node = self.node.node();
        template::source::ServerAccess {
            server: self.server.clone(),
            node_id: node.id,
            secret_id: node.secret_id,
        }
    }

    /// Builds an alloc runner (restoring it from `restore` if given), registers it and
    /// starts it.
    fn spawn_runner(
        &self,
        alloc: Allocation,
        restore: Option<BTreeMap<String, state_db::TaskRecord>>,
    ) -> Result<(), alloc_runner::AllocRunnerError> {
        let id = alloc.id.clone();
        let (runner, handle) = AllocRunner::new(AllocRunnerConfig {
            alloc,
            alloc_root: self.cfg.alloc_root(),
            drivers: self.drivers.clone(),
            node: self.node_values.get(&self.node.node(), &self.cfg.region),
            region: self.cfg.region.clone(),
            host_env: self.host_env.clone(),
            db: self.db.clone(),
            max_kill_timeout: self.cfg.max_kill_timeout,
            status: self.status.clone(),
            services: self.services.clone(),
            checks: self.checks.clone(),
            restore,
            contacted: self.contacted.subscribe(),
            artifact: Arc::new(self.cfg.artifact.clone()),
            servers: Some(self.server_access()),
        })?;
        self.allocs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, handle);
        tokio::spawn(runner.run());
        Ok(())
    }

    fn update_alloc(&self, alloc: Allocation) {
        if let Some(a) = self
            .allocs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&alloc.id)
        {
            a.update(alloc);
        }
    }

    fn remove_alloc(&self, id: &str) {
        let runner = self
            .allocs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.invalid
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.status.forget(id);
        if let Some(r) = runner {
            let status = self.status.clone();
            let id = id.to_string();
            tokio::spawn(async move {
                r.destroy().await;
                // The server has forgotten the allocation; the kill's updates are moot.
                status.forget(&id);
            });
        }
    }
}

async fn gc_loop(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(inner.cfg.gc.interval) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let runners: Vec<AllocRunnerHandle> = inner
            .allocs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for r in gc::select(&runners, &inner.cfg.gc, Instant::now()) {
            tracing::info!(alloc_id = %r.id(), "garbage collecting terminal allocation");
            r.destroy().await;
        }
    }
}

#[cfg(test)]
mod restore_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;
