//! The agent's HTTP surface: the router assembly for the API and RPC listeners, forwarding
//! of per-allocation client requests to the agent that runs the allocation, and the
//! agent-wide endpoints (`/v1/agent/*`, `/v1/status/*`, `/v1/regions`). This is the one place
//! that puts server and client routes side by side.

mod acl;
mod agent_endpoints;
mod forward;
mod forward_ws;
mod host;
mod metrics;
mod servers;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::any;

pub use acl::AgentAcl;
pub use agent_endpoints::AgentInfo;
pub use forward::{Directory, Forwarder, ForwarderError};
pub use metrics::MetricsState;
pub use servers::ClientServers;

use crate::client::Client;
use crate::client::http::client_routes;
use crate::client::http::exec::exec_routes;
use crate::http::acl::enforce;
use crate::http::error::PAGE_NOT_FOUND;
use crate::http::{AclBackend, HttpError, apply_layers};
use crate::server::Server;
use crate::server::cluster_api::ClusterApi;
use crate::server::http::{App, cluster_api_router, router as server_router, rpc_router};

/// The public API of this agent, with the shared layers applied: the agent-wide endpoints,
/// the server's routes when it runs one (with the Cluster API when it is enabled), and the
/// client routes (served here or forwarded). A client-only agent proxies every other `/v1/`
/// path to a server.
pub fn api_router(
    info: Arc<AgentInfo>,
    metrics: MetricsState,
    server: Option<&Arc<Server>>,
    cluster_api: Option<&Arc<ClusterApi>>,
    client: Option<&Client>,
    forwarder: &Forwarder,
    acl: Arc<dyn AclBackend>,
) -> Router {
    let mut api = Router::new()
        .merge(agent_endpoints::routes(info))
        .merge(metrics::routes(metrics));
    if let Some(s) = server {
        api = api.merge(server_router(App { server: s.clone() }));
    }
    if let Some(c) = cluster_api {
        api = api.merge(cluster_api_router(c.clone()));
    }
    api = api.merge(client_api(forwarder, client));
    if server.is_none() {
        // A client-only agent still serves the whole public API: the servers answer it.
        api = api.route(
            "/v1/{*rest}",
            any(forward::proxy_unknown).with_state(forwarder.clone()),
        );
    }
    let timed = with_acl(api, acl).route_layer(middleware::from_fn(metrics::time_request));
    apply_layers(timed)
}

/// Every route behind the ACL check (`crate::http::acl`); unmatched paths stay 404s.
fn with_acl(router: Router, acl: Arc<dyn AclBackend>) -> Router {
    router.route_layer(middleware::from_fn_with_state(acl, enforce))
}

/// The server's RPC listener: the internal client calls, plus the public API so client-only
/// agents can proxy to the address they already know.
pub fn rpc_listener_router(server: &Arc<Server>, acl: Arc<dyn AclBackend>) -> Router {
    let routes = rpc_router(server.clone()).merge(server_router(App {
        server: server.clone(),
    }));
    apply_layers(with_acl(routes, acl))
}

/// The `/v1/client/...` routes: served here for this agent's allocations and forwarded to
/// the owning agent for the others (a server-only agent only forwards).
fn client_api(forwarder: &Forwarder, client: Option<&Client>) -> Router {
    let routes = match client {
        Some(c) => client_routes(c.clone()).merge(exec_routes(c.clone())),
        None => {
            // Placeholders so the forwarding layer sees these paths; it answers them all.
            let unknown = || async { HttpError::not_found(PAGE_NOT_FOUND) };
            Router::new()
                .route("/v1/client/allocation/{id}/{action}", any(unknown))
                .route("/v1/allocation/{id}/checks", any(unknown))
                .route("/v1/client/fs/{op}/{id}", any(unknown))
                .route("/v1/client/stats", any(unknown))
        }
    };
    routes.layer(middleware::from_fn_with_state(
        forwarder.clone(),
        forward::route_to_owner,
    ))
}
