//! SIGHUP: re-reads the configuration sources and applies what a running agent can change —
//! the log level, and the certificates and keys its HTTP and RPC listeners present — as
//! Nomad's agent does. Every other changed setting is named in a warning (it needs a
//! restart); none is dropped silently. Sources that no longer parse or validate leave the
//! running configuration untouched.

use std::sync::Arc;

use tokio::sync::watch;

use super::ConfigError;
use super::config::AgentConfig;
use super::http::AgentInfo;
use super::logging::{self, LevelChange};
use super::tls::AgentTls;
use crate::tls::ServerConfig;

/// Reads the agent's configuration again from the sources it started with (the `-config`
/// paths, layered under the same flags).
pub type ConfigSource = Box<dyn Fn() -> Result<AgentConfig, ConfigError> + Send + Sync>;

/// Where the TLS listeners take their configuration from; `None` for a plain-HTTP one.
#[derive(Default)]
pub struct ListenerTls {
    /// The HTTP API listener's.
    pub http: Option<watch::Sender<ServerConfig>>,
    /// The RPC listener's.
    pub rpc: Option<watch::Sender<ServerConfig>>,
}

/// How a new configuration differs from the running one.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The new log level, when it differs.
    pub log_level: Option<String>,
    /// TLS stays on for the same listeners, so their files are read again: a certificate
    /// renewed in place counts as a change even when no path did.
    pub reload_tls: bool,
    /// Changed settings a running agent cannot apply, by config key.
    pub need_restart: Vec<&'static str>,
}

/// Compares the running configuration with a freshly read one.
pub fn changes(old: &AgentConfig, new: &AgentConfig) -> Changes {
    let new = &same_dev_dir(old, new);
    let mut need_restart = Vec::new();
    let mut differs = |key: &'static str, changed: bool| {
        if changed {
            need_restart.push(key);
        }
    };
    differs("name", old.name != new.name);
    differs("region", old.region != new.region);
    differs("datacenter", old.datacenter != new.datacenter);
    differs("data_dir", old.data_dir != new.data_dir);
    differs("bind_addr", old.bind_addr != new.bind_addr);
    differs("log_json", old.log_json != new.log_json);
    differs(
        "leave_on_interrupt",
        old.leave_on_interrupt != new.leave_on_interrupt,
    );
    differs(
        "leave_on_terminate",
        old.leave_on_terminate != new.leave_on_terminate,
    );
    differs("ports", old.ports != new.ports);
    differs("addresses", old.addresses != new.addresses);
    differs("advertise", old.advertise != new.advertise);
    differs("server", old.server != new.server);
    differs("client", old.client != new.client);
    differs("plugin", old.plugins != new.plugins);
    differs("acl", old.acl != new.acl);
    differs("cluster_api", old.cluster_api != new.cluster_api);
    // Switching TLS on or off for a listener means rebinding it with another protocol.
    differs("tls.http", old.tls.http != new.tls.http);
    differs("tls.rpc", old.tls.rpc != new.tls.rpc);
    // Only checked by the outgoing clients, which are built once at start.
    differs(
        "tls.verify_server_hostname",
        old.tls.verify_server_hostname != new.tls.verify_server_hostname,
    );
    let same_switches = old.tls.http == new.tls.http && old.tls.rpc == new.tls.rpc;
    Changes {
        log_level: (old.log_level != new.log_level).then(|| new.log_level.clone()),
        reload_tls: same_switches && new.tls.enabled(),
        need_restart,
    }
}

/// `new`, with the paths under its data dir moved under `old`'s when `-dev` made up both
/// (it picks a fresh temporary dir on every read).
fn same_dev_dir(old: &AgentConfig, new: &AgentConfig) -> AgentConfig {
    let mut out = new.clone();
    if !(is_dev_temp(&old.data_dir) && is_dev_temp(&new.data_dir)) {
        return out;
    }
    for path in [&mut out.client.alloc_dir, &mut out.client.state_dir] {
        if let Ok(rest) = path.strip_prefix(&new.data_dir) {
            *path = old.data_dir.join(rest);
        }
    }
    out.data_dir = old.data_dir.clone();
    out
}

/// A data dir `-dev` chose by itself.
fn is_dev_temp(dir: &std::path::Path) -> bool {
    dir.parent() == Some(std::env::temp_dir().as_path())
        && dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(super::config::DEV_DATA_DIR_PREFIX))
}

/// Applies reloads to the running agent.
pub struct Reloader {
    source: ConfigSource,
    /// The configuration in force: what the agent started with plus what reloads applied.
    running: AgentConfig,
    listeners: ListenerTls,
    info: Arc<AgentInfo>,
}

impl Reloader {
    /// A reloader for an agent running `running`.
    pub fn new(
        source: ConfigSource,
        running: AgentConfig,
        listeners: ListenerTls,
        info: Arc<AgentInfo>,
    ) -> Self {
        Reloader {
            source,
            running,
            listeners,
            info,
        }
    }

    /// The configuration in force.
    pub fn running(&self) -> &AgentConfig {
        &self.running
    }

    /// Re-reads the sources and applies what can be applied; everything it does or refuses
    /// is logged.
    pub fn reload(&mut self) {
        tracing::info!("reloading configuration");
        let new = match (self.source)() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    "configuration reload failed, the running configuration stays: {e}"
                );
                return;
            }
        };
        for warning in &new.warnings {
            tracing::warn!("{warning}");
        }
        let changes = changes(&self.running, &new);
        if let Some(level) = &changes.log_level {
            self.apply_log_level(level);
        }
        if changes.reload_tls {
            self.apply_tls(&new);
        }
        if !changes.need_restart.is_empty() {
            tracing::warn!(
                "configuration reload: {} changed, which a running agent cannot apply; restart the agent for it to take effect",
                changes.need_restart.join(", ")
            );
        }
        if changes.log_level.is_none() && !changes.reload_tls && changes.need_restart.is_empty() {
            tracing::info!("configuration reloaded, nothing changed");
        }
        self.info
            .set_config(super::runtime::config_json(&self.running));
    }

    fn apply_log_level(&mut self, level: &str) {
        match logging::set_level(level) {
            Ok(LevelChange::Applied) => {
                tracing::info!(from = %self.running.log_level, to = %level, "log level changed");
                self.running.log_level = level.to_string();
            }
            Ok(LevelChange::OverriddenByEnv) => tracing::warn!(
                "log_level {level} not applied: RUST_LOG is set and decides the log filter"
            ),
            Ok(LevelChange::NotInstalled) => tracing::warn!(
                "log_level {level} not applied: this process's logger was installed by someone else"
            ),
            Err(e) => tracing::error!("changing the log level to {level}: {e}"),
        }
    }

    /// Reads the TLS files again and hands the listeners the new configurations. Outgoing
    /// connections (to servers, to other agents) keep what they were built with.
    fn apply_tls(&mut self, new: &AgentConfig) {
        let loaded = match AgentTls::load(&new.tls, &self.running.region) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("TLS reload failed, the listeners keep their certificates: {e}");
                return;
            }
        };
        let mut reloaded = Vec::new();
        for (name, sender, config) in [
            ("http", &self.listeners.http, loaded.http_server),
            ("rpc", &self.listeners.rpc, loaded.rpc_server),
        ] {
            if let (Some(sender), Some(config)) = (sender, config) {
                sender.send_replace(config);
                reloaded.push(name);
            }
        }
        let tls = &mut self.running.tls;
        tls.ca_file = new.tls.ca_file.clone();
        tls.cert_file = new.tls.cert_file.clone();
        tls.key_file = new.tls.key_file.clone();
        tls.verify_https_client = new.tls.verify_https_client;
        tracing::info!(
            listeners = %reloaded.join(","),
            "TLS certificates reloaded; connections this agent opens to servers and other agents present the new certificate after a restart"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{ConfigFormat, parse_config};

    fn config(hcl: &str) -> AgentConfig {
        let base = r#"
            data_dir = "/tmp/yurt-reload-test"
            server { enabled = true }
        "#;
        let loaded = parse_config(&format!("{base}\n{hcl}"), ConfigFormat::Hcl, "test").unwrap();
        AgentConfig::resolve(loaded.config, false, vec![]).unwrap()
    }

    #[test]
    fn dev_temp_dirs_are_the_same_dir() {
        let dev = |dir: &str| {
            let loaded = parse_config(dir, ConfigFormat::Hcl, "test").unwrap();
            let file = crate::agent::ConfigFile::dev().merge(loaded.config);
            AgentConfig::resolve(file, true, vec![]).unwrap()
        };
        let (a, b) = (dev(""), dev(""));
        assert_ne!(a.data_dir, b.data_dir);
        assert_eq!(changes(&a, &b), Changes::default());
        // A data dir given on purpose is a change, and moves the client's dirs with it.
        let c = changes(&a, &dev(r#"data_dir = "/srv/yurt""#));
        assert_eq!(c.need_restart, vec!["data_dir", "client"]);
    }

    #[test]
    fn same_config_changes_nothing() {
        let c = config(r#"log_level = "WARN""#);
        assert_eq!(changes(&c, &c.clone()), Changes::default());
    }

    #[test]
    fn log_level_is_applied_and_the_rest_needs_a_restart() {
        let old = config(r#"log_level = "INFO""#);
        let new = config(
            r#"
            log_level = "debug"
            leave_on_terminate = true
            ports { http = 5000 }
            acl { enabled = true }
            client { enabled = true }
            "#,
        );
        let c = changes(&old, &new);
        assert_eq!(c.log_level.as_deref(), Some("DEBUG"));
        assert!(!c.reload_tls);
        assert_eq!(
            c.need_restart,
            vec!["leave_on_terminate", "ports", "client", "acl"]
        );
    }

    #[test]
    fn tls_files_reload_only_while_the_switches_stay() {
        let tls = |http: bool, rpc: bool, cert: &str| {
            config(&format!(
                r#"tls {{
                    http = {http}
                    rpc = {rpc}
                    ca_file = "/ca.pem"
                    cert_file = "{cert}"
                    key_file = "/key.pem"
                }}"#
            ))
        };
        let old = tls(true, true, "/a.pem");
        let c = changes(&old, &tls(true, true, "/b.pem"));
        assert!(c.reload_tls);
        assert!(c.need_restart.is_empty(), "{:?}", c.need_restart);
        // Same files, renewed in place: still read again.
        assert!(changes(&old, &old.clone()).reload_tls);
        let c = changes(&old, &tls(true, false, "/a.pem"));
        assert!(!c.reload_tls);
        assert_eq!(c.need_restart, vec!["tls.rpc"]);
        assert!(!changes(&config(""), &config("")).reload_tls);
    }
}
