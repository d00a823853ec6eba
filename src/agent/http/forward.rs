//! Any agent answers any request. Per-allocation client requests (`/v1/client/allocation/..`,
//! `/v1/client/fs/..`) for an allocation this agent does not run are proxied to the agent
//! that does (the allocation's node's advertised `HTTPAddr`), and a client-only agent
//! proxies the rest of the public API to a server's RPC listener, which serves it too.
//!
//! Proxied requests keep method, path, query, body and headers (the ACL token included) and
//! carry [`FORWARDED_HEADER`]; a request that carries it is always answered locally, so a
//! stale address can never make two agents bounce a request between them. Responses are
//! streamed back as they arrive (log follows stay live).
//!
//! WebSockets (exec) cannot go through [`Forwarder::proxy`]; the exec endpoint calls
//! [`Forwarder::target_for_alloc`] and opens its own WebSocket to the target.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::client::Client;
use crate::client::ServerList;
use crate::client::http::unknown_alloc;
use crate::http::{HttpError, no_compression};
use crate::rpc::ServerLookup;
use crate::tls::ClientConfig;

/// Marks a request one agent forwarded to another; such requests are never forwarded again.
pub const FORWARDED_HEADER: &str = "X-Yurt-Forwarded";

/// Largest request body the public-API proxy buffers (it may retry on another server).
const PROXY_BODY_LIMIT: usize = crate::http::layers::DEFAULT_BODY_LIMIT;

/// Where allocations and nodes are looked up.
#[derive(Clone)]
pub enum Directory {
    /// This agent runs the server: its state answers.
    Local(Arc<dyn ServerLookup>),
    /// Ask the servers (their RPC listeners serve the public API too): the client's list,
    /// so a replaced list redirects the next request.
    Remote(ServerList),
}

/// The agent an allocation's requests go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The allocation's node.
    pub node_id: String,
    /// That node's advertised HTTP address (`ip:port`).
    pub http_addr: String,
}

/// Decides where client requests are answered and proxies them there.
#[derive(Clone)]
pub struct Forwarder {
    directory: Directory,
    client: Option<Client>,
    /// To servers' RPC listeners (`Directory::Remote`).
    http: reqwest::Client,
    /// To other agents' HTTP ports.
    agent_http: reqwest::Client,
    /// TLS for other agents' HTTP ports (exec WebSockets use it directly); `None` = plain.
    agent_tls: Option<ClientConfig>,
}

/// The forwarding HTTP clients could not be built.
#[derive(Debug, thiserror::Error)]
#[error("building the forwarding HTTP client: {0}")]
pub struct ForwarderError(String);

fn http_client(tls: Option<&ClientConfig>) -> Result<reqwest::Client, ForwarderError> {
    let builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
    crate::tls::reqwest_tls(builder, tls)
        .map_err(|e| ForwarderError(e.to_string()))?
        .build()
        .map_err(|e| ForwarderError(crate::tls::with_causes(&e)))
}

/// The fields of `/v1/allocation/:id` and `/v1/node/:id` the lookup needs.
#[derive(Debug, Deserialize)]
struct AllocRef {
    #[serde(rename = "NodeID", default)]
    node_id: String,
}

#[derive(Debug, Deserialize)]
struct NodeRef {
    #[serde(rename = "HTTPAddr", default)]
    http_addr: String,
}

/// Headers that describe one connection, not the request, and are not passed on.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "host"
    )
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (k, v) in from {
        if !hop_by_hop(k) {
            to.append(k.clone(), v.clone());
        }
    }
}

/// The allocation ID of a per-allocation client path (exec's WebSocket included).
fn alloc_id_of(path: &str) -> Option<&str> {
    // The one server path answered by the client that runs the allocation.
    if let Some(id) = path
        .strip_prefix("/v1/allocation/")
        .and_then(|r| r.strip_suffix("/checks"))
    {
        return (!id.is_empty() && !id.contains('/')).then_some(id);
    }
    let rest = path.strip_prefix("/v1/client/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["allocation", id, _action] if !id.is_empty() => Some(id),
        ["fs", _op, id] if !id.is_empty() => Some(id),
        _ => None,
    }
}

impl Forwarder {
    /// A forwarder looking allocations up in `directory`; `client` is this agent's client.
    /// `to_servers` / `to_agents` are the TLS settings for servers' RPC ports and other
    /// agents' HTTP ports (`None`: plain HTTP).
    pub fn new(
        directory: Directory,
        client: Option<Client>,
        to_servers: Option<ClientConfig>,
        to_agents: Option<ClientConfig>,
    ) -> Result<Self, ForwarderError> {
        Ok(Forwarder {
            directory,
            client,
            http: http_client(to_servers.as_ref())?,
            agent_http: http_client(to_agents.as_ref())?,
            agent_tls: to_agents,
        })
    }

    /// The base URL of an agent's advertised HTTP address.
    fn agent_base(&self, http_addr: &str) -> String {
        let scheme = if self.agent_tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{http_addr}")
    }

    /// The agent that runs allocation `alloc_id`, or `None` when that is this agent (or the
    /// allocation is this agent's to answer about). Unknown allocations are Nomad's 404.
    pub async fn target_for_alloc(
        &self,
        alloc_id: &str,
        token: Option<&str>,
    ) -> Result<Option<Target>, HttpError> {
        if let Some(c) = &self.client
            && c.alloc(alloc_id).is_some()
        {
            return Ok(None);
        }
        let node_id = match &self.directory {
            Directory::Local(server) => server
                .alloc_node_id(alloc_id)
                .ok_or_else(|| unknown_alloc(alloc_id))?,
            Directory::Remote(_) => {
                let path = format!("/v1/allocation/{alloc_id}");
                match self.server_get::<AllocRef>(&path, token).await? {
                    Some(a) => a.node_id,
                    None => return Err(unknown_alloc(alloc_id)),
                }
            }
        };
        self.target_for_node(&node_id, token).await
    }

    /// The agent of node `node_id`, or `None` when it is this agent.
    pub async fn target_for_node(
        &self,
        node_id: &str,
        token: Option<&str>,
    ) -> Result<Option<Target>, HttpError> {
        if self.client.as_ref().is_some_and(|c| c.node_id() == node_id) {
            return Ok(None);
        }
        let http_addr = match &self.directory {
            Directory::Local(server) => server.node_http_addr(node_id),
            Directory::Remote(_) => self
                .server_get::<NodeRef>(&format!("/v1/node/{node_id}"), token)
                .await?
                .map(|n| n.http_addr),
        };
        match http_addr {
            None => Err(HttpError::not_found("Unknown node")),
            Some(a) if a.is_empty() => Err(HttpError::not_found("No path to node")),
            Some(http_addr) => Ok(Some(Target {
                node_id: node_id.to_string(),
                http_addr,
            })),
        }
    }

    /// GETs a public API path from the first server that answers; `None` on 404.
    async fn server_get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> Result<Option<T>, HttpError> {
        let Directory::Remote(servers) = &self.directory else {
            return Ok(None);
        };
        let mut last = HttpError::internal("no servers configured");
        for base in servers.base_urls() {
            let mut req = self.http.get(format!("{base}{path}"));
            if let Some(t) = token {
                req = req.header("X-Nomad-Token", t);
            }
            let resp = match req.timeout(Duration::from_secs(10)).send().await {
                Ok(r) => r,
                Err(e) => {
                    last = HttpError::internal(format!(
                        "contacting server {base}: {}",
                        crate::tls::with_causes(&e)
                    ));
                    continue;
                }
            };
            let status = resp.status();
            if status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !status.is_success() {
                // The caller gets the server's status either way; a body that cannot be read
                // is logged so the server's reason is not lost without a trace.
                let body = match resp.text().await {
                    Ok(body) => body,
                    Err(e) => {
                        tracing::warn!(server = %base, path, %status, error = %e,
                            "reading the error body of a server's answer");
                        String::new()
                    }
                };
                return Err(HttpError::Status(status, body));
            }
            return resp
                .json::<T>()
                .await
                .map(Some)
                .map_err(|e| HttpError::internal(format!("decoding server answer: {e}")));
        }
        Err(last)
    }

    /// Sends `req` to the agent at `base` (`http(s)://ip:port`) and streams the answer back.
    pub async fn proxy(&self, base: &str, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let mut headers = HeaderMap::new();
        copy_headers(&parts.headers, &mut headers);
        let mut rb = self
            .agent_http
            .request(parts.method.clone(), &url)
            .headers(headers)
            .header(FORWARDED_HEADER, "1");
        if body.size_hint().exact() != Some(0) {
            rb = rb.body(reqwest::Body::wrap_stream(body.into_data_stream()));
        }
        match rb.send().await {
            Ok(resp) => stream_back(resp),
            Err(e) => HttpError::internal(format!(
                "forwarding request to {base}: {}",
                crate::tls::with_causes(&e)
            ))
            .into_response(),
        }
    }

    /// Proxies a public API request to the first reachable server (client-only agents).
    pub async fn proxy_to_server(&self, req: Request) -> Response {
        let Directory::Remote(servers) = &self.directory else {
            return HttpError::not_found(crate::http::error::PAGE_NOT_FOUND).into_response();
        };
        let (parts, body) = req.into_parts();
        // Buffered (bounded by the API's body limit) so the request can go to the next
        // server when one is down.
        let bytes = match axum::body::to_bytes(body, PROXY_BODY_LIMIT).await {
            Ok(b) => b,
            Err(_) => return HttpError::payload_too_large().into_response(),
        };
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut headers = HeaderMap::new();
        copy_headers(&parts.headers, &mut headers);
        let mut last = HttpError::internal("no servers configured");
        for base in servers.base_urls() {
            let mut rb = self
                .http
                .request(parts.method.clone(), format!("{base}{path}"))
                .headers(headers.clone())
                .header(FORWARDED_HEADER, "1");
            if !bytes.is_empty() {
                rb = rb.body(bytes.clone());
            }
            match rb.send().await {
                Ok(resp) => return stream_back(resp),
                Err(e) => {
                    last = HttpError::internal(format!(
                        "forwarding request to {base}: {}",
                        crate::tls::with_causes(&e)
                    ))
                }
            }
        }
        last.into_response()
    }
}

/// The upstream answer as ours: status, headers and a body streamed as it arrives.
fn stream_back(resp: reqwest::Response) -> Response {
    let status = resp.status();
    let mut headers = HeaderMap::new();
    copy_headers(resp.headers(), &mut headers);
    let mut out = Body::from_stream(resp.bytes_stream()).into_response();
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    // The upstream already compressed what it wanted to; never buffer a stream here.
    no_compression(out)
}

/// Middleware on the client routes: answers locally when this agent runs the allocation,
/// otherwise proxies to the agent that does.
pub async fn route_to_owner(State(fwd): State<Forwarder>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let forwarded = req.headers().contains_key(FORWARDED_HEADER);
    let target = if let Some(id) = alloc_id_of(&path) {
        if forwarded {
            None
        } else {
            let token = token_of(req.headers());
            match fwd.target_for_alloc(id, token.as_deref()).await {
                Ok(t) => t,
                Err(e) => return e.into_response(),
            }
        }
    } else if (path == "/v1/client/stats" || path == "/v1/client/gc") && !forwarded {
        match node_id_param(req.uri().query()) {
            Some(node) => match fwd
                .target_for_node(&node, token_of(req.headers()).as_deref())
                .await
            {
                Ok(t) => t,
                Err(e) => return e.into_response(),
            },
            None => None,
        }
    } else {
        None
    };
    match target {
        Some(t) if path.ends_with("/exec") => {
            let token = token_of(req.headers());
            let scheme = if fwd.agent_tls.is_some() { "wss" } else { "ws" };
            super::forward_ws::forward_websocket(&t, req, token, scheme, fwd.agent_tls.as_ref())
                .await
        }
        Some(t) => fwd.proxy(&fwd.agent_base(&t.http_addr), req).await,
        None if fwd.client.is_none() => match alloc_id_of(&path) {
            // A server-only agent has no client routes; answer as Nomad does.
            Some(id) => unknown_alloc(id).into_response(),
            None => next.run(req).await,
        },
        None => next.run(req).await,
    }
}

/// The request's ACL token (`X-Nomad-Token`, else `Authorization: Bearer`).
fn token_of(headers: &HeaderMap) -> Option<String> {
    if let Some(t) = headers.get("X-Nomad-Token").and_then(|v| v.to_str().ok()) {
        return Some(t.to_string());
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
}

fn node_id_param(query: Option<&str>) -> Option<String> {
    let params = crate::http::QueryParams::parse(query).ok()?;
    params.non_empty("node_id").map(str::to_string)
}

/// Fallback of a client-only agent: the public API lives on the servers.
pub async fn proxy_unknown(State(fwd): State<Forwarder>, req: Request) -> Response {
    let path = req.uri().path();
    if !path.starts_with("/v1/") || req.headers().contains_key(FORWARDED_HEADER) {
        return HttpError::not_found(crate::http::error::PAGE_NOT_FOUND).into_response();
    }
    fwd.proxy_to_server(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_paths() {
        assert_eq!(alloc_id_of("/v1/client/allocation/abc/signal"), Some("abc"));
        // exec is forwarded too (as a WebSocket).
        assert_eq!(alloc_id_of("/v1/client/allocation/abc/exec"), Some("abc"));
        assert_eq!(alloc_id_of("/v1/allocation/abc/checks"), Some("abc"));
        assert_eq!(alloc_id_of("/v1/allocation/abc/services"), None);
        assert_eq!(alloc_id_of("/v1/client/fs/logs/abc"), Some("abc"));
        assert_eq!(alloc_id_of("/v1/client/stats"), None);
        assert_eq!(alloc_id_of("/v1/jobs"), None);
    }
}
