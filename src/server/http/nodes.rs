//! `/v1/nodes` and `/v1/node/:id[/allocations]`.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::App;
use crate::http::{HttpError, JsonReply, QueryOptions, QueryParams, blocking_query, paginate};
use crate::server::state::Table;
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
    let state = &app.server.state;
    let (index, stubs) = blocking_query(&[state.watch(Table::Nodes)], &opts, || async {
        let snap = state.snapshot();
        let stubs: Vec<NodeListStub> = snap
            .nodes_with_prefix(&opts.prefix)
            .iter()
            .map(|n| NodeListStub::new(n, resources, os))
            .collect();
        Ok::<_, HttpError>((snap.table_index(Table::Nodes), stubs))
    })
    .await?;
    let page = paginate(stubs, &opts, |s| s.id.clone());
    Ok(JsonReply::query(&opts, index, page.items)
        .next_token(page.next_token)
        .into_response())
}

async fn read_node(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let state = &app.server.state;
    let (index, node) = blocking_query(&[state.watch(Table::Nodes)], &opts, || async {
        let snap = state.snapshot();
        match snap.node(&id) {
            Some(n) => Ok((n.modify_index, Some(n))),
            None => Ok::<_, HttpError>((snap.table_index(Table::Nodes), None)),
        }
    })
    .await?;
    let node = node.ok_or_else(|| HttpError::not_found("node not found"))?;
    Ok(JsonReply::query(&opts, index, sanitized(&node)).into_response())
}

async fn node_allocs(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let state = &app.server.state;
    let (index, allocs) = blocking_query(&[state.watch(Table::Allocs)], &opts, || async {
        let snap = state.snapshot();
        if snap.node(&id).is_none() {
            return Err(HttpError::not_found("node not found"));
        }
        let mut allocs: Vec<_> = snap
            .allocs_by_node(&id)
            .iter()
            .map(|a| a.as_ref().clone())
            .collect();
        allocs.sort_by(|a, b| a.create_index.cmp(&b.create_index).then(a.id.cmp(&b.id)));
        Ok((snap.table_index(Table::Allocs), allocs))
    })
    .await?;
    Ok(JsonReply::query(&opts, index, allocs).into_response())
}
