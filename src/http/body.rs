//! `JsonBody<T>`: decodes a JSON request body the way Nomad does — whatever the
//! Content-Type (curl sends form encoding by default and Nomad accepts it), 400 naming the
//! offending field on bad input, 413 past the body limit, unknown fields ignored, and a
//! `null` member the same as an absent one (Go's decoder leaves the field at its zero value
//! for both, and Nomad's clients send `null` for everything they leave unset).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::HttpError;

/// Nomad's message for a request that needs a body and has none.
pub const EMPTY_BODY: &str = "Request body is empty";

/// A required JSON body; an empty body is a 400.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

/// An optional JSON body; an empty body yields `None` (endpoints like alloc stop accept both).
#[derive(Debug, Clone)]
pub struct OptionalJsonBody<T>(pub Option<T>);

/// Decodes a JSON document, naming the failing field in the error.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, HttpError> {
    if is_blank(bytes) {
        return Err(HttpError::bad_request(EMPTY_BODY));
    }
    // Like Go's json.Decoder, only the first document is read; trailing bytes are ignored.
    // Most bodies decode directly (a field that takes `null` reads it as absent already); only
    // one that fails is decoded again with its `null` members dropped, so the common case pays
    // for one pass and the answer is the same either way.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    if let Ok(v) = T::deserialize(&mut de) {
        return Ok(v);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut doc: serde_json::Value = serde_path_to_error::deserialize(&mut de)?;
    drop_null_members(&mut doc);
    Ok(serde_path_to_error::deserialize(doc)?)
}

/// Decodes a JSON document with `null` members treated as absent, for the few endpoints
/// whose decode errors Nomad words (or codes) differently from [`decode_json`].
pub fn from_slice_null_absent<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(v);
    }
    let mut doc: serde_json::Value = serde_json::from_slice(bytes)?;
    drop_null_members(&mut doc);
    serde_json::from_value(doc)
}

/// Removes every object member whose value is `null`, at any depth, so that each request
/// type's `#[serde(default)]` decides what an unset field means, once for every body. Array
/// elements stay: a `null` in a list is a value, not an absent field.
pub fn drop_null_members(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|_, member| !member.is_null());
            map.values_mut().for_each(drop_null_members);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_null_members),
        _ => {}
    }
}

/// Decodes a JSON document that may be absent: an empty body is `None`.
pub fn decode_optional_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<Option<T>, HttpError> {
    if is_blank(bytes) {
        return Ok(None);
    }
    decode_json(bytes).map(Some)
}

/// True for an empty or all-whitespace body.
fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await?;
        decode_json(&bytes).map(Self)
    }
}

impl<S, T> FromRequest<S> for OptionalJsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await?;
        decode_optional_json(&bytes).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Req {
        #[serde(rename = "Job")]
        job: Job,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Job {
        #[serde(rename = "ID")]
        id: String,
        #[serde(rename = "Priority", default)]
        priority: u32,
    }

    #[test]
    fn decodes_and_ignores_unknown_fields() {
        let r: Req = decode_json(br#"{"Job":{"ID":"x","Priority":50,"NewField":1}}"#).unwrap();
        assert_eq!(r.job.id, "x");
        assert_eq!(r.job.priority, 50);
    }

    #[test]
    fn empty_body_is_400() {
        let e = decode_json::<Req>(b"  \n").unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.to_string(), EMPTY_BODY);
    }

    #[test]
    fn wrong_type_names_the_field() {
        let e = decode_json::<Req>(br#"{"Job":{"ID":"x","Priority":"high"}}"#).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let msg = e.to_string();
        assert!(
            msg.starts_with("Failed to decode request body: Job.Priority: "),
            "{msg}"
        );
    }

    #[test]
    fn null_members_are_absent_at_any_depth() {
        #[derive(Debug, Default, Deserialize)]
        #[serde(default, rename_all = "PascalCase")]
        struct Opt {
            task: String,
            all_tasks: bool,
            inner: Option<Box<Opt>>,
            list: Vec<Option<u32>>,
        }
        let r: Opt = decode_json(
            br#"{"Task":null,"AllTasks":null,"Inner":{"Task":null,"List":null},"List":[1,null]}"#,
        )
        .unwrap();
        assert_eq!(r.task, "");
        assert!(!r.all_tasks);
        assert!(r.inner.is_some_and(|i| i.list.is_empty()));
        assert_eq!(r.list, vec![Some(1), None]);
    }

    #[test]
    fn syntax_error_is_400() {
        let e = decode_json::<Req>(br#"{"Job": {"ID": "x""#).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let e = decode_json::<Req>(b"not json").unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }
}
