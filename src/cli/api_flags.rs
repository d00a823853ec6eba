//! The flags every API command takes, as Nomad's CLI names them (`-address`, `-token`,
//! `-region`, `-ca-cert`, `-ca-path`, `-client-cert`, `-client-key`, `-tls-server-name`,
//! `-tls-skip-verify`), and the TLS settings they and the `NOMAD_*` variables make; a flag
//! wins over its variable.

use std::path::PathBuf;

use clap::Args;

use super::api_client::{ApiClient, ApiError};
use crate::http::query::parse_go_bool;
use crate::tls::{ClientConfig, ClientTls, ServerCheck, TlsError, client_config};

/// Connection flags shared by the API commands (global: accepted after any subcommand).
#[derive(Debug, Clone, Default, Args)]
pub struct ApiFlags {
    /// The agent's address (overrides NOMAD_ADDR).
    #[arg(long = "address", global = true, value_name = "ADDR")]
    pub address: Option<String>,
    /// The ACL token sent with requests (overrides NOMAD_TOKEN).
    #[arg(long = "token", global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// The region of the servers to talk to (overrides NOMAD_REGION).
    #[arg(long = "region", global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// PEM CA certificate to verify the agent's certificate with (NOMAD_CACERT).
    #[arg(long = "ca-cert", global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Directory of PEM CA certificates (NOMAD_CAPATH).
    #[arg(long = "ca-path", global = true, value_name = "DIR")]
    pub ca_path: Option<PathBuf>,
    /// PEM client certificate for agents that require one (NOMAD_CLIENT_CERT).
    #[arg(long = "client-cert", global = true, value_name = "FILE")]
    pub client_cert: Option<PathBuf>,
    /// PEM key of the client certificate (NOMAD_CLIENT_KEY).
    #[arg(long = "client-key", global = true, value_name = "FILE")]
    pub client_key: Option<PathBuf>,
    /// Name to verify the agent's certificate against instead of the address's host
    /// (NOMAD_TLS_SERVER_NAME).
    #[arg(long = "tls-server-name", global = true, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// Do not verify the agent's certificate (NOMAD_SKIP_VERIFY). Insecure.
    #[arg(long = "tls-skip-verify", global = true)]
    pub tls_skip_verify: bool,
}

impl ApiFlags {
    /// A client from these flags, falling back to the process environment.
    pub fn client(&self) -> Result<ApiClient, ApiError> {
        ApiClient::from_flags(self)
    }

    /// A client from these flags, falling back to `env`.
    pub fn client_with(&self, env: impl Fn(&str) -> Option<String>) -> Result<ApiClient, ApiError> {
        ApiClient::from_flags_lookup(self, env)
    }
}

/// The CLI's TLS settings, each with the flag or variable it came from (for errors).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliTls {
    /// CA file and its origin.
    pub ca_cert: Option<(PathBuf, &'static str)>,
    /// CA directory and its origin.
    pub ca_path: Option<(PathBuf, &'static str)>,
    /// Client certificate and its origin.
    pub client_cert: Option<(PathBuf, &'static str)>,
    /// Client key and its origin.
    pub client_key: Option<(PathBuf, &'static str)>,
    /// Name the agent's certificate must be valid for.
    pub server_name: Option<String>,
    /// No verification at all.
    pub skip_verify: bool,
}

impl CliTls {
    /// Settings from `flags` over the variables `lookup` finds.
    pub fn resolve(flags: &ApiFlags, lookup: &impl Fn(&str) -> Option<String>) -> Self {
        let env = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        let pick = |flag: &Option<PathBuf>, flag_name: &'static str, var: &'static str| {
            flag.clone()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| (p, flag_name))
                .or_else(|| env(var).map(|v| (PathBuf::from(v), var)))
        };
        CliTls {
            ca_cert: pick(&flags.ca_cert, "-ca-cert", "NOMAD_CACERT"),
            ca_path: pick(&flags.ca_path, "-ca-path", "NOMAD_CAPATH"),
            client_cert: pick(&flags.client_cert, "-client-cert", "NOMAD_CLIENT_CERT"),
            client_key: pick(&flags.client_key, "-client-key", "NOMAD_CLIENT_KEY"),
            server_name: flags
                .tls_server_name
                .clone()
                .filter(|n| !n.is_empty())
                .or_else(|| env("NOMAD_TLS_SERVER_NAME")),
            skip_verify: flags.tls_skip_verify
                || env("NOMAD_SKIP_VERIFY")
                    .and_then(|v| parse_go_bool(v.trim()))
                    .unwrap_or(false),
        }
    }

    /// The rustls configuration these settings describe, reading the files they name.
    pub fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let roots = match (&self.ca_cert, &self.ca_path) {
            (Some((file, origin)), _) => Some(crate::tls::load_roots(origin, file)?),
            (None, Some((dir, origin))) => Some(crate::tls::load_roots_dir(origin, dir)?),
            (None, None) => None,
        };
        let identity = match (&self.client_cert, &self.client_key) {
            (Some((cert, cert_origin)), Some((key, key_origin))) => Some(
                crate::tls::load_identity(cert_origin, cert, key_origin, key)?,
            ),
            (Some((cert, origin)), None) | (None, Some((cert, origin))) => {
                return Err(TlsError::Invalid {
                    setting: (*origin).to_string(),
                    path: cert.clone(),
                    reason: "a client certificate and its key must be given together \
                             (-client-cert/NOMAD_CLIENT_CERT and -client-key/NOMAD_CLIENT_KEY)"
                        .into(),
                });
            }
            (None, None) => None,
        };
        let check = if self.skip_verify {
            ServerCheck::SkipVerify
        } else if let Some(name) = &self.server_name {
            ServerCheck::Names(vec![name.clone()])
        } else {
            ServerCheck::Hostname
        };
        client_config(&ClientTls {
            roots,
            identity,
            check,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn flags_win_over_variables() {
        let vars = env(&[
            ("NOMAD_CACERT", "/env/ca.pem"),
            ("NOMAD_CAPATH", "/env/cas"),
            ("NOMAD_CLIENT_CERT", "/env/cli.pem"),
            ("NOMAD_CLIENT_KEY", "/env/cli-key.pem"),
            ("NOMAD_TLS_SERVER_NAME", "server.global.nomad"),
            ("NOMAD_SKIP_VERIFY", "1"),
        ]);
        let from_env = CliTls::resolve(&ApiFlags::default(), &vars);
        assert_eq!(
            from_env,
            CliTls {
                ca_cert: Some(("/env/ca.pem".into(), "NOMAD_CACERT")),
                ca_path: Some(("/env/cas".into(), "NOMAD_CAPATH")),
                client_cert: Some(("/env/cli.pem".into(), "NOMAD_CLIENT_CERT")),
                client_key: Some(("/env/cli-key.pem".into(), "NOMAD_CLIENT_KEY")),
                server_name: Some("server.global.nomad".into()),
                skip_verify: true,
            }
        );
        let flags = ApiFlags {
            ca_cert: Some("/flag/ca.pem".into()),
            client_key: Some("/flag/key.pem".into()),
            tls_server_name: Some("other".into()),
            ..ApiFlags::default()
        };
        let mixed = CliTls::resolve(&flags, &vars);
        assert_eq!(mixed.ca_cert, Some(("/flag/ca.pem".into(), "-ca-cert")));
        assert_eq!(
            mixed.client_key,
            Some(("/flag/key.pem".into(), "-client-key"))
        );
        assert_eq!(
            mixed.client_cert,
            Some(("/env/cli.pem".into(), "NOMAD_CLIENT_CERT"))
        );
        assert_eq!(mixed.server_name.as_deref(), Some("other"));
        // Go's booleans: "false" and "0" are off, garbage is off.
        for off in ["false", "0", "nope"] {
            assert!(
                !CliTls::resolve(&ApiFlags::default(), &env(&[("NOMAD_SKIP_VERIFY", off)]))
                    .skip_verify
            );
        }
    }

    #[test]
    fn address_token_and_region_flags_win_over_the_environment() {
        let vars = env(&[("NOMAD_ADDR", "10.0.0.1:4646"), ("NOMAD_TOKEN", "from-env")]);
        let none = ApiFlags::default().client_with(&vars).unwrap();
        assert_eq!(none.base_url().as_str(), "http://10.0.0.1:4646/");
        assert_eq!(none.token(), Some("from-env"));
        let flags = ApiFlags {
            address: Some("http://10.0.0.2:5646".into()),
            token: Some("from-flag".into()),
            ..ApiFlags::default()
        };
        let c = flags.client_with(&vars).unwrap();
        assert_eq!(c.base_url().as_str(), "http://10.0.0.2:5646/");
        assert_eq!(c.token(), Some("from-flag"));
    }

    #[test]
    fn unusable_files_name_their_flag_or_variable() {
        let missing = CliTls::resolve(
            &ApiFlags::default(),
            &env(&[("NOMAD_CACERT", "/nonexistent/ca.pem")]),
        )
        .client_config()
        .unwrap_err()
        .to_string();
        assert!(
            missing.starts_with("NOMAD_CACERT: reading /nonexistent/ca.pem:"),
            "{missing}"
        );
        let half = CliTls::resolve(
            &ApiFlags {
                client_cert: Some("/x/cert.pem".into()),
                ..ApiFlags::default()
            },
            &env(&[]),
        )
        .client_config()
        .unwrap_err()
        .to_string();
        assert!(half.starts_with("-client-cert: /x/cert.pem:"), "{half}");
        let dir = std::env::temp_dir().join(format!("yurt-capath-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("readme.txt"), "not a certificate").unwrap();
        let empty = CliTls::resolve(
            &ApiFlags {
                ca_path: Some(dir.clone()),
                ..ApiFlags::default()
            },
            &env(&[]),
        )
        .client_config()
        .unwrap_err()
        .to_string();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(empty.contains("holds no PEM CA certificate"), "{empty}");
    }
}
