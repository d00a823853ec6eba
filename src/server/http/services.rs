//! Native service discovery: `/v1/services`, `/v1/service/:name` (`?choose`, `?tag`),
//! `DELETE /v1/service/:name/:id`, and the registrations of one job or allocation. Every
//! read is a blocking query on the service registrations table.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};

use super::{App, read};
use crate::acl::{ALL_NAMESPACES, NsCap};
use crate::http::filter::filter_items;
use crate::http::{
    Caller, HttpError, JsonReply, QueryOptions, QueryParams, WriteOptions, paginate,
};
use crate::server::service_choose::choose;
use crate::server::state::{Table, Tables};
use crate::structs::service::{ServiceRegistration, list_stubs};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/services", get(list_services))
        .route("/v1/service/{name}", get(read_service))
        .route("/v1/service/{name}/{id}", delete(delete_service))
        .route("/v1/allocation/{id}/services", get(alloc_services))
}

/// Owned copies of registrations, for an answer.
fn owned(regs: Vec<std::sync::Arc<ServiceRegistration>>) -> Vec<ServiceRegistration> {
    regs.into_iter().map(|r| (*r).clone()).collect()
}

/// `GET /v1/services`: per namespace, each service name with the union of its tags. With
/// `?namespace=*`, only the namespaces the caller may read jobs in.
async fn list_services(
    State(app): State<App>,
    Caller(acl): Caller,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    read::reply(&app, &opts, &[Table::Services], |snap: &Tables| {
        let regs = snap.services.in_namespace(&opts.namespace);
        let visible = regs.iter().filter(|r| {
            opts.namespace != ALL_NAMESPACES || acl.allow_ns_op(&r.namespace, NsCap::READ_JOB)
        });
        let items = filter_items(&opts.filter, list_stubs(visible.map(|r| r.as_ref())))
            .map_err(|e| HttpError::bad_request(e.to_string()))?;
        Ok(items)
    })
    .await
}

/// `GET /v1/service/:name`: the instances of a service, optionally only those with
/// `?tag` (repeatable: all of them), paged, then narrowed by `?choose=<n>|<key>`.
async fn read_service(
    State(app): State<App>,
    Caller(acl): Caller,
    Path(name): Path<String>,
    opts: QueryOptions,
    params: QueryParams,
) -> Result<Response, HttpError> {
    let tags: Vec<String> = params
        .0
        .iter()
        .filter(|(k, v)| k == "tag" && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect();
    let chooser = params.non_empty("choose").map(str::to_string);
    // Refused before blocking: a malformed parameter will not get better by waiting.
    if let Some(c) = &chooser {
        choose(Vec::new(), c)
            .map_err(|e| HttpError::bad_request(format!("failed to choose services: {e}")))?;
    }
    let (index, regs) = read::value(&app, &opts, &[Table::Services], |snap| {
        let regs: Vec<ServiceRegistration> = owned(snap.services.by_name(&opts.namespace, &name))
            .into_iter()
            .filter(|r| tags.iter().all(|t| r.tags.contains(t)))
            .filter(|r| {
                opts.namespace != ALL_NAMESPACES || acl.allow_ns_op(&r.namespace, NsCap::READ_JOB)
            })
            .collect();
        filter_items(&opts.filter, regs).map_err(|e| HttpError::bad_request(e.to_string()))
    })
    .await?;
    let page = paginate(regs, &opts, |r| r.id.clone());
    let items = match &chooser {
        Some(c) => choose(page.items, c)
            .map_err(|e| HttpError::bad_request(format!("failed to choose services: {e}")))?,
        None => page.items,
    };
    Ok(JsonReply::query(&opts, index, items)
        .next_token(page.next_token)
        .into_response())
}

/// `DELETE /v1/service/:name/:id`: removes one registration. Its client does not put it back
/// until the registration changes (its task restarts) or the agent restarts.
async fn delete_service(
    State(app): State<App>,
    Path((_name, id)): Path<(String, String)>,
    opts: WriteOptions,
) -> Result<Response, HttpError> {
    let index = app.server.delete_service(&opts.namespace, &id).await?;
    Ok(JsonReply::write(&opts, index, serde_json::Value::Null).into_response())
}

/// `GET /v1/allocation/:id/services`.
async fn alloc_services(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let (index, found) = read::value(&app, &opts, &[Table::Services, Table::Allocs], |snap| {
        Ok(snap.alloc(&id).map(|_| owned(snap.services.by_alloc(&id))))
    })
    .await?;
    let regs = found.ok_or_else(|| HttpError::not_found("alloc not found"))?;
    Ok(JsonReply::query(&opts, index, regs).into_response())
}

/// `GET /v1/job/:id/services`.
pub(super) async fn job_services(
    app: App,
    opts: QueryOptions,
    id: &str,
) -> Result<Response, HttpError> {
    let (index, found) = read::value(&app, &opts, &[Table::Services, Table::Jobs], |snap| {
        Ok(snap
            .job(&opts.namespace, id)
            .map(|_| owned(snap.services.by_job(&opts.namespace, id))))
    })
    .await?;
    let regs = found.ok_or_else(|| HttpError::not_found("job not found"))?;
    Ok(JsonReply::query(&opts, index, regs).into_response())
}
