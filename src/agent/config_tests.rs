//! Tests for config parsing, directory loading, merging and resolution.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::config::AgentConfig;
use super::config_file::ConfigFile;
use super::config_load::{ConfigFormat, load_paths, parse_config};

/// A temp directory removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        let id = crate::structs::generate_uuid();
        let path = std::env::temp_dir().join(format!("yurt-test-{tag}-{id}"));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const FULL: &str = r#"
# A production-like config touching every block yurt understands.
name       = "worker-1"
region     = "eu"
datacenter = "fra1"
data_dir   = "/var/lib/yurt"
bind_addr  = "0.0.0.0"
log_level  = "warn"
log_json   = true

ports {
  http = 5646
  rpc  = 5647
  serf = 5648
}

addresses {
  http = "127.0.0.1"
  rpc  = "10.0.0.5"
}

advertise {
  http = "10.0.0.5:5646"
  rpc  = "10.0.0.5"
}

server {
  enabled           = true
  bootstrap_expect  = 3
  heartbeat_grace   = "30s"
  min_heartbeat_ttl = "20s"
  raft_protocol     = 3
}

client {
  enabled           = true
  servers           = ["10.0.0.1:4647", "10.0.0.2:4647"]
  node_class        = "batch"
  node_pool         = "gpu"
  network_interface = "eth0"
  cpu_total_compute = 8000
  memory_total_mb   = 16384
  gc_interval       = "5m"
  alloc_dir         = "/srv/alloc"
  state_dir         = "/srv/state"

  meta {
    rack = "r12"
    slot = 4
  }

  options = {
    "driver.allowlist" = "raw_exec,exec"
  }

  reserved {
    cpu            = 500
    memory         = 512
    disk           = 1024
    reserved_ports = "22,80,8000-8100"
  }
}

plugin "raw_exec" {
  config {
    enabled = true
  }
}

plugin "docker" {
  config {
    allow_privileged = false
    volumes {
      enabled = true
    }
  }
}

acl {
  enabled = false
}

telemetry {
  collection_interval = "1s"
}
"#;

#[test]
fn parses_a_realistic_hcl_config() {
    let loaded = parse_config(FULL, ConfigFormat::Hcl, "full.hcl").unwrap();
    let mut warnings = loaded.warnings.clone();
    warnings.sort();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("\"server.raft_protocol\""),
        "{warnings:?}"
    );

    let c = AgentConfig::resolve(loaded.config, false, loaded.warnings).unwrap();
    assert_eq!(c.name, "worker-1");
    assert_eq!(c.region, "eu");
    assert_eq!(c.datacenter, "fra1");
    assert_eq!(c.data_dir(), PathBuf::from("/var/lib/yurt"));
    assert_eq!(c.log_level, "WARN");
    assert!(c.log_json);
    assert_eq!(
        c.http_addr(),
        "127.0.0.1:5646".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.rpc_addr(), "10.0.0.5:5647".parse::<SocketAddr>().unwrap());
    assert_eq!(c.ports.serf, 5648);
    assert_eq!(c.advertise.http.as_deref(), Some("10.0.0.5:5646"));
    assert!(c.server_enabled());
    assert_eq!(c.server.bootstrap_expect, 3);
    assert_eq!(c.server.heartbeat_grace, Duration::from_secs(30));
    assert_eq!(c.server.min_heartbeat_ttl, Duration::from_secs(20));
    assert!(c.client_enabled());
    assert_eq!(c.client.servers, vec!["10.0.0.1:4647", "10.0.0.2:4647"]);
    assert_eq!(c.client.node_class, "batch");
    assert_eq!(c.client.node_pool, "gpu");
    assert_eq!(c.client.network_interface.as_deref(), Some("eth0"));
    assert_eq!(c.client.cpu_total_compute, 8000);
    assert_eq!(c.client.memory_total_mb, 16384);
    assert_eq!(c.client.gc_interval, Duration::from_secs(300));
    assert_eq!(c.client.alloc_dir, PathBuf::from("/srv/alloc"));
    assert_eq!(c.client.state_dir, PathBuf::from("/srv/state"));
    assert_eq!(c.client.meta["rack"], "r12");
    assert_eq!(c.client.meta["slot"], "4");
    assert_eq!(c.client.options["driver.allowlist"], "raw_exec,exec");
    assert_eq!(c.client.reserved.cpu, 500);
    assert_eq!(c.client.reserved.memory, 512);
    assert_eq!(c.client.reserved.disk, 1024);
    assert_eq!(c.client.reserved.reserved_ports, "22,80,8000-8100");
    assert_eq!(c.plugin_config("raw_exec"), Some(&json!({"enabled": true})));
    assert_eq!(
        c.plugin_config("docker"),
        Some(&json!({"allow_privileged": false, "volumes": {"enabled": true}}))
    );
    assert_eq!(c.plugin_config("exec"), None);
    assert!(!c.acl.enabled);
    assert_eq!(c.telemetry.collection_interval, Duration::from_secs(1));
    assert!(!c.telemetry.prometheus_metrics);
}

#[test]
fn telemetry_block_has_nomads_defaults_and_names_bad_keys() {
    let base = "data_dir = \"/tmp/y\"\nclient { enabled = true }\n";
    let resolve = |extra: &str| {
        let loaded = parse_config(&format!("{base}{extra}"), ConfigFormat::Hcl, "t.hcl")?;
        let warnings = loaded.warnings.clone();
        AgentConfig::resolve(loaded.config, false, loaded.warnings).map(|c| (c, warnings))
    };
    let (c, _) = resolve("").unwrap();
    assert_eq!(c.telemetry, super::config::TelemetryConfig::default());
    assert!(!c.telemetry.publish_allocation_metrics);
    let (c, warnings) = resolve(
        "telemetry {\n prometheus_metrics = true\n collection_interval = \"5s\"\n disable_hostname = true\n publish_allocation_metrics = true\n publish_node_metrics = true\n statsd_address = \"127.0.0.1:8125\"\n}\n",
    )
    .unwrap();
    assert!(c.telemetry.prometheus_metrics);
    assert!(c.telemetry.disable_hostname);
    assert!(c.telemetry.publish_allocation_metrics && c.telemetry.publish_node_metrics);
    assert_eq!(c.telemetry.collection_interval, Duration::from_secs(5));
    // Keys yurt does not implement are reported like any unknown key.
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("\"telemetry.statsd_address\""),
        "{warnings:?}"
    );

    let err = resolve("telemetry {\n collection_interval = \"soon\"\n}\n").unwrap_err();
    assert!(err.to_string().contains("collection_interval"), "{err}");
    let err = resolve("telemetry {\n prometheus_metrics = \"yes please\"\n}\n").unwrap_err();
    assert!(err.to_string().contains("prometheus_metrics"), "{err}");
    let err = resolve("telemetry {\n collection_interval = \"0s\"\n}\n").unwrap_err();
    assert!(
        err.to_string().contains("telemetry.collection_interval"),
        "{err}"
    );
}

#[test]
fn client_artifact_block_overrides_nomads_limits_and_names_bad_sizes() {
    let resolve = |client: &str| {
        let loaded = parse_config(
            &format!("data_dir = \"/tmp/y\"\nclient {{\n enabled = true\n{client}}}\n"),
            ConfigFormat::Hcl,
            "t.hcl",
        )?;
        AgentConfig::resolve(loaded.config, false, loaded.warnings)
    };
    let c = resolve("").unwrap();
    assert_eq!(
        c.client.artifact,
        crate::client::artifact::ArtifactConfig::default()
    );
    assert_eq!(c.client.artifact.decompression_file_count_limit, 4096);
    let c = resolve(
        "artifact {\n http_read_timeout = \"5m\"\n http_max_size = \"1GB\"\n decompression_size_limit = \"2MiB\"\n decompression_file_count_limit = 10\n disable_filesystem_isolation = true\n}\n",
    )
    .unwrap();
    assert_eq!(
        c.client.artifact.http_read_timeout,
        Duration::from_secs(300)
    );
    assert_eq!(c.client.artifact.http_max_size, 1_000_000_000);
    assert_eq!(c.client.artifact.decompression_size_limit, 2 << 20);
    assert_eq!(c.client.artifact.decompression_file_count_limit, 10);
    let err = resolve("artifact {\n http_max_size = \"lots\"\n}\n").unwrap_err();
    assert!(
        err.to_string().contains("client.artifact.http_max_size"),
        "{err}"
    );
}

#[test]
fn acl_block_is_read_with_nomad_defaults() {
    let text = "data_dir = \"/tmp/y\"\nclient { enabled = true }\nacl {\n enabled = true\n token_ttl = \"5s\"\n token_min_expiration_ttl = \"1s\"\n}\n";
    let loaded = parse_config(text, ConfigFormat::Hcl, "acl.hcl").unwrap();
    let c = AgentConfig::resolve(loaded.config, false, loaded.warnings).unwrap();
    assert!(c.acl.enabled);
    assert_eq!(c.acl.token_ttl, Duration::from_secs(5));
    assert_eq!(c.acl.policy_ttl, Duration::from_secs(30));
    assert_eq!(c.acl.token_min_expiration_ttl, Duration::from_secs(1));
    assert_eq!(
        c.acl.token_max_expiration_ttl,
        Duration::from_secs(24 * 3600)
    );
    let bad = "data_dir = \"/tmp/y\"\nclient { enabled = true }\nacl {\n token_min_expiration_ttl = \"48h\"\n}\n";
    let loaded = parse_config(bad, ConfigFormat::Hcl, "acl.hcl").unwrap();
    let err = AgentConfig::resolve(loaded.config, false, loaded.warnings).unwrap_err();
    assert!(
        err.to_string().contains("token_min_expiration_ttl"),
        "{err}"
    );
}

#[test]
fn cluster_api_block_is_off_by_default_and_needs_a_dir_and_a_server() {
    let resolve = |text: &str| {
        let loaded = parse_config(text, ConfigFormat::Hcl, "c.hcl").unwrap();
        AgentConfig::resolve(loaded.config, false, loaded.warnings)
    };
    let c = resolve("data_dir = \"/tmp/y\"\nserver { enabled = true }\n").unwrap();
    assert!(!c.cluster_api.enabled);
    let c = resolve(
        "data_dir = \"/tmp/y\"\nserver { enabled = true }\ncluster_api {\n enabled = true\n jobs_dir = \"/etc/yurt.d/jobs\"\n}\n",
    )
    .unwrap();
    assert!(c.cluster_api.enabled);
    assert_eq!(c.cluster_api.jobs_dir, PathBuf::from("/etc/yurt.d/jobs"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let err = resolve(
        "data_dir = \"/tmp/y\"\nserver { enabled = true }\ncluster_api { enabled = true }\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("cluster_api.jobs_dir"), "{err}");
    let err = resolve(
        "data_dir = \"/tmp/y\"\nclient { enabled = true }\ncluster_api {\n enabled = true\n jobs_dir = \"/j\"\n}\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("server"), "{err}");
}

#[test]
fn json_config_has_the_same_shape() {
    let text = r#"{
        "data_dir": "/tmp/y",
        "client": [{"enabled": true, "servers": "a:4647, b:4647"}],
        "plugin": [{"raw_exec": [{"config": [{"enabled": true}]}]}],
        "ports": {"http": 8080}
    }"#;
    let loaded = parse_config(text, ConfigFormat::Json, "x.json").unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = AgentConfig::resolve(loaded.config, false, vec![]).unwrap();
    assert_eq!(c.client.servers, vec!["a:4647", "b:4647"]);
    assert_eq!(c.plugin_config("raw_exec"), Some(&json!({"enabled": true})));
    assert_eq!(c.ports.http, 8080);
}

#[test]
fn defaults_apply() {
    let loaded = parse_config(
        "data_dir = \"/d\"\nclient { enabled = true }",
        ConfigFormat::Hcl,
        "t",
    )
    .unwrap();
    let c = AgentConfig::resolve(loaded.config, false, vec![]).unwrap();
    assert_eq!(c.region, "global");
    assert_eq!(c.datacenter, "dc1");
    assert_eq!(c.log_level, "INFO");
    assert!(!c.log_json);
    assert_eq!(c.http_addr(), "0.0.0.0:4646".parse::<SocketAddr>().unwrap());
    assert_eq!(c.rpc_addr(), "0.0.0.0:4647".parse::<SocketAddr>().unwrap());
    assert!(!c.server_enabled());
    assert_eq!(c.client.servers, vec!["127.0.0.1:4647"]);
    assert_eq!(c.client.node_pool, "default");
    assert_eq!(c.client.gc_interval, Duration::from_secs(60));
    assert_eq!(c.client.alloc_dir, PathBuf::from("/d/alloc"));
    assert_eq!(c.client.state_dir, PathBuf::from("/d/client"));
    assert_eq!(c.server.heartbeat_grace, Duration::from_secs(10));
    assert!(!c.name.is_empty());
}

#[test]
fn wrong_types_and_bad_values_fail_with_the_key() {
    let err = parse_config("ports { http = \"web\" }", ConfigFormat::Hcl, "bad.hcl")
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.hcl") && err.contains("ports"), "{err}");

    let err = parse_config(
        "server { heartbeat_grace = \"soon\" }",
        ConfigFormat::Hcl,
        "bad.hcl",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("heartbeat_grace"), "{err}");

    let err = parse_config("client {", ConfigFormat::Hcl, "bad.hcl").unwrap_err();
    assert!(err.to_string().starts_with("Error parsing bad.hcl"));
}

#[test]
fn resolution_validates() {
    let resolve = |text: &str| {
        let loaded = parse_config(text, ConfigFormat::Hcl, "t").unwrap();
        AgentConfig::resolve(loaded.config, false, vec![])
    };
    let err = resolve("data_dir = \"/d\"").unwrap_err().to_string();
    assert!(err.contains("Must specify either server, client or dev mode"));
    let err = resolve("server { enabled = true }")
        .unwrap_err()
        .to_string();
    assert!(err.contains("data directory"), "{err}");
    let err = resolve("data_dir = \"/d\"\nserver { enabled = true }\nlog_level = \"LOUD\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("Invalid log level"), "{err}");
    let err =
        resolve("data_dir = \"/d\"\nserver { enabled = true }\nbind_addr = \"{{ GetPrivateIP }}\"")
            .unwrap_err()
            .to_string();
    assert!(err.contains("bind_addr"), "{err}");
    let ok = resolve("data_dir = \"/d\"\nserver { enabled = true }\nlog_level = \"err\"").unwrap();
    assert_eq!(ok.log_level, "ERROR");
}

#[test]
fn directory_loading_is_lexical_and_later_files_win() {
    let dir = TempDir::new("confdir");
    dir.write(
        "10-base.hcl",
        r#"
        data_dir = "/base"
        region   = "base"
        client {
          enabled = true
          servers = ["s1:4647"]
          meta {
            a = "1"
            b = "1"
          }
          options {
            x = "1"
          }
        }
        plugin "raw_exec" {
          config {
            enabled = false
            extra   = 1
          }
        }
        plugin "docker" {
          config {
            endpoint = "unix:///var/run/docker.sock"
          }
        }
        "#,
    );
    dir.write(
        "20-override.json",
        r#"{"region": "over", "client": {"servers": ["s2:4647", "s1:4647"], "meta": {"b": "2"}},
            "plugin": {"raw_exec": {"config": {"enabled": true}}}}"#,
    );
    dir.write("30-last.hcl", "datacenter = \"dc9\"\nlog_level = \"debug\"");
    dir.write("README.md", "not config");
    dir.write(".hidden.hcl", "this is not = valid {");

    let single = dir.write_outside("solo.hcl", "datacenter = \"solo\"");
    let loaded = load_paths(&[dir.0.clone(), single.clone()]).unwrap();
    let c = AgentConfig::resolve(loaded.config, false, loaded.warnings).unwrap();
    assert_eq!(c.data_dir(), PathBuf::from("/base"));
    assert_eq!(c.region, "over");
    assert_eq!(
        c.datacenter, "solo",
        "explicit file after the directory wins"
    );
    assert_eq!(c.log_level, "DEBUG");
    assert_eq!(c.client.servers, vec!["s1:4647", "s2:4647"]);
    assert_eq!(c.client.meta["a"], "1");
    assert_eq!(c.client.meta["b"], "2");
    assert_eq!(c.client.options["x"], "1");
    // A later plugin config replaces the earlier body whole; other plugins are kept.
    assert_eq!(c.plugin_config("raw_exec"), Some(&json!({"enabled": true})));
    assert!(c.plugin_config("docker").is_some());
    let _ = std::fs::remove_file(single);
}

#[test]
fn missing_path_is_an_error() {
    let err = load_paths(&[PathBuf::from("/nonexistent/yurt.hcl")]).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/yurt.hcl"));
}

#[test]
fn dev_preset_resolves() {
    let c = AgentConfig::resolve(ConfigFile::dev(), true, vec![]).unwrap();
    assert!(c.dev_mode);
    assert!(
        c.telemetry.prometheus_metrics,
        "Nomad's dev mode serves Prometheus"
    );
    assert!(c.telemetry.publish_allocation_metrics && c.telemetry.publish_node_metrics);
    assert!(c.server_enabled() && c.client_enabled());
    assert_eq!(
        c.http_addr(),
        "127.0.0.1:4646".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        c.rpc_addr(),
        "127.0.0.1:4647".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.log_level, "DEBUG");
    assert_eq!(c.plugin_config("raw_exec"), Some(&json!({"enabled": true})));
    assert!(c.data_dir().starts_with(std::env::temp_dir()));
    assert_eq!(c.name, super::config::hostname());
    let again = AgentConfig::resolve(ConfigFile::dev(), true, vec![]).unwrap();
    assert_ne!(
        c.data_dir(),
        again.data_dir(),
        "each dev run gets a fresh dir"
    );
}

impl TempDir {
    /// Writes a file next to (not inside) the directory, for explicit-file tests.
    pub(crate) fn write_outside(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.with_file_name(format!(
            "{}-{name}",
            self.0.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&p, text).unwrap();
        p
    }
}

#[test]
fn packaged_default_config_parses_cleanly() {
    let text = include_str!("../../packaging/yurt.hcl");
    let loaded = parse_config(text, ConfigFormat::Hcl, "packaging/yurt.hcl").unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = AgentConfig::resolve(loaded.config, false, vec![]).unwrap();
    assert!(c.client_enabled() && !c.server_enabled());
    assert_eq!(c.data_dir(), PathBuf::from("/var/lib/yurt"));
    assert_eq!(
        c.plugin_config("raw_exec"),
        Some(&json!({"enabled": false}))
    );
}

#[test]
fn server_gc_keys_override_nomads_defaults() {
    let loaded = parse_config(
        "data_dir = \"/d\"\nserver {\n  enabled = true\n  job_gc_interval = \"30s\"\n  job_gc_threshold = \"2s\"\n  eval_gc_threshold = \"5m\"\n  node_gc_threshold = \"48h\"\n}",
        ConfigFormat::Hcl,
        "gc.hcl",
    )
    .unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = AgentConfig::resolve(loaded.config, false, vec![]).unwrap();
    let gc = c.server.gc;
    assert_eq!(gc.interval, Duration::from_secs(30));
    assert_eq!(gc.thresholds.job, Duration::from_secs(2));
    assert_eq!(gc.thresholds.eval, Duration::from_secs(300));
    assert_eq!(gc.thresholds.node, Duration::from_secs(48 * 3600));
    // Unset keys keep Nomad's defaults.
    assert_eq!(gc.thresholds.batch_eval, Duration::from_secs(24 * 3600));
    assert_eq!(gc.thresholds.deployment, Duration::from_secs(3600));
}

#[test]
fn the_event_broker_settings_default_to_nomads_and_refuse_a_negative_buffer() {
    let resolve = |hcl: &str| {
        let loaded = parse_config(hcl, ConfigFormat::Hcl, "t").unwrap();
        AgentConfig::resolve(loaded.config, false, vec![])
    };
    let c = resolve("data_dir = \"/d\"\nserver { enabled = true }").unwrap();
    assert!(c.server.enable_event_broker);
    assert_eq!(c.server.event_buffer_size, 100);
    let c = resolve(
        "data_dir = \"/d\"\nserver {\n  enabled = true\n  enable_event_broker = false\n  event_buffer_size = 7\n}",
    )
    .unwrap();
    assert!(!c.server.enable_event_broker);
    assert_eq!(c.server.event_buffer_size, 7);
    let err = resolve("data_dir = \"/d\"\nserver {\n  enabled = true\n  event_buffer_size = -1\n}")
        .unwrap_err()
        .to_string();
    assert!(err.contains("event_buffer_size"), "{err}");
}
