//! ACL enforcement, written once: a layer resolves the caller's token into an [`Acl`]
//! before any handler runs and checks it against the route's requirement
//! ([`super::permissions`]). Handlers that filter lists take the resolved ACL with the
//! [`Caller`] extractor. Resolving tokens and finding what namespace an object lives in are
//! the agent's to provide ([`AclBackend`]); this module knows neither server nor client.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::layers::DEFAULT_BODY_LIMIT;
use super::permissions::{Need, NsFrom, need};
use super::query::{ALL_NAMESPACES, QueryParams};
use super::{AuthContext, HttpError};
use crate::acl::{Acl, NsCap, VarOp};
use crate::structs::DEFAULT_NAMESPACE;

/// The kinds of objects whose namespace a requirement may depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Alloc,
    Eval,
    Deployment,
}

/// What the ACL layer needs from the agent.
#[async_trait]
pub trait AclBackend: Send + Sync {
    /// The caller's ACL for `secret` (None: no token); a 403 for an unknown or expired
    /// token. With ACLs off, [`Acl::management`].
    async fn resolve(&self, secret: Option<&str>) -> Result<Arc<Acl>, HttpError>;

    /// The namespace of an object this agent knows; None when it does not know it (the
    /// request then goes on to whoever answers it, which checks it there).
    fn namespace_of(&self, kind: ObjectKind, id: &str) -> Option<String>;

    /// The driver of `task` in allocation `alloc_id`, when this agent knows it.
    fn task_driver(&self, alloc_id: &str, task: &str) -> Option<String>;
}

/// The resolved ACL of the request's caller.
#[derive(Clone)]
pub struct Caller(pub Arc<Acl>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Without the layer (a router assembled without ACLs, as in unit tests) nothing is
        // enforced, exactly as with ACLs off. The layer inserts no Caller on `Need::Public`
        // routes either, so a handler that filters by its caller must be on a route whose
        // need resolves the token (`Need::Filtered` at least), never on a public one.
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(|| Caller(Arc::new(Acl::management()))))
    }
}

/// A check the layer could not make because the token arrives later, in the exec
/// WebSocket's first frame; the exec handler completes it with that token.
#[derive(Clone)]
pub struct DeferredCheck {
    backend: Arc<dyn AclBackend>,
    need: Need,
    path: String,
    query: QueryParams,
}

impl DeferredCheck {
    /// Resolves `token` and checks the deferred requirement.
    pub async fn check(&self, token: Option<&str>) -> Result<(), HttpError> {
        let acl = self.backend.resolve(token).await?;
        check(
            &*self.backend,
            &acl,
            self.need,
            &self.path,
            &self.query,
            None,
        )
    }
}

/// The layer: `axum::middleware::from_fn_with_state(backend, enforce)`.
pub async fn enforce(
    State(backend): State<Arc<dyn AclBackend>>,
    req: Request,
    next: Next,
) -> Response {
    match authorize(backend, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn authorize(backend: Arc<dyn AclBackend>, req: Request) -> Result<Request, HttpError> {
    let need = need(req.method(), req.uri().path());
    if need == Need::Public {
        return Ok(req);
    }
    let auth = AuthContext::from_headers(req.headers());
    let query = QueryParams::parse(req.uri().query())?;
    if need == Need::AllocExec && auth.token.is_none() && wants_handshake(&query) {
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path().to_string();
        parts.extensions.insert(DeferredCheck {
            backend,
            need,
            path,
            query,
        });
        return Ok(Request::from_parts(parts, body));
    }
    let acl = backend.resolve(auth.token.as_deref()).await?;
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let body = if acl.is_management() {
        body
    } else if matches!(
        need,
        Need::Namespace(NsFrom::JobBody, _) | Need::Variable(VarOp::Write)
    ) {
        let bytes = axum::body::to_bytes(body, DEFAULT_BODY_LIMIT)
            .await
            .map_err(|_| HttpError::payload_too_large())?;
        check(&*backend, &acl, need, &path, &query, Some(&bytes))?;
        Body::from(bytes)
    } else {
        if matches!(need, Need::AnyToken | Need::AclHeld)
            && auth.token.is_none()
            && !acl.is_management()
        {
            return Err(HttpError::Forbidden("ACL token not found".into()));
        }
        check(&*backend, &acl, need, &path, &query, None)?;
        body
    };
    parts.extensions.insert(Caller(acl));
    Ok(Request::from_parts(parts, body))
}

fn wants_handshake(q: &QueryParams) -> bool {
    matches!(
        q.get("ws_handshake").and_then(super::query::parse_go_bool),
        Some(true)
    )
}

/// Whether `acl` satisfies `need` for this request.
fn check(
    backend: &dyn AclBackend,
    acl: &Acl,
    need: Need,
    path: &str,
    query: &QueryParams,
    body: Option<&[u8]>,
) -> Result<(), HttpError> {
    if acl.is_management() {
        return Ok(());
    }
    let allowed = match need {
        Need::Public | Need::AnyToken | Need::Filtered | Need::AclHeld => true,
        Need::Management => false,
        Need::NodeRead => acl.allow_node_read(),
        Need::NodeWrite => acl.allow_node_write(),
        Need::AgentRead => acl.allow_agent_read(),
        Need::AgentWrite => acl.allow_agent_write(),
        Need::OperatorRead => acl.allow_operator_read(),
        Need::OperatorWrite => acl.allow_operator_write(),
        Need::NamespaceInPath => acl.allow_namespace(path_segment(path, 2)),
        Need::Variable(op) => {
            let ns = body
                .and_then(body_namespace)
                .unwrap_or_else(|| query_namespace(query));
            let var_path = path.strip_prefix("/v1/var/").unwrap_or("");
            acl.allow_variable_op(&ns, var_path, op)
        }
        Need::Namespace(from, caps) => {
            let Some(ns) = namespace(backend, from, path, query, body) else {
                // An object this agent does not know: whoever answers checks it.
                return Ok(());
            };
            caps.iter().any(|c| acl.allow_ns_op(&ns, *c))
        }
        Need::AllocExec => {
            let alloc = path_segment(path, 3);
            let Some(ns) = backend.namespace_of(ObjectKind::Alloc, alloc) else {
                return Ok(());
            };
            let task = query.get("task").unwrap_or("");
            let raw_exec = backend.task_driver(alloc, task).as_deref() == Some("raw_exec");
            acl.allow_ns_op(&ns, NsCap::ALLOC_EXEC)
                && (!raw_exec || acl.allow_ns_op(&ns, NsCap::ALLOC_NODE_EXEC))
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(HttpError::permission_denied())
    }
}

/// The `i`-th segment of `/v1/...` (0 is `v1`).
fn path_segment(path: &str, i: usize) -> &str {
    path.trim_start_matches('/').split('/').nth(i).unwrap_or("")
}

fn query_namespace(query: &QueryParams) -> String {
    query
        .non_empty("namespace")
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_string()
}

fn namespace(
    backend: &dyn AclBackend,
    from: NsFrom,
    path: &str,
    query: &QueryParams,
    body: Option<&[u8]>,
) -> Option<String> {
    match from {
        NsFrom::Query => Some(query_namespace(query)),
        NsFrom::JobBody => Some(
            body.and_then(job_namespace)
                .unwrap_or_else(|| query_namespace(query)),
        ),
        // `/v1/allocation/<id>`, `/v1/client/allocation/<id>/…`, `/v1/client/fs/<op>/<id>`.
        NsFrom::Alloc => {
            let id = match path_segment(path, 1) {
                "client" if path_segment(path, 2) == "fs" => path_segment(path, 4),
                "client" => path_segment(path, 3),
                _ => path_segment(path, 2),
            };
            backend.namespace_of(ObjectKind::Alloc, id)
        }
        NsFrom::Eval => backend.namespace_of(ObjectKind::Eval, path_segment(path, 2)),
        // `/v1/deployment/<id>`, `/v1/deployment/<op>/<id>`.
        NsFrom::Deployment => {
            let id = match path_segment(path, 3) {
                "" => path_segment(path, 2),
                id => id,
            };
            backend.namespace_of(ObjectKind::Deployment, id)
        }
    }
}

/// `Job.Namespace` of a registration body, when it names one. A body that does not parse
/// is left for the handler to refuse with its own 400.
fn job_namespace(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Outer {
        #[serde(rename = "Job")]
        job: Option<Inner>,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(rename = "Namespace")]
        namespace: Option<String>,
    }
    let outer: Outer = serde_json::from_slice(body).ok()?;
    outer
        .job?
        .namespace
        .filter(|ns| !ns.is_empty() && ns != ALL_NAMESPACES)
}

/// The top-level `Namespace` of a variable body, when it names one.
fn body_namespace(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Var {
        #[serde(rename = "Namespace")]
        namespace: Option<String>,
    }
    let var: Var = serde_json::from_slice(body).ok()?;
    var.namespace
        .filter(|ns| !ns.is_empty() && ns != ALL_NAMESPACES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::parse;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::{get, put};
    use tower::ServiceExt;

    struct Fake;

    #[async_trait]
    impl AclBackend for Fake {
        async fn resolve(&self, secret: Option<&str>) -> Result<Arc<Acl>, HttpError> {
            let rules = match secret {
                None => return Ok(Arc::new(Acl::deny_all())),
                Some("mgmt") => return Ok(Arc::new(Acl::management())),
                Some("dev-writer") => "namespace \"dev\" {\n policy = \"write\"\n}\n",
                Some("vars") => {
                    "namespace \"dev\" {\n variables {\n path \"app/*\" {\n capabilities = [\"write\", \"read\"]\n }\n }\n}\n"
                }
                Some("exec-only") => {
                    "namespace \"default\" {\n capabilities = [\"alloc-exec\"]\n}\n"
                }
                Some(_) => return Err(HttpError::Forbidden("ACL token not found".into())),
            };
            Ok(Arc::new(Acl::from_policies(&[parse(rules).unwrap()])))
        }

        fn namespace_of(&self, kind: ObjectKind, id: &str) -> Option<String> {
            (kind == ObjectKind::Alloc && id.starts_with("a-")).then(|| "default".to_string())
        }

        fn task_driver(&self, _alloc: &str, task: &str) -> Option<String> {
            Some(if task == "raw" { "raw_exec" } else { "exec" }.to_string())
        }
    }

    fn app() -> Router {
        let backend: Arc<dyn AclBackend> = Arc::new(Fake);
        Router::new()
            .route(
                "/v1/jobs",
                get(|| async { "list" }).put(|b: String| async move { b }),
            )
            .route("/v1/client/allocation/{id}/exec", get(|| async { "exec" }))
            .route("/v1/agent/health", get(|| async { "ok" }))
            .route(
                "/v1/var/{*path}",
                get(|| async { "var" }).put(|b: String| async move { b }),
            )
            .route("/v1/new/thing", put(|| async { "new" }))
            .route_layer(axum::middleware::from_fn_with_state(backend, enforce))
    }

    async fn call(
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: &str,
    ) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("X-Nomad-Token", t);
        }
        let resp = app()
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn namespace_requirements_from_query_and_body() {
        assert_eq!(
            call("GET", "/v1/jobs?namespace=dev", Some("dev-writer"), "")
                .await
                .0,
            StatusCode::OK
        );
        assert_eq!(
            call("GET", "/v1/jobs", Some("dev-writer"), "").await,
            (StatusCode::FORBIDDEN, "Permission denied".to_string())
        );
        let body = r#"{"Job":{"ID":"x","Namespace":"dev"}}"#;
        let (status, echoed) = call("PUT", "/v1/jobs", Some("dev-writer"), body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(echoed, body, "the body reaches the handler intact");
        let other = r#"{"Job":{"ID":"x","Namespace":"prod"}}"#;
        assert_eq!(
            call("PUT", "/v1/jobs?namespace=dev", Some("dev-writer"), other)
                .await
                .0,
            StatusCode::FORBIDDEN
        );
    }

    #[tokio::test]
    async fn unknown_token_no_token_public_and_unlisted_routes() {
        assert_eq!(
            call("GET", "/v1/jobs", Some("nope"), "").await,
            (StatusCode::FORBIDDEN, "ACL token not found".to_string())
        );
        assert_eq!(
            call("GET", "/v1/jobs", None, "").await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            call("GET", "/v1/agent/health", None, "").await.0,
            StatusCode::OK
        );
        assert_eq!(
            call("PUT", "/v1/new/thing", Some("dev-writer"), "").await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            call("PUT", "/v1/new/thing", Some("mgmt"), "").await.0,
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn variable_paths_in_the_body_or_query_namespace() {
        let ok = |r: (StatusCode, String)| r.0;
        assert_eq!(
            ok(call("GET", "/v1/var/app/db?namespace=dev", Some("vars"), "").await),
            StatusCode::OK
        );
        assert_eq!(
            ok(call("GET", "/v1/var/other?namespace=dev", Some("vars"), "").await),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            ok(call("GET", "/v1/var/app/db", Some("vars"), "").await),
            StatusCode::FORBIDDEN,
            "default namespace"
        );
        let body = r#"{"Namespace":"dev","Items":{"a":"b"}}"#;
        let (status, echoed) = call("PUT", "/v1/var/app/db", Some("vars"), body).await;
        assert_eq!((status, echoed.as_str()), (StatusCode::OK, body));
        let elsewhere = r#"{"Namespace":"prod","Items":{"a":"b"}}"#;
        assert_eq!(
            ok(call(
                "PUT",
                "/v1/var/app/db?namespace=dev",
                Some("vars"),
                elsewhere
            )
            .await),
            StatusCode::FORBIDDEN
        );
    }

    #[tokio::test]
    async fn raw_exec_needs_alloc_node_exec() {
        let exec = "/v1/client/allocation/a-1/exec?task=t&command=%5B%22ls%22%5D";
        let raw = "/v1/client/allocation/a-1/exec?task=raw&command=%5B%22ls%22%5D";
        assert_eq!(
            call("GET", exec, Some("exec-only"), "").await.0,
            StatusCode::OK
        );
        assert_eq!(
            call("GET", raw, Some("exec-only"), "").await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(call("GET", raw, Some("mgmt"), "").await.0, StatusCode::OK);
        // Without a header token but with the handshake, the check waits for the frame.
        let deferred = format!("{raw}&ws_handshake=true");
        assert_eq!(call("GET", &deferred, None, "").await.0, StatusCode::OK);
    }
}
