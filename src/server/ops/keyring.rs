//! Root key management (Nomad's Keyring.Rotate, Keyring.List and Keyring.Delete): the first
//! key, rotation (with `full`, every variable sealed again with the new key), and deletion
//! of keys nothing needs any more.

use std::sync::Arc;

use crate::server::state::{StateError, Txn};
use crate::server::{Server, ServerError};
use crate::structs::keyring::{RootKeyMeta, RootKeyState};
use crate::structs::time::now_nanos;

impl Server {
    /// Makes sure a key is active, creating the first one when there is none.
    pub async fn ensure_active_key(&self) -> Result<(), ServerError> {
        if self.state.snapshot().vars.active_key().is_some() {
            return Ok(());
        }
        let _creating = self.keyring.creating.lock().await;
        if self.state.snapshot().vars.active_key().is_some() {
            return Ok(());
        }
        let id = self.keyring.generate()?;
        self.state
            .write(|txn| txn.put_root_key(RootKeyMeta::new_active(id.clone(), now_nanos()), false))
            .await?;
        tracing::info!(key_id = %id, "created the first root key");
        Ok(())
    }

    /// Makes a new active key. With `full`, every variable sealed with an older key is
    /// sealed again with the new one in the same write, and the older keys end inactive.
    pub async fn rotate_root_key(&self, full: bool) -> Result<(u64, RootKeyMeta), ServerError> {
        let _creating = self.keyring.creating.lock().await;
        let id = self.keyring.generate()?;
        let (index, meta) = self
            .state
            .write(|txn| {
                txn.put_root_key(RootKeyMeta::new_active(id.clone(), now_nanos()), full)?;
                if full {
                    self.rekey_variables(txn, &id)?;
                }
                txn.tables()
                    .vars
                    .root_keys
                    .get(&id)
                    .map(|k| (**k).clone())
                    .ok_or_else(|| StateError::NotFound("root key not found".into()))
            })
            .await?;
        tracing::info!(key_id = %id, full, "rotated the root key");
        Ok((index, meta))
    }

    /// Seals again with `new_key` every variable of a key in the `rekeying` state; a key
    /// all of whose variables were sealed again becomes inactive. A variable that cannot be
    /// opened (its key was deleted with `force`) is left as it is, and so is its key's state.
    fn rekey_variables(&self, txn: &mut Txn, new_key: &str) -> Result<(), StateError> {
        let rekeying: Vec<Arc<RootKeyMeta>> = txn
            .tables()
            .vars
            .root_keys
            .values()
            .filter(|k| k.state == RootKeyState::Rekeying)
            .cloned()
            .collect();
        for key in rekeying {
            let mut all_done = true;
            for var in txn.tables().vars.sealed_with(&key.key_id) {
                let aad = super::variables::aad(&var.meta.namespace, &var.meta.path);
                let plain = match self.keyring.decrypt(&var.key_id, &aad, &var.data) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(namespace = %var.meta.namespace, path = %var.meta.path,
                            error = %e, "variable left sealed with its old key");
                        all_done = false;
                        continue;
                    }
                };
                let data = self
                    .keyring
                    .encrypt(new_key, &aad, &plain)
                    .map_err(|e| StateError::Storage(e.to_string()))?;
                let mut resealed = (*var).clone();
                resealed.data = data;
                resealed.key_id = new_key.to_string();
                txn.put_variable(resealed)?;
            }
            if all_done {
                txn.set_root_key_state(&key.key_id, RootKeyState::Inactive)?;
            }
        }
        Ok(())
    }

    /// Deletes a key that is not active and, unless `force`, seals no variable.
    pub async fn delete_root_key(&self, key_id: &str, force: bool) -> Result<u64, ServerError> {
        let _creating = self.keyring.creating.lock().await;
        let (index, _) = self
            .state
            .write(|txn| {
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
                Ok(())
            })
            .await
            .map_err(ServerError::refused_write)?;
        self.keyring.remove(key_id)?;
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Arc<Server> {
        Server::open(crate::server::ServerConfig::default()).unwrap()
    }

    #[tokio::test]
    async fn the_first_key_is_made_once() {
        let s = server();
        let (a, b) = tokio::join!(s.ensure_active_key(), s.ensure_active_key());
        a.unwrap();
        b.unwrap();
        let snap = s.state.snapshot();
        assert_eq!(snap.vars.root_keys.len(), 1);
        assert_eq!(s.keyring.key_ids().len(), 1);
    }

    #[tokio::test]
    async fn rotation_and_deletion_rules() {
        let s = server();
        s.ensure_active_key().await.unwrap();
        let first = s.state.snapshot().vars.active_key().unwrap().key_id.clone();
        let (_, second) = s.rotate_root_key(false).await.unwrap();
        assert!(second.is_active());
        let snap = s.state.snapshot();
        assert_eq!(snap.vars.root_keys[&first].state, RootKeyState::Inactive);
        let err = s.delete_root_key(&second.key_id, false).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "active root key cannot be deleted - call rotate first"
        );
        assert!(matches!(
            s.delete_root_key("nope", false).await,
            Err(ServerError::NotFound(_))
        ));
        s.delete_root_key(&first, false).await.unwrap();
        assert!(!s.state.snapshot().vars.root_keys.contains_key(&first));
        assert_eq!(s.keyring.key_ids(), vec![second.key_id.clone()]);
    }
}
