//! Root key management (Nomad's Keyring.Rotate, Keyring.List and Keyring.Delete): the first
//! key, rotation (with `full`, every variable sealed again with the new key), and deletion
//! of keys nothing needs any more.

use crate::server::state::{Applied, Command, Request, StateError, Tables};
use crate::server::{Server, ServerError};
use crate::structs::keyring::{RootKeyMeta, RootKeyState};
use crate::structs::time::now_nanos;
use crate::structs::variable::VariableEncrypted;

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
            .commit(Request::new(Command::RootKeyUpsert {
                meta: RootKeyMeta::new_active(id.clone(), now_nanos()),
                rekey: false,
                resealed: Vec::new(),
            }))
            .await?;
        tracing::info!(key_id = %id, "created the first root key");
        Ok(())
    }

    /// Makes a new active key. With `full`, every variable sealed with an older key is
    /// sealed again with the new one in the same write, and the older keys end inactive.
    pub async fn rotate_root_key(&self, full: bool) -> Result<(u64, RootKeyMeta), ServerError> {
        let _creating = self.keyring.creating.lock().await;
        let id = self.keyring.generate()?;
        let resealed = if full {
            self.reseal_variables(&self.state.snapshot(), &id)?
        } else {
            Vec::new()
        };
        let (index, applied) = self
            .state
            .commit(Request::new(Command::RootKeyUpsert {
                meta: RootKeyMeta::new_active(id.clone(), now_nanos()),
                rekey: full,
                resealed,
            }))
            .await?;
        let meta = match applied {
            Applied::RootKey(meta) => (*meta).clone(),
            other => return Err(other.unexpected().into()),
        };
        tracing::info!(key_id = %id, full, "rotated the root key");
        Ok((index, meta))
    }

    /// Every variable sealed with a key other than `new_key`, sealed again with `new_key`
    /// (the keys a full rotation puts in the `rekeying` state). A variable that cannot be
    /// opened (its key was deleted with `force`) is left out, so its key stays `rekeying`.
    fn reseal_variables(
        &self,
        snap: &Tables,
        new_key: &str,
    ) -> Result<Vec<VariableEncrypted>, StateError> {
        let mut out = Vec::new();
        let rekeyed = |k: &RootKeyMeta| {
            k.key_id != new_key
                && matches!(
                    k.state,
                    RootKeyState::Active | RootKeyState::Inactive | RootKeyState::Rekeying
                )
        };
        for key in snap.vars.root_keys.values().filter(|k| rekeyed(k)) {
            for var in snap.vars.sealed_with(&key.key_id) {
                let aad = super::variables::aad(&var.meta.namespace, &var.meta.path);
                let plain = match self.keyring.decrypt(&var.key_id, &aad, &var.data) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(namespace = %var.meta.namespace, path = %var.meta.path,
                            error = %e, "variable left sealed with its old key");
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
                out.push(resealed);
            }
        }
        Ok(out)
    }

    /// Deletes a key that is not active and, unless `force`, seals no variable.
    pub async fn delete_root_key(&self, key_id: &str, force: bool) -> Result<u64, ServerError> {
        let _creating = self.keyring.creating.lock().await;
        let (index, _) = self
            .state
            .commit(Request::new(Command::RootKeyDelete {
                key_id: key_id.to_string(),
                force,
            }))
            .await
            .map_err(ServerError::refused_write)?;
        self.keyring.remove(key_id)?;
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
