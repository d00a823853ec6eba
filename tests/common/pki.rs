//! A throwaway PKI for TLS tests: a CA and the certificates it signs, written as PEM files.
//! Generated when a test runs; no key is ever committed. Shared by the end-to-end tests and
//! the library's own TLS unit tests (which include this file by path).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// A certificate authority that can sign leaf certificates.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate as PEM.
    pub cert_pem: String,
}

/// A certificate and key written to disk.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

impl TestCa {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-signed CA");
        let cert_pem = issuer.pem();
        TestCa { issuer, cert_pem }
    }

    /// Writes the CA certificate to `dir/<stem>.pem`.
    pub fn write_ca(&self, dir: &Path, stem: &str) -> PathBuf {
        let path = dir.join(format!("{stem}.pem"));
        std::fs::write(&path, &self.cert_pem).expect("write CA cert");
        path
    }

    /// Issues a certificate for `dns_names` and 127.0.0.1 (usable to serve and as a client
    /// certificate, like `nomad tls cert create`'s) and writes it to `dir/<stem>.pem` and
    /// `dir/<stem>-key.pem`.
    pub fn issue(&self, dir: &Path, stem: &str, dns_names: &[&str]) -> CertFiles {
        self.issue_with_ip(dir, stem, dns_names, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)))
    }

    /// As [`TestCa::issue`], with `ip` (or no IP address) in the certificate.
    pub fn issue_with_ip(
        &self,
        dir: &Path,
        stem: &str,
        dns_names: &[&str],
        ip: Option<IpAddr>,
    ) -> CertFiles {
        let names: Vec<String> = dns_names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        if let Some(ip) = ip {
            params.subject_alt_names.push(SanType::IpAddress(ip));
        }
        params.distinguished_name.push(
            DnType::CommonName,
            dns_names.first().copied().unwrap_or(stem),
        );
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        let files = CertFiles {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}-key.pem")),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write cert");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        files
    }
}
