//! The bundled server: state store, evaluation broker, schedulers, plan applier
//! ([`plan_apply`]), the server's operations ([`ops`]: register, scale, dispatch, node
//! updates, …), heartbeats and the server-side HTTP handlers.

pub mod acl_resolve;
pub mod blocked;
pub mod broker;
pub mod cluster_api;
pub mod deployments;
pub mod drainer;
pub mod events;
pub mod gauges;
pub mod gc;
pub mod heartbeat;
pub mod http;
pub mod job_diff;
pub mod keyring;
mod lookup;
pub mod ops;
pub mod periodic;
pub mod plan_apply;
pub mod raft;
pub mod scheduler;
pub mod service_choose;
pub mod state;
pub mod variable_locks;
pub mod worker;
pub mod worker_status;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use blocked::BlockedEvals;
use broker::EvalBroker;
use heartbeat::Heartbeats;
use state::{StateError, StateStore};

use crate::structs::{EvalStatus, Evaluation, generate_uuid, time::now_nanos};

/// Server settings (from the agent config).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// This server's name (the agent's), as the Raft membership shows it.
    pub name: String,
    /// Region this server serves.
    pub region: String,
    /// Datacenter of this server.
    pub datacenter: String,
    /// Where state lives (`data_dir/server`); None keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// Scheduler workers (default: the number of cores).
    pub num_schedulers: usize,
    /// Lowest heartbeat TTL handed to clients.
    pub min_heartbeat_ttl: Duration,
    /// Extra time past the TTL before a silent node is marked down.
    pub heartbeat_grace: Duration,
    /// How long a node known before this server started has to heartbeat again
    /// (`failover_heartbeat_ttl`): clients backing off while the server was away must not be
    /// declared down the moment it returns.
    pub failover_heartbeat_ttl: Duration,
    /// The advertised RPC address (`ip:port`) clients use.
    pub rpc_advertise: String,
    /// ACL enforcement and token limits.
    pub acl: crate::acl::AclSettings,
    /// The scheduler configuration a new cluster starts with.
    pub default_scheduler_config: crate::structs::SchedulerConfiguration,
    /// Garbage collection interval and thresholds.
    pub gc: gc::GcConfig,
    /// Publish the events of state writes (`enable_event_broker`).
    pub enable_event_broker: bool,
    /// How many writes' events are kept for subscribers resuming from an index
    /// (`event_buffer_size`).
    pub event_buffer_size: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            name: String::new(),
            region: crate::structs::DEFAULT_REGION.to_string(),
            datacenter: "dc1".to_string(),
            data_dir: None,
            num_schedulers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .max(1),
            min_heartbeat_ttl: Duration::from_secs(10),
            heartbeat_grace: Duration::from_secs(10),
            failover_heartbeat_ttl: heartbeat::DEFAULT_FAILOVER_TTL,
            rpc_advertise: "127.0.0.1:4647".to_string(),
            acl: crate::acl::AclSettings::default(),
            default_scheduler_config: crate::structs::SchedulerConfiguration::default(),
            gc: gc::GcConfig::default(),
            enable_event_broker: true,
            event_buffer_size: events::DEFAULT_EVENT_BUFFER_SIZE,
        }
    }
}

/// Server faults, mapped to HTTP statuses at the edge.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The request is invalid (400).
    #[error("{0}")]
    BadRequest(String),
    /// The named object does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// An internal fault (500).
    #[error(transparent)]
    State(#[from] StateError),
    /// A refusal Nomad's RPC layer reports without a code, which its HTTP layer turns into
    /// a 500 with the message (e.g. reverting to a version that does not exist).
    #[error("{0}")]
    Refused(String),
    /// The request conflicts with what the state holds (409).
    #[error("{0}")]
    Conflict(String),
    /// The keyring failed (500).
    #[error(transparent)]
    Keyring(#[from] keyring::KeyringError),
}

impl ServerError {
    /// A state write refused for what the state holds, as the client's error: a missing
    /// object is a 404, a conflict a 400.
    pub fn refused_write(e: StateError) -> Self {
        match e {
            StateError::NotFound(m) => ServerError::NotFound(m),
            StateError::Conflict(m) | StateError::BadRequest(m) => ServerError::BadRequest(m),
            other => ServerError::State(other),
        }
    }
}

/// The server: owns the state store and the scheduling machinery.
pub struct Server {
    /// Settings.
    pub config: ServerConfig,
    /// The state store.
    pub state: StateStore,
    /// The evaluation broker.
    pub broker: EvalBroker,
    /// Blocked evaluations waiting for capacity.
    pub blocked: BlockedEvals,
    /// Node heartbeat timers.
    pub heartbeats: Heartbeats,
    /// Compiled ACLs of the tokens seen lately.
    pub acl_cache: acl_resolve::AclCache,
    /// The running leader duties (drainer, garbage collector).
    leader_duties: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The deployment watcher (a leader duty).
    pub deployments: deployments::Watcher,
    /// The root keys that seal variables.
    pub keyring: keyring::Keyring,
    /// Lease timers of held variable locks.
    pub var_locks: variable_locks::VariableLocks,
    /// Plans handed to the applier and not yet committed (`nomad.nomad.plan.queue_depth`).
    pub plans_pending: gauges::PlanQueue,
    /// What each scheduler worker is doing (`/v1/agent/schedulers`).
    pub workers: worker_status::WorkerStatuses,
}

impl Server {
    /// Opens the state (restoring it from disk when a data dir is set).
    pub fn open(config: ServerConfig) -> Result<Arc<Self>, ServerError> {
        let events = config
            .enable_event_broker
            .then(|| Arc::new(events::EventBroker::new(config.event_buffer_size)));
        let state = match &config.data_dir {
            Some(dir) => raft::committer::open_store(
                dir,
                raft::committer::Identity {
                    name: config.name.clone(),
                    rpc_addr: config.rpc_advertise.clone(),
                    datacenter: config.datacenter.clone(),
                },
                events,
            )?,
            None => StateStore::in_memory_with(events),
        };
        let keyring = keyring::Keyring::open(config.data_dir.as_ref().map(|d| d.join("keystore")))?;
        Ok(Arc::new(Server {
            keyring,
            var_locks: variable_locks::VariableLocks::default(),
            plans_pending: gauges::PlanQueue::default(),
            workers: worker_status::WorkerStatuses::default(),
            heartbeats: Heartbeats::new(config.min_heartbeat_ttl, config.heartbeat_grace),
            config,
            state,
            broker: EvalBroker::default(),
            blocked: BlockedEvals::default(),
            acl_cache: acl_resolve::AclCache::default(),
            leader_duties: std::sync::Mutex::new(Vec::new()),
            deployments: deployments::Watcher::default(),
        }))
    }

    /// Starts the workers, the delayed-eval timer and node heartbeat timers, and re-queues
    /// the evaluations a previous run left unfinished. Needs a tokio runtime.
    pub fn start(self: &Arc<Self>) {
        let snap = self.state.snapshot();
        for eval in snap.evals.values() {
            match eval.status {
                EvalStatus::Pending => self.broker.enqueue((**eval).clone()),
                EvalStatus::Blocked => {
                    self.blocked.block((**eval).clone());
                }
                _ => {}
            }
        }
        // Nodes that were alive get the failover timer; silent ones go down after it.
        for node in snap.nodes.values() {
            if node.status != crate::structs::NodeStatus::Down {
                self.heartbeats
                    .arm(self, &node.id, self.config.failover_heartbeat_ttl);
            }
        }
        if self.config.acl.enabled {
            tokio::spawn(ops::acl::reap_expired_tokens(self.clone()));
        }
        let broker_server = self.clone();
        tokio::spawn(async move { broker_server.broker.run_delayed().await });
        for _ in 0..self.config.num_schedulers.max(1) {
            let server = self.clone();
            tokio::spawn(async move { worker::run(server).await });
        }
        let launcher = self.clone();
        tokio::spawn(async move { periodic::run(launcher).await });
        let server = self.clone();
        tokio::spawn(async move {
            let default = server.config.default_scheduler_config.clone();
            if let Err(e) = server.ensure_scheduler_config(default).await {
                tracing::error!(error = %e, "storing the initial scheduler configuration");
            }
        });
        // Nomad makes the first root key when the server starts; held locks get their lease
        // timers back.
        let keys = self.clone();
        tokio::spawn(async move {
            if let Err(e) = keys.ensure_active_key().await {
                tracing::error!(error = %e, "creating the first root key failed");
            }
        });
        self.restore_lock_leases();
        self.start_leader_duties();
    }

    /// Starts the duties only a leader carries out: the drainer, the garbage collector and
    /// the deployment watcher.
    /// A single server leads from the start; with Raft these follow leadership.
    pub fn start_leader_duties(self: &Arc<Self>) {
        let mut duties = self.leader_duties.lock().unwrap_or_else(|p| p.into_inner());
        if !duties.is_empty() {
            return;
        }
        duties.push(drainer::start(self.clone()));
        duties.push(gc::start(self.clone()));
        self.deployments.start(self);
    }

    /// Stops the leader duties (leadership lost).
    pub fn stop_leader_duties(&self) {
        let mut duties = self.leader_duties.lock().unwrap_or_else(|p| p.into_inner());
        for d in duties.drain(..) {
            d.abort();
        }
        self.deployments.stop();
    }

    /// A new pending evaluation for a job.
    pub fn new_eval(
        namespace: &str,
        job_id: &str,
        job_type: &str,
        priority: i64,
        triggered_by: &str,
    ) -> Evaluation {
        let now = now_nanos();
        Evaluation {
            id: generate_uuid(),
            namespace: namespace.to_string(),
            priority,
            r#type: job_type.to_string(),
            triggered_by: triggered_by.to_string(),
            job_id: job_id.to_string(),
            status: EvalStatus::Pending,
            create_time: now,
            modify_time: now,
            ..Default::default()
        }
    }

    /// Hands every blocked evaluation back to the broker (capacity may have changed).
    pub fn unblock(&self) {
        for eval in self.blocked.unblock_all(self.state.latest_index()) {
            self.broker.enqueue(eval);
        }
    }
}
