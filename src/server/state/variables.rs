//! The variables table (by namespace and path, items only as ciphertext) and the root keys'
//! metadata (by key ID). Written through [`Txn`], restored at start like the rest.

use std::sync::Arc;

use imbl::OrdMap;

use super::StateError;
use super::durable::Kind;
use super::restore::decode;
use super::tables::{NsKey, Table, ns_key};
use super::txn::{Txn, ns_disk_key};
use crate::structs::keyring::{RootKeyMeta, RootKeyState};
use crate::structs::variable::VariableEncrypted;

/// The variables part of the state.
#[derive(Debug, Clone, Default)]
pub struct VariableTables {
    pub variables: OrdMap<NsKey, Arc<VariableEncrypted>>,
    pub root_keys: OrdMap<String, Arc<RootKeyMeta>>,
}

impl VariableTables {
    /// The variable at `path` in `ns`.
    pub fn get(&self, ns: &str, path: &str) -> Option<Arc<VariableEncrypted>> {
        self.variables.get(&ns_key(ns, path)).cloned()
    }

    /// Variables in `ns` (`*` for all) whose path starts with `prefix`, by namespace and path.
    pub fn with_prefix(&self, ns: &str, prefix: &str) -> Vec<Arc<VariableEncrypted>> {
        if ns == crate::acl::ALL_NAMESPACES {
            return self
                .variables
                .values()
                .filter(|v| v.meta.path.starts_with(prefix))
                .cloned()
                .collect();
        }
        // Paths sharing a prefix sort together: read only their range.
        self.variables
            .range(ns_key(ns, prefix)..)
            .take_while(|((vns, path), _)| vns == ns && path.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Variables sealed with the key `key_id`.
    pub fn sealed_with(&self, key_id: &str) -> Vec<Arc<VariableEncrypted>> {
        self.variables
            .values()
            .filter(|v| v.key_id == key_id)
            .cloned()
            .collect()
    }

    /// The key every new write is sealed with.
    pub fn active_key(&self) -> Option<Arc<RootKeyMeta>> {
        self.root_keys.values().find(|k| k.is_active()).cloned()
    }
}

impl Txn {
    /// Stores a variable, stamping ModifyIndex (CreateIndex and CreateTime kept from the
    /// one it replaces, else set now).
    pub fn put_variable(
        &mut self,
        mut var: VariableEncrypted,
    ) -> Result<Arc<VariableEncrypted>, StateError> {
        let index = self.index();
        let key = ns_key(&var.meta.namespace, &var.meta.path);
        match self.tables.vars.variables.get(&key) {
            Some(old) => {
                var.meta.create_index = old.meta.create_index;
                var.meta.create_time = old.meta.create_time;
            }
            None => var.meta.create_index = index,
        }
        var.meta.modify_index = index;
        self.batch.put(
            Kind::Variables,
            ns_disk_key(&var.meta.namespace, &var.meta.path),
            self.batch.encode(&var)?,
        );
        let var = Arc::new(var);
        self.tables.vars.variables.insert(key, var.clone());
        self.touch(Table::Variables);
        Ok(var)
    }

    /// Removes a variable; false when there was none.
    pub fn delete_variable(&mut self, ns: &str, path: &str) -> bool {
        if self
            .tables
            .vars
            .variables
            .remove(&ns_key(ns, path))
            .is_none()
        {
            return false;
        }
        self.batch.delete(Kind::Variables, ns_disk_key(ns, path));
        self.touch(Table::Variables);
        true
    }

    /// Stores a root key's metadata, stamping its indexes. A key stored active makes every
    /// other active key inactive (`rekeying` with `rekey`, whose variables are then to be
    /// sealed again), as Nomad's rotation does.
    pub fn put_root_key(&mut self, mut meta: RootKeyMeta, rekey: bool) -> Result<(), StateError> {
        let index = self.index();
        meta.create_index = match self.tables.vars.root_keys.get(&meta.key_id) {
            Some(old) => old.create_index,
            None => index,
        };
        meta.modify_index = index;
        if meta.is_active() {
            let others: Vec<Arc<RootKeyMeta>> = self
                .tables
                .vars
                .root_keys
                .values()
                .filter(|k| k.key_id != meta.key_id)
                .cloned()
                .collect();
            for other in others {
                let state = match other.state {
                    RootKeyState::Active | RootKeyState::Inactive if rekey => {
                        RootKeyState::Rekeying
                    }
                    RootKeyState::Active => RootKeyState::Inactive,
                    unchanged => unchanged,
                };
                if state != other.state {
                    let mut changed = (*other).clone();
                    changed.state = state;
                    self.store_root_key(changed)?;
                }
            }
        }
        self.store_root_key(meta)
    }

    /// Stores a key's metadata as it is but for its ModifyIndex.
    fn store_root_key(&mut self, mut meta: RootKeyMeta) -> Result<(), StateError> {
        meta.modify_index = self.index();
        self.batch.put(
            Kind::RootKeys,
            meta.key_id.clone(),
            self.batch.encode(&meta)?,
        );
        self.tables
            .vars
            .root_keys
            .insert(meta.key_id.clone(), Arc::new(meta));
        self.touch(Table::RootKeys);
        Ok(())
    }

    /// Sets the state of a stored key (a rekey done marks its keys inactive).
    pub fn set_root_key_state(
        &mut self,
        key_id: &str,
        state: RootKeyState,
    ) -> Result<(), StateError> {
        let Some(old) = self.tables.vars.root_keys.get(key_id).cloned() else {
            return Err(StateError::NotFound("root key not found".to_string()));
        };
        let mut meta = (*old).clone();
        meta.state = state;
        self.store_root_key(meta)
    }

    /// Removes a key's metadata; false when there was none.
    pub fn delete_root_key(&mut self, key_id: &str) -> bool {
        if self.tables.vars.root_keys.remove(key_id).is_none() {
            return false;
        }
        self.batch.delete(Kind::RootKeys, key_id.to_string());
        self.touch(Table::RootKeys);
        true
    }
}

/// Puts one variable or root key record back into `t`.
pub(super) fn restore_record(
    t: &mut VariableTables,
    kind: Kind,
    key: &str,
    bytes: &[u8],
) -> Result<(), StateError> {
    match kind {
        Kind::Variables => {
            let v: VariableEncrypted = decode(kind, key, bytes)?;
            t.variables
                .insert(ns_key(&v.meta.namespace, &v.meta.path), Arc::new(v));
        }
        Kind::RootKeys => {
            let k: RootKeyMeta = decode(kind, key, bytes)?;
            t.root_keys.insert(k.key_id.clone(), Arc::new(k));
        }
        other => {
            return Err(StateError::Storage(format!(
                "{other:?} record {key:?} is not a variables record"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::state::StateStore;
    use crate::structs::variable::VariableMetadata;

    fn var(path: &str, key: &str) -> VariableEncrypted {
        VariableEncrypted {
            meta: VariableMetadata::bare("default", path),
            data: vec![1, 2, 3],
            key_id: key.into(),
        }
    }

    #[tokio::test]
    async fn variables_and_keys_survive_a_restart_with_their_indexes() {
        let dir = std::env::temp_dir().join(format!("yurt-vars-state-{}", uuid::Uuid::new_v4()));
        let (first, second) = {
            let store = StateStore::open(&dir).unwrap();
            let (first, _) = store
                .write(|txn| {
                    txn.put_root_key(RootKeyMeta::new_active("k1".into(), 1), false)?;
                    txn.put_variable(var("app/db", "k1")).map(drop)
                })
                .await
                .unwrap();
            let (second, _) = store
                .write(|txn| {
                    txn.put_root_key(RootKeyMeta::new_active("k2".into(), 2), true)?;
                    txn.put_variable(var("app/db", "k2")).map(drop)
                })
                .await
                .unwrap();
            (first, second)
        };
        let store = StateStore::open(&dir).unwrap();
        let snap = store.snapshot();
        let v = snap.vars.get("default", "app/db").unwrap();
        assert_eq!((v.meta.create_index, v.meta.modify_index), (first, second));
        assert_eq!(v.key_id, "k2");
        assert_eq!(snap.vars.active_key().unwrap().key_id, "k2");
        let k1 = snap.vars.root_keys.get("k1").unwrap();
        assert_eq!(k1.state, RootKeyState::Rekeying);
        assert_eq!((k1.create_index, k1.modify_index), (first, second));
        assert_eq!(snap.vars.sealed_with("k2").len(), 1);
        assert_eq!(snap.table_index(Table::Variables), second);
        drop(snap);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn prefix_lists_stay_in_their_namespace() {
        let store = StateStore::in_memory();
        store
            .write(|txn| {
                for p in ["a/1", "a/2", "b/1"] {
                    txn.put_variable(var(p, "k"))?;
                }
                let mut other = var("a/3", "k");
                other.meta.namespace = "prod".into();
                txn.put_variable(other).map(drop)
            })
            .await
            .unwrap();
        let snap = store.snapshot();
        let paths = |ns: &str, prefix: &str| -> Vec<String> {
            snap.vars
                .with_prefix(ns, prefix)
                .iter()
                .map(|v| format!("{}:{}", v.meta.namespace, v.meta.path))
                .collect()
        };
        assert_eq!(paths("default", "a/"), ["default:a/1", "default:a/2"]);
        assert_eq!(paths("*", "a/"), ["default:a/1", "default:a/2", "prod:a/3"]);
        assert_eq!(paths("prod", ""), ["prod:a/3"]);
        store
            .write(|txn| Ok(txn.delete_variable("default", "a/1")))
            .await
            .unwrap();
        assert!(store.snapshot().vars.get("default", "a/1").is_none());
    }
}
