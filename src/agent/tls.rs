//! The agent's TLS material, loaded once at start from `tls { }`: what the HTTP and RPC
//! listeners serve, and what this agent trusts and shows when it calls servers (its client's
//! RPC, the public-API proxy of a client-only agent) and other agents (forwarded client
//! requests and exec WebSockets).
//!
//! As in Nomad, the RPC port always asks for a client certificate signed by the CA; the HTTP
//! port does with `verify_https_client`. Without `verify_server_hostname` a peer's certificate
//! only has to chain to the CA; with it, servers must be valid for `server.<region>.nomad`
//! (and other agents, which may be clients, for that or `client.<region>.nomad`).

use super::config::TlsConfig;
use crate::tls::{
    ClientConfig, ClientTls, Identity, ServerCheck, ServerConfig, TlsError, client_config,
    load_identity, load_roots, server_config,
};

/// Loaded TLS configurations; `None` where the listener or peer speaks plain HTTP.
#[derive(Clone, Default)]
pub struct AgentTls {
    /// The HTTP API listener's (`tls.http`).
    pub http_server: Option<ServerConfig>,
    /// The RPC listener's (`tls.rpc`).
    pub rpc_server: Option<ServerConfig>,
    /// Calls to servers' RPC ports (`tls.rpc`).
    pub to_servers: Option<ClientConfig>,
    /// Calls to other agents' HTTP ports (`tls.http`).
    pub to_agents: Option<ClientConfig>,
}

impl std::fmt::Debug for AgentTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Configs hold private keys: show only which parts are on.
        f.debug_struct("AgentTls")
            .field("http", &self.http_server.is_some())
            .field("rpc", &self.rpc_server.is_some())
            .finish()
    }
}

/// The name a server's certificate carries in `region`.
pub fn server_name(region: &str) -> String {
    format!("server.{region}.nomad")
}

/// The name a client's certificate carries in `region`.
pub fn client_name(region: &str) -> String {
    format!("client.{region}.nomad")
}

impl AgentTls {
    /// Reads the files `tls` names; an unreadable or unusable one is an error naming the
    /// setting and path.
    pub fn load(tls: &TlsConfig, region: &str) -> Result<Self, TlsError> {
        if !tls.enabled() {
            return Ok(AgentTls::default());
        }
        let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) else {
            // `TlsConfig::resolve` refuses this; kept as an error rather than a panic.
            return Err(TlsError::Invalid {
                setting: "tls.cert_file".into(),
                path: tls.cert_file.clone().unwrap_or_default(),
                reason: "tls.cert_file and tls.key_file are required".into(),
            });
        };
        let identity: Identity = load_identity("tls.cert_file", cert, "tls.key_file", key)?;
        let roots = tls
            .ca_file
            .as_deref()
            .map(|ca| load_roots("tls.ca_file", ca))
            .transpose()?;
        let check = |names: Vec<String>| {
            if tls.verify_server_hostname {
                ServerCheck::Names(names)
            } else {
                ServerCheck::ChainOnly
            }
        };
        let peer = |check: ServerCheck| {
            client_config(&ClientTls {
                roots: roots.clone(),
                identity: Some(identity.clone()),
                check,
            })
        };
        let mut out = AgentTls::default();
        if tls.http {
            let require = if tls.verify_https_client {
                roots.clone()
            } else {
                None
            };
            out.http_server = Some(server_config(&identity, require)?);
            out.to_agents = Some(peer(check(vec![server_name(region), client_name(region)]))?);
        }
        if tls.rpc {
            out.rpc_server = Some(server_config(&identity, roots.clone())?);
            out.to_servers = Some(peer(check(vec![server_name(region)]))?);
        }
        Ok(out)
    }

    /// `https` or `http`, for URLs of other agents' HTTP ports.
    pub fn agent_scheme(&self) -> &'static str {
        if self.to_agents.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::tls::test_pki as pki;

    #[test]
    fn loads_what_the_switches_need_and_names_bad_files() {
        let dir = std::env::temp_dir().join(format!(
            "yurt-agent-tls-{}",
            crate::structs::generate_uuid()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = pki::TestCa::new("yurt test CA");
        let files = ca.issue(&dir, "server", &["server.global.nomad"]);
        let mut config = TlsConfig {
            http: true,
            rpc: true,
            ca_file: Some(ca.write_ca(&dir, "ca")),
            cert_file: Some(files.cert.clone()),
            key_file: Some(files.key.clone()),
            verify_server_hostname: true,
            verify_https_client: false,
        };
        let all = AgentTls::load(&config, "global").unwrap();
        assert!(all.http_server.is_some() && all.rpc_server.is_some());
        assert!(all.to_servers.is_some() && all.to_agents.is_some());
        assert_eq!(all.agent_scheme(), "https");
        assert_eq!(format!("{all:?}"), "AgentTls { http: true, rpc: true }");

        config.rpc = false;
        let http_only = AgentTls::load(&config, "global").unwrap();
        assert!(http_only.rpc_server.is_none() && http_only.to_servers.is_none());

        let missing = dir.join("nope.pem");
        config.ca_file = Some(missing.clone());
        let err = AgentTls::load(&config, "global").unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            err.starts_with(&format!("tls.ca_file: reading {}:", missing.display())),
            "{err}"
        );
        let off = AgentTls::load(&TlsConfig::default(), "global").unwrap();
        assert!(off.http_server.is_none() && off.to_agents.is_none());
        assert_eq!(off.agent_scheme(), "http");
    }
}
