//! `GET|PUT /v1/agent/servers`: the servers this agent's client talks to. A PUT replaces the
//! list the client's RPC and the agent's public-API proxy read on their next request.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::agent_endpoints::AgentInfo;
use crate::client::ServerList;
use crate::client::server_list::{AddressError, resolve_and_ping};
use crate::http::{HttpError, JsonReply, QueryOptions, QueryParams};

/// Where this agent's client finds its servers.
#[derive(Debug, Clone)]
pub enum ClientServers {
    /// The agent runs no client.
    NoClient,
    /// The client calls the server of its own agent in process; there is no list to change.
    InProcess,
    /// The client's list of remote servers.
    Remote(ServerList),
}

/// Nomad answers both methods with 501 on an agent without a client.
fn no_client() -> HttpError {
    HttpError::Status(StatusCode::NOT_IMPLEMENTED, "Invalid method".to_string())
}

pub async fn list(
    State(info): State<Arc<AgentInfo>>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let servers = match &info.client_servers {
        ClientServers::NoClient => return Err(no_client()),
        ClientServers::InProcess => vec![info.rpc_addr.clone()],
        ClientServers::Remote(list) => list.addresses(),
    };
    Ok(JsonReply::new(servers).pretty(opts.pretty).into_response())
}

/// Takes every `address` that resolves and accepts connections; like Nomad, unreachable
/// ones are left out as long as one is reachable. An address that is not `host[:port]` at
/// all is the caller's mistake and refuses the whole request.
pub async fn update(
    State(info): State<Arc<AgentInfo>>,
    params: QueryParams,
) -> Result<Response, HttpError> {
    let list = match &info.client_servers {
        ClientServers::NoClient => return Err(no_client()),
        ClientServers::InProcess => {
            return Err(HttpError::bad_request(
                "this agent's client uses the agent's own server; its servers cannot be replaced",
            ));
        }
        ClientServers::Remote(list) => list,
    };
    let wanted: Vec<&str> = params
        .0
        .iter()
        .filter(|(k, _)| k == "address")
        .map(|(_, v)| v.as_str())
        .collect();
    if wanted.is_empty() {
        return Err(HttpError::bad_request("missing server address"));
    }
    let results = futures::future::join_all(wanted.iter().map(|a| resolve_and_ping(a))).await;
    let mut reachable: Vec<String> = Vec::new();
    let mut unreachable: Vec<String> = Vec::new();
    for result in results {
        match result {
            Ok(addr) => {
                let addr = addr.to_string();
                if !reachable.contains(&addr) {
                    reachable.push(addr);
                }
            }
            Err(e @ AddressError::Invalid(..)) => {
                return Err(HttpError::bad_request(format!("address: {e}")));
            }
            Err(e @ AddressError::Unreachable(..)) => {
                tracing::debug!(error = %e, "leaving an unreachable server out of the client's list");
                unreachable.push(e.to_string());
            }
        }
    }
    if reachable.is_empty() {
        return Err(HttpError::bad_request(unreachable.join("; ")));
    }
    tracing::info!(servers = ?reachable, "replacing the client's server list");
    list.replace(reachable);
    Ok(StatusCode::OK.into_response())
}
