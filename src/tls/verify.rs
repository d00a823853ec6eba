//! How a client checks the certificate a server presents. The chain is always checked against
//! the trusted roots (unless verification is switched off outright); what differs is the name:
//! the host connected to (browsers, the CLI), a fixed set of names (Nomad's
//! `server.<region>.nomad` with `verify_server_hostname`, or `NOMAD_TLS_SERVER_NAME`), or
//! none at all (Nomad's RPC without `verify_server_hostname`: any certificate the CA signed).

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

/// Which names a server's certificate must be valid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCheck {
    /// The host of the address connected to.
    Hostname,
    /// Any one of these names, whatever address was connected to.
    Names(Vec<String>),
    /// Any name: only the chain to a trusted root is checked.
    ChainOnly,
    /// Nothing (`NOMAD_SKIP_VERIFY` / `-tls-skip-verify`); the handshake's signatures are
    /// still checked so the peer holds the key of the certificate it sent.
    SkipVerify,
}

/// A verifier applying a [`ServerCheck`] on top of a chain verifier for the trusted roots.
#[derive(Debug)]
pub struct CheckedVerifier {
    chain: Arc<dyn ServerCertVerifier>,
    names: Vec<ServerName<'static>>,
    check: ServerCheck,
    provider: Arc<CryptoProvider>,
}

impl CheckedVerifier {
    /// Wraps `chain` (which checks chain and name for the name it is given).
    pub fn new(
        chain: Arc<dyn ServerCertVerifier>,
        check: ServerCheck,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, String> {
        let names = match &check {
            ServerCheck::Names(names) => names
                .iter()
                .map(|n| {
                    ServerName::try_from(n.clone())
                        .map_err(|_| format!("{n:?} is not a valid TLS server name"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => Vec::new(),
        };
        Ok(CheckedVerifier {
            chain,
            names,
            check,
            provider,
        })
    }
}

fn is_name_mismatch(e: &Error) -> bool {
    matches!(
        e,
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    )
}

impl ServerCertVerifier for CheckedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let verify = |name: &ServerName<'_>| {
            self.chain
                .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
        };
        match &self.check {
            ServerCheck::Hostname => verify(server_name),
            ServerCheck::SkipVerify => Ok(ServerCertVerified::assertion()),
            ServerCheck::ChainOnly => match verify(server_name) {
                Err(e) if is_name_mismatch(&e) => Ok(ServerCertVerified::assertion()),
                other => other,
            },
            ServerCheck::Names(_) => {
                let mut first_err = None;
                for name in &self.names {
                    match verify(name) {
                        Ok(ok) => return Ok(ok),
                        Err(e) if is_name_mismatch(&e) => {
                            first_err.get_or_insert(e);
                        }
                        // A bad chain is bad for every name.
                        Err(e) => return Err(e),
                    }
                }
                Err(first_err
                    .unwrap_or(Error::InvalidCertificate(CertificateError::NotValidForName)))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The system's trusted roots, loaded at the first certificate check instead of when a client
/// is built. Every agent builds its HTTP clients at start, TLS or not; loading the roots there
/// read and parsed the whole system store (~290 files here) on every start, for clients that
/// mostly never see a certificate.
#[derive(Debug)]
pub struct SystemRoots {
    provider: Arc<CryptoProvider>,
    verifier: OnceLock<Result<Arc<rustls_platform_verifier::Verifier>, String>>,
}

impl SystemRoots {
    /// Roots to be loaded when first needed, checked with `provider`.
    pub fn new(provider: Arc<CryptoProvider>) -> SystemRoots {
        SystemRoots {
            provider,
            verifier: OnceLock::new(),
        }
    }

    fn get(&self) -> Result<&rustls_platform_verifier::Verifier, Error> {
        self.verifier
            .get_or_init(|| {
                rustls_platform_verifier::Verifier::new(self.provider.clone())
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map(|v| v.as_ref())
            .map_err(|e| Error::General(format!("the system's trusted roots: {e}")))
    }
}

impl ServerCertVerifier for SystemRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.get()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.get()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.get()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
