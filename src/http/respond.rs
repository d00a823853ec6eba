//! `JsonReply`: a handler's successful JSON answer with Nomad's response headers
//! (`X-Nomad-Index`, `X-Nomad-KnownLeader`, `X-Nomad-LastContact`, `X-Nomad-NextToken`)
//! and compact or `?pretty` output.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{HttpError, QueryOptions, WriteOptions};

/// Header carrying the index a blocking query can pass back as `?index`.
pub const HEADER_INDEX: &str = "X-Nomad-Index";
/// Header telling whether the answering server knows a leader.
pub const HEADER_KNOWN_LEADER: &str = "X-Nomad-KnownLeader";
/// Header with milliseconds since the leader was last contacted.
pub const HEADER_LAST_CONTACT: &str = "X-Nomad-LastContact";
/// Header with the `next_token` of the following page.
pub const HEADER_NEXT_TOKEN: &str = "X-Nomad-NextToken";

/// A JSON response body plus the Nomad metadata headers that go with it.
#[derive(Debug, Clone)]
pub struct JsonReply<T> {
    value: T,
    index: Option<u64>,
    query_meta: bool,
    next_token: Option<String>,
    pretty: bool,
}

impl<T: Serialize> JsonReply<T> {
    /// A bare JSON body without index headers (agent endpoints, non-blocking reads).
    pub fn new(value: T) -> Self {
        Self {
            value,
            index: None,
            query_meta: false,
            next_token: None,
            pretty: false,
        }
    }

    /// A read answer: index, known-leader and last-contact headers, `?pretty` honoured.
    pub fn query(opts: &QueryOptions, index: u64, value: T) -> Self {
        Self {
            index: Some(index),
            query_meta: true,
            pretty: opts.pretty,
            ..Self::new(value)
        }
    }

    /// A write answer: the index header, `?pretty` honoured.
    pub fn write(opts: &WriteOptions, index: u64, value: T) -> Self {
        Self {
            index: Some(index),
            pretty: opts.pretty,
            ..Self::new(value)
        }
    }

    /// Sets `X-Nomad-Index` (raised to at least 1 so clients never block on index 0).
    pub fn index(mut self, index: u64) -> Self {
        self.index = Some(index);
        self
    }

    /// Sets `X-Nomad-NextToken` when paging left items over.
    pub fn next_token(mut self, token: Option<String>) -> Self {
        self.next_token = token.filter(|t| !t.is_empty());
        self
    }

    /// Chooses indented (`true`) or compact output.
    pub fn pretty(mut self, pretty: bool) -> Self {
        self.pretty = pretty;
        self
    }
}

/// Serializes like Nomad: compact, or Go's `MarshalIndent(v, "", "    ")` plus a newline.
pub fn to_json_bytes<T: Serialize + ?Sized>(
    value: &T,
    pretty: bool,
) -> Result<Vec<u8>, serde_json::Error> {
    if !pretty {
        return serde_json::to_vec(value);
    }
    let mut buf = Vec::with_capacity(256);
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    value.serialize(&mut ser)?;
    buf.push(b'\n');
    Ok(buf)
}

impl<T: Serialize> IntoResponse for JsonReply<T> {
    fn into_response(self) -> Response {
        let body = match to_json_bytes(&self.value, self.pretty) {
            Ok(body) => body,
            // Our own types failing to serialize is an internal fault, never the client's.
            Err(err) => {
                return HttpError::internal(format!("failed to encode response: {err}"))
                    .into_response();
            }
        };
        let mut resp = body.into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(index) = self.index {
            headers.insert(HEADER_INDEX, HeaderValue::from(index.max(1)));
        }
        if self.query_meta {
            // yurt's server is its own leader: a single authoritative state store.
            headers.insert(HEADER_KNOWN_LEADER, HeaderValue::from_static("true"));
            headers.insert(HEADER_LAST_CONTACT, HeaderValue::from_static("0"));
        }
        if let Some(tok) = self.next_token {
            match HeaderValue::from_str(&tok) {
                Ok(v) => {
                    headers.insert(HEADER_NEXT_TOKEN, v);
                }
                Err(_) => {
                    return HttpError::internal("next token is not a valid header value")
                        .into_response();
                }
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;
    use axum::http::StatusCode;
    use serde_json::json;

    async fn body(resp: Response) -> String {
        String::from_utf8(to_bytes(resp.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap()
    }

    #[test]
    fn pretty_matches_go_marshal_indent() {
        let v = json!({"ID": "example", "Datacenters": ["dc1"], "Meta": {}, "Tags": []});
        let out = String::from_utf8(to_json_bytes(&v, true).unwrap()).unwrap();
        let expected = "{\n    \"Datacenters\": [\n        \"dc1\"\n    ],\n    \"ID\": \"example\",\n    \"Meta\": {},\n    \"Tags\": []\n}\n";
        assert_eq!(out, expected);
        let compact = String::from_utf8(to_json_bytes(&v, false).unwrap()).unwrap();
        assert_eq!(
            compact,
            r#"{"Datacenters":["dc1"],"ID":"example","Meta":{},"Tags":[]}"#
        );
    }

    #[tokio::test]
    async fn query_reply_sets_meta_headers() {
        let opts = QueryOptions::default();
        let resp = JsonReply::query(&opts, 42, json!([1]))
            .next_token(Some("abc".into()))
            .into_response();
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert_eq!(h[HEADER_INDEX], "42");
        assert_eq!(h[HEADER_KNOWN_LEADER], "true");
        assert_eq!(h[HEADER_LAST_CONTACT], "0");
        assert_eq!(h[HEADER_NEXT_TOKEN], "abc");
        assert_eq!(h[header::CONTENT_TYPE], "application/json");
        assert_eq!(body(resp).await, "[1]");
    }

    #[tokio::test]
    async fn index_is_at_least_one_and_pretty_is_honoured() {
        let opts = QueryOptions {
            pretty: true,
            ..QueryOptions::default()
        };
        let resp = JsonReply::query(&opts, 0, json!({"A": 1})).into_response();
        assert_eq!(resp.headers()[HEADER_INDEX], "1");
        assert!(resp.headers().get(HEADER_NEXT_TOKEN).is_none());
        assert_eq!(body(resp).await, "{\n    \"A\": 1\n}\n");
    }

    #[tokio::test]
    async fn bare_and_write_replies() {
        let resp = JsonReply::new(json!({"ok": true})).into_response();
        assert!(resp.headers().get(HEADER_INDEX).is_none());
        assert!(resp.headers().get(HEADER_KNOWN_LEADER).is_none());

        let w = WriteOptions::parse(&Default::default(), &Default::default());
        let resp = JsonReply::write(&w, 9, json!({"EvalID": "x"})).into_response();
        assert_eq!(resp.headers()[HEADER_INDEX], "9");
        assert!(resp.headers().get(HEADER_KNOWN_LEADER).is_none());
    }
}
