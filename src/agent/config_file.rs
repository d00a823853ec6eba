//! One agent config source as written — a file, the flags, or the `-dev` preset. Every
//! field is optional so sources can be layered (see `config_merge`); unknown keys are kept
//! aside and reported as warnings instead of failing the load.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::config_de::{
    block, duration, fold_block, port_spec, raw_block, string_list, string_map,
};

/// Keys a section did not recognise, by name.
pub type Unknown = BTreeMap<String, Value>;

/// A whole config source (Nomad's top-level agent config keys yurt understands).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ConfigFile {
    /// `name`: the node name (default: hostname).
    pub name: Option<String>,
    /// `region` (default "global").
    pub region: Option<String>,
    /// `datacenter` (default "dc1").
    pub datacenter: Option<String>,
    /// `data_dir`: where server and client state live.
    pub data_dir: Option<PathBuf>,
    /// `bind_addr`: address every listener binds unless `addresses` says otherwise.
    pub bind_addr: Option<String>,
    /// `log_level`: TRACE, DEBUG, INFO, WARN, ERROR.
    pub log_level: Option<String>,
    /// `log_json`: structured log lines.
    pub log_json: Option<bool>,
    /// `enable_debug`: without ACLs, serve the debugging endpoints (`/v1/agent/host`).
    pub enable_debug: Option<bool>,
    /// `leave_on_interrupt`: on SIGINT, leave the cluster gracefully (Nomad's switch).
    pub leave_on_interrupt: Option<bool>,
    /// `leave_on_terminate`: the same on SIGTERM.
    pub leave_on_terminate: Option<bool>,
    /// `ports { http rpc serf }`.
    #[serde(deserialize_with = "block")]
    pub ports: Option<PortsFile>,
    /// `addresses { http rpc serf }`: per-listener bind addresses.
    #[serde(deserialize_with = "block")]
    pub addresses: Option<AddressesFile>,
    /// `advertise { http rpc serf }`: addresses other agents should use.
    #[serde(deserialize_with = "block")]
    pub advertise: Option<AddressesFile>,
    /// `server { ... }`.
    #[serde(deserialize_with = "block")]
    pub server: Option<ServerFile>,
    /// `client { ... }`.
    #[serde(deserialize_with = "block")]
    pub client: Option<ClientFile>,
    /// `plugin "<name>" { config { ... } }`, by plugin name.
    #[serde(deserialize_with = "plugins")]
    pub plugin: BTreeMap<String, PluginFile>,
    /// `acl { enabled }`.
    #[serde(deserialize_with = "block")]
    pub acl: Option<AclFile>,
    /// `tls { http rpc ca_file cert_file key_file ... }`.
    #[serde(deserialize_with = "block")]
    pub tls: Option<TlsFile>,
    /// `cluster_api { enabled jobs_dir }`: the job-template API of seed 001.
    #[serde(deserialize_with = "block")]
    pub cluster_api: Option<ClusterApiFile>,
    /// `telemetry { prometheus_metrics collection_interval disable_hostname ... }`.
    #[serde(deserialize_with = "block")]
    pub telemetry: Option<TelemetryFile>,
    /// Keys yurt does not know (Nomad keys it does not implement, typos).
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `ports { ... }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PortsFile {
    /// HTTP API port (default 4646).
    pub http: Option<u16>,
    /// Server RPC port (default 4647).
    pub rpc: Option<u16>,
    /// Serf gossip port (default 4648); accepted for compatibility.
    pub serf: Option<u16>,
    /// Unrecognised keys.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `addresses { ... }` and `advertise { ... }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AddressesFile {
    /// Address for the HTTP API.
    pub http: Option<String>,
    /// Address for server RPC.
    pub rpc: Option<String>,
    /// Address for Serf; accepted for compatibility.
    pub serf: Option<String>,
    /// Unrecognised keys.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `server { ... }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ServerFile {
    /// Run the bundled server.
    pub enabled: Option<bool>,
    /// Servers to wait for before bootstrapping.
    pub bootstrap_expect: Option<u32>,
    /// Extra time past a node's TTL before it is marked down.
    #[serde(deserialize_with = "duration")]
    pub heartbeat_grace: Option<Duration>,
    /// Lower bound of the heartbeat TTL handed to clients.
    #[serde(deserialize_with = "duration")]
    pub min_heartbeat_ttl: Option<Duration>,
    /// Time known nodes get to heartbeat after the server starts.
    #[serde(deserialize_with = "duration")]
    pub failover_heartbeat_ttl: Option<Duration>,
    /// Garbage collection: how often, and how old each kind of object must be.
    #[serde(deserialize_with = "duration")]
    pub job_gc_interval: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    pub job_gc_threshold: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    pub eval_gc_threshold: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    pub batch_eval_gc_threshold: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    pub deployment_gc_threshold: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    pub node_gc_threshold: Option<Duration>,
    /// Publish state changes on the event stream.
    pub enable_event_broker: Option<bool>,
    /// Writes whose events the event stream keeps for resuming subscribers.
    pub event_buffer_size: Option<i64>,
    /// Unrecognised keys.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `client { ... }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ClientFile {
    /// Run the client (node agent).
    pub enabled: Option<bool>,
    /// Server RPC addresses to register with.
    #[serde(deserialize_with = "string_list")]
    pub servers: Option<Vec<String>>,
    /// Node class for constraints.
    pub node_class: Option<String>,
    /// Node pool.
    pub node_pool: Option<String>,
    /// Node metadata.
    #[serde(deserialize_with = "string_map")]
    pub meta: Option<BTreeMap<String, String>>,
    /// Interface whose address tasks' ports are allocated on.
    pub network_interface: Option<String>,
    /// Override for the fingerprinted CPU MHz total.
    pub cpu_total_compute: Option<u64>,
    /// Override for the fingerprinted memory in MB.
    pub memory_total_mb: Option<u64>,
    /// `reserved { ... }` resources withheld from tasks.
    #[serde(deserialize_with = "block")]
    pub reserved: Option<ReservedFile>,
    /// How often terminal allocations are garbage collected.
    #[serde(deserialize_with = "duration")]
    pub gc_interval: Option<Duration>,
    /// Free-form client options (`driver.raw_exec.enable`, ...).
    #[serde(deserialize_with = "string_map")]
    pub options: Option<BTreeMap<String, String>>,
    /// Where allocation directories are created.
    pub alloc_dir: Option<PathBuf>,
    /// Where client state is kept.
    pub state_dir: Option<PathBuf>,
    /// `artifact { ... }`: limits on task artifact downloads.
    #[serde(deserialize_with = "block")]
    pub artifact: Option<ArtifactFile>,
    /// Unrecognised keys.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `client { artifact { ... } }`; sizes are strings like "100GB", as in Nomad.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ArtifactFile {
    /// Longest wait for more bytes of an HTTP download.
    #[serde(deserialize_with = "duration")]
    pub http_read_timeout: Option<Duration>,
    /// Largest HTTP download.
    pub http_max_size: Option<String>,
    /// Most bytes one archive may unpack to.
    pub decompression_size_limit: Option<String>,
    /// Most files one archive may hold.
    pub decompression_file_count_limit: Option<u64>,
    /// Accepted for compatibility: yurt fetches in-process, without Nomad's sandbox.
    pub disable_filesystem_isolation: Option<bool>,
    /// Unrecognised keys.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `client { reserved { ... } }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ReservedFile {
    /// CPU MHz.
    pub cpu: Option<u64>,
    /// Memory MB.
    pub memory: Option<u64>,
    /// Disk MB.
    pub disk: Option<u64>,
    /// Port list like "22,80,8000-8100".
    #[serde(deserialize_with = "port_spec")]
    pub reserved_ports: Option<String>,
    /// Unrecognised keys.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `plugin "<name>" { ... }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PluginFile {
    /// The plugin's own settings, passed through untouched.
    #[serde(deserialize_with = "raw_block")]
    pub config: Option<Value>,
    /// Arguments for external plugins; accepted for compatibility.
    pub args: Option<Vec<String>>,
    /// Unrecognised keys.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `acl { ... }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AclFile {
    /// Enforce ACL tokens.
    pub enabled: Option<bool>,
    /// How long a client agent caches a resolved token.
    #[serde(deserialize_with = "duration")]
    pub token_ttl: Option<Duration>,
    /// How long a client agent caches resolved policies.
    #[serde(deserialize_with = "duration")]
    pub policy_ttl: Option<Duration>,
    /// Shortest token ExpirationTTL accepted.
    #[serde(deserialize_with = "duration")]
    pub token_min_expiration_ttl: Option<Duration>,
    /// Longest token ExpirationTTL accepted.
    #[serde(deserialize_with = "duration")]
    pub token_max_expiration_ttl: Option<Duration>,
    /// Unrecognised keys.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `tls { ... }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TlsFile {
    /// HTTPS on the HTTP API port.
    pub http: Option<bool>,
    /// TLS on the RPC port, and for this agent's client when it calls the servers.
    pub rpc: Option<bool>,
    /// PEM CA certificate(s) peers' certificates must chain to.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate this agent serves and shows to peers.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Require servers' certificates to be valid for `server.<region>.nomad`.
    pub verify_server_hostname: Option<bool>,
    /// Require HTTPS API callers to present a certificate the CA signed.
    pub verify_https_client: Option<bool>,
    /// Unrecognised keys.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `cluster_api { ... }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ClusterApiFile {
    /// Serve the Cluster API beside `/v1` (default off).
    pub enabled: Option<bool>,
    /// The directory of job templates (HCL or JSON job files).
    pub jobs_dir: Option<PathBuf>,
    /// Unrecognised keys.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `telemetry { ... }`: what `/v1/metrics` serves and how often gauges are collected.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TelemetryFile {
    /// Serve `/v1/metrics?format=prometheus` (default off; on in `-dev`).
    pub prometheus_metrics: Option<bool>,
    /// How often host, allocation and server gauges are collected (default 1s).
    #[serde(deserialize_with = "duration")]
    pub collection_interval: Option<Duration>,
    /// Leave the `host` label off gauges.
    pub disable_hostname: Option<bool>,
    /// Use the agent's node name as the `host` label instead of the machine's hostname.
    pub use_node_name: Option<bool>,
    /// Publish per-allocation resource usage (default off; on in `-dev`).
    pub publish_allocation_metrics: Option<bool>,
    /// Publish the host's resource usage (default off; on in `-dev`).
    pub publish_node_metrics: Option<bool>,
    /// Length of the interval the JSON view aggregates over (default 10s).
    #[serde(deserialize_with = "duration")]
    pub in_memory_collection_interval: Option<Duration>,
    /// Unrecognised keys.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `plugin` blocks: `{name: body}`, `{name: [body, ...]}` or `[{name: body}, ...]`.
fn plugins<'de, D>(d: D) -> Result<BTreeMap<String, PluginFile>, D::Error>
where
    D: Deserializer<'de>,
{
    let entries: Vec<(String, Value)> = match Value::deserialize(d)? {
        Value::Object(map) => map.into_iter().collect(),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(map) => Ok(map.into_iter().collect::<Vec<_>>()),
                _ => Err(D::Error::custom(
                    "plugin blocks must be labelled: plugin \"name\" {}",
                )),
            })
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect(),
        _ => {
            return Err(D::Error::custom(
                "plugin blocks must be labelled: plugin \"name\" {}",
            ));
        }
    };
    let mut out: BTreeMap<String, PluginFile> = BTreeMap::new();
    for (name, body) in entries {
        let parsed = PluginFile::deserialize(fold_block(body))
            .map_err(|e| D::Error::custom(format!("plugin {name:?}: {e}")))?;
        let merged = match out.remove(&name) {
            Some(prev) => prev.merge(parsed),
            None => parsed,
        };
        out.insert(name, merged);
    }
    Ok(out)
}

impl ConfigFile {
    /// Dotted names of every key no section recognised, for warnings.
    pub fn unknown_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut add = |prefix: &str, unknown: &Unknown| {
            keys.extend(unknown.keys().map(|k| format!("{prefix}{k}")));
        };
        add("", &self.unknown);
        if let Some(p) = &self.ports {
            add("ports.", &p.unknown);
        }
        if let Some(a) = &self.addresses {
            add("addresses.", &a.unknown);
        }
        if let Some(a) = &self.advertise {
            add("advertise.", &a.unknown);
        }
        if let Some(s) = &self.server {
            add("server.", &s.unknown);
        }
        if let Some(c) = &self.client {
            add("client.", &c.unknown);
            if let Some(r) = &c.reserved {
                add("client.reserved.", &r.unknown);
            }
            if let Some(a) = &c.artifact {
                add("client.artifact.", &a.unknown);
            }
        }
        for (name, p) in &self.plugin {
            add(&format!("plugin.{name}."), &p.unknown);
        }
        if let Some(a) = &self.acl {
            add("acl.", &a.unknown);
        }
        if let Some(t) = &self.tls {
            add("tls.", &t.unknown);
        }
        if let Some(c) = &self.cluster_api {
            add("cluster_api.", &c.unknown);
        }
        if let Some(t) = &self.telemetry {
            add("telemetry.", &t.unknown);
        }
        keys
    }
}
