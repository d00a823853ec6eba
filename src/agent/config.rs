//! `AgentConfig`: the final, validated agent configuration — defaults applied to the merged
//! sources (`-dev` preset ⊕ config files ⊕ flags) — and the accessors the runtime uses.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::config_file::{ConfigFile, PluginFile};
pub use super::config_tls::TlsConfig;
use crate::structs::DEFAULT_REGION;

/// Default HTTP API port.
pub const DEFAULT_HTTP_PORT: u16 = 4646;
/// Default server RPC port.
pub const DEFAULT_RPC_PORT: u16 = 4647;
/// Default Serf port (accepted for compatibility; yurt does not gossip).
pub const DEFAULT_SERF_PORT: u16 = 4648;
/// Default datacenter.
pub const DEFAULT_DATACENTER: &str = "dc1";
/// Default node pool.
pub const DEFAULT_NODE_POOL: &str = "default";
/// Server a client registers with when none is configured.
pub const DEFAULT_CLIENT_SERVER: &str = "127.0.0.1:4647";
/// Log levels accepted by `log_level`, canonical spelling.
pub const LOG_LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "OFF"];

/// Why a configuration could not be loaded or is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A config path could not be read.
    #[error("Error loading configuration from {path}: {source}")]
    Io {
        /// The path being read.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A config source is not valid HCL/JSON or has a wrongly-typed value.
    #[error("Error parsing {origin}: {message}")]
    Parse {
        /// File name or "flags".
        origin: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The merged configuration is inconsistent.
    #[error("{0}")]
    Invalid(String),
}

/// Listener ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports {
    /// HTTP API.
    pub http: u16,
    /// Server RPC.
    pub rpc: u16,
    /// Serf (unused).
    pub serf: u16,
}

/// Per-listener bind addresses; `None` means `bind_addr`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addresses {
    /// HTTP API bind address.
    pub http: Option<IpAddr>,
    /// RPC bind address.
    pub rpc: Option<IpAddr>,
}

/// Addresses advertised to other agents (`host` or `host:port`), as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertise {
    /// Advertised HTTP address.
    pub http: Option<String>,
    /// Advertised RPC address.
    pub rpc: Option<String>,
}

/// `server { }` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Run the bundled server.
    pub enabled: bool,
    /// Servers expected before bootstrapping (yurt's server is single; default 1).
    pub bootstrap_expect: u32,
    /// Grace past a node's TTL before it is marked down (default 10s).
    pub heartbeat_grace: Duration,
    /// Minimum heartbeat TTL given to clients (default 10s).
    pub min_heartbeat_ttl: Duration,
    /// Time known nodes get to heartbeat after the server starts (default 5m).
    pub failover_heartbeat_ttl: Duration,
    /// Garbage collection interval and thresholds (`job_gc_interval`, `*_gc_threshold`).
    pub gc: crate::server::gc::GcConfig,
    /// Publish state changes on `/v1/event/stream` (default true).
    pub enable_event_broker: bool,
    /// Writes whose events are kept for resuming subscribers (default 100).
    pub event_buffer_size: usize,
}

/// `client { reserved { } }` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reserved {
    /// CPU MHz withheld from tasks.
    pub cpu: u64,
    /// Memory MB withheld from tasks.
    pub memory: u64,
    /// Disk MB withheld from tasks.
    pub disk: u64,
    /// Ports never handed to tasks, e.g. "22,80,8000-8100".
    pub reserved_ports: String,
}

/// `client { }` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Run the client.
    pub enabled: bool,
    /// Server RPC addresses.
    pub servers: Vec<String>,
    /// Node class ("" = none).
    pub node_class: String,
    /// Node pool.
    pub node_pool: String,
    /// Node metadata.
    pub meta: BTreeMap<String, String>,
    /// Interface to fingerprint for task networking (`None` = the default route's).
    pub network_interface: Option<String>,
    /// CPU MHz override (0 = fingerprint).
    pub cpu_total_compute: u64,
    /// Memory MB override (0 = fingerprint).
    pub memory_total_mb: u64,
    /// Resources withheld from tasks.
    pub reserved: Reserved,
    /// Terminal allocation GC period (default 1m).
    pub gc_interval: Duration,
    /// Free-form options.
    pub options: BTreeMap<String, String>,
    /// Allocation directory root (default `<data_dir>/alloc`).
    pub alloc_dir: PathBuf,
    /// Client state directory (default `<data_dir>/client`).
    pub state_dir: PathBuf,
    /// `artifact { }` download limits.
    pub artifact: crate::client::artifact::ArtifactConfig,
}

/// One `plugin "<name>" { }` block.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginConfig {
    /// The `config { }` body.
    pub config: Option<Value>,
    /// External plugin arguments.
    pub args: Vec<String>,
}

/// `cluster_api { }` settings: the job-template API of seed 001 (`docs/cluster-api.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterApiConfig {
    /// Serve it (default off).
    pub enabled: bool,
    /// The template directory (required when enabled).
    pub jobs_dir: PathBuf,
}

/// `telemetry { }` settings, with Nomad's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// Serve `/v1/metrics?format=prometheus` (otherwise it is refused with 415, as Nomad does).
    pub prometheus_metrics: bool,
    /// How often gauges are collected (default 1s).
    pub collection_interval: Duration,
    /// Leave the `host` label off gauges.
    pub disable_hostname: bool,
    /// The `host` label is the node name rather than the hostname.
    pub use_node_name: bool,
    /// Publish per-task resource usage gauges.
    pub publish_allocation_metrics: bool,
    /// Publish the host's resource usage gauges.
    pub publish_node_metrics: bool,
    /// The interval the JSON view aggregates over (default 10s).
    pub in_memory_collection_interval: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            prometheus_metrics: false,
            collection_interval: Duration::from_secs(1),
            disable_hostname: false,
            use_node_name: false,
            publish_allocation_metrics: false,
            publish_node_metrics: false,
            in_memory_collection_interval: Duration::from_secs(10),
        }
    }
}

/// `client { artifact { } }` over Nomad's defaults; sizes are humanized byte counts.
fn artifact_config(
    file: crate::agent::config_file::ArtifactFile,
) -> Result<crate::client::artifact::ArtifactConfig, ConfigError> {
    use crate::client::artifact::{ArtifactConfig, parse_size};
    let mut cfg = ArtifactConfig::default();
    let size = |key: &str, v: Option<String>, default: u64| match v {
        None => Ok(default),
        Some(v) => {
            parse_size(&v).map_err(|e| ConfigError::Invalid(format!("client.artifact.{key}: {e}")))
        }
    };
    if let Some(t) = file.http_read_timeout {
        cfg.http_read_timeout = t;
    }
    cfg.http_max_size = size("http_max_size", file.http_max_size, cfg.http_max_size)?;
    cfg.decompression_size_limit = size(
        "decompression_size_limit",
        file.decompression_size_limit,
        cfg.decompression_size_limit,
    )?;
    if let Some(n) = file.decompression_file_count_limit {
        cfg.decompression_file_count_limit = n;
    }
    Ok(cfg)
}

/// `telemetry { }`: intervals must be positive (a zero interval would spin the collectors).
fn resolve_telemetry(
    file: Option<crate::agent::config_file::TelemetryFile>,
) -> Result<TelemetryConfig, ConfigError> {
    let file = file.unwrap_or_default();
    let d = TelemetryConfig::default();
    let positive = |name: &str, v: Option<Duration>, default: Duration| match v {
        Some(v) if v.is_zero() => Err(ConfigError::Invalid(format!(
            "telemetry.{name}: must be greater than 0"
        ))),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    Ok(TelemetryConfig {
        prometheus_metrics: file.prometheus_metrics.unwrap_or(d.prometheus_metrics),
        collection_interval: positive(
            "collection_interval",
            file.collection_interval,
            d.collection_interval,
        )?,
        disable_hostname: file.disable_hostname.unwrap_or(d.disable_hostname),
        use_node_name: file.use_node_name.unwrap_or(d.use_node_name),
        publish_allocation_metrics: file
            .publish_allocation_metrics
            .unwrap_or(d.publish_allocation_metrics),
        publish_node_metrics: file.publish_node_metrics.unwrap_or(d.publish_node_metrics),
        in_memory_collection_interval: positive(
            "in_memory_collection_interval",
            file.in_memory_collection_interval,
            d.in_memory_collection_interval,
        )?,
    })
}

/// `acl { }` settings.
pub type AclConfig = crate::acl::AclSettings;

/// The resolved agent configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// Node name (default: hostname).
    pub name: String,
    /// Region.
    pub region: String,
    /// Datacenter.
    pub datacenter: String,
    /// Data directory (in `-dev`, a fresh path under the system temp dir; not yet created).
    pub data_dir: PathBuf,
    /// Default bind address.
    pub bind_addr: IpAddr,
    /// Canonical log level (one of `LOG_LEVELS`).
    pub log_level: String,
    /// JSON log lines.
    pub log_json: bool,
    /// Serve the debugging endpoints when ACLs are off (`enable_debug`; on in `-dev`).
    pub enable_debug: bool,
    /// `leave_on_interrupt`: SIGINT is a graceful leave rather than a plain stop.
    pub leave_on_interrupt: bool,
    /// `leave_on_terminate`: the same for SIGTERM.
    pub leave_on_terminate: bool,
    /// Ports.
    pub ports: Ports,
    /// Per-listener bind addresses.
    pub addresses: Addresses,
    /// Advertised addresses.
    pub advertise: Advertise,
    /// Server settings.
    pub server: ServerConfig,
    /// Client settings.
    pub client: ClientConfig,
    /// Plugin blocks by name.
    pub plugins: BTreeMap<String, PluginConfig>,
    /// ACL settings.
    pub acl: AclConfig,
    /// TLS settings.
    pub tls: TlsConfig,
    /// Cluster API settings.
    pub cluster_api: ClusterApiConfig,
    /// Telemetry settings.
    pub telemetry: TelemetryConfig,
    /// Started with `-dev`.
    pub dev_mode: bool,
    /// Non-fatal findings (unknown keys) to log once logging is up.
    pub warnings: Vec<String>,
}

/// `acl { }` with Nomad's defaults; a minimum TTL above the maximum is refused.
fn resolve_acl(file: crate::agent::config_file::AclFile) -> Result<AclConfig, ConfigError> {
    let d = AclConfig::default();
    let acl = AclConfig {
        enabled: file.enabled.unwrap_or(false),
        token_ttl: file.token_ttl.unwrap_or(d.token_ttl),
        policy_ttl: file.policy_ttl.unwrap_or(d.policy_ttl),
        token_min_expiration_ttl: file
            .token_min_expiration_ttl
            .unwrap_or(d.token_min_expiration_ttl),
        token_max_expiration_ttl: file
            .token_max_expiration_ttl
            .unwrap_or(d.token_max_expiration_ttl),
    };
    if acl.token_min_expiration_ttl > acl.token_max_expiration_ttl {
        return Err(ConfigError::Invalid(
            "acl.token_min_expiration_ttl: must not be greater than acl.token_max_expiration_ttl"
                .into(),
        ));
    }
    Ok(acl)
}

/// `cluster_api { }`: off by default; when on it needs a `jobs_dir` and a server (it
/// registers and scales jobs in the server's state).
fn resolve_cluster_api(
    file: Option<crate::agent::config_file::ClusterApiFile>,
    server_enabled: bool,
) -> Result<ClusterApiConfig, ConfigError> {
    let file = file.unwrap_or_default();
    if !file.enabled.unwrap_or(false) {
        return Ok(ClusterApiConfig::default());
    }
    let Some(dir) = file.jobs_dir.filter(|d| !d.as_os_str().is_empty()) else {
        return Err(ConfigError::Invalid(
            "cluster_api.jobs_dir: required when cluster_api.enabled is true".into(),
        ));
    };
    if !server_enabled {
        return Err(ConfigError::Invalid(
            "cluster_api.enabled: the Cluster API needs server { enabled = true } on this agent"
                .into(),
        ));
    }
    Ok(ClusterApiConfig {
        enabled: true,
        jobs_dir: absolute(dir)?,
    })
}

impl AgentConfig {
    /// Applies defaults to merged sources and validates the result.
    pub fn resolve(
        file: ConfigFile,
        dev_mode: bool,
        warnings: Vec<String>,
    ) -> Result<Self, ConfigError> {
        let server = file.server.unwrap_or_default();
        let client = file.client.unwrap_or_default();
        let server_enabled = server.enabled.unwrap_or(false);
        let client_enabled = client.enabled.unwrap_or(false);
        if !server_enabled && !client_enabled {
            return Err(ConfigError::Invalid(
                "Must specify either server, client or dev mode for the agent.".into(),
            ));
        }
        let acl = resolve_acl(file.acl.clone().unwrap_or_default())?;
        let cluster_api = resolve_cluster_api(file.cluster_api.clone(), server_enabled)?;
        let telemetry = resolve_telemetry(file.telemetry.clone())?;
        let data_dir = match file.data_dir {
            Some(dir) => absolute(dir)?,
            None if dev_mode => dev_data_dir(),
            None => {
                return Err(ConfigError::Invalid(
                    "Must specify data directory (data_dir or -data-dir)".into(),
                ));
            }
        };
        let addresses = file.addresses.unwrap_or_default();
        let advertise = file.advertise.unwrap_or_default();
        let ports = file.ports.unwrap_or_default();
        let reserved = client.reserved.unwrap_or_default();
        let artifact = artifact_config(client.artifact.clone().unwrap_or_default())?;
        let plugins = file
            .plugin
            .into_iter()
            .map(|(name, p)| (name, PluginConfig::from(p)))
            .collect();
        Ok(Self {
            name: file.name.filter(|n| !n.is_empty()).unwrap_or_else(hostname),
            region: file.region.unwrap_or_else(|| DEFAULT_REGION.to_string()),
            datacenter: file
                .datacenter
                .unwrap_or_else(|| DEFAULT_DATACENTER.to_string()),
            bind_addr: parse_ip("bind_addr", file.bind_addr.as_deref())?
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            log_level: canonical_log_level(file.log_level.as_deref().unwrap_or("INFO"))?,
            log_json: file.log_json.unwrap_or(false),
            enable_debug: file.enable_debug.unwrap_or(false),
            leave_on_interrupt: file.leave_on_interrupt.unwrap_or(false),
            leave_on_terminate: file.leave_on_terminate.unwrap_or(false),
            ports: Ports {
                http: ports.http.unwrap_or(DEFAULT_HTTP_PORT),
                rpc: ports.rpc.unwrap_or(DEFAULT_RPC_PORT),
                serf: ports.serf.unwrap_or(DEFAULT_SERF_PORT),
            },
            addresses: Addresses {
                http: parse_ip("addresses.http", addresses.http.as_deref())?,
                rpc: parse_ip("addresses.rpc", addresses.rpc.as_deref())?,
            },
            advertise: Advertise {
                http: advertise.http,
                rpc: advertise.rpc,
            },
            server: ServerConfig {
                enabled: server_enabled,
                bootstrap_expect: server.bootstrap_expect.unwrap_or(1),
                heartbeat_grace: server.heartbeat_grace.unwrap_or(Duration::from_secs(10)),
                min_heartbeat_ttl: server.min_heartbeat_ttl.unwrap_or(Duration::from_secs(10)),
                failover_heartbeat_ttl: server
                    .failover_heartbeat_ttl
                    .unwrap_or(crate::server::heartbeat::DEFAULT_FAILOVER_TTL),
                gc: gc_config(&server),
                enable_event_broker: server.enable_event_broker.unwrap_or(true),
                event_buffer_size: event_buffer_size(server.event_buffer_size)?,
            },
            client: ClientConfig {
                enabled: client_enabled,
                servers: client
                    .servers
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| vec![DEFAULT_CLIENT_SERVER.to_string()]),
                node_class: client.node_class.unwrap_or_default(),
                node_pool: client
                    .node_pool
                    .unwrap_or_else(|| DEFAULT_NODE_POOL.to_string()),
                meta: client.meta.unwrap_or_default(),
                network_interface: client.network_interface.filter(|i| !i.is_empty()),
                cpu_total_compute: client.cpu_total_compute.unwrap_or(0),
                memory_total_mb: client.memory_total_mb.unwrap_or(0),
                reserved: Reserved {
                    cpu: reserved.cpu.unwrap_or(0),
                    memory: reserved.memory.unwrap_or(0),
                    disk: reserved.disk.unwrap_or(0),
                    reserved_ports: reserved.reserved_ports.unwrap_or_default(),
                },
                gc_interval: client.gc_interval.unwrap_or(Duration::from_secs(60)),
                options: client.options.unwrap_or_default(),
                alloc_dir: client
                    .alloc_dir
                    .map(absolute)
                    .transpose()?
                    .unwrap_or_else(|| data_dir.join("alloc")),
                state_dir: client
                    .state_dir
                    .map(absolute)
                    .transpose()?
                    .unwrap_or_else(|| data_dir.join("client")),
                artifact,
            },
            plugins,
            acl,
            tls: TlsConfig::resolve(file.tls.unwrap_or_default())?,
            cluster_api,
            telemetry,
            data_dir,
            dev_mode,
            warnings,
        })
    }

    /// Where the HTTP API listens.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::new(
            self.addresses.http.unwrap_or(self.bind_addr),
            self.ports.http,
        )
    }

    /// Where server RPC listens.
    pub fn rpc_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addresses.rpc.unwrap_or(self.bind_addr), self.ports.rpc)
    }

    /// True when the bundled server runs.
    pub fn server_enabled(&self) -> bool {
        self.server.enabled
    }

    /// True when the client (node agent) runs.
    pub fn client_enabled(&self) -> bool {
        self.client.enabled
    }

    /// The `config { }` body of `plugin "<name>"`, if configured.
    pub fn plugin_config(&self, name: &str) -> Option<&Value> {
        self.plugins.get(name).and_then(|p| p.config.as_ref())
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

impl From<PluginFile> for PluginConfig {
    fn from(p: PluginFile) -> Self {
        Self {
            config: p.config,
            args: p.args.unwrap_or_default(),
        }
    }
}

/// Parses an optional IP literal, naming the key on error.
/// `server.event_buffer_size`: 0 or absent means Nomad's default.
fn event_buffer_size(raw: Option<i64>) -> Result<usize, ConfigError> {
    match raw {
        None | Some(0) => Ok(crate::server::events::DEFAULT_EVENT_BUFFER_SIZE),
        Some(n) => usize::try_from(n).map_err(|_| {
            ConfigError::Invalid(format!(
                "server: event_buffer_size must be non-negative, got {n}"
            ))
        }),
    }
}

fn parse_ip(key: &str, raw: Option<&str>) -> Result<Option<IpAddr>, ConfigError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| ConfigError::Invalid(format!("{key}: {s:?} is not an IP address"))),
    }
}

/// Upper-cases a log level and checks it; Nomad's older "ERR" spelling is accepted.
pub fn canonical_log_level(raw: &str) -> Result<String, ConfigError> {
    let upper = raw.trim().to_ascii_uppercase();
    let upper = if upper == "ERR" {
        "ERROR".to_string()
    } else {
        upper
    };
    if LOG_LEVELS.contains(&upper.as_str()) {
        Ok(upper)
    } else {
        Err(ConfigError::Invalid(format!(
            "Invalid log level: {raw}. Valid log levels are: {LOG_LEVELS:?}"
        )))
    }
}

/// Makes a configured path absolute against the working directory.
pub(super) fn absolute(path: PathBuf) -> Result<PathBuf, ConfigError> {
    std::path::absolute(&path).map_err(|source| ConfigError::Io { path, source })
}

/// How the data dirs `-dev` makes up are named.
pub const DEV_DATA_DIR_PREFIX: &str = "yurt-dev-";

/// A fresh, unique data directory path for `-dev` under the system temp dir.
fn dev_data_dir() -> PathBuf {
    let unique = crate::structs::generate_uuid();
    std::env::temp_dir().join(format!(
        "{DEV_DATA_DIR_PREFIX}{}",
        crate::structs::short_id(&unique)
    ))
}

/// The machine's hostname, the default node name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The server's GC settings: each key given overrides Nomad's default.
fn gc_config(server: &super::config_file::ServerFile) -> crate::server::gc::GcConfig {
    let d = crate::server::gc::GcConfig::default();
    crate::server::gc::GcConfig {
        interval: server.job_gc_interval.unwrap_or(d.interval),
        thresholds: crate::server::gc::collect::Thresholds {
            eval: server.eval_gc_threshold.unwrap_or(d.thresholds.eval),
            batch_eval: server
                .batch_eval_gc_threshold
                .unwrap_or(d.thresholds.batch_eval),
            job: server.job_gc_threshold.unwrap_or(d.thresholds.job),
            deployment: server
                .deployment_gc_threshold
                .unwrap_or(d.thresholds.deployment),
            node: server.node_gc_threshold.unwrap_or(d.thresholds.node),
        },
    }
}
