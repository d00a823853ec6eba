//! Client agent configuration: identity, placement attributes, paths and loop timings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the client agent is configured with (the agent's HCL `client {}` block and
/// flags map onto this).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Agent data dir; the client uses `<data_dir>/client` and `<data_dir>/alloc`.
    pub data_dir: PathBuf,
    /// Alloc root override (`client.alloc_dir`); default `<data_dir>/alloc`.
    pub alloc_dir: Option<PathBuf>,
    /// Node name; default the hostname.
    pub node_name: Option<String>,
    /// Datacenter (default `dc1`).
    pub datacenter: String,
    /// Agent region (default `global`).
    pub region: String,
    /// Node class (empty by default).
    pub node_class: String,
    /// Node pool (default `default`).
    pub node_pool: String,
    /// Static node meta.
    pub meta: BTreeMap<String, String>,
    /// Advertised client HTTP address `ip:port` (Node.HTTPAddr).
    pub http_advertise_addr: String,
    /// The HTTP API is served over HTTPS (Node.TLSEnabled).
    pub http_tls: bool,
    /// Interface to fingerprint; default the default route's interface (`lo` in dev mode).
    pub network_interface: Option<String>,
    /// Link speed to report when it cannot be detected.
    pub network_speed_mbits: i64,
    /// Dev mode: loopback networking.
    pub dev_mode: bool,
    /// Overrides the detected total CPU compute in MHz.
    pub cpu_total_compute: Option<i64>,
    /// Overrides the detected memory in MB.
    pub memory_total_mb: Option<i64>,
    /// Dynamic port range offered to the scheduler.
    pub min_dynamic_port: i64,
    /// Upper end of the dynamic port range.
    pub max_dynamic_port: i64,
    /// Upper bound of any task's kill timeout (`client.max_kill_timeout`).
    pub max_kill_timeout: Duration,
    /// Host env vars never passed to tasks.
    pub env_denylist: Vec<String>,
    /// How often drivers are re-fingerprinted; a change re-registers the node.
    pub driver_fingerprint_interval: Duration,
    /// Terminal allocation dir garbage collection.
    pub gc: GcConfig,
    /// Loop timings (shortened in tests).
    pub timings: Timings,
    /// Limits on task artifact downloads (`client.artifact`).
    pub artifact: crate::client::artifact::ArtifactConfig,
}

/// When terminal allocations' directories are removed.
#[derive(Debug, Clone)]
pub struct GcConfig {
    /// Most terminal allocations kept on disk (`gc_max_allocs`); the oldest go first.
    pub max_terminal_allocs: usize,
    /// Terminal allocations older than this are removed (`None` = keep until count limit).
    pub terminal_retention: Option<Duration>,
    /// How often the collector looks.
    pub interval: Duration,
}

/// Retry and batching intervals of the client loops.
#[derive(Debug, Clone)]
pub struct Timings {
    /// First retry delay while registration fails.
    pub register_backoff_min: Duration,
    /// Longest retry delay while registration fails.
    pub register_backoff_max: Duration,
    /// First retry delay of a failed heartbeat or alloc fetch.
    pub retry_backoff_min: Duration,
    /// Longest retry delay of a failed heartbeat or alloc fetch.
    pub retry_backoff_max: Duration,
    /// How long an alloc blocking query may wait on the server.
    pub alloc_query_wait: Duration,
    /// Status sync tick: ClientStatus changes go out on the next tick.
    pub status_sync_tick: Duration,
    /// Other status changes go out every this many ticks.
    pub status_sync_batch_ticks: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            data_dir: PathBuf::from("/var/lib/yurt"),
            alloc_dir: None,
            node_name: None,
            datacenter: "dc1".into(),
            region: crate::structs::DEFAULT_REGION.into(),
            node_class: String::new(),
            node_pool: "default".into(),
            meta: BTreeMap::new(),
            http_advertise_addr: "127.0.0.1:4646".into(),
            http_tls: false,
            network_interface: None,
            network_speed_mbits: 1000,
            dev_mode: false,
            cpu_total_compute: None,
            memory_total_mb: None,
            min_dynamic_port: 20000,
            max_dynamic_port: 32000,
            max_kill_timeout: Duration::from_secs(30),
            env_denylist: super::taskenv::DEFAULT_ENV_DENYLIST
                .iter()
                .map(|s| s.to_string())
                .collect(),
            driver_fingerprint_interval: Duration::from_secs(30),
            gc: GcConfig::default(),
            timings: Timings::default(),
            artifact: Default::default(),
        }
    }
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            max_terminal_allocs: 50,
            terminal_retention: None,
            interval: Duration::from_secs(60),
        }
    }
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            register_backoff_min: Duration::from_secs(1),
            register_backoff_max: Duration::from_secs(30),
            retry_backoff_min: Duration::from_secs(1),
            retry_backoff_max: Duration::from_secs(30),
            alloc_query_wait: Duration::from_secs(300),
            status_sync_tick: Duration::from_millis(200),
            status_sync_batch_ticks: 5,
        }
    }
}

impl ClientConfig {
    /// `<data_dir>/client`: node identity and the state db.
    pub fn state_dir(&self) -> PathBuf {
        self.data_dir.join("client")
    }

    /// The alloc root.
    pub fn alloc_root(&self) -> PathBuf {
        self.alloc_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("alloc"))
    }
}
