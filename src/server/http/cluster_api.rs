//! The Cluster API (seed 001), served beside `/v1` when `cluster_api { enabled = true }`:
//! paths without `/v1`, camelCase JSON, and the `waitIndex` header for long polls. Every
//! call acts on the templates of `?namespace` (default `default`), which is also what the
//! ACL layer checks the caller against.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::http::{
    HttpError, JsonReply, QueryOptions, QueryParams, WriteOptions, blocking_query, decode_json,
};
use crate::server::ServerError;
use crate::server::cluster_api::{ClusterApi, JobView, Template, job_view};
use crate::server::ops::cluster_api::CountChange;

/// The request and response header of `GET /jobs` long polls.
pub const WAIT_INDEX: &str = "waitIndex";

pub fn routes(api: Arc<ClusterApi>) -> Router {
    Router::new()
        .route("/jobs", get(list))
        .route("/job/{name}/summary", get(summary))
        .route("/jobs/start/{name}", post(start))
        .route("/jobs/stop/{name}", post(stop))
        .route("/jobs/startall", post(start_all))
        .route("/jobs/stopall", post(stop_all))
        .route("/jobs/updatecounts", post(update_counts))
        .route("/jobs/settaskgroupcount", post(set_count))
        .with_state(api)
}

/// `GET /jobs`: every template of the namespace; with `waitIndex`, once the answer differs
/// from the one that index names (or `?wait`, default 5 minutes, runs out).
async fn list(
    State(api): State<Arc<ClusterApi>>,
    headers: HeaderMap,
    mut opts: QueryOptions,
) -> Result<Response, HttpError> {
    opts.index = wait_index(&headers)?;
    let watch = [api.subscribe()];
    let (index, views) = blocking_query(&watch, &opts, || {
        std::future::ready(Ok::<_, HttpError>(api.refresh(&opts.namespace)))
    })
    .await?;
    let mut resp = JsonReply::new(views).pretty(opts.pretty).into_response();
    resp.headers_mut()
        .insert(WAIT_INDEX, HeaderValue::from(index.max(1)));
    Ok(resp)
}

/// The `waitIndex` request header; absent or empty is 0 (answer at once).
fn wait_index(headers: &HeaderMap) -> Result<u64, HttpError> {
    let Some(raw) = headers.get(WAIT_INDEX) else {
        return Ok(0);
    };
    let text = raw.to_str().unwrap_or("?").trim();
    if text.is_empty() {
        return Ok(0);
    }
    text.parse().map_err(|_| {
        HttpError::bad_request(format!(
            "waitIndex: expected an unsigned integer, got {text:?}"
        ))
    })
}

/// `GET /job/{jobName}/summary`.
async fn summary(
    State(api): State<Arc<ClusterApi>>,
    Path(name): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let t = template(&api, &opts.namespace, &name)?;
    Ok(view_reply(&api, &t, opts.pretty))
}

/// `POST /jobs/start/{jobName}?force=`.
async fn start(
    State(api): State<Arc<ClusterApi>>,
    Path(name): Path<String>,
    params: QueryParams,
    opts: WriteOptions,
) -> Result<Response, HttpError> {
    let force = params.flag("force")?.unwrap_or(false);
    let t = template(&api, &opts.namespace, &name)?;
    api.server().start_template(&t, force).await?;
    Ok(view_reply(&api, &t, opts.pretty))
}

/// `POST /jobs/stop/{jobName}?purge=`.
async fn stop(
    State(api): State<Arc<ClusterApi>>,
    Path(name): Path<String>,
    params: QueryParams,
    opts: WriteOptions,
) -> Result<Response, HttpError> {
    let purge = params.flag("purge")?.unwrap_or(false);
    let t = template(&api, &opts.namespace, &name)?;
    api.server().stop_template(&t, purge).await?;
    Ok(view_reply(&api, &t, opts.pretty))
}

/// What `startall` and `stopall` answer: the templates acted on, and those that failed.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchReply {
    jobs: Vec<String>,
    failures: Vec<Failure>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Failure {
    name: String,
    error: String,
}

impl BatchReply {
    /// Records one template's outcome; the worst failure's status is the reply's.
    fn record(&mut self, name: &str, res: Result<(), ServerError>, status: &mut StatusCode) {
        match res {
            Ok(()) => self.jobs.push(name.to_string()),
            Err(e) => {
                let e = HttpError::from(e);
                if e.status().as_u16() > status.as_u16() || status.is_success() {
                    *status = e.status();
                }
                self.failures.push(Failure {
                    name: name.to_string(),
                    error: e.to_string(),
                });
            }
        }
    }

    fn into_response(self, status: StatusCode, pretty: bool) -> Response {
        let mut resp = JsonReply::new(self).pretty(pretty).into_response();
        *resp.status_mut() = status;
        resp
    }
}

/// `POST /jobs/startall?force=`: every autostart template; one failing does not keep the
/// others from starting.
async fn start_all(
    State(api): State<Arc<ClusterApi>>,
    params: QueryParams,
    opts: WriteOptions,
) -> Result<Response, HttpError> {
    let force = params.flag("force")?.unwrap_or(false);
    let mut reply = BatchReply::default();
    let mut status = StatusCode::OK;
    for t in api.templates_in(&opts.namespace) {
        if !t.autostart {
            continue;
        }
        let res = api.server().start_template(&t, force).await.map(|_| ());
        reply.record(&t.name, res, &mut status);
    }
    Ok(reply.into_response(status, opts.pretty))
}

/// `POST /jobs/stopall?purge=`: every template whose job is registered.
async fn stop_all(
    State(api): State<Arc<ClusterApi>>,
    params: QueryParams,
    opts: WriteOptions,
) -> Result<Response, HttpError> {
    let purge = params.flag("purge")?.unwrap_or(false);
    let mut reply = BatchReply::default();
    let mut status = StatusCode::OK;
    for t in api.templates_in(&opts.namespace) {
        match api.server().stop_template(&t, purge).await {
            Ok(None) => {}
            Ok(Some(_)) => reply.record(&t.name, Ok(()), &mut status),
            Err(e) => reply.record(&t.name, Err(e), &mut status),
        }
    }
    Ok(reply.into_response(status, opts.pretty))
}

/// The body of `updatecounts` and `settaskgroupcount`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CountRequest {
    #[serde(rename = "jobID")]
    job_id: String,
    task_group: String,
    count: i64,
}

/// `POST /jobs/updatecounts`: adds `count` to the group's count (never below 0; 0 sets 0).
async fn update_counts(
    State(api): State<Arc<ClusterApi>>,
    opts: WriteOptions,
    body: Bytes,
) -> Result<Response, HttpError> {
    let req: CountRequest = decode_json(&body)?;
    change_count(
        &api,
        &opts,
        req.job_id,
        req.task_group,
        CountChange::Add(req.count),
    )
    .await
}

/// `POST /jobs/settaskgroupcount`: sets the group's count.
async fn set_count(
    State(api): State<Arc<ClusterApi>>,
    opts: WriteOptions,
    body: Bytes,
) -> Result<Response, HttpError> {
    let req: CountRequest = decode_json(&body)?;
    if req.count < 0 {
        return Err(HttpError::bad_request(format!(
            "count: must not be negative, got {}",
            req.count
        )));
    }
    change_count(
        &api,
        &opts,
        req.job_id,
        req.task_group,
        CountChange::Set(req.count),
    )
    .await
}

async fn change_count(
    api: &ClusterApi,
    opts: &WriteOptions,
    job_id: String,
    group: String,
    change: CountChange,
) -> Result<Response, HttpError> {
    if job_id.is_empty() {
        return Err(HttpError::bad_request("jobID: must not be empty"));
    }
    if group.is_empty() {
        return Err(HttpError::bad_request("taskGroup: must not be empty"));
    }
    let t = template(api, &opts.namespace, &job_id)?;
    api.server()
        .change_group_count(&t.namespace, &t.name, &group, change)
        .await?;
    Ok(view_reply(api, &t, opts.pretty))
}

/// The template `name` of `namespace`, or a 404.
fn template(api: &ClusterApi, namespace: &str, name: &str) -> Result<Arc<Template>, HttpError> {
    api.template(namespace, name)
        .ok_or_else(|| HttpError::not_found(format!("job template {name:?} not found")))
}

/// The template's view now.
fn view_reply(api: &ClusterApi, t: &Template, pretty: bool) -> Response {
    let view: JobView = job_view(&api.server().state.snapshot(), t);
    JsonReply::new(view).pretty(pretty).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_index_header_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(wait_index(&h).unwrap(), 0);
        h.insert(WAIT_INDEX, HeaderValue::from_static("42"));
        assert_eq!(wait_index(&h).unwrap(), 42);
        h.insert(WAIT_INDEX, HeaderValue::from_static("-1"));
        let e = wait_index(&h).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().starts_with("waitIndex"), "{e}");
    }

    #[test]
    fn count_requests_name_the_bad_field() {
        let bad = |body: &str| decode_json::<CountRequest>(body.as_bytes()).unwrap_err();
        let e = bad(r#"{"jobID": "a", "taskGroup": "g", "count": "two"}"#);
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains("count"), "{e}");
        let e = bad(r#"{"jobID": 5, "taskGroup": "g", "count": 1}"#);
        assert!(e.to_string().contains("jobID"), "{e}");
        let e = bad(r#"{"jobID": "a", "count": 1}"#);
        assert!(e.to_string().contains("taskGroup"), "{e}");
        let e = bad(r#"{"jobID": "a", "taskGroup": "g", "count": 1.5}"#);
        assert!(e.to_string().contains("count"), "{e}");
        assert_eq!(bad("{").status(), StatusCode::BAD_REQUEST);
        let ok: CountRequest =
            decode_json(br#"{"jobID": "a", "taskGroup": "g", "count": -2, "extra": true}"#)
                .unwrap();
        assert_eq!(ok.count, -2);
    }
}
