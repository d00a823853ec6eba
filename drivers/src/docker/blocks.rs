//! Serde helpers for HCL blocks turned into JSON: a block arrives as an object or as a list of
//! objects depending on the converter, so both shapes are accepted.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// The block's objects: `null` → none, `[..]` → each element, anything else → itself.
fn parts<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    // Going through a JSON value (rather than an untagged enum) keeps the inner error, e.g.
    // "unknown field `imagee`", instead of "data did not match any variant".
    let items = match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::Array(items) => items,
        other => vec![other],
    };
    items
        .into_iter()
        .map(|v| serde_json::from_value(v).map_err(serde::de::Error::custom))
        .collect()
}

/// A block that may appear at most once: `{..}` or `[{..}]`.
pub fn one<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let mut list = parts::<D, T>(d)?;
    match list.len() {
        0 => Ok(T::default()),
        1 => Ok(list.remove(0)),
        n => Err(serde::de::Error::custom(format!(
            "block may appear only once, found {n}"
        ))),
    }
}

/// A repeatable block: `{..}` or `[{..}, {..}]`.
pub fn many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    parts(d)
}

/// A map given as an attribute or as one or more blocks, merged in order.
pub fn map<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: DeserializeOwned,
{
    let mut out = BTreeMap::new();
    for part in many::<D, BTreeMap<String, V>>(d)? {
        out.extend(part);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Default, Debug, PartialEq)]
    struct Inner {
        a: u32,
    }

    #[derive(Deserialize, Debug)]
    struct Outer {
        #[serde(default, deserialize_with = "one")]
        one: Inner,
        #[serde(default, deserialize_with = "many")]
        many: Vec<Inner>,
        #[serde(default, deserialize_with = "map")]
        map: BTreeMap<String, String>,
    }

    #[test]
    fn accepts_object_and_list_shapes() {
        let v: Outer = serde_json::from_value(serde_json::json!({
            "one": [{"a": 1}], "many": {"a": 2}, "map": [{"x": "1"}, {"y": "2"}]
        }))
        .unwrap();
        assert_eq!(v.one, Inner { a: 1 });
        assert_eq!(v.many, vec![Inner { a: 2 }]);
        assert_eq!(v.map.len(), 2);
        let err = serde_json::from_value::<Outer>(serde_json::json!({"one": [{"a": 1}, {"a": 2}]}));
        assert!(err.is_err());
    }
}
