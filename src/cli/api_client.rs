//! `ApiClient`: the small HTTP client user commands (`job run`, `alloc status`, …) use to
//! talk to an agent, configured like Nomad's CLI from `NOMAD_ADDR`, `NOMAD_TOKEN`,
//! `NOMAD_REGION`, `NOMAD_NAMESPACE`, the TLS variables and flags (`api_flags`).

use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::api_flags::{ApiFlags, CliTls};
use crate::http::respond::{HEADER_INDEX, HEADER_NEXT_TOKEN};
use crate::tls::{ClientConfig, TlsError};

/// Agent address when `NOMAD_ADDR` is unset.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:4646";

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `NOMAD_ADDR` (or the given address) is not a usable URL.
    #[error("invalid agent address {addr:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request never got an HTTP answer (connection refused, timeout, a certificate
    /// that does not verify, …); the message carries the underlying causes.
    #[error("Error querying {url}: {}", crate::tls::with_causes(source))]
    Transport {
        /// The URL being requested.
        url: String,
        /// The underlying error.
        source: reqwest::Error,
    },
    /// The agent answered with a non-2xx status; `body` is its plain-text message.
    #[error("Unexpected response code: {status} ({body})")]
    Status {
        /// HTTP status code.
        status: u16,
        /// Response body text.
        body: String,
    },
    /// A 2xx answer whose body is not the expected JSON.
    #[error("Failed to decode response from {url}: {source}")]
    Decode {
        /// The URL requested.
        url: String,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// The request body could not be encoded.
    #[error("Failed to encode request body: {0}")]
    Encode(serde_json::Error),
    /// A TLS file is missing or unusable.
    #[error("Error configuring TLS: {0}")]
    Tls(#[from] TlsError),
    /// The HTTP client could not be built.
    #[error("Error creating the HTTP client: {0}")]
    Client(reqwest::Error),
}

/// A configured client for one agent.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: Url,
    token: Option<String>,
    region: Option<String>,
    namespace: Option<String>,
    http: reqwest::Client,
    /// TLS for `https://` addresses (the exec WebSocket uses it too).
    tls: Option<ClientConfig>,
}

impl ApiClient {
    /// A client for `addr` (scheme optional; `http://` assumed) with an optional token;
    /// `https://` trusts the system's roots.
    pub fn new(addr: &str, token: Option<String>) -> Result<Self, ApiError> {
        Self::with_tls(addr, token, &CliTls::default())
    }

    /// A client for `addr` with an optional token; an `https://` address uses `tls`.
    pub fn with_tls(addr: &str, token: Option<String>, tls: &CliTls) -> Result<Self, ApiError> {
        let with_scheme = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let invalid = |reason: String| ApiError::InvalidAddress {
            addr: addr.to_string(),
            reason,
        };
        let base = Url::parse(&with_scheme).map_err(|e| invalid(e.to_string()))?;
        let tls = match base.scheme() {
            "http" => None,
            "https" => Some(tls.client_config()?),
            other => {
                return Err(invalid(format!(
                    "scheme {other:?} is not supported (use http or https)"
                )));
            }
        };
        let http = crate::tls::reqwest_tls(reqwest::Client::builder(), tls.as_ref())?
            .build()
            .map_err(ApiError::Client)?;
        Ok(Self {
            base,
            token: token.filter(|t| !t.is_empty()),
            region: None,
            namespace: None,
            http,
            tls,
        })
    }

    /// A client configured from the process environment.
    pub fn from_env() -> Result<Self, ApiError> {
        Self::from_flags(&ApiFlags::default())
    }

    /// A client configured from `flags` over the process environment.
    pub fn from_flags(flags: &ApiFlags) -> Result<Self, ApiError> {
        Self::from_flags_lookup(flags, |key| std::env::var(key).ok())
    }

    /// A client configured through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ApiError> {
        Self::from_flags_lookup(&ApiFlags::default(), lookup)
    }

    /// A client configured from `flags` over the variables `lookup` finds.
    pub fn from_flags_lookup(
        flags: &ApiFlags,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ApiError> {
        let non_empty = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        let addr = flags
            .address
            .clone()
            .filter(|a| !a.trim().is_empty())
            .or_else(|| non_empty("NOMAD_ADDR"))
            .unwrap_or_else(|| DEFAULT_ADDR.to_string());
        let tls = CliTls::resolve(flags, &lookup);
        let flag = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
        let token = flag(&flags.token).or_else(|| non_empty("NOMAD_TOKEN"));
        let mut client = Self::with_tls(addr.trim(), token, &tls)?;
        client.region = flag(&flags.region).or_else(|| non_empty("NOMAD_REGION"));
        client.namespace = non_empty("NOMAD_NAMESPACE");
        Ok(client)
    }

    /// Uses `namespace` for requests that don't name one (the `-namespace` flag).
    pub fn with_namespace(mut self, namespace: Option<String>) -> Self {
        if namespace.is_some() {
            self.namespace = namespace;
        }
        self
    }

    /// Sends requests to `region` instead of the `-region` flag's (a job file's own region
    /// wins, as in Nomad's `job run` and `job plan`).
    pub fn with_region(mut self, region: Option<String>) -> Self {
        if region.is_some() {
            self.region = region;
        }
        self
    }

    /// The ACL token sent with requests (`NOMAD_TOKEN`), if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The agent's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The TLS configuration of an `https://` agent address.
    pub fn tls_config(&self) -> Option<&ClientConfig> {
        self.tls.as_ref()
    }

    /// The full URL for an API path (`/v1/jobs`) and query pairs, adding the configured
    /// region and namespace unless the query already names them.
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.set_path(path);
        {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
            let named = |key: &str| query.iter().any(|(k, _)| *k == key);
            if let (Some(region), false) = (&self.region, named("region")) {
                pairs.append_pair("region", region);
            }
            if let (Some(ns), false) = (&self.namespace, named("namespace")) {
                pairs.append_pair("namespace", ns);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }

    /// GETs `path` and decodes the JSON answer.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ApiError> {
        self.get_json_indexed(path, query).await.map(|(v, _)| v)
    }

    /// GETs `path`, returning the answer and its `X-Nomad-Index` (0 if absent), for
    /// blocking follow-ups with `?index=`.
    pub async fn get_json_indexed<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<(T, u64), ApiError> {
        self.send(Method::GET, self.url(path, query), None)
            .await
            .map(|(v, index, _)| (v, index))
    }

    /// GETs a paged list, returning it and the `X-Nomad-NextToken` of the next page, if any.
    pub async fn get_json_paged<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<(T, Option<String>), ApiError> {
        self.send(Method::GET, self.url(path, query), None)
            .await
            .map(|(v, _, next)| (v, next))
    }

    /// PUTs `body` as JSON to `path` and decodes the JSON answer.
    pub async fn put_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let bytes = serde_json::to_vec(body).map_err(ApiError::Encode)?;
        self.send(Method::PUT, self.url(path, &[]), Some(bytes))
            .await
            .map(|(v, _, _)| v)
    }

    /// PUTs `body` as JSON to `path` with query pairs and decodes the JSON answer.
    pub async fn put_json_query<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: &B,
    ) -> Result<T, ApiError> {
        let bytes = serde_json::to_vec(body).map_err(ApiError::Encode)?;
        self.send(Method::PUT, self.url(path, query), Some(bytes))
            .await
            .map(|(v, _, _)| v)
    }

    /// DELETEs `path` (with query pairs) and decodes the JSON answer.
    pub async fn delete_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ApiError> {
        self.send(Method::DELETE, self.url(path, query), None)
            .await
            .map(|(v, _, _)| v)
    }

    /// POSTs `body` as JSON to `path` and decodes the JSON answer.
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let bytes = serde_json::to_vec(body).map_err(ApiError::Encode)?;
        self.send(Method::POST, self.url(path, &[]), Some(bytes))
            .await
            .map(|(v, _, _)| v)
    }

    /// POSTs `body` as JSON to `path` with query pairs and decodes the JSON answer.
    pub async fn post_json_query<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: &B,
    ) -> Result<T, ApiError> {
        let bytes = serde_json::to_vec(body).map_err(ApiError::Encode)?;
        self.send(Method::POST, self.url(path, query), Some(bytes))
            .await
            .map(|(v, _, _)| v)
    }

    /// GETs `path` and returns the successful response unread, for raw or streamed bodies
    /// (file contents, log follows).
    pub async fn get_stream(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<reqwest::Response, ApiError> {
        let url = self.url(path, query);
        let url_text = url.to_string();
        let mut req = self.http.get(url);
        if let Some(token) = &self.token {
            req = req.header("X-Nomad-Token", token);
        }
        let resp = req.send().await.map_err(|source| ApiError::Transport {
            url: url_text.clone(),
            source,
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        Err(ApiError::Status {
            status,
            body: body.trim_end().to_string(),
        })
    }

    /// Sends a request with the token header and maps the outcome to typed errors.
    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<(T, u64, Option<String>), ApiError> {
        let url_text = url.to_string();
        let transport = |source| ApiError::Transport {
            url: url_text.clone(),
            source,
        };
        let mut req = self.http.request(method, url);
        if let Some(token) = &self.token {
            req = req.header("X-Nomad-Token", token);
        }
        if let Some(bytes) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let index = resp
            .headers()
            .get(HEADER_INDEX)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let next_token = resp
            .headers()
            .get(HEADER_NEXT_TOKEN)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        let text = resp.text().await.map_err(transport)?;
        if !status.is_success() {
            return Err(ApiError::Status {
                status: status.as_u16(),
                body: text.trim_end().to_string(),
            });
        }
        // Some writes (namespaces) answer with no body at all, which reads as JSON null.
        let text = if text.trim().is_empty() {
            "null"
        } else {
            &text
        };
        let value = serde_json::from_str(text).map_err(|source| ApiError::Decode {
            url: url_text.clone(),
            source,
        })?;
        Ok((value, index, next_token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HttpError, JsonBody, JsonReply, QueryOptions, apply_layers};
    use axum::Router;
    use axum::routing::{get, put};
    use serde_json::{Value, json};
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn env_configuration() {
        let c = ApiClient::from_lookup(env(&[])).unwrap();
        assert_eq!(c.base_url().as_str(), "http://127.0.0.1:4646/");
        assert_eq!(c.token, None);

        let c = ApiClient::from_lookup(env(&[
            ("NOMAD_ADDR", "10.0.0.1:5646"),
            ("NOMAD_TOKEN", "secret"),
            ("NOMAD_NAMESPACE", "prod"),
            ("NOMAD_REGION", "eu"),
        ]))
        .unwrap();
        assert_eq!(c.base_url().as_str(), "http://10.0.0.1:5646/");
        assert_eq!(c.token.as_deref(), Some("secret"));
        assert_eq!(
            c.url("/v1/jobs", &[("prefix", "a b")]).as_str(),
            "http://10.0.0.1:5646/v1/jobs?prefix=a+b&region=eu&namespace=prod"
        );
        assert_eq!(
            c.url("/v1/jobs", &[("namespace", "*")]).as_str(),
            "http://10.0.0.1:5646/v1/jobs?namespace=*&region=eu"
        );

        // A job file's region replaces -region/NOMAD_REGION for `job run` and `job plan`.
        let job_region = c.clone().with_region(Some("west".to_string()));
        assert_eq!(
            job_region.url("/v1/job/a/plan", &[]).as_str(),
            "http://10.0.0.1:5646/v1/job/a/plan?region=west&namespace=prod"
        );
        let unset = c.clone().with_region(None);
        assert_eq!(
            unset.url("/v1/job/a/plan", &[]).as_str(),
            "http://10.0.0.1:5646/v1/job/a/plan?region=eu&namespace=prod"
        );

        let https = ApiClient::from_lookup(env(&[("NOMAD_ADDR", "https://x:4646")])).unwrap();
        assert_eq!(https.base_url().as_str(), "https://x:4646/");
        assert!(https.tls_config().is_some());
        assert!(c.tls_config().is_none());
        assert!(matches!(
            ApiClient::from_lookup(env(&[("NOMAD_ADDR", "ftp://x:4646")])),
            Err(ApiError::InvalidAddress { .. })
        ));
        // -address wins over NOMAD_ADDR; a CA that cannot be read is an error naming it.
        let flags = ApiFlags {
            address: Some("http://10.9.9.9:4646".into()),
            ..ApiFlags::default()
        };
        let c =
            ApiClient::from_flags_lookup(&flags, env(&[("NOMAD_ADDR", "10.0.0.1:5646")])).unwrap();
        assert_eq!(c.base_url().as_str(), "http://10.9.9.9:4646/");
        let bad_ca = ApiClient::from_lookup(env(&[
            ("NOMAD_ADDR", "https://x:4646"),
            ("NOMAD_CACERT", "/nonexistent/ca.pem"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            bad_ca.contains("NOMAD_CACERT: reading /nonexistent/ca.pem"),
            "{bad_ca}"
        );
        assert!(ApiClient::new("http://[::1", None).is_err());
    }

    #[test]
    fn url_without_query_has_no_question_mark() {
        let c = ApiClient::new("http://127.0.0.1:4646", None).unwrap();
        assert_eq!(
            c.url("/v1/agent/self", &[]).as_str(),
            "http://127.0.0.1:4646/v1/agent/self"
        );
    }

    async fn serve() -> String {
        async fn job(opts: QueryOptions) -> Result<JsonReply<Value>, HttpError> {
            match opts.auth.token.as_deref() {
                Some("good") => Ok(JsonReply::query(&opts, 12, json!({"ID": "example"}))),
                _ => Err(HttpError::permission_denied()),
            }
        }
        async fn register(JsonBody(v): JsonBody<Value>) -> JsonReply<Value> {
            JsonReply::new(json!({"Echo": v}))
        }
        let app = apply_layers(
            Router::new()
                .route("/v1/job/example", get(job))
                .route("/v1/jobs", put(register)),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn talks_to_an_agent() {
        let addr = serve().await;
        let good = ApiClient::new(&addr, Some("good".into())).unwrap();
        let (job, index): (Value, u64) =
            good.get_json_indexed("/v1/job/example", &[]).await.unwrap();
        assert_eq!(job["ID"], "example");
        assert_eq!(index, 12);

        let echoed: Value = good.put_json("/v1/jobs", &json!({"Job": 1})).await.unwrap();
        assert_eq!(echoed, json!({"Echo": {"Job": 1}}));

        let anon = ApiClient::new(&addr, None).unwrap();
        match anon.get_json::<Value>("/v1/job/example", &[]).await {
            Err(ApiError::Status { status, body }) => {
                assert_eq!(status, 403);
                assert_eq!(body, "Permission denied");
            }
            other => panic!("expected 403, got {other:?}"),
        }
        match anon.get_json::<Value>("/v1/nope", &[]).await {
            Err(ApiError::Status { status, .. }) => assert_eq!(status, 404),
            other => panic!("expected 404, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn connection_refused_is_a_transport_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let c = ApiClient::new(&format!("http://{addr}"), None).unwrap();
        let err = c.get_json::<Value>("/v1/jobs", &[]).await.unwrap_err();
        assert!(matches!(err, ApiError::Transport { .. }), "{err:?}");
    }
}
