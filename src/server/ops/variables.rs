//! Variable writes and reads (Nomad's Variables.Apply, Variables.Read, Variables.RenewLock):
//! set, check-and-set, delete, lock acquire/release/renew. Items are sealed with the active
//! root key before they reach the state and opened only to answer a caller allowed to read
//! them.

use std::sync::Arc;

use crate::acl::{Acl, VarOp};
use crate::server::state::{
    Applied as StateApplied, Command, Request, StateError, VarOutcome as Outcome,
};
use crate::server::{Server, ServerError};
use crate::structs::DEFAULT_NAMESPACE;
use crate::structs::time::now_nanos;
use crate::structs::variable::{
    VariableDecrypted, VariableEncrypted, VariableItems, VariableLock, VariableMetadata,
    validate_path, validate_variable,
};

pub use crate::server::state::VarWrite;

/// How a write ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Done. `output` is the variable as written (None after a delete).
    Done {
        index: u64,
        output: Option<VariableDecrypted>,
    },
    /// Refused because the variable is not as the caller expected: what it is (items only
    /// when the caller may read them).
    Conflict {
        index: u64,
        current: VariableDecrypted,
    },
}

/// The associated data that binds a sealed variable to its namespace and path.
pub fn aad(namespace: &str, path: &str) -> Vec<u8> {
    format!("{namespace}\0{path}").into_bytes()
}

fn bad(m: impl Into<String>) -> ServerError {
    ServerError::BadRequest(m.into())
}

/// Nomad's canonicalization and validation of a write, per operation.
fn check_request(op: VarWrite, var: &mut VariableDecrypted) -> Result<(), ServerError> {
    match op {
        VarWrite::LockAcquire => {
            var.meta
                .lock
                .get_or_insert_with(VariableLock::default)
                .canonicalize();
            validate_variable(var, true).map_err(bad)
        }
        VarWrite::Set | VarWrite::Cas(_) => {
            if let Some(l) = &var.meta.lock
                && (!l.ttl.is_zero() || !l.lock_delay.is_zero())
            {
                return Err(bad("variable should not contain lock definition"));
            }
            validate_variable(var, false).map_err(bad)
        }
        VarWrite::Delete | VarWrite::DeleteCas(_) => {
            if var.meta.path.is_empty() {
                return Err(bad("delete requires a Path"));
            }
            Ok(())
        }
        VarWrite::LockRelease => {
            if var.meta.lock.as_ref().is_none_or(|l| l.id.is_empty()) {
                return Err(bad("missing lock information"));
            }
            if !var.items.is_empty() {
                return Err(bad("lock release operation doesn't take variable items"));
            }
            validate_path(&var.meta.path).map_err(bad)
        }
    }
}

impl Server {
    /// Seals a variable's items with the active key.
    fn seal(
        &self,
        key_id: &str,
        meta: VariableMetadata,
        items: &VariableItems,
    ) -> Result<VariableEncrypted, StateError> {
        let plain = serde_json::to_vec(items).map_err(|e| StateError::Storage(e.to_string()))?;
        let data = self
            .keyring
            .encrypt(key_id, &aad(&meta.namespace, &meta.path), &plain)
            .map_err(|e| StateError::Storage(e.to_string()))?;
        Ok(VariableEncrypted {
            meta,
            data,
            key_id: key_id.to_string(),
        })
    }

    /// Opens a stored variable.
    pub fn open_variable(&self, var: &VariableEncrypted) -> Result<VariableDecrypted, ServerError> {
        let plain = self.keyring.decrypt(
            &var.key_id,
            &aad(&var.meta.namespace, &var.meta.path),
            &var.data,
        )?;
        let items: VariableItems = serde_json::from_slice(&plain).map_err(|e| {
            ServerError::Refused(format!("variable {:?} holds bad items: {e}", var.meta.path))
        })?;
        Ok(VariableDecrypted {
            meta: var.meta.clone(),
            items,
        })
    }

    /// Applies a variable write for a caller holding `acl`. `var.meta.namespace` is the
    /// target (empty: `default`).
    pub async fn apply_variable(
        self: &Arc<Self>,
        op: VarWrite,
        mut var: VariableDecrypted,
        acl: &Acl,
    ) -> Result<Applied, ServerError> {
        if var.meta.namespace.is_empty() {
            var.meta.namespace = DEFAULT_NAMESPACE.to_string();
        }
        check_request(op, &mut var)?;
        let seals = matches!(op, VarWrite::Set | VarWrite::Cas(_) | VarWrite::LockAcquire);
        if seals {
            self.ensure_active_key().await?;
        }
        let (ns, path) = (var.meta.namespace.clone(), var.meta.path.clone());
        let lock = var.meta.lock.clone();
        let sealed = if seals {
            let key = self
                .state
                .snapshot()
                .vars
                .active_key()
                .ok_or_else(|| StateError::Storage("no active root key".into()))?;
            let now = now_nanos();
            let mut meta = var.meta.clone();
            meta.create_time = now;
            meta.modify_time = now;
            Some(self.seal(&key.key_id, meta, &var.items)?)
        } else {
            None
        };
        let (index, applied) = self
            .state
            .commit(Request::new(Command::VarApply {
                op,
                ns: ns.clone(),
                path: path.clone(),
                lock: lock.clone(),
                sealed,
            }))
            .await
            .map_err(|e| match e {
                StateError::NotFound(m) => ServerError::NotFound(m),
                StateError::Conflict(m) => ServerError::Conflict(m),
                other => ServerError::State(other),
            })?;
        let outcome = match applied {
            StateApplied::Var(o) => o,
            other => return Err(other.unexpected().into()),
        };
        match outcome {
            Outcome::Deleted => Ok(Applied::Done {
                index,
                output: None,
            }),
            Outcome::Written(written) => {
                match op {
                    VarWrite::LockAcquire => {
                        if let Some(l) = &written.meta.lock {
                            self.watch_lock(&ns, &path, l);
                        }
                    }
                    VarWrite::LockRelease => {
                        if let Some(l) = &lock {
                            self.var_locks.remove(&l.id);
                        }
                    }
                    _ => {}
                }
                let mut meta = written.meta.clone();
                let owner = lock.as_ref().map(|l| l.id.as_str()) == meta.lock_id();
                if !owner && !acl.is_management() {
                    meta.lock = None;
                }
                Ok(Applied::Done {
                    index,
                    output: Some(VariableDecrypted {
                        meta,
                        items: var.items,
                    }),
                })
            }
            Outcome::Conflict(current) => {
                let readable = acl.allow_variable_op(&ns, &path, VarOp::Read);
                let mut shown = if readable && !current.key_id.is_empty() {
                    self.open_variable(&current)?
                } else {
                    VariableDecrypted {
                        meta: current.meta.clone(),
                        items: VariableItems::new(),
                    }
                };
                if !acl.is_management() {
                    shown.meta.lock = shown.meta.lock.filter(|l| l.id.is_empty());
                }
                Ok(Applied::Conflict {
                    index,
                    current: shown,
                })
            }
        }
    }

    /// Renews the lease of the lock `lock_id` holds on a variable; answers the variable's
    /// metadata and its ModifyIndex.
    pub fn renew_variable_lock(
        &self,
        namespace: &str,
        path: &str,
        lock_id: &str,
    ) -> Result<VariableMetadata, ServerError> {
        if path.is_empty() {
            return Err(bad("missing path"));
        }
        if lock_id.is_empty() {
            return Err(bad("missing lock ID"));
        }
        let snap = self.state.snapshot();
        let var = snap
            .vars
            .get(namespace, path)
            .ok_or_else(|| ServerError::NotFound("variable doesn't exist".into()))?;
        let Some(lock) = &var.meta.lock else {
            return Err(ServerError::Conflict("variable doesn't hold a lock".into()));
        };
        // A lease that ran out cannot be renewed: the lock is on its way out.
        if lock.id != lock_id || !self.var_locks.renew(lock_id, lock.ttl) {
            return Err(ServerError::Conflict(
                "attempting to modify locked variable".into(),
            ));
        }
        Ok(var.meta.clone())
    }

    /// Takes an expired lock off its variable, if the variable still holds it.
    pub(crate) async fn expire_lock(
        &self,
        namespace: &str,
        path: &str,
        lock_id: &str,
    ) -> Result<(), ServerError> {
        self.state
            .commit(Request::new(Command::VarLockExpire {
                ns: namespace.to_string(),
                path: path.to_string(),
                lock_id: lock_id.to_string(),
            }))
            .await?;
        tracing::debug!(%namespace, %path, "expired variable lock removed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn server() -> Arc<Server> {
        Server::open(crate::server::ServerConfig::default()).unwrap()
    }

    fn var(path: &str, items: &[(&str, &str)]) -> VariableDecrypted {
        VariableDecrypted {
            meta: VariableMetadata::bare("", path),
            items: items
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn done(a: Applied) -> (u64, Option<VariableDecrypted>) {
        match a {
            Applied::Done { index, output } => (index, output),
            other => panic!("expected done, got {other:?}"),
        }
    }

    fn conflict(a: Applied) -> VariableDecrypted {
        match a {
            Applied::Conflict { current, .. } => current,
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn set_read_and_cas() {
        let s = server();
        let m = Acl::management();
        let (i1, out) = done(
            s.apply_variable(VarWrite::Set, var("app/db", &[("pw", "s3cret")]), &m)
                .await
                .unwrap(),
        );
        let out = out.unwrap();
        assert_eq!(out.meta.namespace, "default");
        assert_eq!((out.meta.create_index, out.meta.modify_index), (i1, i1));
        let stored = s.state.snapshot().vars.get("default", "app/db").unwrap();
        assert!(!stored.data.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(s.open_variable(&stored).unwrap().items["pw"], "s3cret");

        // Create-only on an existing variable: the current one, decrypted.
        let c = conflict(
            s.apply_variable(VarWrite::Cas(0), var("app/db", &[("pw", "x")]), &m)
                .await
                .unwrap(),
        );
        assert_eq!(c.items["pw"], "s3cret");
        assert_eq!(c.meta.modify_index, i1);
        let (i2, _) = done(
            s.apply_variable(VarWrite::Cas(i1), var("app/db", &[("pw", "new")]), &m)
                .await
                .unwrap(),
        );
        let stale = conflict(
            s.apply_variable(VarWrite::Cas(i1), var("app/db", &[("pw", "late")]), &m)
                .await
                .unwrap(),
        );
        assert_eq!(stale.meta.modify_index, i2);
        assert_eq!(stale.items["pw"], "new");
        // Expecting a variable that is not there.
        let missing = conflict(
            s.apply_variable(VarWrite::Cas(5), var("other", &[("a", "b")]), &m)
                .await
                .unwrap(),
        );
        assert_eq!(
            (missing.meta.path.as_str(), missing.items.len()),
            ("other", 0)
        );

        // A reader without read access sees only the metadata of a conflict.
        let writer = Acl::from_policies(&[crate::acl::parse(
            "namespace \"default\" {\n variables {\n path \"*\" {\n capabilities = [\"write\"]\n }\n }\n}\n",
        )
        .unwrap()]);
        let redacted = conflict(
            s.apply_variable(VarWrite::Cas(0), var("app/db", &[("a", "b")]), &writer)
                .await
                .unwrap(),
        );
        assert!(redacted.items.is_empty());
        assert_eq!(redacted.meta.modify_index, i2);

        let del = conflict(
            s.apply_variable(VarWrite::DeleteCas(i1), var("app/db", &[]), &m)
                .await
                .unwrap(),
        );
        assert_eq!(del.meta.modify_index, i2);
        done(
            s.apply_variable(VarWrite::DeleteCas(i2), var("app/db", &[]), &m)
                .await
                .unwrap(),
        );
        assert!(s.state.snapshot().vars.get("default", "app/db").is_none());
    }

    #[tokio::test]
    async fn bad_requests_name_what_is_wrong() {
        let s = server();
        let m = Acl::management();
        let err = |op, v| {
            let s = s.clone();
            let m = m.clone();
            async move { s.apply_variable(op, v, &m).await.unwrap_err().to_string() }
        };
        assert_eq!(
            err(VarWrite::Set, var("p", &[])).await,
            "empty variables are invalid"
        );
        assert_eq!(
            err(VarWrite::Set, var("a/../b", &[("k", "v")])).await,
            "invalid path \"a/../b\""
        );
        let mut with_lock = var("p", &[("k", "v")]);
        with_lock.meta.lock = Some(VariableLock {
            ttl: Duration::from_secs(20),
            ..VariableLock::default()
        });
        assert_eq!(
            err(VarWrite::Set, with_lock).await,
            "variable should not contain lock definition"
        );
        assert_eq!(
            err(VarWrite::LockRelease, var("p", &[])).await,
            "missing lock information"
        );
        let mut short = var("p", &[]);
        short.meta.lock = Some(VariableLock {
            ttl: Duration::from_secs(1),
            ..VariableLock::default()
        });
        assert_eq!(
            err(VarWrite::LockAcquire, short).await,
            "TTL must be between 10 seconds and 24 hours"
        );
    }

    #[tokio::test]
    async fn a_lock_guards_its_variable_until_released() {
        let s = server();
        let m = Acl::management();
        let (_, out) = done(
            s.apply_variable(VarWrite::LockAcquire, var("leader", &[("who", "a")]), &m)
                .await
                .unwrap(),
        );
        let lock = out.unwrap().meta.lock.unwrap();
        assert_eq!(lock.ttl, Duration::from_secs(15));
        assert!(s.var_locks.is_leased(&lock.id));

        // Anyone else: a conflict showing only where the variable is.
        let c = conflict(
            s.apply_variable(VarWrite::Set, var("leader", &[("who", "b")]), &m)
                .await
                .unwrap(),
        );
        assert!(c.items.is_empty() && c.meta.lock.is_none());
        conflict(
            s.apply_variable(VarWrite::LockAcquire, var("leader", &[]), &m)
                .await
                .unwrap(),
        );
        conflict(
            s.apply_variable(VarWrite::Delete, var("leader", &[]), &m)
                .await
                .unwrap(),
        );

        // The holder may write, and keeps its lock.
        let mut mine = var("leader", &[("who", "a2")]);
        mine.meta.lock = Some(VariableLock {
            id: lock.id.clone(),
            ..VariableLock::default()
        });
        let (_, out) = done(s.apply_variable(VarWrite::Set, mine, &m).await.unwrap());
        assert_eq!(out.unwrap().meta.lock.unwrap().ttl, lock.ttl);

        s.renew_variable_lock("default", "leader", &lock.id)
            .unwrap();
        assert!(matches!(
            s.renew_variable_lock("default", "leader", "other"),
            Err(ServerError::Conflict(_))
        ));

        let mut wrong = var("leader", &[]);
        wrong.meta.lock = Some(VariableLock {
            id: "other".into(),
            ..VariableLock::default()
        });
        let c = conflict(
            s.apply_variable(VarWrite::LockRelease, wrong, &m)
                .await
                .unwrap(),
        );
        assert!(c.meta.lock.is_some());
        let mut release = var("leader", &[]);
        release.meta.lock = Some(lock.clone());
        let (_, out) = done(
            s.apply_variable(VarWrite::LockRelease, release, &m)
                .await
                .unwrap(),
        );
        assert!(out.unwrap().meta.lock.is_none());
        assert!(!s.var_locks.is_leased(&lock.id));
        let stored = s.state.snapshot().vars.get("default", "leader").unwrap();
        assert_eq!(
            s.open_variable(&stored).unwrap().items["who"],
            "a2",
            "items kept"
        );
        assert!(matches!(
            s.renew_variable_lock("default", "leader", &lock.id),
            Err(ServerError::Conflict(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unrenewed_lock_goes_after_twice_its_ttl_and_its_delay() {
        let s = server();
        let m = Acl::management();
        let mut v = var("leader", &[]);
        v.meta.lock = Some(VariableLock {
            ttl: Duration::from_secs(10),
            lock_delay: Duration::from_secs(5),
            ..VariableLock::default()
        });
        done(
            s.apply_variable(VarWrite::LockAcquire, v, &m)
                .await
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_secs(21)).await;
        let held = s.state.snapshot().vars.get("default", "leader").unwrap();
        let id = held.meta.lock_id().unwrap().to_string();
        assert!(!s.var_locks.is_leased(&id), "lease ran out");
        assert!(s.renew_variable_lock("default", "leader", &id).is_err());
        tokio::time::sleep(Duration::from_secs(5)).await;
        // Let the release write land.
        for _ in 0..100 {
            if s.state
                .snapshot()
                .vars
                .get("default", "leader")
                .unwrap()
                .meta
                .lock
                .is_none()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the lock was not removed after its delay");
    }

    #[tokio::test]
    async fn full_rotation_reseals_every_variable() {
        let s = server();
        let m = Acl::management();
        done(
            s.apply_variable(VarWrite::Set, var("a", &[("k", "v")]), &m)
                .await
                .unwrap(),
        );
        let old = s.state.snapshot().vars.active_key().unwrap().key_id.clone();
        let (_, new) = s.rotate_root_key(false).await.unwrap();
        let a = s.state.snapshot().vars.get("default", "a").unwrap();
        assert_eq!(
            a.key_id, old,
            "a plain rotation leaves variables as they are"
        );
        assert_eq!(s.open_variable(&a).unwrap().items["k"], "v");
        assert!(
            s.delete_root_key(&old, false).await.is_err(),
            "still in use"
        );

        let (_, newest) = s.rotate_root_key(true).await.unwrap();
        let snap = s.state.snapshot();
        let a = snap.vars.get("default", "a").unwrap();
        assert_eq!(a.key_id, newest.key_id);
        assert_eq!(s.open_variable(&a).unwrap().items["k"], "v");
        use crate::structs::keyring::RootKeyState;
        assert_eq!(snap.vars.root_keys[&old].state, RootKeyState::Inactive);
        assert_eq!(
            snap.vars.root_keys[&new.key_id].state,
            RootKeyState::Inactive
        );
        s.delete_root_key(&old, false).await.unwrap();
    }
}
