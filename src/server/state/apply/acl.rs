//! ACL writes: bootstrap, policies, tokens, roles, one-time tokens and the reaping of
//! expired tokens.

use crate::server::state::{AclTables, StateError, Txn};
use crate::structs::acl::{AclPolicy, AclRole, AclRoleLink, AclToken, OneTimeToken};

use super::{Applied, ApplyCtx, ApplyError};

pub(super) fn bootstrap(
    txn: &mut Txn,
    token: AclToken,
    reset_index: u64,
) -> Result<Applied, ApplyError> {
    let done = txn.tables().acl.bootstrap_index;
    if done != 0 {
        if reset_index == 0 {
            return Err(StateError::Conflict(format!(
                "ACL bootstrap already done (reset index: {done})"
            )));
        }
        if reset_index != done {
            return Err(StateError::Conflict(format!(
                "Invalid bootstrap reset index (specified {reset_index}, reset index: {done})"
            )));
        }
    }
    if txn.tables().acl.token_by_secret(&token.secret_id).is_some() {
        return Err(StateError::Conflict("invalid acl token".into()));
    }
    txn.set_acl_bootstrapped()?;
    Ok(Applied::Token(Some(txn.put_acl_token(token)?)))
}

pub(super) fn upsert_policy(txn: &mut Txn, policy: AclPolicy) -> Result<Applied, ApplyError> {
    txn.put_acl_policy(policy)?;
    Ok(Applied::Done)
}

pub(super) fn delete_policies(txn: &mut Txn, names: &[String]) -> Result<Applied, ApplyError> {
    let n = names.iter().filter(|n| txn.delete_acl_policy(n)).count();
    Ok(Applied::Deleted(n))
}

pub(super) fn upsert_token(
    txn: &mut Txn,
    mut token: AclToken,
    creating: bool,
) -> Result<Applied, ApplyError> {
    let acl = &txn.tables().acl;
    if !creating {
        let Some(existing) = acl.tokens.get(&token.accessor_id) else {
            return Err(StateError::Conflict(format!(
                "cannot find token {}",
                token.accessor_id
            )));
        };
        if existing.global != token.global {
            return Err(StateError::Conflict("cannot toggle global mode".into()));
        }
        if token.expiration_ttl != 0 && token.expiration_ttl != existing.expiration_ttl {
            return Err(StateError::Conflict("cannot update expiration TTL".into()));
        }
        if token.expiration_time.is_some() && token.expiration_time != existing.expiration_time {
            return Err(StateError::Conflict("cannot update expiration time".into()));
        }
        // What a caller cannot change comes from the stored token.
        token.secret_id = existing.secret_id.clone();
        token.create_time = existing.create_time;
        token.expiration_time = existing.expiration_time;
        token.expiration_ttl = existing.expiration_ttl;
    }
    token.roles = resolve_role_links(acl, &token.roles)?;
    Ok(Applied::Token(Some(txn.put_acl_token(token)?)))
}

/// Completes role links given by ID or by name; an unknown role is refused.
fn resolve_role_links(
    acl: &AclTables,
    links: &[AclRoleLink],
) -> Result<Vec<AclRoleLink>, StateError> {
    links
        .iter()
        .map(|l| {
            let role = if !l.id.is_empty() {
                acl.roles.get(&l.id).cloned()
            } else {
                acl.role_by_name(&l.name)
            };
            let ident = if l.id.is_empty() { &l.name } else { &l.id };
            let role =
                role.ok_or_else(|| StateError::Conflict(format!("cannot find role {ident}")))?;
            Ok(AclRoleLink {
                id: role.id.clone(),
                name: role.name.clone(),
            })
        })
        .collect()
}

pub(super) fn delete_tokens(txn: &mut Txn, accessors: &[String]) -> Result<Applied, ApplyError> {
    let n = accessors.iter().filter(|a| txn.delete_acl_token(a)).count();
    Ok(Applied::Deleted(n))
}

pub(super) fn upsert_role(
    txn: &mut Txn,
    role: AclRole,
    creating: bool,
) -> Result<Applied, ApplyError> {
    let acl = &txn.tables().acl;
    if !creating && !acl.roles.contains_key(&role.id) {
        return Err(StateError::Conflict(format!(
            "cannot find role {}",
            role.id
        )));
    }
    if let Some(other) = acl.role_by_name(&role.name)
        && other.id != role.id
    {
        return Err(StateError::Conflict(format!(
            "role with name {} already exists",
            role.name
        )));
    }
    if let Some(missing) = role
        .policies
        .iter()
        .find(|p| !acl.policies.contains_key(&p.name))
    {
        return Err(StateError::Conflict(format!(
            "cannot find policy {}",
            missing.name
        )));
    }
    Ok(Applied::Role(txn.put_acl_role(role)?))
}

pub(super) fn delete_roles(txn: &mut Txn, ids: &[String]) -> Result<Applied, ApplyError> {
    let n = ids.iter().filter(|id| txn.delete_acl_role(id)).count();
    Ok(Applied::Deleted(n))
}

/// Deletes the candidates the proposer picked that are still expired at the request's time
/// (one may have been replaced meanwhile).
pub(super) fn reap_tokens(
    txn: &mut Txn,
    accessors: &[String],
    one_time: &[String],
    ctx: &ApplyCtx,
) -> Result<Applied, ApplyError> {
    let now = ctx.now_utc();
    let acl = &txn.tables().acl;
    let tokens: Vec<&String> = accessors
        .iter()
        .filter(|a| acl.tokens.get(*a).is_some_and(|t| t.is_expired(now)))
        .collect();
    let once: Vec<&String> = one_time
        .iter()
        .filter(|s| {
            acl.one_time_by_secret(s)
                .is_some_and(|t| t.expires_at.is_none_or(|at| at <= now))
        })
        .collect();
    let n = tokens.iter().filter(|a| txn.delete_acl_token(a)).count()
        + once.iter().filter(|s| txn.delete_one_time_token(s)).count();
    Ok(Applied::Deleted(n))
}

pub(super) fn create_one_time(txn: &mut Txn, token: OneTimeToken) -> Result<Applied, ApplyError> {
    Ok(Applied::OneTime(txn.put_one_time_token(token)?))
}

/// Consumes the one-time token `secret`; answers the token it stands for when both are
/// live at the request's time.
pub(super) fn exchange_one_time(
    txn: &mut Txn,
    secret: &str,
    ctx: &ApplyCtx,
) -> Result<Applied, ApplyError> {
    let now = ctx.now_utc();
    let acl = &txn.tables().acl;
    let Some(once) = acl.one_time_by_secret(secret) else {
        return Ok(Applied::Token(None));
    };
    let token = acl.tokens.get(&once.accessor_id).cloned();
    txn.delete_one_time_token(secret);
    let live = once.expires_at.is_some_and(|at| at > now);
    Ok(Applied::Token(token.filter(|t| live && !t.is_expired(now))))
}
