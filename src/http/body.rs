//! `JsonBody<T>`: decodes a JSON request body the way Nomad does — whatever the
//! Content-Type (curl sends form encoding by default and Nomad accepts it), 400 naming the
//! offending field on bad input, 413 past the body limit, unknown fields ignored.

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
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // Like Go's json.Decoder, only the first document is read; trailing bytes are ignored.
    Ok(serde_path_to_error::deserialize(&mut de)?)
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
    fn syntax_error_is_400() {
        let e = decode_json::<Req>(br#"{"Job": {"ID": "x""#).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let e = decode_json::<Req>(b"not json").unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }
}
