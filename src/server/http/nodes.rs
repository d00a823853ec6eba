//! `/v1/nodes` and `/v1/node/:id[/allocations]`.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;

use super::{App, read};
use crate::acl::NsCap;
use crate::http::{Caller, HttpError, QueryOptions, QueryParams};
use crate::server::state::{Table, Tables};
use crate::structs::{Node, NodeListStub};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/node/{id}", get(read_node))
        .route("/v1/node/{id}/allocations", get(node_allocs))
}

/// A node as the API shows it: never with its secret.
fn sanitized(n: &Node) -> Node {
    Node {
        secret_id: String::new(),
        ..n.clone()
    }
}

async fn list_nodes(
    State(app): State<App>,
    opts: QueryOptions,
    params: QueryParams,
) -> Result<Response, HttpError> {
    let resources = params.flag("resources")?.unwrap_or(false);
    let os = params.flag("os")?.unwrap_or(false);
    let stubs = |snap: &Tables| {
        snap.nodes_with_prefix(&opts.prefix)
            .iter()
            .map(|n| NodeListStub::new(n, resources, os))
            .collect()
    };
    read::paged(&app, &opts, &[Table::Nodes], stubs, |s| s.id.clone()).await
}

async fn read_node(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    read::object(&app, &opts, &[Table::Nodes], "node not found", |snap| {
        snap.node(&id).map(|n| (n.modify_index, sanitized(&n)))
    })
    .await
}

async fn node_allocs(
    State(app): State<App>,
    Caller(acl): Caller,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    read::reply(&app, &opts, &[Table::Allocs], |snap| {
        if snap.node(&id).is_none() {
            return Err(HttpError::not_found("node not found"));
        }
        let mut allocs: Vec<_> = snap
            .allocs_by_node(&id)
            .iter()
            .filter(|a| acl.allow_ns_op(&a.namespace, NsCap::READ_JOB))
            .map(|a| a.as_ref().clone())
            .collect();
        allocs.sort_by(|a, b| a.create_index.cmp(&b.create_index).then(a.id.cmp(&b.id)));
        Ok(allocs)
    })
    .await
}
