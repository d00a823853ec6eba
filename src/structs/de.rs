//! Lenient deserializers: Nomad clients send `null` for unset values and sometimes quote
//! numbers (durations in particular); both must be accepted.

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// `null` becomes the type's default.
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

struct I64Visitor;

impl<'de> Visitor<'de> for I64Visitor {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer, a string holding an integer, or null")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v)
            .map(Some)
            .map_err(|_| E::custom(format!("integer {v} out of range")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v.fract() == 0.0 && v.abs() < 9.2e18 {
            Ok(Some(v as i64))
        } else {
            Err(E::custom(format!("expected an integer, got {v}")))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if v.is_empty() {
            return Ok(None);
        }
        if let Ok(n) = v.parse::<i64>() {
            return Ok(Some(n));
        }
        // Durations written the Go way ("10s", "5m") are accepted too.
        humantime::parse_duration(v)
            .map(|d| Some(d.as_nanos() as i64))
            .map_err(|_| E::custom(format!("expected an integer, got {v:?}")))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(I64Visitor)
    }
}

/// An integer that may arrive as a number, a numeric string or null (→ 0).
pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(d.deserialize_option(I64Visitor)?.unwrap_or(0))
}

/// An optional integer that may arrive as a number, a numeric string or null.
pub fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_option(I64Visitor)
}

/// An unsigned integer (indexes) that may arrive as a number, a numeric string or null (→ 0).
pub fn uint<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = d.deserialize_option(I64Visitor)?.unwrap_or(0);
    u64::try_from(v)
        .map_err(|_| de::Error::custom(format!("expected a non-negative integer, got {v}")))
}

/// A count: missing or null means 1.
pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(d.deserialize_option(I64Visitor)?.unwrap_or(1))
}

/// Default for counts.
pub fn one() -> i64 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "int")]
        a: i64,
        #[serde(default = "one", deserialize_with = "count")]
        c: i64,
        #[serde(default, deserialize_with = "null_default")]
        s: String,
    }

    #[test]
    fn accepts_numbers_strings_and_null() {
        let t: T = serde_json::from_str(r#"{"a":"5000000000","c":null,"s":null}"#).unwrap();
        assert_eq!(t.a, 5_000_000_000);
        assert_eq!(t.c, 1);
        assert_eq!(t.s, "");
        let t: T = serde_json::from_str(r#"{"a":"10s","c":0}"#).unwrap();
        assert_eq!(t.a, 10_000_000_000);
        assert_eq!(t.c, 0);
        let t: T = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!((t.a, t.c), (0, 1));
        assert!(serde_json::from_str::<T>(r#"{"a":"x"}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"a":1.5}"#).is_err());
    }
}
