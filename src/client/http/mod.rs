//! The client agent's HTTP endpoints (`/v1/client/...`): allocation lifecycle (signal,
//! restart, exec), resource usage, and the allocation filesystem and logs, for the
//! allocations this agent runs. The agent (`crate::agent::http`) forwards requests for other
//! agents' allocations before they reach these handlers.

mod alloc_lookup;
mod checks;
mod fs;
mod fs_path;
mod gc;
pub(crate) mod host_stats;
mod lifecycle;
mod logs;
mod stats;
mod stream;

pub mod exec;
pub mod exec_frames;

use axum::Router;
use axum::routing::{any, get};

use super::Client;

pub use alloc_lookup::unknown_alloc;

/// What every client handler can reach.
#[derive(Clone)]
pub struct ClientApp {
    /// The client agent.
    pub client: Client,
}

/// The client endpoints this agent serves for its own allocations (layers added by the caller).
pub fn client_routes(client: Client) -> Router {
    Router::new()
        .route("/v1/client/allocation/{id}/signal", any(lifecycle::signal))
        .route(
            "/v1/client/allocation/{id}/restart",
            any(lifecycle::restart),
        )
        .route("/v1/client/allocation/{id}/stats", get(stats::alloc_stats))
        .route(
            "/v1/client/allocation/{id}/checks",
            get(checks::alloc_checks),
        )
        // Nomad's server API answers this from the client running the allocation; the
        // agent's forwarding layer routes it there like the client paths.
        .route("/v1/allocation/{id}/checks", get(checks::alloc_checks))
        .route("/v1/client/stats", get(stats::host_stats))
        .route("/v1/client/gc", get(gc::gc_all).put(gc::gc_all))
        .route(
            "/v1/client/allocation/{id}/gc",
            get(gc::gc_alloc).put(gc::gc_alloc),
        )
        .route("/v1/client/fs/ls/{id}", get(fs::ls))
        .route("/v1/client/fs/stat/{id}", get(fs::stat))
        .route("/v1/client/fs/cat/{id}", get(fs::cat))
        .route("/v1/client/fs/readat/{id}", get(fs::readat))
        .route("/v1/client/fs/stream/{id}", get(stream::stream))
        .route("/v1/client/fs/logs/{id}", get(logs::logs))
        .with_state(ClientApp { client })
}
