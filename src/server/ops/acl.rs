//! The ACL operations: bootstrap, and the writes of policies, tokens and roles, each
//! validated as Nomad validates them and carried out in one state write; plus the reaping
//! of expired tokens.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;

use crate::acl::parse;
use crate::server::acl_resolve::{ResolveError, lookup_token};
use crate::server::state::{Applied, Command, Request, StateError};
use crate::server::{Server, ServerError};
use crate::structs::acl::{
    AclPolicy, AclRole, AclToken, OneTimeToken, TOKEN_TYPE_CLIENT, TOKEN_TYPE_MANAGEMENT,
};
use crate::structs::generate_uuid;

/// The file whose content (a reset index) allows one more bootstrap.
pub const BOOTSTRAP_RESET_FILE: &str = "acl-bootstrap-reset";

const MAX_NAME_LEN: usize = 128;
const MAX_TOKEN_NAME_LEN: usize = 256;
const MAX_DESCRIPTION_LEN: usize = 256;

fn bad(msg: impl Into<String>) -> ServerError {
    ServerError::BadRequest(msg.into())
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok() && s.len() == 36
}

impl Server {
    fn require_acl_enabled(&self) -> Result<(), ServerError> {
        if self.config.acl.enabled {
            Ok(())
        } else {
            Err(bad("ACL support disabled"))
        }
    }

    /// The reset index written into `<server data dir>/acl-bootstrap-reset`, if any.
    fn bootstrap_reset_index(&self) -> u64 {
        let Some(dir) = &self.config.data_dir else {
            return 0;
        };
        read_reset_index(&dir.join(BOOTSTRAP_RESET_FILE))
    }

    /// Creates the first management token (or one more, when the reset file names the
    /// index of the last bootstrap).
    pub async fn acl_bootstrap(&self, secret: Option<String>) -> Result<AclToken, ServerError> {
        self.require_acl_enabled()?;
        let secret = match secret.filter(|s| !s.is_empty()) {
            Some(s) if is_uuid(&s) => s,
            Some(_) => return Err(bad("invalid acl token")),
            None => generate_uuid(),
        };
        let reset = self.bootstrap_reset_index();
        let token = AclToken {
            accessor_id: generate_uuid(),
            secret_id: secret,
            name: "Bootstrap Token".to_string(),
            r#type: TOKEN_TYPE_MANAGEMENT.to_string(),
            global: true,
            create_time: Some(Utc::now()),
            ..AclToken::default()
        };
        let (_, applied) = self
            .state
            .commit(Request::new(Command::AclBootstrap {
                token,
                reset_index: reset,
            }))
            .await
            .map_err(conflict_is_bad_request)?;
        let token = match applied {
            Applied::Token(Some(token)) => token,
            other => return Err(other.unexpected().into()),
        };
        tracing::info!(accessor = %token.accessor_id, "ACL system bootstrapped");
        Ok((*token).clone())
    }

    /// Creates or replaces the policy `name`.
    pub async fn acl_upsert_policy(&self, policy: AclPolicy) -> Result<u64, ServerError> {
        self.require_acl_enabled()?;
        if !valid_name(&policy.name) {
            return Err(bad(format!("invalid name '{}'", policy.name)));
        }
        if policy.description.len() > MAX_DESCRIPTION_LEN {
            return Err(bad(format!(
                "description longer than {MAX_DESCRIPTION_LEN}"
            )));
        }
        parse(&policy.rules).map_err(|e| bad(format!("failed to parse rules: {e}")))?;
        let (index, _) = self
            .state
            .commit(Request::new(Command::AclPolicyUpsert { policy }))
            .await?;
        Ok(index)
    }

    /// Deletes policies by name; unknown names are ignored, as in Nomad.
    pub async fn acl_delete_policy(&self, name: &str) -> Result<u64, ServerError> {
        self.require_acl_enabled()?;
        let (index, _) = self
            .state
            .commit(Request::new(Command::AclPolicyDelete {
                names: vec![name.to_string()],
            }))
            .await?;
        Ok(index)
    }

    /// Creates a token (no AccessorID) or updates one; returns it with its secret.
    pub async fn acl_upsert_token(&self, mut token: AclToken) -> Result<AclToken, ServerError> {
        self.require_acl_enabled()?;
        validate_token_shape(&token)?;
        let now = Utc::now();
        let limits = &self.config.acl;
        let creating = token.accessor_id.is_empty();
        if creating {
            token.accessor_id = generate_uuid();
            token.secret_id = generate_uuid();
            token.create_time = Some(now);
            if token.expiration_ttl < 0 {
                return Err(bad(format!(
                    "token expiration TTL '{}' should not be negative",
                    fmt_duration(token.expiration_ttl)
                )));
            }
            if token.expiration_ttl > 0 && token.expiration_time.is_none() {
                token.expiration_time =
                    Some(now + chrono::Duration::nanoseconds(token.expiration_ttl));
            }
            if let Some(exp) = token.expiration_time {
                let ahead = (exp - now).to_std().unwrap_or(Duration::ZERO);
                if exp < now {
                    return Err(bad("expiration time cannot be before create time"));
                }
                if ahead > limits.token_max_expiration_ttl {
                    return Err(bad(format!(
                        "expiration time cannot be more than {} in the future (was {})",
                        humantime::format_duration(limits.token_max_expiration_ttl),
                        humantime::format_duration(round_secs(ahead))
                    )));
                }
                if ahead < limits.token_min_expiration_ttl {
                    return Err(bad(format!(
                        "expiration time cannot be less than {} in the future (was {})",
                        humantime::format_duration(limits.token_min_expiration_ttl),
                        humantime::format_duration(round_secs(ahead))
                    )));
                }
            }
        }
        let (_, applied) = self
            .state
            .commit(Request::new(Command::AclTokenUpsert { token, creating }))
            .await
            .map_err(conflict_is_bad_request)?;
        match applied {
            Applied::Token(Some(token)) => Ok((*token).clone()),
            other => Err(other.unexpected().into()),
        }
    }

    /// Deletes a token; 404-worthy when it does not exist.
    pub async fn acl_delete_token(&self, accessor: &str) -> Result<u64, ServerError> {
        self.require_acl_enabled()?;
        let (index, applied) = self
            .state
            .commit(Request::new(Command::AclTokenDelete {
                accessors: vec![accessor.to_string()],
            }))
            .await?;
        if !matches!(applied, Applied::Deleted(n) if n > 0) {
            return Err(ServerError::NotFound("ACL token not found".into()));
        }
        Ok(index)
    }

    /// Creates (no ID) or updates a role.
    pub async fn acl_upsert_role(&self, mut role: AclRole) -> Result<AclRole, ServerError> {
        self.require_acl_enabled()?;
        if !valid_name(&role.name) {
            return Err(bad(format!("invalid name '{}'", role.name)));
        }
        if role.description.len() > MAX_DESCRIPTION_LEN {
            return Err(bad(format!(
                "description longer than {MAX_DESCRIPTION_LEN}"
            )));
        }
        if role.policies.is_empty() {
            return Err(bad("at least one policy should be specified"));
        }
        let creating = role.id.is_empty();
        if creating {
            role.id = generate_uuid();
        }
        let (_, applied) = self
            .state
            .commit(Request::new(Command::AclRoleUpsert { role, creating }))
            .await
            .map_err(conflict_is_bad_request)?;
        match applied {
            Applied::Role(role) => Ok((*role).clone()),
            other => Err(other.unexpected().into()),
        }
    }

    /// Deletes a role; 404-worthy when it does not exist.
    pub async fn acl_delete_role(&self, id: &str) -> Result<u64, ServerError> {
        self.require_acl_enabled()?;
        let (index, applied) = self
            .state
            .commit(Request::new(Command::AclRoleDelete {
                ids: vec![id.to_string()],
            }))
            .await?;
        if !matches!(applied, Applied::Deleted(n) if n > 0) {
            return Err(ServerError::NotFound("ACL role not found".into()));
        }
        Ok(index)
    }

    /// Deletes every token and one-time token whose expiration time has passed; returns
    /// how many.
    pub async fn acl_reap_expired_tokens(&self) -> Result<usize, ServerError> {
        let now = Utc::now();
        let snap = self.state.snapshot();
        let expired: Vec<String> = snap
            .acl
            .tokens
            .values()
            .filter(|t| t.is_expired(now))
            .map(|t| t.accessor_id.clone())
            .collect();
        let expired_once: Vec<String> = snap
            .acl
            .one_time_tokens()
            .filter(|t| t.expires_at.is_none_or(|at| at <= now))
            .map(|t| t.one_time_secret_id.clone())
            .collect();
        if expired.is_empty() && expired_once.is_empty() {
            return Ok(0);
        }
        let (_, applied) = self
            .state
            .commit(Request::new(Command::AclTokensReap {
                accessors: expired,
                one_time: expired_once,
            }))
            .await?;
        match applied {
            Applied::Deleted(n) => Ok(n),
            other => Err(other.unexpected().into()),
        }
    }

    /// A one-time token for the caller's token (`secret`), valid for ten minutes.
    pub async fn acl_create_one_time_token(
        &self,
        secret: Option<&str>,
    ) -> Result<OneTimeToken, ServerError> {
        self.require_acl_enabled()?;
        let snap = self.state.snapshot();
        let token = secret
            .map(|s| lookup_token(&snap, s))
            .transpose()
            .map_err(|e| ServerError::Forbidden(e.to_string()))?
            .ok_or_else(|| ServerError::Forbidden(ResolveError::NotFound.to_string()))?;
        let once = OneTimeToken {
            one_time_secret_id: generate_uuid(),
            accessor_id: token.accessor_id.clone(),
            expires_at: Some(Utc::now() + chrono::Duration::minutes(10)),
            ..OneTimeToken::default()
        };
        let (_, applied) = self
            .state
            .commit(Request::new(Command::AclOneTimeCreate { token: once }))
            .await?;
        match applied {
            Applied::OneTime(once) => Ok((*once).clone()),
            other => Err(other.unexpected().into()),
        }
    }

    /// Swaps a one-time secret for the token it was made for; the one-time token is gone
    /// afterwards. Unknown, expired or orphaned one-time tokens are `Permission denied`.
    pub async fn acl_exchange_one_time_token(
        &self,
        one_time_secret: &str,
    ) -> Result<AclToken, ServerError> {
        self.require_acl_enabled()?;
        let denied = || ServerError::Forbidden("Permission denied".into());
        let (_, applied) = self
            .state
            .commit(Request::new(Command::AclOneTimeExchange {
                secret: one_time_secret.to_string(),
            }))
            .await?;
        match applied {
            Applied::Token(token) => token.map(|t| (*t).clone()).ok_or_else(denied),
            other => Err(other.unexpected().into()),
        }
    }
}

/// How often expired tokens are reaped.
pub const TOKEN_REAP_INTERVAL: Duration = Duration::from_secs(5);

/// Reaps expired tokens forever (a leader duty; the only server is the leader).
pub async fn reap_expired_tokens(server: std::sync::Arc<Server>) {
    let mut tick = tokio::time::interval(TOKEN_REAP_INTERVAL);
    loop {
        tick.tick().await;
        match server.acl_reap_expired_tokens().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(count = n, "reaped expired ACL tokens"),
            Err(e) => tracing::warn!(error = %e, "reaping expired ACL tokens failed"),
        }
    }
}

fn conflict_is_bad_request(e: StateError) -> ServerError {
    match e {
        StateError::Conflict(m) => ServerError::BadRequest(m),
        other => other.into(),
    }
}

fn validate_token_shape(token: &AclToken) -> Result<(), ServerError> {
    if token.name.len() > MAX_TOKEN_NAME_LEN {
        return Err(bad("token name too long"));
    }
    match token.r#type.as_str() {
        TOKEN_TYPE_CLIENT => {
            if token.policies.is_empty() && token.roles.is_empty() {
                return Err(bad("client token missing policies or roles"));
            }
        }
        TOKEN_TYPE_MANAGEMENT => {
            if !token.policies.is_empty() || !token.roles.is_empty() {
                return Err(bad(
                    "management token cannot be associated with policies or roles",
                ));
            }
        }
        _ => return Err(bad("token type must be client or management")),
    }
    Ok(())
}

fn round_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

fn fmt_duration(nanos: i64) -> String {
    format!("{}ns", nanos)
}

/// The index in the reset file; 0 when there is no file or it holds no number.
fn read_reset_index(path: &Path) -> u64 {
    match std::fs::read_to_string(path) {
        Ok(text) => match text.trim().parse() {
            Ok(i) => {
                tracing::warn!(path = %path.display(), reset_index = i, "ACL bootstrap reset file read");
                i
            }
            Err(_) => {
                tracing::warn!(path = %path.display(), "ACL bootstrap reset file holds no index; ignored");
                0
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the ACL bootstrap reset file");
            0
        }
    }
}
