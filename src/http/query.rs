//! Extractors for Nomad's common query-string parameters and the ACL token:
//! `QueryParams` (raw access), `AuthContext`, `QueryOptions` (reads) and `WriteOptions` (writes).

use std::time::Duration;

use axum::extract::{FromRequestParts, Query};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::HttpError;
use crate::structs::DEFAULT_NAMESPACE;
use yurt_drivers::go_duration::parse_go_duration_nanos;

/// Blocking-query wait when the client gives none (seed 004: "defaults to 5 minutes").
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5 * 60);

/// Longest blocking-query wait a client may ask for (seed 004: "limited to 10 minutes").
pub const MAX_WAIT: Duration = Duration::from_secs(10 * 60);

/// The namespace value meaning "every namespace the token may see".
pub const ALL_NAMESPACES: &str = "*";

/// The query string as ordered pairs; lookups return the first value, like Go's `Query().Get`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryParams(pub Vec<(String, String)>);

impl QueryParams {
    /// Parses a raw query string (without the leading `?`).
    pub fn parse(raw: Option<&str>) -> Result<Self, HttpError> {
        let Some(raw) = raw else {
            return Ok(Self::default());
        };
        decode_pairs(raw).map(Self)
    }

    /// The first value of `name`, if the parameter is present (possibly empty).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name` when present and non-empty.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// A Go-style boolean: absent → `None`, present and empty → `Some(true)`
    /// (`?stale`), otherwise one of Go's `strconv.ParseBool` spellings.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, HttpError> {
        match self.get(name) {
            None => Ok(None),
            Some("") => Ok(Some(true)),
            Some(v) => parse_go_bool(v).map(Some).ok_or_else(|| {
                HttpError::bad_request(format!(
                    "Failed to parse value of {name:?} ({v}) as a bool: invalid syntax"
                ))
            }),
        }
    }

    /// An integer parameter; absent or empty → `None`.
    pub fn int<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, HttpError> {
        match self.non_empty(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                HttpError::bad_request(format!(
                    "Failed to parse value of {name:?} ({v}) as a int: invalid syntax"
                ))
            }),
        }
    }
}

/// Decodes `a=1&b=%20x` into pairs; a key without `=` gets an empty value.
fn decode_pairs(raw: &str) -> Result<Vec<(String, String)>, HttpError> {
    // axum's Query uses serde_urlencoded, which already does the percent- and `+`-decoding.
    let uri: axum::http::Uri = format!("/?{raw}")
        .parse()
        .map_err(|_| HttpError::bad_request("Invalid query string"))?;
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&uri)?;
    Ok(pairs)
}

/// Go's `strconv.ParseBool` spellings.
pub fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::parse(parts.uri.query())
    }
}

/// The caller's ACL token (enforced by the ACL layer, `super::acl`, before handlers run).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthContext {
    /// The secret ID from `X-Nomad-Token` or `Authorization: Bearer`, if any.
    pub token: Option<String>,
}

/// Never prints the secret: request options are logged with `{:?}`.
impl std::fmt::Debug for AuthContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = self.token.as_ref().map(|_| "<redacted>");
        f.debug_struct("AuthContext")
            .field("token", &token)
            .finish()
    }
}

impl AuthContext {
    /// Reads the token like Nomad: `X-Nomad-Token` first, then a Bearer `Authorization`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        if let Some(tok) = header("X-Nomad-Token") {
            return Self {
                token: Some(tok.to_string()),
            };
        }
        let bearer = header("Authorization").and_then(|auth| {
            let (scheme, value) = auth.split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return None;
            }
            // Bearer tokens contain no spaces (RFC 6750 §2.1): only the first word counts.
            value.split_whitespace().next().map(str::to_string)
        });
        Self { token: bearer }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthContext {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers))
    }
}

/// Options every read endpoint accepts (Nomad's `QueryOptions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryOptions {
    /// `?index`: block until the watched index passes this value; 0 = don't block.
    pub index: u64,
    /// `?wait`: longest time to block, already defaulted (5m) and capped (10m); no jitter.
    pub wait: Duration,
    /// `?stale`: any server may answer.
    pub stale: bool,
    /// `?region`, when given; `None` means the agent's own region.
    pub region: Option<String>,
    /// `?namespace`, `"default"` when absent; `"*"` means all namespaces.
    pub namespace: String,
    /// `?prefix`: ID prefix filter (empty = none).
    pub prefix: String,
    /// `?filter`: a filter expression (empty = none).
    pub filter: String,
    /// `?per_page`: page size; `None` when absent or ≤ 0 (no paging).
    pub per_page: Option<u32>,
    /// `?next_token`: resume paging at this key; `None` when absent or empty.
    pub next_token: Option<String>,
    /// `?reverse=true`: list in descending order.
    pub reverse: bool,
    /// `?pretty`: indent the JSON response.
    pub pretty: bool,
    /// The caller's ACL token.
    pub auth: AuthContext,
}

impl Default for QueryOptions {
    fn default() -> Self {
        Self {
            index: 0,
            wait: DEFAULT_WAIT,
            stale: false,
            region: None,
            namespace: DEFAULT_NAMESPACE.to_string(),
            prefix: String::new(),
            filter: String::new(),
            per_page: None,
            next_token: None,
            reverse: false,
            pretty: false,
            auth: AuthContext::default(),
        }
    }
}

impl QueryOptions {
    /// Parses the query string and headers of a request.
    pub fn parse(params: &QueryParams, headers: &HeaderMap) -> Result<Self, HttpError> {
        let index = match params.non_empty("index") {
            None => 0,
            Some(v) => v
                .parse()
                .map_err(|_| HttpError::bad_request("Invalid index"))?,
        };
        let stale = match params.get("stale") {
            None => false,
            Some("") => true,
            Some(v) => parse_go_bool(v).ok_or_else(|| {
                HttpError::bad_request(
                    "Expect `true` or `false` for `stale` query string parameter",
                )
            })?,
        };
        let per_page = match params.non_empty("per_page") {
            None => None,
            Some(v) => {
                let n: i32 = v.parse().map_err(|_| {
                    HttpError::bad_request("Expect a number for `per_page` query string parameter")
                })?;
                u32::try_from(n).ok().filter(|n| *n > 0)
            }
        };
        Ok(Self {
            index,
            wait: parse_wait(params.non_empty("wait"))?,
            stale,
            region: params.non_empty("region").map(str::to_string),
            namespace: parse_namespace(params),
            prefix: params.non_empty("prefix").unwrap_or_default().to_string(),
            filter: params.non_empty("filter").unwrap_or_default().to_string(),
            per_page,
            next_token: params.non_empty("next_token").map(str::to_string),
            reverse: params.get("reverse") == Some("true"),
            pretty: parse_pretty(params),
            auth: AuthContext::from_headers(headers),
        })
    }

    /// True when the request asked for every namespace (`?namespace=*`).
    pub fn all_namespaces(&self) -> bool {
        self.namespace == ALL_NAMESPACES
    }

    /// The region to serve, falling back to the agent's own.
    pub fn region_or<'a>(&'a self, agent_region: &'a str) -> &'a str {
        self.region.as_deref().unwrap_or(agent_region)
    }

    /// True when the client asked to block (`?index` > 0).
    pub fn is_blocking(&self) -> bool {
        self.index > 0
    }
}

/// `?wait`: invalid → 400 "Invalid wait time"; absent, zero or negative → 5m; above 10m → 10m.
pub fn parse_wait(raw: Option<&str>) -> Result<Duration, HttpError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_WAIT);
    };
    let nanos =
        parse_go_duration_nanos(raw).map_err(|_| HttpError::bad_request("Invalid wait time"))?;
    // Go accepts negative durations; Nomad's server then falls back to the default.
    let Ok(nanos) = u64::try_from(nanos) else {
        return Ok(DEFAULT_WAIT);
    };
    Ok(match Duration::from_nanos(nanos) {
        Duration::ZERO => DEFAULT_WAIT,
        d => d.min(MAX_WAIT),
    })
}

/// `?namespace`, defaulting to `"default"` when absent or empty.
fn parse_namespace(params: &QueryParams) -> String {
    params
        .non_empty("namespace")
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_string()
}

/// `?pretty`: present and empty or truthy → on; `0`/`false` → off. Never an error, as in
/// Nomad; unlike Nomad (which only treats `0` as off) `pretty=false` also turns it off.
fn parse_pretty(params: &QueryParams) -> bool {
    match params.get("pretty") {
        None => false,
        Some(v) => parse_go_bool(v).unwrap_or(true),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryOptions {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let params = QueryParams::parse(parts.uri.query())?;
        Self::parse(&params, &parts.headers)
    }
}

/// Options every write endpoint accepts (Nomad's `WriteRequest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    /// `?region`, when given.
    pub region: Option<String>,
    /// `?namespace`, `"default"` when absent.
    pub namespace: String,
    /// `?idempotency_token`, when given.
    pub idempotency_token: Option<String>,
    /// `?pretty`: indent the JSON response.
    pub pretty: bool,
    /// The caller's ACL token.
    pub auth: AuthContext,
}

impl WriteOptions {
    /// Parses the query string and headers of a write request.
    pub fn parse(params: &QueryParams, headers: &HeaderMap) -> Self {
        Self {
            region: params.non_empty("region").map(str::to_string),
            namespace: parse_namespace(params),
            idempotency_token: params.non_empty("idempotency_token").map(str::to_string),
            pretty: parse_pretty(params),
            auth: AuthContext::from_headers(headers),
        }
    }

    /// The region to serve, falling back to the agent's own.
    pub fn region_or<'a>(&'a self, agent_region: &'a str) -> &'a str {
        self.region.as_deref().unwrap_or(agent_region)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WriteOptions {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let params = QueryParams::parse(parts.uri.query())?;
        Ok(Self::parse(&params, &parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, StatusCode};

    fn opts(q: &str) -> Result<QueryOptions, HttpError> {
        let params = QueryParams::parse(Some(q))?;
        QueryOptions::parse(&params, &HeaderMap::new())
    }

    fn bad(q: &str) -> String {
        let err = opts(q).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{q}");
        err.to_string()
    }

    #[test]
    fn defaults() {
        let o = opts("").unwrap();
        assert_eq!(o, QueryOptions::default());
        assert_eq!(o.namespace, "default");
        assert_eq!(o.wait, Duration::from_secs(300));
        assert!(!o.is_blocking());
    }

    #[test]
    fn wait_parsing_defaults_and_caps() {
        let w = |q: &str| opts(q).unwrap().wait;
        assert_eq!(w("wait=10s"), Duration::from_secs(10));
        assert_eq!(w("wait=100ms"), Duration::from_millis(100));
        assert_eq!(w("wait=5m"), Duration::from_secs(300));
        assert_eq!(w("wait=1h"), MAX_WAIT);
        assert_eq!(w("wait=10m1s"), MAX_WAIT);
        assert_eq!(w("wait=0"), DEFAULT_WAIT);
        assert_eq!(w("wait=-5s"), DEFAULT_WAIT);
        assert_eq!(w("wait="), DEFAULT_WAIT);
        assert_eq!(bad("wait=10"), "Invalid wait time");
        assert_eq!(bad("wait=soon"), "Invalid wait time");
        assert_eq!(bad("wait=3d"), "Invalid wait time");
    }

    #[test]
    fn index_parsing() {
        assert_eq!(opts("index=42").unwrap().index, 42);
        assert!(opts("index=42").unwrap().is_blocking());
        assert_eq!(opts("index=").unwrap().index, 0);
        assert_eq!(bad("index=-1"), "Invalid index");
        assert_eq!(bad("index=abc"), "Invalid index");
        assert_eq!(bad("index=18446744073709551616"), "Invalid index");
    }

    #[test]
    fn stale_and_pretty_booleans() {
        assert!(opts("stale").unwrap().stale);
        assert!(opts("stale=").unwrap().stale);
        assert!(opts("stale=true").unwrap().stale);
        assert!(!opts("stale=false").unwrap().stale);
        assert!(!opts("").unwrap().stale);
        assert_eq!(
            bad("stale=maybe"),
            "Expect `true` or `false` for `stale` query string parameter"
        );

        assert!(opts("pretty").unwrap().pretty);
        assert!(opts("pretty=").unwrap().pretty);
        assert!(opts("pretty=1").unwrap().pretty);
        assert!(opts("pretty=yes").unwrap().pretty);
        assert!(!opts("pretty=0").unwrap().pretty);
        assert!(!opts("pretty=false").unwrap().pretty);
        assert!(!opts("").unwrap().pretty);
    }

    #[test]
    fn namespace_region_prefix_filter() {
        let o = opts("namespace=qa&region=eu&prefix=te%20am&filter=Status+%3D%3D+%22running%22")
            .unwrap();
        assert_eq!(o.namespace, "qa");
        assert_eq!(o.region.as_deref(), Some("eu"));
        assert_eq!(o.region_or("global"), "eu");
        assert_eq!(o.prefix, "te am");
        assert_eq!(o.filter, "Status == \"running\"");
        assert!(opts("namespace=*").unwrap().all_namespaces());
        assert!(opts("namespace=%2A").unwrap().all_namespaces());
        assert_eq!(opts("namespace=").unwrap().namespace, "default");
        assert_eq!(opts("").unwrap().region_or("global"), "global");
        // First value wins, like Go's Query().Get.
        assert_eq!(opts("namespace=a&namespace=b").unwrap().namespace, "a");
    }

    #[test]
    fn paging_params() {
        let o = opts("per_page=5&next_token=abc").unwrap();
        assert_eq!(o.per_page, Some(5));
        assert_eq!(o.next_token.as_deref(), Some("abc"));
        assert_eq!(opts("per_page=0").unwrap().per_page, None);
        assert_eq!(opts("per_page=-3").unwrap().per_page, None);
        assert_eq!(opts("next_token=").unwrap().next_token, None);
        assert_eq!(
            bad("per_page=ten"),
            "Expect a number for `per_page` query string parameter"
        );
        assert!(opts("reverse=true").unwrap().reverse);
    }

    #[test]
    fn token_headers() {
        let auth = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            AuthContext::from_headers(&h).token
        };
        assert_eq!(auth(&[]), None);
        assert_eq!(auth(&[("x-nomad-token", " abc ")]), Some("abc".into()));
        assert_eq!(auth(&[("authorization", "Bearer xyz")]), Some("xyz".into()));
        assert_eq!(
            auth(&[("authorization", "bearer xyz more")]),
            Some("xyz".into())
        );
        assert_eq!(auth(&[("authorization", "Basic Zm9v")]), None);
        assert_eq!(auth(&[("authorization", "Bearer")]), None);
        assert_eq!(
            auth(&[("x-nomad-token", "a"), ("authorization", "Bearer b")]),
            Some("a".into())
        );
    }

    #[test]
    fn debug_hides_the_token() {
        let auth = AuthContext {
            token: Some("very-secret".into()),
        };
        let shown = format!(
            "{:?}",
            QueryOptions {
                auth,
                ..QueryOptions::default()
            }
        );
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn write_options() {
        let params =
            QueryParams::parse(Some("namespace=prod&idempotency_token=t1&pretty")).unwrap();
        let w = WriteOptions::parse(&params, &HeaderMap::new());
        assert_eq!(w.namespace, "prod");
        assert_eq!(w.idempotency_token.as_deref(), Some("t1"));
        assert!(w.pretty);
        assert_eq!(w.region_or("global"), "global");
        let w = WriteOptions::parse(&QueryParams::default(), &HeaderMap::new());
        assert_eq!(w.namespace, "default");
    }

    #[test]
    fn raw_params_helpers() {
        let p = QueryParams::parse(Some("follow&origin=end&offset=12&x=zz")).unwrap();
        assert_eq!(p.flag("follow").unwrap(), Some(true));
        assert_eq!(p.flag("missing").unwrap(), None);
        assert_eq!(p.get("origin"), Some("end"));
        assert_eq!(p.int::<i64>("offset").unwrap(), Some(12));
        assert_eq!(p.flag("x").unwrap_err().status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            p.int::<i64>("x").unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }
}
