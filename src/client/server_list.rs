//! The servers a client talks to. The list is shared by everything that calls the servers
//! (the client's RPC, the agent's proxy of the public API) and can be replaced while the
//! agent runs (`PUT /v1/agent/servers`; later, the servers a heartbeat reply names), so each
//! request reads the list in force when it starts.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::server_http::base_url_with;

/// How long an address given to [`resolve_and_ping`] may take to accept a connection.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// A shared, replaceable list of server addresses (`host:port`, `host` or a URL).
#[derive(Debug, Clone)]
pub struct ServerList {
    addrs: Arc<RwLock<Vec<String>>>,
    /// `http` or `https`, for the addresses that do not carry a scheme.
    scheme: &'static str,
}

impl ServerList {
    /// A list starting with `addrs`, reached over TLS when `tls` is set.
    pub fn new(addrs: &[String], tls: bool) -> Self {
        ServerList {
            addrs: Arc::new(RwLock::new(addrs.to_vec())),
            scheme: if tls { "https" } else { "http" },
        }
    }

    /// The addresses as `host:port` (a configured URL loses its scheme, a bare host gains
    /// the default RPC port), sorted as Nomad lists them.
    pub fn addresses(&self) -> Vec<String> {
        let mut out: Vec<String> = self.read().iter().map(|a| host_port(a)).collect();
        out.sort();
        out
    }

    /// The base URLs (`scheme://host:port`) to send requests to, in the list's order.
    pub fn base_urls(&self) -> Vec<String> {
        self.read()
            .iter()
            .map(|a| base_url_with(a, self.scheme))
            .collect()
    }

    /// How many servers the list holds.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Replaces the whole list; requests already under way finish with the old one.
    pub fn replace(&self, addrs: Vec<String>) {
        *self.addrs.write().unwrap_or_else(|p| p.into_inner()) = addrs;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<String>> {
        self.addrs.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// `host:port` of an address that may be a URL or lack a port.
fn host_port(addr: &str) -> String {
    let url = base_url_with(addr, "http");
    url.split_once("://")
        .map_or(url.as_str(), |(_, rest)| rest)
        .to_string()
}

/// Why an address cannot be a server.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error("invalid server address {0:?}: {1}")]
    Invalid(String, String),
    #[error("Server at address {0} failed ping: {1}")]
    Unreachable(String, String),
}

/// Resolves `addr` (`host[:port]`, the port defaulting to Nomad's RPC port) to one socket
/// address and checks that something accepts connections there, as Nomad pings a server
/// before taking it into a client's list.
pub async fn resolve_and_ping(addr: &str) -> Result<SocketAddr, AddressError> {
    let invalid = |why: String| AddressError::Invalid(addr.to_string(), why);
    let trimmed = addr.trim();
    if trimmed.is_empty() {
        return Err(invalid("empty address".into()));
    }
    if trimmed.contains("://") || trimmed.contains('/') {
        return Err(invalid("expected host or host:port".into()));
    }
    let hp = host_port(trimmed);
    let (host, port) = hp
        .rsplit_once(':')
        .ok_or_else(|| invalid("expected host or host:port".into()))?;
    if host.is_empty() {
        return Err(invalid("missing host".into()));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => return Err(invalid(format!("bad port {port:?}"))),
        Ok(_) => {}
    }
    let resolved = tokio::net::lookup_host(hp.as_str())
        .await
        .map_err(|e| invalid(e.to_string()))?
        .next()
        .ok_or_else(|| invalid("the name resolves to no address".into()))?;
    match tokio::time::timeout(PING_TIMEOUT, tokio::net::TcpStream::connect(resolved)).await {
        Ok(Ok(_)) => Ok(resolved),
        Ok(Err(e)) => Err(AddressError::Unreachable(
            resolved.to_string(),
            e.to_string(),
        )),
        Err(_) => Err(AddressError::Unreachable(
            resolved.to_string(),
            format!("no answer within {PING_TIMEOUT:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_addresses_sorted_and_urls_in_order() {
        let list = ServerList::new(
            &["10.0.0.2".to_string(), "http://10.0.0.1:4000/".to_string()],
            true,
        );
        assert_eq!(list.addresses(), ["10.0.0.1:4000", "10.0.0.2:4647"]);
        assert_eq!(
            list.base_urls(),
            ["https://10.0.0.2:4647", "http://10.0.0.1:4000"]
        );
        let other = list.clone();
        other.replace(vec!["127.0.0.1:9".to_string()]);
        assert_eq!(list.addresses(), ["127.0.0.1:9"]);
        assert_eq!(list.len(), 1);
    }

    #[tokio::test]
    async fn resolves_pings_and_refuses_bad_addresses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live = listener.local_addr().unwrap();
        let got = resolve_and_ping(&live.to_string()).await.unwrap();
        assert_eq!(got, live);

        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(matches!(
            resolve_and_ping(&dead.to_string()).await,
            Err(AddressError::Unreachable(..))
        ));
        for bad in [
            "",
            "127.0.0.1:notaport",
            "127.0.0.1:0",
            ":4647",
            "http://x:1",
        ] {
            assert!(
                matches!(resolve_and_ping(bad).await, Err(AddressError::Invalid(..))),
                "{bad:?}"
            );
        }
    }
}
