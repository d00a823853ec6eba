//! Serde helpers for agent config files. HCL and JSON configs both arrive as a
//! `serde_json::Value`, where a block may be an object or — when repeated, or in HCL's JSON
//! form — an array of objects; these helpers fold such arrays into one object.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use yurt_drivers::go_duration::parse_go_duration;

/// Folds a block value: an array of objects becomes one object, later entries winning.
pub fn fold_block(value: Value) -> Value {
    match value {
        Value::Array(items) if items.iter().all(Value::is_object) => {
            items
                .into_iter()
                .fold(Value::Object(Map::new()), |acc, item| {
                    let mut acc = acc;
                    merge_json(&mut acc, item);
                    acc
                })
        }
        other => other,
    }
}

/// Deep-merges `overlay` into `base`: objects merge key by key, anything else is replaced.
pub fn merge_json(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge_json(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// A block (`server { ... }`) that may be repeated or written in JSON array form.
pub fn block<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = fold_block(Value::deserialize(d)?);
    // Track the path inside the block too, so errors read "server: heartbeat_grace: ...".
    serde_path_to_error::deserialize(value)
        .map(Some)
        .map_err(|e| match e.path().to_string().as_str() {
            "." | "" => D::Error::custom(e.into_inner()),
            path => D::Error::custom(format!("{path}: {}", e.into_inner())),
        })
}

/// A block of free-form settings kept as JSON (a plugin's `config { ... }`).
pub fn raw_block<'de, D>(d: D) -> Result<Option<Value>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Some(fold_block(Value::deserialize(d)?)))
}

/// A string-to-string map (`meta`, `options`); scalar values are stringified, as HCL
/// users write `meta { rack = 12 }` and expect "12".
pub fn string_map<'de, D>(d: D) -> Result<Option<BTreeMap<String, String>>, D::Error>
where
    D: Deserializer<'de>,
{
    let Value::Object(map) = fold_block(Value::deserialize(d)?) else {
        return Err(D::Error::custom("expected a map of key = value"));
    };
    map.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            Value::Number(n) => Ok((k, n.to_string())),
            Value::Bool(b) => Ok((k, b.to_string())),
            _ => Err(D::Error::custom(format!(
                "value of {k:?} must be a string, number or bool"
            ))),
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// A Go duration string ("10s", "1m30s").
pub fn duration<'de, D>(d: D) -> Result<Option<Duration>, D::Error>
where
    D: Deserializer<'de>,
{
    let raw = String::deserialize(d)?;
    parse_go_duration(&raw).map(Some).map_err(D::Error::custom)
}

/// A list of strings that may also be written as one comma-separated string.
pub fn string_list<'de, D>(d: D) -> Result<Option<Vec<String>>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(str::to_string).collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(Some(
        items
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    ))
}

/// Reserved ports as HCL writes them: `"22,80,8000-8100"` (a number is accepted too).
pub fn port_spec<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    match Value::deserialize(d)? {
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err(D::Error::custom(
            "expected a port list like \"22,80,8000-8100\"",
        )),
    }
}
