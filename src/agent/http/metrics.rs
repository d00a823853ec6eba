//! `GET /v1/metrics`: the agent's metrics as Nomad's JSON summary, or with
//! `?format=prometheus` in the Prometheus text format — refused with 415 unless
//! `telemetry { prometheus_metrics = true }`, as Nomad refuses it.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::http::{HttpError, JsonReply, QueryOptions, QueryParams};
use crate::telemetry::{ProcessStats, Registry};

/// Content type of the text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the endpoint serves.
#[derive(Clone)]
pub struct MetricsState {
    pub registry: Registry,
    /// `telemetry.prometheus_metrics`.
    pub prometheus: bool,
}

pub fn routes(state: MetricsState) -> Router {
    Router::new()
        .route("/v1/metrics", get(metrics))
        .with_state(state)
}

async fn metrics(
    State(state): State<MetricsState>,
    params: QueryParams,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    if params.get("format") == Some("prometheus") {
        if !state.prometheus {
            return Err(HttpError::Status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Prometheus is not enabled".into(),
            ));
        }
        let text = tokio::task::spawn_blocking(move || {
            state.registry.prometheus(ProcessStats::read().exposition())
        })
        .await
        .map_err(|e| HttpError::internal(format!("rendering metrics: {e}")))?;
        return Ok(([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response());
    }
    Ok(JsonReply::new(state.registry.display())
        .pretty(opts.pretty)
        .into_response())
}

/// A route pattern as a label value: `/v1/job/{id}` → `/v1/job/:id`, `{*rest}` → `*rest`.
/// Braces inside label values trip simple exposition parsers.
fn route_label(pattern: &str) -> String {
    pattern
        .split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(wild) if wild.starts_with('*') => wild.to_string(),
                Some(name) => format!(":{name}"),
                None => seg.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// Times every routed API request into `nomad.agent.http.request` (milliseconds), labelled
/// with the method and the route's pattern — never the raw path, whose IDs would make a
/// series per job and allocation. Nomad has no per-request timing; the name sits beside its
/// `nomad.agent.http.*` metrics.
pub async fn time_request(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| route_label(p.as_str()));
    let method = req.method().as_str().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    if let Some(route) = route {
        metrics::histogram!("nomad.agent.http.request", "method" => method, "path" => route)
            .record(start.elapsed().as_secs_f64() * 1000.0);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn route_patterns_become_plain_labels() {
        assert_eq!(
            route_label("/v1/job/{id}/allocations"),
            "/v1/job/:id/allocations"
        );
        assert_eq!(route_label("/v1/var/{*path}"), "/v1/var/*path");
        assert_eq!(route_label("/v1/metrics"), "/v1/metrics");
    }
}
