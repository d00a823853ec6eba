//! Layering config sources with Nomad's merge rules: a later source's scalar wins when it is
//! set, maps (`meta`, `options`) merge key by key, `client.servers` accumulate (Nomad
//! appends; duplicates are dropped here), and `plugin` blocks merge by name with a later
//! `config { }` replacing the earlier one whole (as Nomad's `PluginConfig.Merge` does).

use std::collections::BTreeMap;

use super::config_file::{
    AclFile, AddressesFile, ArtifactFile, ClientFile, ClusterApiFile, ConfigFile, PluginFile,
    PortsFile, ReservedFile, ServerFile, TelemetryFile, TlsFile,
};

/// Merges an optional block: both present → merged, otherwise whichever exists.
fn merge_opt<T>(base: Option<T>, over: Option<T>, f: impl FnOnce(T, T) -> T) -> Option<T> {
    match (base, over) {
        (Some(b), Some(o)) => Some(f(b, o)),
        (b, o) => o.or(b),
    }
}

/// Merges two string maps, `over` winning per key.
fn merge_map(
    base: Option<BTreeMap<String, String>>,
    over: Option<BTreeMap<String, String>>,
) -> Option<BTreeMap<String, String>> {
    merge_opt(base, over, |mut b, o| {
        b.extend(o);
        b
    })
}

/// Keeps unknown keys from both sides (they only feed warnings).
fn merge_unknown(
    mut base: super::config_file::Unknown,
    over: super::config_file::Unknown,
) -> super::config_file::Unknown {
    base.extend(over);
    base
}

impl ConfigFile {
    /// Layers `over` on top of `self`.
    pub fn merge(self, over: ConfigFile) -> ConfigFile {
        let mut plugin = self.plugin;
        for (name, p) in over.plugin {
            let merged = match plugin.remove(&name) {
                Some(prev) => prev.merge(p),
                None => p,
            };
            plugin.insert(name, merged);
        }
        ConfigFile {
            name: over.name.or(self.name),
            region: over.region.or(self.region),
            datacenter: over.datacenter.or(self.datacenter),
            data_dir: over.data_dir.or(self.data_dir),
            bind_addr: over.bind_addr.or(self.bind_addr),
            log_level: over.log_level.or(self.log_level),
            log_json: over.log_json.or(self.log_json),
            enable_debug: over.enable_debug.or(self.enable_debug),
            leave_on_interrupt: over.leave_on_interrupt.or(self.leave_on_interrupt),
            leave_on_terminate: over.leave_on_terminate.or(self.leave_on_terminate),
            ports: merge_opt(self.ports, over.ports, PortsFile::merge),
            addresses: merge_opt(self.addresses, over.addresses, AddressesFile::merge),
            advertise: merge_opt(self.advertise, over.advertise, AddressesFile::merge),
            server: merge_opt(self.server, over.server, ServerFile::merge),
            client: merge_opt(self.client, over.client, ClientFile::merge),
            plugin,
            acl: merge_opt(self.acl, over.acl, AclFile::merge),
            tls: merge_opt(self.tls, over.tls, TlsFile::merge),
            cluster_api: merge_opt(self.cluster_api, over.cluster_api, ClusterApiFile::merge),
            telemetry: merge_opt(self.telemetry, over.telemetry, TelemetryFile::merge),
            unknown: merge_unknown(self.unknown, over.unknown),
        }
    }
}

impl PortsFile {
    /// Layers `over` on top of `self`.
    pub fn merge(self, over: Self) -> Self {
        Self {
            http: over.http.or(self.http),
            rpc: over.rpc.or(self.rpc),
            serf: over.serf.or(self.serf),
            unknown: merge_unknown(self.unknown, over.unknown),
        }
    }
}

impl AddressesFile {
    /// Layers `over` on top of `self`.
    pub fn merge(self, over: Self) -> Self {
        Self {
            http: over.http.or(self.http),
            rpc: over.rpc.or(self.rpc),
            serf: over.serf.or(self.serf),
            unknown: merge_unknown(self.unknown, over.unknown),
        }
    }
}

impl ServerFile {
    /// Layers `over` on top of `self`.
    pub fn merge(self, over: Self) -> Self {
        Self {
            enabled: over.enabled.or(self.enabled),
            bootstrap_expect: over.bootstrap_expect.or(self.bootstrap_expect),
            heartbeat_grace: over.heartbeat_grace.or(self.heartbeat_grace),
            min_heartbeat_ttl: over.min_heartbeat_ttl.or(self.min_heartbeat_ttl),
            failover_heartbeat_ttl: over.failover_heartbeat_ttl.or(self.failover_heartbeat_ttl),
            job_gc_interval: over.job_gc_interval.or(self.job_gc_interval),
            job_gc_threshold: over.job_gc_threshold.or(self.job_gc_threshold),
            eval_gc_threshold: over.eval_gc_threshold.or(self.eval_gc_threshold),
            batch_eval_gc_threshold: over
                .batch_eval_gc_threshold
                .or(self.batch_eval_gc_threshold),
            deployment_gc_threshold: over
                .deployment_gc_threshold
                .or(self.deployment_gc_threshold),
            node_gc_threshold: over.node_gc_threshold.or(self.node_gc_threshold),
            enable_event_broker: over.enable_event_broker.or(self.enable_event_broker),
            event_buffer_size: over.event_buffer_size.or(self.event_buffer_size),
            unknown: merge_unknown(self.unknown, over.unknown),
        }
    }
}

impl ClientFile {
    /// Layers `over` on top of `self`.
    pub fn merge(self, over: Self) -> Self {
        let servers = merge_opt(self.servers, over.servers, |mut b, o| {
            for s in o {
                if !b.contains(&s) {
                    b.push(s);
                }
            }
            b
        });
        Self {
            enabled: over.enabled.or(self.enabled),
            servers,
            node_class: over.node_class.or(self.node_class),
            node_pool: over.node_pool.or(self.node_pool),
            meta: merge_map(self.meta, over.meta),
            network_interface: over.network_interface.or(self.network_interface),
            cpu_total_compute: over.cpu_total_compute.or(self.cpu_total_compute),
            memory_total_mb: over.memory_total_mb.or(self.memory_total_mb),
            reserved: merge_opt(self.reserved, over.reserved, ReservedFile::merge),
            gc_interval: over.gc_interval.or(self.gc_interval),
            options: merge_map(self.options, over.options),
            alloc_dir: over.alloc_dir.or(self.alloc_dir),
            state_dir: over.state_dir.or(self.state_dir),
            artifact: merge_opt(self.artifact, over.artifact, ArtifactFile::merge),
            unknown: merge_unknown(self.unknown, over.unknown),
        }
    }
}

impl ArtifactFile {
    /// Layers `over` on top of `self`.
    pub fn merge(self, over: Self) -> Self {
        Self {
            http_read_timeout: over.http_read_timeout.or(self.http_read_timeout),
            http_max_size: over.http_max_size.or(self.http_max_size),
            decompression_size_limit: over
                .decompression_size_limit
                .or(self.decompression_size_limit),
            decompression_file_count_limit: over
                .decompression_file_count_limit
                .or(self.decompression_file_count_limit),
            disable_filesystem_isolation: over
                .disable_filesystem_isolation
                .or(self.disable_filesystem_isolation),
            unknown: merge_unknown(self.unknown, over.unknown),
        }
    }
}

impl ReservedFile {
    /// Layers `over` on top of `self`.
    pub fn merge(self, over: Self) -> Self {
        Self {
            cpu: over.cpu.or(self.cpu),
            memory: over.memory.or(self.memory),
            disk: over.disk.or(self.disk),
            reserved_ports: over.reserved_ports.or(self.reserved_ports),
            unknown: merge_unknown(self.unknown, over.unknown),
        }
    }
}

impl PluginFile {
    /// Layers `over` on top of `self`; a set `config` replaces the earlier one whole.
    pub fn merge(self, over: Self) -> Self {
        Self {
            config: over.config.or(self.config),
            args: over.args.or(self.args),
            unknown: merge_unknown(self.unknown, over.unknown),
        }
    }
}

impl AclFile {
    /// Layers `over` on top of `self`.
    pub fn merge(self, over: Self) -> Self {
        Self {
            enabled: over.enabled.or(self.enabled),
            token_ttl: over.token_ttl.or(self.token_ttl),
            policy_ttl: over.policy_ttl.or(self.policy_ttl),
            token_min_expiration_ttl: over
                .token_min_expiration_ttl
                .or(self.token_min_expiration_ttl),
            token_max_expiration_ttl: over
                .token_max_expiration_ttl
                .or(self.token_max_expiration_ttl),
            unknown: merge_unknown(self.unknown, over.unknown),
        }
    }
}

impl TlsFile {
    /// Layers `over` on top of `self`, key by key.
    pub fn merge(self, over: Self) -> Self {
        Self {
            http: over.http.or(self.http),
            rpc: over.rpc.or(self.rpc),
            ca_file: over.ca_file.or(self.ca_file),
            cert_file: over.cert_file.or(self.cert_file),
            key_file: over.key_file.or(self.key_file),
            verify_server_hostname: over.verify_server_hostname.or(self.verify_server_hostname),
            verify_https_client: over.verify_https_client.or(self.verify_https_client),
            unknown: merge_unknown(self.unknown, over.unknown),
        }
    }
}

impl ClusterApiFile {
    /// Layers `over` on top of `self`, key by key.
    pub fn merge(self, over: Self) -> Self {
        Self {
            enabled: over.enabled.or(self.enabled),
            jobs_dir: over.jobs_dir.or(self.jobs_dir),
            unknown: merge_unknown(self.unknown, over.unknown),
        }
    }
}

impl TelemetryFile {
    /// Layers `over` on top of `self`.
    pub fn merge(self, over: Self) -> Self {
        Self {
            prometheus_metrics: over.prometheus_metrics.or(self.prometheus_metrics),
            collection_interval: over.collection_interval.or(self.collection_interval),
            disable_hostname: over.disable_hostname.or(self.disable_hostname),
            use_node_name: over.use_node_name.or(self.use_node_name),
            publish_allocation_metrics: over
                .publish_allocation_metrics
                .or(self.publish_allocation_metrics),
            publish_node_metrics: over.publish_node_metrics.or(self.publish_node_metrics),
            in_memory_collection_interval: over
                .in_memory_collection_interval
                .or(self.in_memory_collection_interval),
            unknown: merge_unknown(self.unknown, over.unknown),
        }
    }
}
