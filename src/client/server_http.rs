//! [`ServerApi`] over HTTP/JSON against the servers' RPC addresses, failing over between
//! them when one is unreachable.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::server_list::ServerList;
use crate::rpc::{
    ClientAllocs, ClientAllocsRequest, GetAllocsRequest, GetAllocsResponse, NodeStatusRequest,
    NodeUpdateResponse, RpcError, ServerApi, UpdateAllocsRequest, WriteResponse,
};
use crate::structs::Node;
use crate::tls::ClientConfig;

/// Nomad's default server RPC port, used when an address names none.
pub const DEFAULT_RPC_PORT: u16 = 4647;
/// Timeout of ordinary (non-blocking) calls.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Extra time a long poll may take beyond the wait the server was given.
const POLL_GRACE: Duration = Duration::from_secs(30);

/// A client of the servers' internal HTTP API.
#[derive(Debug)]
pub struct HttpServerApi {
    http: reqwest::Client,
    servers: ServerList,
    /// The index of the server that answered last; calls start there.
    current: AtomicUsize,
}

impl HttpServerApi {
    /// Talks to `servers` (`host:port`, `host`, or full `http://` URLs).
    pub fn new(servers: &[String]) -> Result<Self, RpcError> {
        Self::with_tls(servers, None)
    }

    /// Talks to `servers` over TLS with `tls` when given (addresses without a scheme become
    /// `https://`), over plain HTTP otherwise.
    pub fn with_tls(servers: &[String], tls: Option<&ClientConfig>) -> Result<Self, RpcError> {
        Self::with_list(ServerList::new(servers, tls.is_some()), tls)
    }

    /// Talks to the servers of `servers`, a list others may replace while this runs (the
    /// list's scheme should match `tls`).
    pub fn with_list(servers: ServerList, tls: Option<&ClientConfig>) -> Result<Self, RpcError> {
        if servers.is_empty() {
            return Err(RpcError::BadRequest(
                "no server addresses configured".into(),
            ));
        }
        let builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
        let http = crate::tls::reqwest_tls(builder, tls)
            .map_err(|e| RpcError::Unavailable(format!("TLS for server RPC: {e}")))?
            .build()
            .map_err(|e| RpcError::Unavailable(format!("building HTTP client: {e}")))?;
        Ok(HttpServerApi {
            http,
            servers,
            current: AtomicUsize::new(0),
        })
    }

    /// The list this talks to.
    pub fn servers(&self) -> &ServerList {
        &self.servers
    }

    /// POSTs `body` to `path` on the current server, moving on to the next ones while they
    /// are unreachable.
    async fn post<B: Serialize + Sync, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<R, RpcError> {
        // A snapshot: the list may be replaced while this call is under way.
        let servers = self.servers.base_urls();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = RpcError::Unavailable("no servers".into());
        for i in 0..servers.len() {
            let idx = (start + i) % servers.len();
            let url = format!("{}{path}", servers[idx]);
            match self.post_one(&url, body, timeout).await {
                Ok(r) => {
                    self.current.store(idx, Ordering::Relaxed);
                    return Ok(r);
                }
                Err(RpcError::Unavailable(e)) => {
                    tracing::debug!(%url, error = %e, "server unavailable; trying the next");
                    last = RpcError::Unavailable(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    async fn post_one<B: Serialize + Sync, R: DeserializeOwned>(
        &self,
        url: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<R, RpcError> {
        let resp = self
            .http
            .post(url)
            .timeout(timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| {
                RpcError::Unavailable(format!("{url}: {}", crate::tls::with_causes(&e)))
            })?;
        let status = resp.status();
        if status.is_success() {
            return resp
                .json::<R>()
                .await
                .map_err(|e| RpcError::Unavailable(format!("{url}: decoding response: {e}")));
        }
        let text = resp.text().await.unwrap_or_default();
        Err(map_error(status.as_u16(), text))
    }
}

/// Maps an HTTP error answer to the RPC error the client acts on.
pub fn map_error(status: u16, body: String) -> RpcError {
    match status {
        404 if body.to_lowercase().contains("node not found") => RpcError::NodeNotFound,
        403 if body.contains("secret ID does not match") => RpcError::SecretMismatch,
        403 => RpcError::PermissionDenied,
        400..=499 => RpcError::BadRequest(body),
        _ => RpcError::Unavailable(format!("HTTP {status}: {body}")),
    }
}

/// The `http://host:port` base of a server address (`host`, `host:port` or a URL).
pub fn base_url(addr: &str) -> String {
    base_url_with(addr, "http")
}

/// The `<scheme>://host:port` base of a server address; a URL keeps its own scheme.
pub fn base_url_with(addr: &str, scheme: &str) -> String {
    let addr = addr.trim().trim_end_matches('/');
    if addr.starts_with("http://") || addr.starts_with("https://") {
        return addr.to_string();
    }
    let has_port = match addr.rsplit_once(':') {
        Some((host, port)) => {
            port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        format!("{scheme}://{addr}")
    } else {
        format!("{scheme}://{addr}:{DEFAULT_RPC_PORT}")
    }
}

/// A wait as a Go duration string the server's `wait` parameter accepts.
pub fn go_wait(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis().max(1))
    }
}

#[async_trait]
impl ServerApi for HttpServerApi {
    async fn register_node(&self, node: Node) -> Result<NodeUpdateResponse, RpcError> {
        self.post("/v1/internal/node/register", &node, CALL_TIMEOUT)
            .await
    }

    async fn update_status(&self, req: NodeStatusRequest) -> Result<NodeUpdateResponse, RpcError> {
        self.post("/v1/internal/node/status", &req, CALL_TIMEOUT)
            .await
    }

    async fn get_client_allocs(
        &self,
        req: ClientAllocsRequest,
        wait: Duration,
    ) -> Result<ClientAllocs, RpcError> {
        let path = format!(
            "/v1/internal/node/allocs?index={}&wait={}",
            req.min_query_index,
            go_wait(wait)
        );
        self.post(&path, &req, wait + POLL_GRACE).await
    }

    async fn get_allocs(&self, req: GetAllocsRequest) -> Result<GetAllocsResponse, RpcError> {
        self.post("/v1/internal/allocs", &req, CALL_TIMEOUT).await
    }

    async fn update_allocs(&self, req: UpdateAllocsRequest) -> Result<WriteResponse, RpcError> {
        self.post("/v1/internal/allocs/update", &req, CALL_TIMEOUT)
            .await
    }

    async fn resolve_token(
        &self,
        req: crate::rpc::ResolveTokenRequest,
    ) -> Result<crate::rpc::ResolvedToken, RpcError> {
        self.post("/v1/internal/acl/resolve", &req, CALL_TIMEOUT)
            .await
    }

    async fn read_workload_var(
        &self,
        req: crate::rpc::WorkloadVarRequest,
    ) -> Result<crate::rpc::WorkloadVarResponse, RpcError> {
        let wait = Duration::from_nanos(u64::try_from(req.max_query_time).unwrap_or(0));
        self.post("/v1/internal/var/read", &req, wait + POLL_GRACE)
            .await
    }

    async fn list_workload_vars(
        &self,
        req: crate::rpc::WorkloadVarRequest,
    ) -> Result<crate::rpc::WorkloadVarListResponse, RpcError> {
        let wait = Duration::from_nanos(u64::try_from(req.max_query_time).unwrap_or(0));
        self.post("/v1/internal/var/list", &req, wait + POLL_GRACE)
            .await
    }
    async fn sync_services(
        &self,
        req: crate::rpc::ServiceSyncRequest,
    ) -> Result<WriteResponse, RpcError> {
        self.post("/v1/internal/services/sync", &req, CALL_TIMEOUT)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Json;
    use axum::extract::Query;
    use axum::http::StatusCode;
    use axum::routing::post;
    use std::collections::HashMap;

    async fn serve(router: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr.to_string()
    }

    #[tokio::test]
    async fn routes_errors_and_failover() {
        let router = axum::Router::new()
            .route(
                "/v1/internal/node/register",
                post(|Json(n): Json<Node>| async move {
                    Json(NodeUpdateResponse {
                        heartbeat_ttl: 10_000_000_000,
                        leader_rpc_addr: n.id,
                        ..Default::default()
                    })
                }),
            )
            .route(
                "/v1/internal/node/status",
                post(|| async { (StatusCode::NOT_FOUND, "node not found") }),
            )
            .route(
                "/v1/internal/node/allocs",
                post(
                    |Query(q): Query<HashMap<String, String>>,
                     Json(r): Json<ClientAllocsRequest>| async move {
                        assert_eq!(q["wait"], "2s");
                        assert_eq!(q["index"], r.min_query_index.to_string());
                        Json(ClientAllocs {
                            allocs: [("a".to_string(), 3)].into(),
                            index: r.min_query_index + 1,
                        })
                    },
                ),
            )
            .route(
                "/v1/internal/allocs",
                post(|| async { (StatusCode::FORBIDDEN, "node secret ID does not match") }),
            )
            .route(
                "/v1/internal/allocs/update",
                post(|| async { (StatusCode::BAD_REQUEST, "empty update") }),
            );
        let live = serve(router).await;
        // The first address refuses connections; the client must fail over.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let api = HttpServerApi::new(&[dead, live]).unwrap();
        let resp = api
            .register_node(Node {
                id: "n1".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(resp.heartbeat_ttl, 10_000_000_000);
        assert_eq!(resp.leader_rpc_addr, "n1");
        assert!(matches!(
            api.update_status(NodeStatusRequest::default()).await,
            Err(RpcError::NodeNotFound)
        ));
        let allocs = api
            .get_client_allocs(
                ClientAllocsRequest {
                    min_query_index: 7,
                    ..Default::default()
                },
                Duration::from_secs(2),
            )
            .await
            .unwrap();
        assert_eq!(allocs.index, 8);
        assert!(matches!(
            api.get_allocs(GetAllocsRequest::default()).await,
            Err(RpcError::SecretMismatch)
        ));
        match api.update_allocs(UpdateAllocsRequest::default()).await {
            Err(RpcError::BadRequest(b)) => assert_eq!(b, "empty update"),
            other => panic!("{other:?}"),
        }
        let none = HttpServerApi::new(&["127.0.0.1:1".to_string()]).unwrap();
        assert!(matches!(
            none.get_allocs(GetAllocsRequest::default()).await,
            Err(RpcError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn a_replaced_list_is_used_by_the_next_call() {
        let answering = |name: &'static str| {
            axum::Router::new().route(
                "/v1/internal/node/register",
                post(move || async move {
                    Json(NodeUpdateResponse {
                        leader_rpc_addr: name.to_string(),
                        ..Default::default()
                    })
                }),
            )
        };
        let first = serve(answering("first")).await;
        let second = serve(answering("second")).await;
        let list = ServerList::new(std::slice::from_ref(&first), false);
        let api = HttpServerApi::with_list(list.clone(), None).unwrap();
        let who = |r: NodeUpdateResponse| r.leader_rpc_addr;
        assert_eq!(
            who(api.register_node(Node::default()).await.unwrap()),
            "first"
        );
        list.replace(vec![second]);
        assert_eq!(
            who(api.register_node(Node::default()).await.unwrap()),
            "second"
        );
        assert_eq!(api.servers().len(), 1);
    }

    #[test]
    fn addresses_and_waits() {
        assert_eq!(base_url("10.0.0.1"), "http://10.0.0.1:4647");
        assert_eq!(base_url("10.0.0.1:4000"), "http://10.0.0.1:4000");
        assert_eq!(base_url("http://s:1/"), "http://s:1");
        assert_eq!(base_url("[::1]:4647"), "http://[::1]:4647");
        assert_eq!(base_url_with("10.0.0.1", "https"), "https://10.0.0.1:4647");
        assert_eq!(base_url_with("http://s:1", "https"), "http://s:1");
        assert_eq!(go_wait(Duration::from_secs(300)), "300s");
        assert_eq!(go_wait(Duration::from_millis(1500)), "1500ms");
        assert!(matches!(
            map_error(500, "x".into()),
            RpcError::Unavailable(_)
        ));
        assert!(matches!(
            map_error(404, "alloc missing".into()),
            RpcError::BadRequest(_)
        ));
        assert!(matches!(
            map_error(403, "Permission denied".into()),
            RpcError::PermissionDenied
        ));
    }
}
