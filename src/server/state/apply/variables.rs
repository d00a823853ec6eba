//! Variable writes: set, check-and-set, delete, lock acquire and release, and the expiry
//! of a lock. Items arrive sealed (the proposer encrypts with a random nonce); the apply
//! checks the index and the lock holder against the state.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::server::state::{StateError, Txn};
use crate::structs::keyring::{RootKeyMeta, RootKeyState};
use crate::structs::variable::{VariableEncrypted, VariableLock, VariableMetadata};

use super::{Applied, ApplyCtx, ApplyError};

/// What a write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VarWrite {
    Set,
    /// Set only if the variable's ModifyIndex is this (0: only if it does not exist).
    Cas(u64),
    Delete,
    /// Delete only if the variable's ModifyIndex is this (0: only if it does not exist).
    DeleteCas(u64),
    LockAcquire,
    LockRelease,
}

/// How a variable write ended.
#[derive(Debug, Clone)]
pub enum VarOutcome {
    Written(Arc<VariableEncrypted>),
    Deleted,
    /// The variable is not as the caller expected: what it is (sealed).
    Conflict(VariableEncrypted),
}

/// A conflict showing only where the variable is (Nomad's zero value).
fn bare(namespace: &str, path: &str) -> VariableEncrypted {
    VariableEncrypted {
        meta: VariableMetadata::bare(namespace, path),
        ..VariableEncrypted::default()
    }
}

/// True when `existing` is locked by someone other than the holder of `lock`.
fn locked_against(existing: &VariableEncrypted, lock: Option<&VariableLock>) -> bool {
    match existing.meta.lock_id() {
        Some(held) => lock.is_none_or(|l| l.id != held),
        None => false,
    }
}

/// A variable write. `sealed` carries the items (and the times) of a set or a lock
/// acquire; `lock` is the caller's lock (acquire, release, or a holder's write).
pub(super) fn apply(
    txn: &mut Txn,
    op: VarWrite,
    ns: &str,
    path: &str,
    lock: Option<VariableLock>,
    sealed: Option<VariableEncrypted>,
    ctx: &ApplyCtx,
) -> Result<Applied, ApplyError> {
    let outcome = |o| Ok(Applied::Var(o));
    let existing = txn.tables().vars.get(ns, path);
    let conflict = |e: &Arc<VariableEncrypted>| outcome(VarOutcome::Conflict((**e).clone()));
    match (op, &existing) {
        (VarWrite::Cas(0) | VarWrite::DeleteCas(0), Some(e)) => return conflict(e),
        (VarWrite::Cas(i) | VarWrite::DeleteCas(i), Some(e)) if e.meta.modify_index != i => {
            return conflict(e);
        }
        (VarWrite::Cas(i) | VarWrite::DeleteCas(i), None) if i != 0 => {
            return outcome(VarOutcome::Conflict(bare(ns, path)));
        }
        _ => {}
    }
    match op {
        VarWrite::Delete | VarWrite::DeleteCas(_) => {
            let Some(e) = existing else {
                return outcome(VarOutcome::Deleted);
            };
            if locked_against(&e, None) {
                return outcome(VarOutcome::Conflict(bare(ns, path)));
            }
            txn.delete_variable(ns, path);
            outcome(VarOutcome::Deleted)
        }
        VarWrite::LockRelease => {
            let Some(e) = existing else {
                return Err(StateError::NotFound("variable doesn't exist".into()));
            };
            let Some(held) = e.meta.lock_id() else {
                return Err(StateError::Conflict("variable doesn't hold a lock".into()));
            };
            if lock.as_ref().is_some_and(|l| l.id != held) {
                let mut shown = bare(ns, path);
                shown.meta.lock = Some(VariableLock::default());
                return outcome(VarOutcome::Conflict(shown));
            }
            // Releasing keeps the items: a delayed release must not drop data.
            let mut released = (*e).clone();
            released.meta.lock = None;
            released.meta.modify_time = ctx.now;
            outcome(VarOutcome::Written(txn.put_variable(released)?))
        }
        VarWrite::Set | VarWrite::Cas(_) | VarWrite::LockAcquire => {
            if let Some(e) = &existing
                && locked_against(e, lock.as_ref())
            {
                return outcome(VarOutcome::Conflict(bare(ns, path)));
            }
            let Some(mut sealed) = sealed else {
                return Err(StateError::BadRequest(
                    "variable write without items".into(),
                ));
            };
            // A key rotated meanwhile still opens what it sealed; a key that is gone
            // would leave the variable unreadable.
            if !txn.tables().vars.root_keys.contains_key(&sealed.key_id) {
                return Err(StateError::Storage(format!(
                    "root key {:?} not found",
                    sealed.key_id
                )));
            }
            // The holder writing its locked variable keeps the lock as acquired.
            sealed.meta.lock = match op {
                VarWrite::LockAcquire => lock,
                _ => existing.as_ref().and_then(|e| e.meta.lock.clone()),
            };
            outcome(VarOutcome::Written(txn.put_variable(sealed)?))
        }
    }
}

/// Takes an expired lock off its variable, if the variable still holds that lock.
pub(super) fn expire_lock(
    txn: &mut Txn,
    ns: &str,
    path: &str,
    lock_id: &str,
    ctx: &ApplyCtx,
) -> Result<Applied, ApplyError> {
    let Some(var) = txn.tables().vars.get(ns, path) else {
        return Ok(Applied::Done);
    };
    if var.meta.lock_id() != Some(lock_id) {
        return Ok(Applied::Done);
    }
    let mut released = (*var).clone();
    released.meta.lock = None;
    released.meta.modify_time = ctx.now;
    txn.put_variable(released)?;
    Ok(Applied::Done)
}

/// Stores a new root key (made active by the proposer). With `rekey`, every other key is
/// marked for rekeying and `resealed` (variables the proposer sealed again with the new
/// key) replace those not written since the proposer read them; a rekeying key that seals
/// nothing any more ends inactive.
pub(super) fn root_key_upsert(
    txn: &mut Txn,
    meta: RootKeyMeta,
    rekey: bool,
    resealed: Vec<VariableEncrypted>,
) -> Result<Applied, ApplyError> {
    let key_id = meta.key_id.clone();
    txn.put_root_key(meta, rekey)?;
    if rekey {
        for var in resealed {
            let unchanged = txn
                .tables()
                .vars
                .get(&var.meta.namespace, &var.meta.path)
                .is_some_and(|cur| cur.meta.modify_index == var.meta.modify_index);
            if unchanged {
                txn.put_variable(var)?;
            }
        }
        let rekeying: Vec<String> = txn
            .tables()
            .vars
            .root_keys
            .values()
            .filter(|k| k.state == RootKeyState::Rekeying)
            .map(|k| k.key_id.clone())
            .collect();
        for id in rekeying {
            if txn.tables().vars.sealed_with(&id).is_empty() {
                txn.set_root_key_state(&id, RootKeyState::Inactive)?;
            }
        }
    }
    let stored = txn
        .tables()
        .vars
        .root_keys
        .get(&key_id)
        .cloned()
        .ok_or_else(|| StateError::NotFound("root key not found".into()))?;
    Ok(Applied::RootKey(stored))
}

/// Deletes a key that is not active and, unless `force`, seals no variable.
pub(super) fn root_key_delete(
    txn: &mut Txn,
    key_id: &str,
    force: bool,
) -> Result<Applied, ApplyError> {
    let vars = &txn.tables().vars;
    let Some(key) = vars.root_keys.get(key_id) else {
        return Err(StateError::NotFound("root key not found".into()));
    };
    if key.is_active() {
        return Err(StateError::Conflict(
            "active root key cannot be deleted - call rotate first".into(),
        ));
    }
    if !force && !vars.sealed_with(key_id).is_empty() {
        return Err(StateError::Conflict(
            "root key in use, cannot delete".into(),
        ));
    }
    txn.delete_root_key(key_id);
    Ok(Applied::Deleted(1))
}
