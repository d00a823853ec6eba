//! The ACL tables: policies by name, tokens by accessor ID with an index by secret, roles by
//! ID; and the bootstrap index. Written through [`Txn`], restored at start like the rest.

use std::sync::Arc;

use imbl::{HashMap, OrdMap};

use super::StateError;
use super::durable::Kind;
use super::restore::decode;
use super::tables::Table;
use super::txn::Txn;
use crate::server::events::Object;
use crate::structs::acl::{AclPolicy, AclRole, AclToken, OneTimeToken};
use crate::structs::secret::secrets_equal;

/// Meta record holding the index of the last ACL bootstrap (0: never bootstrapped).
pub const BOOTSTRAP_META_KEY: &str = "acl_token_bootstrap";

/// The ACL part of the state.
#[derive(Debug, Clone, Default)]
pub struct AclTables {
    pub policies: OrdMap<String, Arc<AclPolicy>>,
    pub tokens: OrdMap<String, Arc<AclToken>>,
    /// Secret ID → accessor ID.
    tokens_by_secret: HashMap<String, String>,
    pub roles: OrdMap<String, Arc<AclRole>>,
    /// One-time tokens by their one-time secret.
    one_time: HashMap<String, Arc<OneTimeToken>>,
    /// Index of the last bootstrap; 0 when the cluster was never bootstrapped.
    pub bootstrap_index: u64,
}

impl AclTables {
    /// The token whose secret is `secret`. The map finds the candidate; the final check
    /// compares the secrets in constant time.
    pub fn token_by_secret(&self, secret: &str) -> Option<Arc<AclToken>> {
        let accessor = self.tokens_by_secret.get(secret)?;
        let token = self.tokens.get(accessor)?;
        secrets_equal(&token.secret_id, secret).then(|| token.clone())
    }

    /// The one-time token whose secret is `secret` (checked in constant time).
    pub fn one_time_by_secret(&self, secret: &str) -> Option<Arc<OneTimeToken>> {
        let t = self.one_time.get(secret)?;
        secrets_equal(&t.one_time_secret_id, secret).then(|| t.clone())
    }

    /// Every one-time token.
    pub fn one_time_tokens(&self) -> impl Iterator<Item = &Arc<OneTimeToken>> {
        self.one_time.values()
    }

    /// A role by name.
    pub fn role_by_name(&self, name: &str) -> Option<Arc<AclRole>> {
        self.roles.values().find(|r| r.name == name).cloned()
    }

    fn insert_token(&mut self, token: Arc<AclToken>) {
        if let Some(old) = self.tokens.get(&token.accessor_id) {
            self.tokens_by_secret.remove(&old.secret_id);
        }
        self.tokens_by_secret
            .insert(token.secret_id.clone(), token.accessor_id.clone());
        self.tokens.insert(token.accessor_id.clone(), token);
    }
}

impl Txn {
    /// Stores a policy, stamping its indexes.
    pub fn put_acl_policy(&mut self, mut policy: AclPolicy) -> Result<(), StateError> {
        let index = self.index();
        policy.create_index = match self.tables.acl.policies.get(&policy.name) {
            Some(old) => old.create_index,
            None => index,
        };
        policy.modify_index = index;
        self.batch.put(
            Kind::AclPolicies,
            policy.name.clone(),
            self.batch.encode(&policy)?,
        );
        let policy = Arc::new(policy);
        self.tables
            .acl
            .policies
            .insert(policy.name.clone(), policy.clone());
        self.touch(Table::AclPolicies);
        self.record(Object::AclPolicy(policy), false);
        Ok(())
    }

    /// Removes a policy; false when there was none.
    pub fn delete_acl_policy(&mut self, name: &str) -> bool {
        let Some(old) = self.tables.acl.policies.remove(name) else {
            return false;
        };
        self.batch.delete(Kind::AclPolicies, name.to_string());
        self.touch(Table::AclPolicies);
        self.record(Object::AclPolicy(old), true);
        true
    }

    /// Stores a token, stamping its indexes (CreateIndex kept on update).
    pub fn put_acl_token(&mut self, mut token: AclToken) -> Result<Arc<AclToken>, StateError> {
        let index = self.index();
        token.create_index = match self.tables.acl.tokens.get(&token.accessor_id) {
            Some(old) => old.create_index,
            None => index,
        };
        token.modify_index = index;
        self.batch.put(
            Kind::AclTokens,
            token.accessor_id.clone(),
            self.batch.encode(&token)?,
        );
        let token = Arc::new(token);
        self.tables.acl.insert_token(token.clone());
        self.touch(Table::AclTokens);
        self.record(Object::AclToken(token.clone()), false);
        Ok(token)
    }

    /// Removes a token; false when there was none.
    pub fn delete_acl_token(&mut self, accessor: &str) -> bool {
        let Some(old) = self.tables.acl.tokens.remove(accessor) else {
            return false;
        };
        self.tables.acl.tokens_by_secret.remove(&old.secret_id);
        self.batch.delete(Kind::AclTokens, accessor.to_string());
        self.touch(Table::AclTokens);
        self.record(Object::AclToken(old), true);
        true
    }

    /// Stores a one-time token.
    pub fn put_one_time_token(
        &mut self,
        mut t: OneTimeToken,
    ) -> Result<Arc<OneTimeToken>, StateError> {
        t.create_index = self.index();
        t.modify_index = self.index();
        self.batch.put(
            Kind::AclOneTimeTokens,
            t.one_time_secret_id.clone(),
            self.batch.encode(&t)?,
        );
        let t = Arc::new(t);
        self.tables
            .acl
            .one_time
            .insert(t.one_time_secret_id.clone(), t.clone());
        self.touch(Table::AclTokens);
        Ok(t)
    }

    /// Removes a one-time token; false when there was none.
    pub fn delete_one_time_token(&mut self, secret: &str) -> bool {
        if self.tables.acl.one_time.remove(secret).is_none() {
            return false;
        }
        self.batch
            .delete(Kind::AclOneTimeTokens, secret.to_string());
        self.touch(Table::AclTokens);
        true
    }

    /// Records that the cluster was bootstrapped at this write's index.
    pub fn set_acl_bootstrapped(&mut self) -> Result<(), StateError> {
        let index = self.index();
        self.tables.acl.bootstrap_index = index;
        self.batch.put(
            Kind::Meta,
            BOOTSTRAP_META_KEY.to_string(),
            self.batch.encode(&index)?,
        );
        self.touch(Table::AclTokens);
        Ok(())
    }

    /// Stores a role, stamping its indexes.
    pub fn put_acl_role(&mut self, mut role: AclRole) -> Result<Arc<AclRole>, StateError> {
        let index = self.index();
        role.create_index = match self.tables.acl.roles.get(&role.id) {
            Some(old) => old.create_index,
            None => index,
        };
        role.modify_index = index;
        self.batch
            .put(Kind::AclRoles, role.id.clone(), self.batch.encode(&role)?);
        let role = Arc::new(role);
        self.tables.acl.roles.insert(role.id.clone(), role.clone());
        self.touch(Table::AclRoles);
        self.record(Object::AclRole(role.clone()), false);
        Ok(role)
    }

    /// Removes a role; false when there was none.
    pub fn delete_acl_role(&mut self, id: &str) -> bool {
        let Some(old) = self.tables.acl.roles.remove(id) else {
            return false;
        };
        self.batch.delete(Kind::AclRoles, id.to_string());
        self.touch(Table::AclRoles);
        self.record(Object::AclRole(old), true);
        true
    }
}

/// Puts one ACL record back into `t`.
pub(super) fn restore_record(
    t: &mut AclTables,
    kind: Kind,
    key: &str,
    bytes: &[u8],
) -> Result<(), StateError> {
    match kind {
        Kind::AclPolicies => {
            let p: AclPolicy = decode(kind, key, bytes)?;
            t.policies.insert(p.name.clone(), Arc::new(p));
        }
        Kind::AclTokens => {
            let tok: AclToken = decode(kind, key, bytes)?;
            t.insert_token(Arc::new(tok));
        }
        Kind::AclOneTimeTokens => {
            let o: OneTimeToken = decode(kind, key, bytes)?;
            t.one_time.insert(o.one_time_secret_id.clone(), Arc::new(o));
        }
        Kind::AclRoles => {
            let r: AclRole = decode(kind, key, bytes)?;
            t.roles.insert(r.id.clone(), Arc::new(r));
        }
        other => {
            return Err(StateError::Storage(format!(
                "{other:?} record {key:?} is not an ACL record"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::state::StateStore;

    #[tokio::test]
    async fn acl_objects_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("yurt-acl-state-{}", uuid::Uuid::new_v4()));
        let token = AclToken {
            accessor_id: "acc-1".into(),
            secret_id: "sec-1".into(),
            r#type: "client".into(),
            policies: vec!["readers".into()],
            ..AclToken::default()
        };
        {
            let store = StateStore::open(&dir).unwrap();
            store
                .write(|txn| {
                    txn.put_acl_policy(AclPolicy {
                        name: "readers".into(),
                        rules: "node {\n policy = \"read\"\n}".into(),
                        ..AclPolicy::default()
                    })?;
                    txn.put_acl_token(token.clone())?;
                    txn.put_acl_role(AclRole {
                        id: "role-1".into(),
                        name: "ops".into(),
                        ..AclRole::default()
                    })?;
                    txn.set_acl_bootstrapped()
                })
                .await
                .unwrap();
        }
        let store = StateStore::open(&dir).unwrap();
        let snap = store.snapshot();
        assert!(snap.acl.policies.contains_key("readers"));
        assert_eq!(
            snap.acl.token_by_secret("sec-1").unwrap().accessor_id,
            "acc-1"
        );
        assert!(snap.acl.token_by_secret("sec-2").is_none());
        assert_eq!(snap.acl.role_by_name("ops").unwrap().id, "role-1");
        assert!(snap.acl.bootstrap_index > 0);
        assert!(snap.table_index(Table::AclTokens) > 1);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_rotated_secret_no_longer_resolves() {
        let store = StateStore::in_memory();
        let mut token = AclToken {
            accessor_id: "a".into(),
            secret_id: "old".into(),
            ..AclToken::default()
        };
        store
            .write(|t| t.put_acl_token(token.clone()).map(|_| ()))
            .await
            .unwrap();
        token.secret_id = "new".into();
        store
            .write(|t| t.put_acl_token(token.clone()).map(|_| ()))
            .await
            .unwrap();
        let snap = store.snapshot();
        assert!(snap.acl.token_by_secret("old").is_none());
        assert!(snap.acl.token_by_secret("new").is_some());
        store.write(|t| Ok(t.delete_acl_token("a"))).await.unwrap();
        assert!(store.snapshot().acl.token_by_secret("new").is_none());
    }
}
