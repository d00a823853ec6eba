//! `/v1/agent/self`, `/v1/agent/members`, `/v1/agent/health`, `/v1/agent/servers`,
//! `/v1/status/*`, `/v1/regions`.
//! Served by every agent; the server parts only when this agent runs a server.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};

use crate::http::{HttpError, JsonReply, QueryOptions};
use crate::rpc::ServerLookup;

/// Facts about this agent.
pub struct AgentInfo {
    /// Node / member name.
    pub name: String,
    pub region: String,
    pub datacenter: String,
    /// `ip:port` of the HTTP API.
    pub http_addr: String,
    /// `ip:port` of the RPC listener.
    pub rpc_addr: String,
    /// The server, when this agent runs one.
    pub server: Option<Arc<dyn ServerLookup>>,
    /// The server's scheduler workers, when this agent runs a server.
    pub workers: Option<Arc<crate::server::Server>>,
    /// ACLs are enforced (then `agent:read` opens the debugging endpoints).
    pub acl_enabled: bool,
    /// `enable_debug`: without ACLs, the debugging endpoints are open.
    pub enable_debug: bool,
    /// Whether this agent runs a client.
    pub client_enabled: bool,
    /// Where the client finds its servers (`/v1/agent/servers`).
    pub client_servers: super::servers::ClientServers,
    /// The configuration in force, as `/v1/agent/self` shows it (a reload changes it).
    pub config: RwLock<Value>,
}

impl AgentInfo {
    /// Replaces the configuration `/v1/agent/self` shows.
    pub fn set_config(&self, config: Value) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = config;
    }

    fn config(&self) -> Value {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The routes (they carry their own state so client-only agents can serve them too).
pub fn routes(info: Arc<AgentInfo>) -> Router {
    Router::new()
        .route("/v1/agent/self", get(agent_self))
        .route("/v1/agent/members", get(members))
        .route("/v1/agent/health", get(health))
        .route("/v1/agent/schedulers", get(schedulers))
        .route("/v1/agent/host", get(super::host::host))
        .route(
            "/v1/agent/servers",
            get(super::servers::list)
                .put(super::servers::update)
                .post(super::servers::update),
        )
        .route("/v1/status/leader", get(leader))
        .route("/v1/status/peers", get(peers))
        .route("/v1/operator/raft/configuration", get(raft_configuration))
        .route("/v1/regions", get(regions))
        .with_state(info)
}

/// A Serf-style member entry.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Member {
    name: String,
    addr: String,
    port: u16,
    tags: BTreeMap<String, String>,
    status: String,
    protocol_min: u8,
    protocol_max: u8,
    protocol_cur: u8,
    delegate_min: u8,
    delegate_max: u8,
    delegate_cur: u8,
}

fn member(info: &AgentInfo) -> Member {
    let (addr, port) = info
        .rpc_addr
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.parse().unwrap_or(4648)))
        .unwrap_or_else(|| (info.rpc_addr.clone(), 4648));
    let mut tags = BTreeMap::new();
    tags.insert("region".to_string(), info.region.clone());
    tags.insert("dc".to_string(), info.datacenter.clone());
    tags.insert(
        "build".to_string(),
        crate::version::NOMAD_COMPAT_VERSION.to_string(),
    );
    tags.insert("port".to_string(), port.to_string());
    tags.insert("role".to_string(), "nomad".to_string());
    tags.insert("rpc_addr".to_string(), addr.clone());
    tags.insert("bootstrap".to_string(), "1".to_string());
    // The protocol `/v1/operator/raft/configuration` reports for this server.
    tags.insert("raft_vsn".to_string(), "3".to_string());
    Member {
        name: format!("{}.{}", info.name, info.region),
        addr,
        port,
        tags,
        status: "alive".to_string(),
        protocol_min: 1,
        protocol_max: 5,
        protocol_cur: 2,
        delegate_min: 2,
        delegate_max: 5,
        delegate_cur: 4,
    }
}

async fn agent_self(
    State(info): State<Arc<AgentInfo>>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let mut stats = json!({
        "nomad": {
            "server": info.server.is_some().to_string(),
            "known_regions": "1",
            "leader": info.server.is_some().to_string(),
        },
        "runtime": {
            "arch": std::env::consts::ARCH,
            "version": format!("yurt {}", crate::version::VERSION),
            "cpu_count": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).to_string(),
        },
    });
    if let Some(server) = &info.server {
        stats["raft"] =
            json!({"applied_index": server.applied_index().to_string(), "state": "Leader"});
    }
    let body = json!({
        "config": info.config(),
        "member": if info.server.is_some() { serde_json::to_value(member(&info)).unwrap_or(Value::Null) } else { Value::Null },
        "stats": stats,
    });
    Ok(JsonReply::new(body).pretty(opts.pretty).into_response())
}

async fn members(
    State(info): State<Arc<AgentInfo>>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    if info.server.is_none() {
        return Err(HttpError::bad_request(
            "agent is not a server; members are only known to servers",
        ));
    }
    let body = json!({
        "ServerName": info.name,
        "ServerRegion": info.region,
        "ServerDC": info.datacenter,
        "Members": [member(&info)],
    });
    Ok(JsonReply::new(body).pretty(opts.pretty).into_response())
}

async fn health(State(info): State<Arc<AgentInfo>>) -> Response {
    let mut body = serde_json::Map::new();
    if info.client_enabled {
        body.insert("client".into(), json!({"ok": true, "message": "ok"}));
    }
    if info.server.is_some() {
        body.insert("server".into(), json!({"ok": true, "message": "ok"}));
    }
    (StatusCode::OK, axum::Json(Value::Object(body))).into_response()
}

async fn leader(
    State(info): State<Arc<AgentInfo>>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    if info.server.is_none() {
        return Err(HttpError::internal("No cluster leader"));
    }
    Ok(JsonReply::new(info.rpc_addr.clone())
        .pretty(opts.pretty)
        .into_response())
}

async fn peers(
    State(info): State<Arc<AgentInfo>>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let peers: Vec<String> = if info.server.is_some() {
        vec![info.rpc_addr.clone()]
    } else {
        Vec::new()
    };
    Ok(JsonReply::new(peers).pretty(opts.pretty).into_response())
}

/// `GET /v1/operator/raft/configuration` for a single server, which is the whole cluster and
/// its leader. With no Raft log of its own, the server is named by its RPC address (as Raft
/// protocol 2 named servers) and `Index` is the state's applied index.
async fn raft_configuration(
    State(info): State<Arc<AgentInfo>>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let Some(server) = &info.server else {
        return Err(HttpError::bad_request(
            "agent is not a server; the Raft configuration is only known to servers",
        ));
    };
    let body = json!({
        "Index": server.applied_index(),
        "Servers": [{
            "ID": info.rpc_addr,
            "Node": format!("{}.{}", info.name, info.region),
            "Address": info.rpc_addr,
            "Leader": true,
            "Voter": true,
            "RaftProtocol": "3",
        }],
    });
    Ok(JsonReply::new(body).pretty(opts.pretty).into_response())
}

async fn regions(
    State(info): State<Arc<AgentInfo>>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    Ok(JsonReply::new(vec![info.region.clone()])
        .pretty(opts.pretty)
        .into_response())
}

/// Go's `time.RFC3339Nano`: UTC, fractional seconds without trailing zeros.
fn rfc3339_nano(t: chrono::DateTime<chrono::Utc>) -> String {
    let full = t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    match full.strip_suffix('Z').and_then(|s| s.split_once('.')) {
        Some((secs, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                format!("{secs}Z")
            } else {
                format!("{secs}.{frac}Z")
            }
        }
        None => full,
    }
}

/// `GET /v1/agent/schedulers`: this server's scheduler workers, in the snake_case shape of
/// Nomad's `AgentSchedulerWorkersInfo`; a client-only agent has none (400, as Nomad).
async fn schedulers(
    State(info): State<Arc<AgentInfo>>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let Some(server) = &info.workers else {
        return Err(HttpError::bad_request("Server only endpoint"));
    };
    let enabled = crate::server::scheduler::SCHEDULER_TYPES;
    let workers: Vec<Value> = server
        .workers
        .snapshot()
        .iter()
        .map(|w| {
            json!({
                "id": w.id,
                "enabled_schedulers": enabled,
                "started": rfc3339_nano(w.started),
                "status": w.status(),
                "workload_status": w.workload(),
            })
        })
        .collect();
    let body = json!({
        "server_id": format!("{}.{}", info.name, info.region),
        "schedulers": workers,
    });
    Ok(JsonReply::new(body).pretty(opts.pretty).into_response())
}

#[cfg(test)]
mod tests {
    use super::rfc3339_nano;

    #[test]
    fn times_print_as_go_rfc3339_nano() {
        let t = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        assert_eq!(
            rfc3339_nano(t("2026-12-07T18:00:00.120000000Z")),
            "2026-12-07T18:00:00.12Z"
        );
        assert_eq!(
            rfc3339_nano(t("2026-12-07T18:00:00Z")),
            "2026-12-07T18:00:00Z"
        );
    }
}
