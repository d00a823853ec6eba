//! Reading PEM certificates, private keys and CA bundles. Errors name the setting and the
//! path; a key's bytes never reach an error or a log line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

/// A certificate chain and its private key: what a listener serves and what a client shows
/// when asked for a certificate.
#[derive(Debug)]
pub struct Identity {
    /// The leaf certificate first, then any intermediates.
    pub certs: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            certs: self.certs.clone(),
            key: self.key.clone_key(),
        }
    }
}

fn read(setting: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        setting: setting.to_string(),
        path: path.to_path_buf(),
        source,
    })
}

fn invalid(setting: &str, path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Invalid {
        setting: setting.to_string(),
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Every certificate in the PEM file at `path`; at least one.
pub fn load_certs(setting: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(setting, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(setting, path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(setting, path, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// The certificate chain at `cert` and the private key at `key`.
pub fn load_identity(
    cert_setting: &str,
    cert: &Path,
    key_setting: &str,
    key: &Path,
) -> Result<Identity, TlsError> {
    let certs = load_certs(cert_setting, cert)?;
    let bytes = read(key_setting, key)?;
    // The parser's error names the PEM section problem, never the key material.
    let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        invalid(
            key_setting,
            key,
            format!("no PEM private key (PKCS#8, PKCS#1 or SEC1) found: {e}"),
        )
    })?;
    Ok(Identity { certs, key })
}

/// The CA certificates in the PEM file at `path`, as trust roots.
pub fn load_roots(setting: &str, path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    add_roots(&mut roots, setting, path, load_certs(setting, path)?)?;
    Ok(Arc::new(roots))
}

/// The CA certificates of every PEM file in the directory `dir` (`NOMAD_CAPATH`); files
/// holding no certificate are skipped, a directory with none at all is an error.
pub fn load_roots_dir(setting: &str, dir: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let entries = std::fs::read_dir(dir).map_err(|source| TlsError::Read {
        setting: setting.to_string(),
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| TlsError::Read {
            setting: setting.to_string(),
            path: dir.to_path_buf(),
            source,
        })?;
        if entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    let mut roots = RootCertStore::empty();
    for file in files {
        let bytes = read(setting, &file)?;
        let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
            .filter_map(Result::ok)
            .collect();
        add_roots(&mut roots, setting, &file, certs)?;
    }
    if roots.is_empty() {
        return Err(invalid(setting, dir, "holds no PEM CA certificate"));
    }
    Ok(Arc::new(roots))
}

fn add_roots(
    roots: &mut RootCertStore,
    setting: &str,
    path: &Path,
    certs: Vec<CertificateDer<'static>>,
) -> Result<(), TlsError> {
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| invalid(setting, path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(())
}
