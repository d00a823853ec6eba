//! The agent's `tls { }` block resolved: which listeners speak TLS and with what files. The
//! files themselves are read when the agent starts (`agent::tls`), so a missing or unusable
//! one stops the start with an error naming the setting and path.

use std::path::{Path, PathBuf};

use super::config::{ConfigError, absolute};
use super::config_file::TlsFile;

/// `tls { }` settings, as Nomad names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// HTTPS on the HTTP API port (and agent-to-agent forwarding over HTTPS).
    pub http: bool,
    /// TLS on the RPC port, with client certificates required; this agent's client calls
    /// the servers over TLS.
    pub rpc: bool,
    /// CA certificate(s) (PEM).
    pub ca_file: Option<PathBuf>,
    /// This agent's certificate (PEM).
    pub cert_file: Option<PathBuf>,
    /// The key of `cert_file` (PEM). Only its path is ever shown.
    pub key_file: Option<PathBuf>,
    /// Servers must present a certificate valid for `server.<region>.nomad`.
    pub verify_server_hostname: bool,
    /// HTTPS callers must present a certificate signed by the CA.
    pub verify_https_client: bool,
}

impl TlsConfig {
    /// Applies defaults and checks that every file the enabled listeners need is named.
    pub fn resolve(file: TlsFile) -> Result<Self, ConfigError> {
        let path = |p: Option<PathBuf>| {
            p.filter(|p| !p.as_os_str().is_empty())
                .map(absolute)
                .transpose()
        };
        let tls = TlsConfig {
            http: file.http.unwrap_or(false),
            rpc: file.rpc.unwrap_or(false),
            ca_file: path(file.ca_file)?,
            cert_file: path(file.cert_file)?,
            key_file: path(file.key_file)?,
            verify_server_hostname: file.verify_server_hostname.unwrap_or(false),
            verify_https_client: file.verify_https_client.unwrap_or(false),
        };
        if tls.enabled() {
            let needed_by = match (tls.http, tls.rpc) {
                (true, true) => "tls.http and tls.rpc",
                (true, false) => "tls.http",
                _ => "tls.rpc",
            };
            for (key, value) in [
                ("tls.cert_file", &tls.cert_file),
                ("tls.key_file", &tls.key_file),
            ] {
                if value.is_none() {
                    return Err(ConfigError::Invalid(format!(
                        "{key}: required when {needed_by} is enabled"
                    )));
                }
            }
            if tls.ca_file.is_none() {
                let reason = if tls.rpc {
                    Some("tls.rpc is enabled (RPC peers are verified against it)")
                } else if tls.verify_https_client {
                    Some("tls.verify_https_client is enabled")
                } else {
                    None
                };
                if let Some(reason) = reason {
                    return Err(ConfigError::Invalid(format!(
                        "tls.ca_file: required when {reason}"
                    )));
                }
            }
        }
        Ok(tls)
    }

    /// True when any listener speaks TLS.
    pub fn enabled(&self) -> bool {
        self.http || self.rpc
    }

    /// `/v1/agent/self`'s view: switches and paths, never file contents.
    pub fn to_json(&self) -> serde_json::Value {
        let show = |p: &Option<PathBuf>| p.as_deref().map(Path::display).map(|d| d.to_string());
        serde_json::json!({
            "EnableHTTP": self.http,
            "EnableRPC": self.rpc,
            "CAFile": show(&self.ca_file).unwrap_or_default(),
            "CertFile": show(&self.cert_file).unwrap_or_default(),
            "KeyFile": show(&self.key_file).unwrap_or_default(),
            "VerifyServerHostname": self.verify_server_hostname,
            "VerifyHTTPSClient": self.verify_https_client,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::config_load::{ConfigFormat, parse_config};
    use crate::agent::{AgentConfig, ConfigFile};

    fn resolve(text: &str) -> Result<AgentConfig, ConfigError> {
        let loaded = parse_config(text, ConfigFormat::Hcl, "tls.hcl").unwrap();
        AgentConfig::resolve(loaded.config, false, vec![])
    }

    const BASE: &str = "data_dir = \"/tmp/y\"\nserver { enabled = true }\n";

    #[test]
    fn parses_every_key_and_defaults_off() {
        let c = resolve(&format!(
            "{BASE}tls {{\n  http = true\n  rpc = true\n  ca_file = \"/etc/yurt/ca.pem\"\n  \
             cert_file = \"/etc/yurt/server.pem\"\n  key_file = \"/etc/yurt/server-key.pem\"\n  \
             verify_server_hostname = true\n  verify_https_client = true\n}}\n"
        ))
        .unwrap();
        assert_eq!(
            c.tls,
            TlsConfig {
                http: true,
                rpc: true,
                ca_file: Some("/etc/yurt/ca.pem".into()),
                cert_file: Some("/etc/yurt/server.pem".into()),
                key_file: Some("/etc/yurt/server-key.pem".into()),
                verify_server_hostname: true,
                verify_https_client: true,
            }
        );
        let off = resolve(BASE).unwrap();
        assert_eq!(off.tls, TlsConfig::default());
        assert!(!off.tls.enabled());
    }

    #[test]
    fn json_form_and_relative_paths() {
        let loaded = parse_config(
            r#"{"data_dir": "/tmp/y", "server": {"enabled": true},
                "tls": {"http": true, "cert_file": "c.pem", "key_file": "k.pem"}}"#,
            ConfigFormat::Json,
            "tls.json",
        )
        .unwrap();
        let c = AgentConfig::resolve(loaded.config, false, vec![]).unwrap();
        assert!(c.tls.http && !c.tls.rpc);
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(c.tls.cert_file, Some(cwd.join("c.pem")));
        assert_eq!(c.tls.key_file, Some(cwd.join("k.pem")));
        assert_eq!(c.tls.ca_file, None);
    }

    #[test]
    fn missing_files_are_named() {
        let err = |body: &str| {
            resolve(&format!("{BASE}tls {{\n{body}\n}}\n"))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("http = true\nkey_file = \"/k\""),
            "tls.cert_file: required when tls.http is enabled"
        );
        assert_eq!(
            err("rpc = true\ncert_file = \"/c\""),
            "tls.key_file: required when tls.rpc is enabled"
        );
        assert!(
            err("rpc = true\ncert_file = \"/c\"\nkey_file = \"/k\"").starts_with("tls.ca_file:")
        );
        assert!(
            err("http = true\nverify_https_client = true\ncert_file = \"/c\"\nkey_file = \"/k\"")
                .contains("tls.verify_https_client")
        );
        // HTTPS alone may use a publicly trusted certificate: no CA needed.
        assert!(
            resolve(&format!(
                "{BASE}tls {{\nhttp = true\ncert_file = \"/c\"\nkey_file = \"/k\"\n}}\n"
            ))
            .is_ok()
        );
        let wrong_type = parse_config(
            &format!("{BASE}tls {{\nhttp = \"maybe\"\n}}\n"),
            ConfigFormat::Hcl,
            "tls.hcl",
        )
        .unwrap_err()
        .to_string();
        assert!(wrong_type.contains("tls"), "{wrong_type}");
    }

    #[test]
    fn later_sources_win_key_by_key() {
        let a = parse_config(
            "tls {\n  http = true\n  ca_file = \"/a/ca.pem\"\n  cert_file = \"/a/c.pem\"\n}\n",
            ConfigFormat::Hcl,
            "a.hcl",
        )
        .unwrap()
        .config;
        let b = parse_config(
            "tls {\n  cert_file = \"/b/c.pem\"\n  key_file = \"/b/k.pem\"\n  tls_min_version = \"tls12\"\n}\n",
            ConfigFormat::Hcl,
            "b.hcl",
        )
        .unwrap()
        .config;
        let merged: ConfigFile = a.merge(b);
        let tls = merged.tls.clone().unwrap();
        assert_eq!(tls.http, Some(true));
        assert_eq!(tls.ca_file, Some("/a/ca.pem".into()));
        assert_eq!(tls.cert_file, Some("/b/c.pem".into()));
        assert_eq!(tls.key_file, Some("/b/k.pem".into()));
        assert_eq!(
            merged.unknown_keys(),
            vec!["tls.tls_min_version".to_string()]
        );
    }
}
