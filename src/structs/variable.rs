//! Variables (Nomad's `VariableMetadata`, `VariableDecrypted`, `VariableEncrypted`): the API
//! shapes, the stored shape whose items are only ever ciphertext, and Nomad's validation
//! rules (path syntax, the reserved `nomad/` tree, the 64 KiB limit, lock TTL bounds).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::de::{null_default, uint};
use super::time::format_go_duration;

/// Largest total size of a variable's items (keys plus values, unencrypted).
pub const MAX_VARIABLE_SIZE: usize = 65536;
/// Bounds of a lock's TTL.
pub const MIN_LOCK_TTL: Duration = Duration::from_secs(10);
pub const MAX_LOCK_TTL: Duration = Duration::from_secs(24 * 3600);
/// What a lock gets when it names no TTL or delay (Nomad's, from Consul's experience).
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(15);
pub const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(15);

/// A variable's secret contents: always encrypted and decrypted as one unit.
pub type VariableItems = BTreeMap<String, String>;

/// The lock a variable may hold. Durations are Go duration strings on the wire (`"15s"`),
/// and numbers of nanoseconds are accepted too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VariableLock {
    #[serde(rename = "ID", deserialize_with = "null_default")]
    pub id: String,
    #[serde(
        rename = "TTL",
        serialize_with = "ser_duration",
        deserialize_with = "de_duration"
    )]
    pub ttl: Duration,
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub lock_delay: Duration,
}

impl VariableLock {
    /// Fills what an acquire left out: a fresh ID and the default TTL and delay.
    pub fn canonicalize(&mut self) {
        if self.id.is_empty() {
            self.id = super::generate_uuid();
        }
        if self.ttl.is_zero() {
            self.ttl = DEFAULT_LOCK_TTL;
        }
        if self.lock_delay.is_zero() {
            self.lock_delay = DEFAULT_LOCK_DELAY;
        }
    }

    /// Nomad's bounds on the TTL.
    pub fn validate(&self) -> Result<(), String> {
        if self.ttl < MIN_LOCK_TTL || self.ttl > MAX_LOCK_TTL {
            return Err("TTL must be between 10 seconds and 24 hours".to_string());
        }
        Ok(())
    }
}

/// A zero duration is sent as `""`, as Nomad does.
fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    if d.is_zero() {
        s.serialize_str("")
    } else {
        s.serialize_str(&format_go_duration(*d))
    }
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Nanos(f64),
    }
    let nanos = match Option::<Raw>::deserialize(d)? {
        None => 0,
        Some(Raw::Text(t)) if t.is_empty() => 0,
        Some(Raw::Text(t)) => humantime::parse_duration(&t)
            .map_err(|e| D::Error::custom(format!("invalid duration {t:?}: {e}")))?
            .as_nanos()
            .try_into()
            .map_err(|_| D::Error::custom(format!("duration {t:?} out of range")))?,
        Some(Raw::Nanos(n)) => n as i64,
    };
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| D::Error::custom("Lock delay and TTL must be positive"))
}

/// What every form of a variable shares, and what a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VariableMetadata {
    #[serde(deserialize_with = "null_default")]
    pub namespace: String,
    #[serde(deserialize_with = "null_default")]
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<VariableLock>,
    #[serde(deserialize_with = "uint")]
    pub create_index: u64,
    #[serde(deserialize_with = "super::de::int")]
    pub create_time: i64,
    #[serde(deserialize_with = "uint")]
    pub modify_index: u64,
    #[serde(deserialize_with = "super::de::int")]
    pub modify_time: i64,
}

impl VariableMetadata {
    /// The ID of the lock the variable holds, if any.
    pub fn lock_id(&self) -> Option<&str> {
        self.lock.as_ref().map(|l| l.id.as_str())
    }

    /// Only the namespace and path: what a conflict shows when there is nothing else to show.
    pub fn bare(namespace: &str, path: &str) -> Self {
        VariableMetadata {
            namespace: namespace.to_string(),
            path: path.to_string(),
            ..VariableMetadata::default()
        }
    }
}

/// A variable with its items in the clear: the API's `Variable`. Never stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VariableDecrypted {
    #[serde(flatten)]
    pub meta: VariableMetadata,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub items: VariableItems,
}

/// The stored form: metadata in the clear, items only as ciphertext (nonce included) with
/// the ID of the root key that sealed them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VariableEncrypted {
    #[serde(flatten)]
    pub meta: VariableMetadata,
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
    #[serde(rename = "KeyID")]
    pub key_id: String,
}

mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = Option::<String>::deserialize(d)?.unwrap_or_default();
        STANDARD
            .decode(text)
            .map_err(|e| serde::de::Error::custom(format!("Data: {e}")))
    }
}

/// The total size Nomad limits: every key and value, unencrypted.
pub fn items_size(items: &VariableItems) -> usize {
    items.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// Nomad's path rules: URL-safe characters only (no `.`, so no `..`), at most 128 of them,
/// and the `nomad/` tree reserved except for `nomad/jobs…`, `nomad/sentinel…` and one level
/// under `nomad/job-templates`.
pub fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("variable requires path".to_string());
    }
    let valid_chars = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~' | b'/'));
    if path.len() > 128 || !valid_chars {
        return Err(format!("invalid path {path:?}"));
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts[0] != "nomad" {
        return Ok(());
    }
    match parts.get(1).copied() {
        None => Err("\"nomad\" is a reserved top-level directory path, but you may write variables to \"nomad/jobs\", \"nomad/job-templates\", \"nomad/sentinel\", or below".to_string()),
        Some("jobs" | "sentinel") => Ok(()),
        Some("job-templates") if parts.len() == 3 => Ok(()),
        Some("job-templates") => Err("\"nomad/job-templates\" is a reserved directory path, but you may write variables at the level below it, for example, \"nomad/job-templates/template-name\"".to_string()),
        Some(_) => Err("only paths at \"nomad/jobs\" or \"nomad/job-templates\" and below are valid paths under the top-level \"nomad\" directory".to_string()),
    }
}

/// What a variable write must satisfy (Nomad's `VariableDecrypted.Validate`); a lock
/// acquire may carry no items, and only its lock's TTL is checked (a plain write names a
/// lock only by its ID, to show it holds it).
pub fn validate_variable(v: &VariableDecrypted, for_lock: bool) -> Result<(), String> {
    if v.meta.namespace == "*" {
        return Err("can not target wildcard (\"*\")namespace".to_string());
    }
    if !for_lock && v.items.is_empty() {
        return Err("empty variables are invalid".to_string());
    }
    if items_size(&v.items) > MAX_VARIABLE_SIZE {
        return Err("variables are limited to 64KiB in total size".to_string());
    }
    validate_path(&v.meta.path)?;
    match &v.meta.lock {
        Some(lock) if for_lock => lock.validate(),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_follow_nomads_rules() {
        for ok in [
            "a",
            "app/db",
            "a-b_c~d/e",
            "nomad/jobs",
            "nomad/jobs/web/task",
            "nomad/sentinel/x",
            "nomad/job-templates/t",
            "nomadic",
        ] {
            assert_eq!(validate_path(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a/../b", "a.b", "a b", "ü", &"x".repeat(129)] {
            assert!(validate_path(bad).is_err(), "{bad}");
        }
        assert!(
            validate_path("nomad")
                .unwrap_err()
                .contains("reserved top-level")
        );
        assert!(
            validate_path("nomad/other")
                .unwrap_err()
                .contains("only paths at")
        );
        assert!(validate_path("nomad/job-templates").is_err());
        assert!(validate_path("nomad/job-templates/a/b").is_err());
    }

    #[test]
    fn size_and_emptiness_limits() {
        let mut v = VariableDecrypted {
            meta: VariableMetadata::bare("default", "p"),
            items: VariableItems::new(),
        };
        assert_eq!(
            validate_variable(&v, false).unwrap_err(),
            "empty variables are invalid"
        );
        assert_eq!(validate_variable(&v, true), Ok(()));
        v.items
            .insert("k".into(), "x".repeat(MAX_VARIABLE_SIZE - 1));
        assert_eq!(validate_variable(&v, false), Ok(()));
        v.items.insert("k2".into(), "y".into());
        assert_eq!(
            validate_variable(&v, false).unwrap_err(),
            "variables are limited to 64KiB in total size"
        );
        v.items.clear();
        v.items.insert("k".into(), "v".into());
        v.meta.namespace = "*".into();
        assert!(
            validate_variable(&v, false)
                .unwrap_err()
                .contains("wildcard")
        );
    }

    #[test]
    fn lock_durations_as_go_strings_or_nanos_and_null_tolerant() {
        let v: VariableDecrypted = serde_json::from_value(json!({
            "Namespace": null, "Path": "p", "Items": null,
            "Lock": {"TTL": "1m30s", "LockDelay": 5_000_000_000_i64, "ID": null},
            "Unknown": 1
        }))
        .unwrap();
        let lock = v.meta.lock.clone().unwrap();
        assert_eq!(lock.ttl, Duration::from_secs(90));
        assert_eq!(lock.lock_delay, Duration::from_secs(5));
        assert!(v.items.is_empty() && v.meta.namespace.is_empty());
        let out = serde_json::to_value(&v).unwrap();
        assert_eq!(out["Lock"]["TTL"], "1m30s");
        assert_eq!(out["Lock"]["LockDelay"], "5s");
        assert!(out.get("Items").is_none());
        let none: VariableDecrypted = serde_json::from_value(json!({"Lock": null})).unwrap();
        assert!(none.meta.lock.is_none());
        assert!(serde_json::to_value(&none).unwrap().get("Lock").is_none());
        let bad = serde_json::from_value::<VariableDecrypted>(json!({"Lock": {"TTL": "soon"}}));
        assert!(bad.is_err());
    }

    #[test]
    fn lock_defaults_and_bounds() {
        let mut l = VariableLock::default();
        l.canonicalize();
        assert!(!l.id.is_empty());
        assert_eq!(
            (l.ttl, l.lock_delay),
            (DEFAULT_LOCK_TTL, DEFAULT_LOCK_DELAY)
        );
        assert_eq!(l.validate(), Ok(()));
        l.ttl = Duration::from_secs(5);
        assert!(l.validate().is_err());
    }

    #[test]
    fn encrypted_form_round_trips_its_ciphertext() {
        let e = VariableEncrypted {
            meta: VariableMetadata::bare("default", "p"),
            data: vec![0, 1, 2, 255],
            key_id: "k".into(),
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains("\"Data\":\"AAEC/w==\""), "{text}");
        assert_eq!(serde_json::from_str::<VariableEncrypted>(&text).unwrap(), e);
    }
}
