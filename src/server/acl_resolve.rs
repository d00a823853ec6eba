//! Turning a request's secret into the caller's [`Acl`]: the token is looked up in the
//! state, refused when unknown or expired, and its policies (its own and its roles') are
//! compiled once and cached until a token, policy or role changes.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use chrono::Utc;

use super::Server;
use super::state::{Table, Tables};
use crate::acl::Acl;
use crate::rpc::ResolvedToken;
use crate::structs::acl::{ANONYMOUS_POLICY, AclToken};

/// Why a secret does not resolve (Nomad's texts; both are 403s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("ACL token not found")]
    NotFound,
    #[error("ACL token expired")]
    Expired,
}

/// Compiled ACLs by the secret's accessor (or "" for anonymous), valid while the ACL tables
/// stay at the indexes they were compiled at.
#[derive(Default)]
pub struct AclCache {
    entries: Mutex<HashMap<String, (u64, Arc<Acl>)>>,
}

/// Most compiled ACLs kept; past it the cache starts over (tokens are few, this bounds a
/// flood of distinct ones).
const CACHE_LIMIT: usize = 4096;

fn acl_generation(snap: &Tables) -> u64 {
    snap.max_index(&[Table::AclTokens, Table::AclPolicies, Table::AclRoles])
}

/// The token a secret names, refused when unknown or expired.
pub fn lookup_token(snap: &Tables, secret: &str) -> Result<Arc<AclToken>, ResolveError> {
    let token = snap
        .acl
        .token_by_secret(secret)
        .ok_or(ResolveError::NotFound)?;
    if token.is_expired(Utc::now()) {
        return Err(ResolveError::Expired);
    }
    Ok(token)
}

/// What `secret` grants (None: the anonymous caller).
pub fn resolve_grant(snap: &Tables, secret: Option<&str>) -> Result<ResolvedToken, ResolveError> {
    let mut expiration = None;
    let names: BTreeSet<String> = match secret {
        None => [ANONYMOUS_POLICY.to_string()].into(),
        Some(secret) => {
            let token = lookup_token(snap, secret)?;
            if token.is_management() {
                return Ok(ResolvedToken {
                    management: true,
                    expiration_time: token.expiration_time,
                    ..ResolvedToken::default()
                });
            }
            expiration = token.expiration_time;
            let mut names: BTreeSet<String> = token.policies.iter().cloned().collect();
            for link in &token.roles {
                if let Some(role) = snap.acl.roles.get(&link.id) {
                    names.extend(role.policies.iter().map(|p| p.name.clone()));
                }
            }
            names
        }
    };
    Ok(ResolvedToken {
        management: false,
        error: None,
        expiration_time: expiration,
        policies: names
            .iter()
            .filter_map(|n| snap.acl.policies.get(n).map(|p| (**p).clone()))
            .collect(),
    })
}

impl Server {
    /// The caller's ACL for `secret` (None: no token). With ACLs off, everything is allowed.
    pub fn resolve_acl(&self, secret: Option<&str>) -> Result<Arc<Acl>, ResolveError> {
        if !self.config.acl.enabled {
            return Ok(Arc::new(Acl::management()));
        }
        let snap = self.state.snapshot();
        let key = match secret {
            None => String::new(),
            Some(s) => lookup_token(&snap, s)?.accessor_id.clone(),
        };
        let generation = acl_generation(&snap);
        let mut cache = self
            .acl_cache
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((g, acl)) = cache.get(&key)
            && *g == generation
        {
            return Ok(acl.clone());
        }
        let acl = Arc::new(resolve_grant(&snap, secret)?.compile());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, (generation, acl.clone()));
        Ok(acl)
    }
}

impl Server {
    /// What `secret` grants, for a client agent; with ACLs off, everything.
    pub fn resolve_token_grant(&self, secret: Option<&str>) -> ResolvedToken {
        if !self.config.acl.enabled {
            return ResolvedToken {
                management: true,
                ..ResolvedToken::default()
            };
        }
        resolve_grant(&self.state.snapshot(), secret).unwrap_or_else(|e| ResolvedToken {
            error: Some(e.to_string()),
            ..ResolvedToken::default()
        })
    }
}
