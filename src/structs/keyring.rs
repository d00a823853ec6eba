//! Root key metadata (Nomad's `RootKeyMeta`): what `GET /v1/operator/keyring/keys` lists and
//! what the state keeps of each key. The key material itself lives only in the server's
//! keystore directory.

use serde::{Deserialize, Serialize};

/// The only algorithm root keys use.
pub const ALGORITHM_AES256_GCM: &str = "aes256-gcm";

/// Where a root key is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootKeyState {
    /// Still decrypts what it sealed; seals nothing new.
    #[default]
    Inactive,
    /// Seals every new write.
    Active,
    /// Its variables are being re-encrypted with the active key.
    Rekeying,
    /// Published ahead of its activation (not produced by yurt, accepted when read back).
    Prepublished,
    Deprecated,
}

/// A root key's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RootKeyMeta {
    #[serde(rename = "KeyID")]
    pub key_id: String,
    pub algorithm: String,
    pub create_time: i64,
    pub create_index: u64,
    pub modify_index: u64,
    pub state: RootKeyState,
    pub publish_time: i64,
}

impl RootKeyMeta {
    /// A new key's metadata, active from its creation.
    pub fn new_active(key_id: String, now: i64) -> Self {
        RootKeyMeta {
            key_id,
            algorithm: ALGORITHM_AES256_GCM.to_string(),
            create_time: now,
            state: RootKeyState::Active,
            ..RootKeyMeta::default()
        }
    }

    pub fn is_active(&self) -> bool {
        self.state == RootKeyState::Active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_is_nomads() {
        let m = RootKeyMeta::new_active("k1".into(), 7);
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["KeyID"], "k1");
        assert_eq!(v["Algorithm"], "aes256-gcm");
        assert_eq!(v["State"], "active");
        assert_eq!(v["CreateTime"], 7);
        assert_eq!(v["PublishTime"], 0);
    }
}
