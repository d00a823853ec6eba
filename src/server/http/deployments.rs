//! `/v1/deployments`, `/v1/deployment/:id`, `/v1/deployment/allocations/:id`, the deployment
//! writes (`fail`, `pause`, `promote`, `allocation-health`, `unblock`), and the job's
//! `/v1/job/:id/deployments` and `/v1/job/:id/deployment`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{App, read};
use crate::acl::NsCap;
use crate::http::{
    Caller, HttpError, JsonReply, QueryOptions, QueryParams, WriteOptions, decode_json,
};
use crate::server::state::{Table, Tables};
use crate::structs::{AllocListStub, DeploymentUpdateResponse};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/deployments", get(list))
        .route("/v1/deployment/{id}", get(read_one))
        .route("/v1/deployment/allocations/{id}", get(allocations))
        .route("/v1/deployment/fail/{id}", post(fail).put(fail))
        .route("/v1/deployment/pause/{id}", post(pause).put(pause))
        .route("/v1/deployment/promote/{id}", post(promote).put(promote))
        .route(
            "/v1/deployment/allocation-health/{id}",
            post(alloc_health).put(alloc_health),
        )
        .route("/v1/deployment/unblock/{id}", post(unblock).put(unblock))
}

async fn list(
    State(app): State<App>,
    Caller(acl): Caller,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let items = |snap: &Tables| {
        snap.deployments_with_prefix(&opts.namespace, &opts.prefix)
            .iter()
            .filter(|d| acl.allow_ns_op(&d.namespace, NsCap::READ_JOB))
            .map(|d| d.as_ref().clone())
            .collect()
    };
    read::paged(&app, &opts, &[Table::Deployments], items, |d| d.id.clone()).await
}

async fn read_one(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    read::object(
        &app,
        &opts,
        &[Table::Deployments],
        "deployment not found",
        |snap| {
            snap.deployment(&id)
                .map(|d| (d.modify_index, d.as_ref().clone()))
        },
    )
    .await
}

async fn allocations(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    read::reply(&app, &opts, &[Table::Allocs, Table::Deployments], |snap| {
        let stubs: Vec<AllocListStub> = snap
            .deployment(&id)
            .map(|d| {
                snap.allocs_by_deployment(&d)
                    .iter()
                    .map(|a| AllocListStub::new(a, true, false))
                    .collect()
            })
            .unwrap_or_default();
        Ok(stubs)
    })
    .await
}

/// `GET /v1/job/:id/deployments[?all]`: newest first; without `all` only those of the job
/// as registered now (not of an earlier job with the same ID).
pub(super) async fn job_deployments(
    app: App,
    opts: QueryOptions,
    params: QueryParams,
    id: &str,
) -> Result<Response, HttpError> {
    let all = params.flag("all")?.unwrap_or(false);
    read::reply(&app, &opts, &[Table::Deployments], |snap| {
        let job = snap.job(&opts.namespace, id);
        Ok(snap
            .deployments_by_job(&opts.namespace, id)
            .iter()
            .filter(|d| {
                all || job
                    .as_ref()
                    .is_none_or(|j| d.job_create_index == j.create_index)
            })
            .map(|d| d.as_ref().clone())
            .collect::<Vec<_>>())
    })
    .await
}

/// `GET /v1/job/:id/deployment`: the latest deployment, or `null`.
pub(super) async fn latest_deployment(
    app: App,
    opts: QueryOptions,
    id: &str,
) -> Result<Response, HttpError> {
    read::reply(&app, &opts, &[Table::Deployments], |snap| {
        Ok(snap
            .latest_deployment(&opts.namespace, id)
            .map(|d| d.as_ref().clone()))
    })
    .await
}

/// The `DeploymentID` a write body may carry must be the one in the path.
fn check_id(body_id: &str, id: &str) -> Result<(), HttpError> {
    if !body_id.is_empty() && body_id != id {
        return Err(HttpError::bad_request("Deployment ID does not match"));
    }
    Ok(())
}

fn reply(opts: &WriteOptions, resp: DeploymentUpdateResponse) -> Response {
    JsonReply::write(opts, resp.index, resp).into_response()
}

async fn fail(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: WriteOptions,
) -> Result<Response, HttpError> {
    Ok(reply(&opts, app.server.fail_deployment(&id).await?))
}

async fn unblock(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: WriteOptions,
) -> Result<Response, HttpError> {
    Ok(reply(&opts, app.server.unblock_deployment(&id).await?))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct PauseRequest {
    #[serde(rename = "DeploymentID")]
    deployment_id: Option<String>,
    pause: Option<bool>,
}

async fn pause(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: WriteOptions,
    body: Bytes,
) -> Result<Response, HttpError> {
    let req: PauseRequest = decode_json(&body)?;
    check_id(req.deployment_id.as_deref().unwrap_or_default(), &id)?;
    let resp = app
        .server
        .pause_deployment(&id, req.pause.unwrap_or(false))
        .await?;
    Ok(reply(&opts, resp))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct PromoteRequest {
    #[serde(rename = "DeploymentID")]
    deployment_id: Option<String>,
    all: Option<bool>,
    groups: Option<Vec<String>>,
}

async fn promote(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: WriteOptions,
    body: Bytes,
) -> Result<Response, HttpError> {
    let req: PromoteRequest = decode_json(&body)?;
    check_id(req.deployment_id.as_deref().unwrap_or_default(), &id)?;
    let groups = req.groups.unwrap_or_default();
    let all = req.all.unwrap_or(false);
    if !all && groups.is_empty() {
        return Err(HttpError::bad_request(
            "Must specify either All or Groups to promote",
        ));
    }
    let resp = app.server.promote_deployment(&id, all, &groups).await?;
    Ok(reply(&opts, resp))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct AllocHealthRequest {
    #[serde(rename = "DeploymentID")]
    deployment_id: Option<String>,
    #[serde(rename = "HealthyAllocationIDs")]
    healthy_allocation_ids: Option<Vec<String>>,
    #[serde(rename = "UnhealthyAllocationIDs")]
    unhealthy_allocation_ids: Option<Vec<String>>,
}

async fn alloc_health(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: WriteOptions,
    body: Bytes,
) -> Result<Response, HttpError> {
    let req: AllocHealthRequest = decode_json(&body)?;
    check_id(req.deployment_id.as_deref().unwrap_or_default(), &id)?;
    let resp = app
        .server
        .set_deployment_alloc_health(
            &id,
            &req.healthy_allocation_ids.unwrap_or_default(),
            &req.unhealthy_allocation_ids.unwrap_or_default(),
        )
        .await?;
    Ok(reply(&opts, resp))
}
