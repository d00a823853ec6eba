//! The agent's [`AclBackend`]: tokens are resolved by the in-process server when this agent
//! runs one, otherwise by asking a server over RPC and caching the answer for `token_ttl`
//! (Nomad's clients do the same); objects are found in the server's state or among this
//! client's allocations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::acl::{Acl, AclSettings};
use crate::client::Client;
use crate::http::{AclBackend, HttpError, ObjectKind};
use crate::rpc::{ResolveTokenRequest, RpcError, ServerApi};
use crate::server::Server;
use crate::structs::Allocation;

/// Most resolved tokens a client agent keeps; past it the cache starts over.
const CACHE_LIMIT: usize = 4096;

/// Secret (None: no token) → when it was resolved and what it resolved to (an ACL, or the
/// refusal's text).
type RemoteCache = HashMap<Option<String>, Cached>;

/// One resolved secret.
struct Cached {
    at: Instant,
    result: Result<Arc<Acl>, String>,
    expires: Option<chrono::DateTime<chrono::Utc>>,
}

/// The agent's ACL backend.
pub struct AgentAcl {
    settings: AclSettings,
    server: Option<Arc<Server>>,
    client: Option<Client>,
    /// How a client-only agent asks the servers.
    remote: Option<Arc<dyn ServerApi>>,
    /// Secret → (resolved at, result); only for remote resolution.
    cache: Mutex<RemoteCache>,
    /// What every caller gets with ACLs off (shared, not rebuilt per request).
    open: Arc<Acl>,
}

impl AgentAcl {
    pub fn new(
        settings: AclSettings,
        server: Option<Arc<Server>>,
        client: Option<Client>,
        remote: Option<Arc<dyn ServerApi>>,
    ) -> Self {
        AgentAcl {
            settings,
            server,
            client,
            remote,
            cache: Mutex::new(HashMap::new()),
            open: Arc::new(Acl::management()),
        }
    }

    fn ttl(&self) -> Duration {
        self.settings.token_ttl.min(self.settings.policy_ttl)
    }

    async fn resolve_remote(
        &self,
        api: &dyn ServerApi,
        secret: Option<&str>,
    ) -> Result<Arc<Acl>, HttpError> {
        let key = secret.map(str::to_string);
        if let Some(c) = self.lock().get(&key)
            && c.at.elapsed() < self.ttl()
        {
            if c.expires.is_some_and(|t| t <= chrono::Utc::now()) {
                return Err(HttpError::Forbidden("ACL token expired".into()));
            }
            return c.result.clone().map_err(HttpError::Forbidden);
        }
        let resolved = api
            .resolve_token(ResolveTokenRequest {
                secret_id: key.clone(),
            })
            .await
            .map_err(|e| match e {
                RpcError::Unavailable(m) => HttpError::Status(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    format!("cannot resolve the ACL token: {m}"),
                ),
                other => HttpError::internal(format!("cannot resolve the ACL token: {other}")),
            })?;
        let result = match resolved.error {
            Some(e) => Err(e),
            None => Ok(Arc::new(resolved.compile())),
        };
        let mut cache = self.lock();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(
            key,
            Cached {
                at: Instant::now(),
                result: result.clone(),
                expires: resolved.expiration_time,
            },
        );
        result.map_err(HttpError::Forbidden)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RemoteCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn alloc(&self, id: &str) -> Option<Arc<Allocation>> {
        if let Some(c) = &self.client
            && let Some(runner) = c.alloc(id)
        {
            return Some(runner.alloc());
        }
        self.server.as_ref()?.state.snapshot().alloc(id)
    }
}

#[async_trait]
impl AclBackend for AgentAcl {
    async fn resolve(&self, secret: Option<&str>) -> Result<Arc<Acl>, HttpError> {
        if !self.settings.enabled {
            return Ok(self.open.clone());
        }
        if let Some(s) = &self.server {
            return Ok(s.resolve_acl(secret)?);
        }
        match &self.remote {
            Some(api) => self.resolve_remote(api.as_ref(), secret).await,
            None => Err(HttpError::internal("no server to resolve ACL tokens with")),
        }
    }

    fn namespace_of(&self, kind: ObjectKind, id: &str) -> Option<String> {
        match kind {
            ObjectKind::Alloc => self.alloc(id).map(|a| a.namespace.to_string()),
            ObjectKind::Eval => self
                .server
                .as_ref()?
                .state
                .snapshot()
                .eval(id)
                .map(|e| e.namespace.clone()),
            ObjectKind::Deployment => self
                .server
                .as_ref()?
                .state
                .snapshot()
                .deployment(id)
                .map(|d| d.namespace.clone()),
        }
    }

    fn task_driver(&self, alloc_id: &str, task: &str) -> Option<String> {
        let alloc = self.alloc(alloc_id)?;
        alloc
            .group()?
            .tasks
            .as_ref()?
            .iter()
            .find(|t| t.name == task)
            .map(|t| t.driver.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{
        ClientAllocs, ClientAllocsRequest, GetAllocsRequest, GetAllocsResponse, NodeStatusRequest,
        NodeUpdateResponse, ResolvedToken, UpdateAllocsRequest, WriteResponse,
    };
    use crate::structs::Node;
    use crate::structs::acl::AclPolicy;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A server that knows one token ("reader", expiring at `expires`) and counts lookups.
    struct Server {
        calls: AtomicUsize,
        expires: Option<chrono::DateTime<chrono::Utc>>,
    }

    #[async_trait]
    impl ServerApi for Server {
        async fn register_node(&self, _: Node) -> Result<NodeUpdateResponse, RpcError> {
            unimplemented!("not used")
        }
        async fn update_status(
            &self,
            _: NodeStatusRequest,
        ) -> Result<NodeUpdateResponse, RpcError> {
            unimplemented!("not used")
        }
        async fn get_client_allocs(
            &self,
            _: ClientAllocsRequest,
            _: Duration,
        ) -> Result<ClientAllocs, RpcError> {
            unimplemented!("not used")
        }
        async fn get_allocs(&self, _: GetAllocsRequest) -> Result<GetAllocsResponse, RpcError> {
            unimplemented!("not used")
        }
        async fn update_allocs(&self, _: UpdateAllocsRequest) -> Result<WriteResponse, RpcError> {
            unimplemented!("not used")
        }
        async fn read_workload_var(
            &self,
            _: crate::rpc::WorkloadVarRequest,
        ) -> Result<crate::rpc::WorkloadVarResponse, RpcError> {
            unimplemented!("not used")
        }
        async fn list_workload_vars(
            &self,
            _: crate::rpc::WorkloadVarRequest,
        ) -> Result<crate::rpc::WorkloadVarListResponse, RpcError> {
            unimplemented!("not used")
        }
        async fn sync_services(
            &self,
            _: crate::rpc::ServiceSyncRequest,
        ) -> Result<WriteResponse, RpcError> {
            unimplemented!("not used")
        }
        async fn resolve_token(&self, req: ResolveTokenRequest) -> Result<ResolvedToken, RpcError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(match req.secret_id.as_deref() {
                Some("reader") => ResolvedToken {
                    policies: vec![AclPolicy {
                        name: "r".into(),
                        rules: "node {\n policy = \"read\"\n}\n".into(),
                        ..AclPolicy::default()
                    }],
                    expiration_time: self.expires,
                    ..ResolvedToken::default()
                },
                _ => ResolvedToken {
                    error: Some("ACL token not found".into()),
                    ..ResolvedToken::default()
                },
            })
        }
    }

    fn backend(server: Arc<Server>, ttl: Duration) -> AgentAcl {
        let settings = AclSettings {
            enabled: true,
            token_ttl: ttl,
            ..AclSettings::default()
        };
        AgentAcl::new(settings, None, None, Some(server))
    }

    #[tokio::test]
    async fn a_client_agent_caches_what_the_server_resolved_for_token_ttl() {
        let server = Arc::new(Server {
            calls: AtomicUsize::new(0),
            expires: None,
        });
        let acl = backend(server.clone(), Duration::from_secs(30));
        for _ in 0..3 {
            assert!(acl.resolve(Some("reader")).await.unwrap().allow_node_read());
        }
        assert_eq!(
            server.calls.load(Ordering::SeqCst),
            1,
            "answered from the cache"
        );
        let err = acl.resolve(Some("nope")).await.err().unwrap();
        assert_eq!(err.to_string(), "ACL token not found");
        assert_eq!(err.status(), axum::http::StatusCode::FORBIDDEN);

        let short = backend(server.clone(), Duration::ZERO);
        short.resolve(Some("reader")).await.unwrap();
        short.resolve(Some("reader")).await.unwrap();
        assert_eq!(
            server.calls.load(Ordering::SeqCst),
            4,
            "a zero TTL asks every time"
        );
    }

    #[tokio::test]
    async fn a_cached_grant_is_not_used_past_the_token_expiry() {
        let server = Arc::new(Server {
            calls: AtomicUsize::new(0),
            expires: Some(chrono::Utc::now() + chrono::Duration::milliseconds(200)),
        });
        let acl = backend(server, Duration::from_secs(30));
        assert!(acl.resolve(Some("reader")).await.is_ok());
        tokio::time::sleep(Duration::from_millis(300)).await;
        let err = acl.resolve(Some("reader")).await.err().unwrap();
        assert_eq!(err.to_string(), "ACL token expired");
    }

    #[tokio::test]
    async fn acls_off_allow_everything_without_asking() {
        let server = Arc::new(Server {
            calls: AtomicUsize::new(0),
            expires: None,
        });
        let acl = AgentAcl::new(AclSettings::default(), None, None, Some(server.clone()));
        assert!(acl.resolve(None).await.unwrap().is_management());
        assert_eq!(server.calls.load(Ordering::SeqCst), 0);
    }
}
