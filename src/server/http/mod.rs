//! The server's HTTP API (seed documents 000–004): one file per area. Every handler takes the
//! shared conventions from `crate::http` (query options, blocking, errors, JSON replies).

mod acl;
mod allocations;
mod cluster_api;
mod deployments;
mod evaluations;
mod events;
mod job_dispatch;
mod job_parse;
mod job_scale;
mod job_statuses;
mod job_submission;
mod job_versions;
mod jobs;
mod keyring;
mod namespaces;
mod node_admin;
mod nodes;
mod operator;
mod read;
mod rpc;
mod scaling;
mod search;
mod services;
mod summary;
mod system;
mod variables;

use std::sync::Arc;

use axum::Router;

pub use cluster_api::{WAIT_INDEX, routes as cluster_api_router};
pub use job_dispatch::JobDispatchRequest;
pub use job_versions::{JobPlanRequest, JobRevertRequest, JobStabilityRequest, JobTagRequest};
pub use rpc::rpc_router;
pub use summary::job_summary;

use super::{Server, ServerError};
use crate::http::HttpError;

/// What every server handler can reach.
#[derive(Clone)]
pub struct App {
    /// The server.
    pub server: Arc<Server>,
}

impl From<ServerError> for HttpError {
    fn from(e: ServerError) -> Self {
        match e {
            ServerError::BadRequest(m) => HttpError::bad_request(m),
            ServerError::NotFound(m) => HttpError::not_found(m),
            ServerError::Forbidden(m) => HttpError::Forbidden(m),
            ServerError::State(s) => state_error(s),
            ServerError::Refused(m) => HttpError::internal(m),
            ServerError::Conflict(m) => HttpError::Status(axum::http::StatusCode::CONFLICT, m),
            ServerError::Keyring(k) => HttpError::internal(k.to_string()),
        }
    }
}

/// A failed state write at the edge. A store that ran out of space (or quota) is a 503: the
/// write was not applied, nothing acknowledged is touched, and the same write succeeds once
/// space returns, so a client should retry rather than treat the server as broken. Any
/// other storage fault stays a 500. Both name the cause.
fn state_error(e: crate::server::state::StateError) -> HttpError {
    let msg = e.to_string();
    if crate::server::state::StateError::is_out_of_space_msg(&msg) {
        HttpError::Status(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("{msg} (disk full: the write was not applied; retry once space is freed)"),
        )
    } else {
        HttpError::internal(msg)
    }
}

/// The public API routes a server agent serves (layers are added by the caller).
pub fn router(app: App) -> Router {
    Router::new()
        .merge(jobs::routes())
        .merge(job_parse::routes())
        .merge(job_statuses::routes())
        .merge(allocations::routes())
        .merge(nodes::routes())
        .merge(node_admin::routes())
        .merge(system::routes())
        .merge(evaluations::routes())
        .merge(deployments::routes())
        .merge(namespaces::routes())
        .merge(acl::routes())
        .merge(scaling::routes())
        .merge(operator::routes())
        .merge(events::routes())
        .merge(services::routes())
        .merge(search::routes())
        .merge(variables::routes())
        .merge(keyring::routes())
        .with_state(app)
}
