//! Building rustls configurations: what a listener serves and what an outgoing connection
//! trusts and presents.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;

use super::verify::{CheckedVerifier, ServerCheck, SystemRoots};
use super::{ClientConfig, Identity, ServerConfig, TlsError};

/// The one crypto provider yurt uses: *ring*, chosen for its small build (aws-lc-rs compiles
/// all of AWS-LC). rustls marks it deprecated for lacking post-quantum key exchange;
/// connections negotiate X25519 or the NIST curves instead.
#[allow(deprecated)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn rustls_err(context: &str) -> impl FnOnce(rustls::Error) -> TlsError + '_ {
    move |source| TlsError::Rustls {
        context: context.to_string(),
        source,
    }
}

/// A listener's configuration: it serves `identity`; with `client_roots` every client must
/// present a certificate those roots signed (mutual TLS), otherwise none is asked for.
pub fn server_config(
    identity: &Identity,
    client_roots: Option<Arc<RootCertStore>>,
) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err("TLS protocol versions"))?;
    let builder = match client_roots {
        Some(roots) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| TlsError::Rustls {
                    context: "client certificate verifier".into(),
                    source: rustls::Error::General(e.to_string()),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(identity.certs.clone(), identity.key.clone_key())
        .map_err(rustls_err("the certificate and key"))?;
    // HTTP/1.1 only: the exec WebSocket is an HTTP/1.1 upgrade.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What an outgoing connection trusts, shows and checks.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// Trusted CAs; `None` means the system's roots.
    pub roots: Option<Arc<RootCertStore>>,
    /// The certificate shown when the server asks for one.
    pub identity: Option<Identity>,
    /// How the server's certificate name is checked.
    pub check: ServerCheck,
}

impl Default for ClientTls {
    fn default() -> Self {
        ClientTls {
            roots: None,
            identity: None,
            check: ServerCheck::Hostname,
        }
    }
}

/// The rustls client configuration for `tls`.
pub fn client_config(tls: &ClientTls) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let chain: Arc<dyn ServerCertVerifier> = match &tls.roots {
        Some(roots) => WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Rustls {
                context: "server certificate verifier".into(),
                source: rustls::Error::General(e.to_string()),
            })?,
        None => Arc::new(SystemRoots::new(provider.clone())),
    };
    let verifier =
        CheckedVerifier::new(chain, tls.check.clone(), provider.clone()).map_err(|reason| {
            TlsError::Rustls {
                context: "server name".into(),
                source: rustls::Error::General(reason),
            }
        })?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rustls_err("TLS protocol versions"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let config = match &tls.identity {
        Some(id) => builder
            .with_client_auth_cert(id.certs.clone(), id.key.clone_key())
            .map_err(rustls_err("the client certificate and key"))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
