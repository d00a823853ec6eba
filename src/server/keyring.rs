//! The root keys' material: AES-256-GCM keys kept in memory and, one file per key, in
//! `<data_dir>/server/keystore/` (mode 0600). The state holds only their metadata, and the
//! variables only ciphertext, so the state file never holds a secret. Key material is never
//! logged nor printed (no `Debug` shows it).

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::structs::keyring::ALGORITHM_AES256_GCM;

/// Bytes of an AES-256 key.
const KEY_LEN: usize = 32;
/// Suffix of a key file (Nomad's keystore names its files the same way).
const KEY_FILE_SUFFIX: &str = ".nks.json";

/// Keyring faults.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("keystore: {0}")]
    Io(String),
    #[error("root key {0} is not in the keyring")]
    UnknownKey(String),
    #[error("keystore file {0}: {1}")]
    BadKeyFile(String, String),
    /// Wrong key, or data that was tampered with or damaged.
    #[error("decrypting with root key {0} failed")]
    Decrypt(String),
    #[error("no random bytes available")]
    Random,
}

/// One key file.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyFile {
    #[serde(rename = "KeyID")]
    key_id: String,
    algorithm: String,
    /// The key, base64.
    key: String,
}

/// The keys, by ID.
pub struct Keyring {
    /// The keystore directory; None keeps keys in memory only (a server without a data dir).
    dir: Option<PathBuf>,
    keys: RwLock<HashMap<String, Arc<LessSafeKey>>>,
    rng: SystemRandom,
    /// Held while a key is created and recorded, so two first writes do not each make one.
    pub(crate) creating: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("dir", &self.dir)
            .field("keys", &self.key_ids())
            .finish()
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> KeyringError {
    KeyringError::Io(format!("{what} {}: {e}", path.display()))
}

impl Keyring {
    /// Opens the keystore under `dir` (created when missing) and loads every key in it.
    pub fn open(dir: Option<PathBuf>) -> Result<Self, KeyringError> {
        let ring = Keyring {
            dir,
            keys: RwLock::default(),
            rng: SystemRandom::new(),
            creating: tokio::sync::Mutex::new(()),
        };
        let Some(dir) = &ring.dir else {
            return Ok(ring);
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io("creating", dir, e))?;
        let entries = std::fs::read_dir(dir).map_err(|e| io("reading", dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| io("reading", dir, e))?.path();
            let is_key = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(KEY_FILE_SUFFIX));
            if is_key {
                let (id, key) = read_key_file(&path)?;
                ring.insert(id, key)?;
            }
        }
        Ok(ring)
    }

    fn insert(&self, id: String, material: Vec<u8>) -> Result<(), KeyringError> {
        let unbound = UnboundKey::new(&AES_256_GCM, &material)
            .map_err(|_| KeyringError::BadKeyFile(id.clone(), "not a 256-bit key".into()))?;
        self.keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::new(LessSafeKey::new(unbound)));
        Ok(())
    }

    fn key(&self, id: &str) -> Result<Arc<LessSafeKey>, KeyringError> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| KeyringError::UnknownKey(id.to_string()))
    }

    /// The IDs of the keys held.
    pub fn key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    /// Makes a new key under a fresh ID and stores it (durably, before it is used).
    pub fn generate(&self) -> Result<String, KeyringError> {
        let mut material = vec![0u8; KEY_LEN];
        self.rng
            .fill(&mut material)
            .map_err(|_| KeyringError::Random)?;
        let id = crate::structs::generate_uuid();
        if let Some(dir) = &self.dir {
            write_key_file(dir, &id, &material)?;
        }
        self.insert(id.clone(), material)?;
        Ok(id)
    }

    /// Forgets a key and removes its file.
    pub fn remove(&self, id: &str) -> Result<(), KeyringError> {
        self.keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(dir) = &self.dir {
            let path = dir.join(format!("{id}{KEY_FILE_SUFFIX}"));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("removing", &path, e)),
            }
        }
        Ok(())
    }

    /// Seals `plain` with key `id`: a fresh random nonce, then the ciphertext and its tag.
    /// `aad` binds the ciphertext to what it belongs to (it must be given again to open it).
    pub fn encrypt(&self, id: &str, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, KeyringError> {
        let key = self.key(id)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| KeyringError::Random)?;
        let mut sealed = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut sealed,
        )
        .map_err(|_| KeyringError::Decrypt(id.to_string()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`Keyring::encrypt`] sealed with key `id` and the same `aad`.
    pub fn decrypt(&self, id: &str, aad: &[u8], data: &[u8]) -> Result<Vec<u8>, KeyringError> {
        let key = self.key(id)?;
        let fail = || KeyringError::Decrypt(id.to_string());
        if data.len() < NONCE_LEN {
            return Err(fail());
        }
        let (nonce, sealed) = data.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail())?;
        let mut buf = sealed.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| fail())?;
        Ok(plain.to_vec())
    }
}

fn read_key_file(path: &Path) -> Result<(String, Vec<u8>), KeyringError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| io("reading", path, e))?;
    let file: KeyFile = serde_json::from_slice(&bytes)
        .map_err(|e| KeyringError::BadKeyFile(name.clone(), e.to_string()))?;
    if file.algorithm != ALGORITHM_AES256_GCM {
        return Err(KeyringError::BadKeyFile(
            name,
            format!("unsupported algorithm {:?}", file.algorithm),
        ));
    }
    let key = STANDARD
        .decode(file.key.as_bytes())
        .map_err(|_| KeyringError::BadKeyFile(name, "key is not base64".into()))?;
    Ok((file.key_id, key))
}

/// Writes a key file readable by its owner only: to a temporary name, synced, then renamed,
/// so a crash never leaves half a key under the real name.
fn write_key_file(dir: &Path, id: &str, material: &[u8]) -> Result<(), KeyringError> {
    let file = KeyFile {
        key_id: id.to_string(),
        algorithm: ALGORITHM_AES256_GCM.to_string(),
        key: STANDARD.encode(material),
    };
    let body = serde_json::to_vec(&file).map_err(|e| KeyringError::Io(e.to_string()))?;
    let path = dir.join(format!("{id}{KEY_FILE_SUFFIX}"));
    let tmp = dir.join(format!(".{id}{KEY_FILE_SUFFIX}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("creating", &tmp, e))?;
    f.write_all(&body).map_err(|e| io("writing", &tmp, e))?;
    f.sync_all().map_err(|e| io("syncing", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io("renaming", &tmp, e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn sealed_data_opens_only_with_its_key_and_aad() {
        let ring = Keyring::open(None).unwrap();
        let a = ring.generate().unwrap();
        let b = ring.generate().unwrap();
        let sealed = ring.encrypt(&a, b"ns\0p", b"hunter2").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(ring.decrypt(&a, b"ns\0p", &sealed).unwrap(), b"hunter2");
        assert!(ring.decrypt(&b, b"ns\0p", &sealed).is_err(), "wrong key");
        assert!(
            ring.decrypt(&a, b"ns\0q", &sealed).is_err(),
            "moved elsewhere"
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(ring.decrypt(&a, b"ns\0p", &tampered).is_err());
        assert!(ring.decrypt(&a, b"ns\0p", &[1, 2]).is_err());
        assert!(matches!(
            ring.decrypt("nope", b"", &sealed),
            Err(KeyringError::UnknownKey(_))
        ));
        let again = ring.encrypt(&a, b"ns\0p", b"hunter2").unwrap();
        assert_ne!(sealed, again, "a fresh nonce each time");
    }

    #[test]
    fn keys_persist_owner_only_and_can_be_removed() {
        let dir = std::env::temp_dir().join(format!("yurt-keystore-{}", uuid::Uuid::new_v4()));
        let id = {
            let ring = Keyring::open(Some(dir.clone())).unwrap();
            ring.generate().unwrap()
        };
        let file = dir.join(format!("{id}{KEY_FILE_SUFFIX}"));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let ring = Keyring::open(Some(dir.clone())).unwrap();
        assert_eq!(ring.key_ids(), vec![id.clone()]);
        let sealed = ring.encrypt(&id, b"", b"x").unwrap();
        assert_eq!(ring.decrypt(&id, b"", &sealed).unwrap(), b"x");
        assert!(!format!("{ring:?}").contains("Key\""));
        ring.remove(&id).unwrap();
        assert!(!file.exists());
        assert!(ring.key_ids().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_key_file_stops_the_open() {
        let dir = std::env::temp_dir().join(format!("yurt-keystore-bad-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("k.nks.json"), b"{not json").unwrap();
        assert!(matches!(
            Keyring::open(Some(dir.clone())),
            Err(KeyringError::BadKeyFile(..))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
