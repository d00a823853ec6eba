//! TLS for yurt's listeners and outgoing connections (rustls with the `ring` provider):
//! PEM files read with errors that name the setting and path, server configs that may demand
//! client certificates, client configs that trust a CA (or the system's roots) and check the
//! server's name in one of Nomad's ways, a listener that hands axum finished handshakes, and
//! WebSocket connections over TLS.
//!
//! Shared by the agent, the client's RPC, the server's listeners and the CLI, so it reaches
//! none of them.

mod configs;
mod listener;
mod pem;
mod verify;
pub mod ws;

use std::path::PathBuf;
use std::sync::Arc;

pub use configs::{ClientTls, client_config, provider, server_config};
pub use listener::TlsListener;
pub use pem::{Identity, load_certs, load_identity, load_roots, load_roots_dir};
pub use verify::ServerCheck;

/// Why TLS material could not be loaded or a TLS configuration built. `setting` names where
/// the path came from (`tls.ca_file`, `NOMAD_CACERT`, `-client-key`, …).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{setting}: reading {}: {source}", path.display())]
    Read {
        /// The setting that named the file.
        setting: String,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file was read but does not hold what the setting needs. Never carries the file's
    /// contents (it may be a private key).
    #[error("{setting}: {}: {reason}", path.display())]
    Invalid {
        /// The setting that named the file.
        setting: String,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the assembled configuration (e.g. the key does not match the cert).
    #[error("{context}: {source}")]
    Rustls {
        /// What was being built.
        context: String,
        /// rustls's reason.
        source: rustls::Error,
    },
}

/// A shared rustls client configuration.
pub type ClientConfig = Arc<rustls::ClientConfig>;
/// A shared rustls server configuration.
pub type ServerConfig = Arc<rustls::ServerConfig>;

/// `builder` with its TLS set to `config`, or, without one, to the system's roots checked
/// against the host connected to. reqwest is built without a default crypto provider, so
/// every client yurt makes goes through here.
pub fn reqwest_tls(
    builder: reqwest::ClientBuilder,
    config: Option<&ClientConfig>,
) -> Result<reqwest::ClientBuilder, TlsError> {
    let config = match config {
        Some(c) => c.clone(),
        None => client_config(&ClientTls::default())?,
    };
    Ok(builder.tls_backend_preconfigured((*config).clone()))
}

/// An error and its chain of causes, `outer: inner: innermost`: reqwest's own message alone
/// ("error sending request") hides why a connection failed, e.g. which certificate check.
pub fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

/// Makes yurt's provider the process default, for any TLS user that asks rustls for one.
/// Idempotent.
pub fn install_default_provider() {
    // An already-installed provider (a second call) is fine.
    let _ = Arc::unwrap_or_clone(provider()).install_default();
}

#[cfg(test)]
mod tests;

/// The end-to-end tests' throwaway PKI, for unit tests here and in the agent.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../tests/common/pki.rs"]
pub(crate) mod test_pki;
