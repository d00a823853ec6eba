//! The `-dev` preset: server and client in one process on loopback, with raw_exec enabled —
//! the zero-setup default. Files and flags still layer over it.

use serde_json::json;

use super::config_file::{ClientFile, ConfigFile, PluginFile, ServerFile, TelemetryFile};

/// Loopback interface name whose address dev-mode tasks get their ports on.
#[cfg(target_os = "linux")]
pub const LOOPBACK_INTERFACE: &str = "lo";
/// Loopback interface name whose address dev-mode tasks get their ports on.
#[cfg(not(target_os = "linux"))]
pub const LOOPBACK_INTERFACE: &str = "lo0";

impl ConfigFile {
    /// The `-dev` preset. Log level is DEBUG, like Nomad's dev mode; the data dir is left
    /// unset so resolution picks a fresh temporary one.
    pub fn dev() -> Self {
        let mut plugin = std::collections::BTreeMap::new();
        plugin.insert(
            "raw_exec".to_string(),
            PluginFile {
                config: Some(json!({"enabled": true})),
                ..PluginFile::default()
            },
        );
        Self {
            bind_addr: Some("127.0.0.1".into()),
            log_level: Some("DEBUG".into()),
            enable_debug: Some(true),
            server: Some(ServerFile {
                enabled: Some(true),
                bootstrap_expect: Some(1),
                ..ServerFile::default()
            }),
            client: Some(ClientFile {
                enabled: Some(true),
                network_interface: Some(LOOPBACK_INTERFACE.into()),
                ..ClientFile::default()
            }),
            plugin,
            // Nomad's dev mode publishes everything, Prometheus format included.
            telemetry: Some(TelemetryFile {
                prometheus_metrics: Some(true),
                publish_allocation_metrics: Some(true),
                publish_node_metrics: Some(true),
                ..TelemetryFile::default()
            }),
            ..Self::default()
        }
    }
}
