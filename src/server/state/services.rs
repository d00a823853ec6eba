//! The native service registrations (by namespace and ID, indexed by allocation). Written
//! through [`Txn`]; a registration lives no longer than its allocation runs: the writes that
//! make an allocation terminal, lost or gone remove its registrations in the same write.

use std::sync::Arc;

use imbl::{HashMap, OrdMap, OrdSet};

use super::StateError;
use super::durable::Kind;
use super::tables::{NsKey, Table, ns_key};
use super::txn::{Txn, encode, ns_disk_key};
use crate::server::events::Object;
use crate::structs::service::ServiceRegistration;

/// The service registrations part of the state.
#[derive(Debug, Clone, Default)]
pub struct ServiceTables {
    /// Registrations by `(namespace, ID)`.
    pub regs: OrdMap<NsKey, Arc<ServiceRegistration>>,
    /// The keys of each allocation's registrations.
    by_alloc: HashMap<String, OrdSet<NsKey>>,
}

impl ServiceTables {
    /// Adds (or replaces) a registration and indexes it; the restorer's and writes' one way in.
    pub(super) fn insert(&mut self, reg: Arc<ServiceRegistration>) {
        let key = ns_key(&reg.namespace, &reg.id);
        self.by_alloc
            .entry(reg.alloc_id.clone())
            .or_default()
            .insert(key.clone());
        self.regs.insert(key, reg);
    }

    fn remove(&mut self, key: &NsKey) -> Option<Arc<ServiceRegistration>> {
        let reg = self.regs.remove(key)?;
        if let Some(set) = self.by_alloc.get_mut(&reg.alloc_id) {
            set.remove(key);
            if set.is_empty() {
                self.by_alloc.remove(&reg.alloc_id);
            }
        }
        Some(reg)
    }

    /// A registration by namespace and ID.
    pub fn get(&self, ns: &str, id: &str) -> Option<Arc<ServiceRegistration>> {
        self.regs.get(&ns_key(ns, id)).cloned()
    }

    /// Registrations in `ns` (`*`: every namespace), by namespace and ID.
    pub fn in_namespace(&self, ns: &str) -> Vec<Arc<ServiceRegistration>> {
        if ns == crate::acl::ALL_NAMESPACES {
            return self.regs.values().cloned().collect();
        }
        self.regs
            .range(ns_key(ns, "")..)
            .take_while(|((rns, _), _)| rns == ns)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The instances of service `name` in `ns`.
    pub fn by_name(&self, ns: &str, name: &str) -> Vec<Arc<ServiceRegistration>> {
        self.in_namespace(ns)
            .into_iter()
            .filter(|r| r.service_name == name)
            .collect()
    }

    /// The registrations of one allocation.
    pub fn by_alloc(&self, alloc_id: &str) -> Vec<Arc<ServiceRegistration>> {
        self.by_alloc
            .get(alloc_id)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| self.regs.get(k).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The registrations of a job's allocations.
    pub fn by_job(&self, ns: &str, job_id: &str) -> Vec<Arc<ServiceRegistration>> {
        self.in_namespace(ns)
            .into_iter()
            .filter(|r| r.job_id == job_id)
            .collect()
    }

    /// The registrations made from a node.
    pub fn by_node(&self, node_id: &str) -> Vec<Arc<ServiceRegistration>> {
        self.regs
            .values()
            .filter(|r| r.node_id == node_id)
            .cloned()
            .collect()
    }
}

impl Txn {
    /// Stores a registration, stamping ModifyIndex (CreateIndex kept from the one it
    /// replaces). One that describes the same instance as the stored one is left as it is,
    /// so a client repeating its registrations moves no index.
    pub fn put_service(&mut self, mut reg: ServiceRegistration) -> Result<(), StateError> {
        let key = ns_key(&reg.namespace, &reg.id);
        match self.tables.services.regs.get(&key) {
            Some(old) if old.same_as(&reg) => return Ok(()),
            Some(old) => reg.create_index = old.create_index,
            None => reg.create_index = self.index(),
        }
        reg.modify_index = self.index();
        self.batch.put(
            Kind::Services,
            ns_disk_key(&reg.namespace, &reg.id),
            encode(&reg)?,
        );
        let reg = Arc::new(reg);
        self.tables.services.insert(reg.clone());
        self.record(Object::Service(reg), false);
        self.touch(Table::Services);
        Ok(())
    }

    /// Removes a registration; false when there was none.
    pub fn delete_service(&mut self, ns: &str, id: &str) -> bool {
        let Some(reg) = self.tables.services.remove(&ns_key(ns, id)) else {
            return false;
        };
        self.batch.delete(Kind::Services, ns_disk_key(ns, id));
        self.record(Object::Service(reg), true);
        self.touch(Table::Services);
        true
    }

    /// Removes every registration of an allocation (it stopped, was lost or is gone).
    pub fn delete_alloc_services(&mut self, alloc_id: &str) {
        for reg in self.tables.services.by_alloc(alloc_id) {
            self.delete_service(&reg.namespace, &reg.id);
        }
    }

    /// Removes every registration made from a node (it went down).
    pub fn delete_node_services(&mut self, node_id: &str) {
        for reg in self.tables.services.by_node(node_id) {
            self.delete_service(&reg.namespace, &reg.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::state::StateStore;

    fn reg(id: &str, alloc: &str, node: &str) -> ServiceRegistration {
        ServiceRegistration {
            id: id.into(),
            service_name: "web".into(),
            namespace: "default".into(),
            node_id: node.into(),
            job_id: "job".into(),
            alloc_id: alloc.into(),
            address: "127.0.0.1".into(),
            port: 8080,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn registrations_survive_a_restart_and_repeats_move_no_index() {
        let dir = std::env::temp_dir().join(format!("yurt-svc-state-{}", uuid::Uuid::new_v4()));
        {
            let store = StateStore::open(&dir).unwrap();
            let (first, _) = store
                .write(|txn| {
                    txn.put_service(reg("s1", "a1", "n1"))?;
                    txn.put_service(reg("s2", "a2", "n2"))
                })
                .await
                .unwrap();
            store
                .write(|txn| txn.put_service(reg("s1", "a1", "n1")))
                .await
                .unwrap();
            let snap = store.snapshot();
            assert_eq!(snap.table_index(Table::Services), first);
            assert_eq!(
                snap.services.get("default", "s1").unwrap().modify_index,
                first
            );
        }
        let store = StateStore::open(&dir).unwrap();
        let snap = store.snapshot();
        assert_eq!(snap.services.by_alloc("a2").len(), 1);
        assert_eq!(snap.services.by_name("default", "web").len(), 2);
        assert!(snap.services.in_namespace("other").is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn alloc_and_node_removal_take_their_registrations() {
        let store = StateStore::in_memory();
        store
            .write(|txn| {
                txn.put_service(reg("s1", "a1", "n1"))?;
                txn.put_service(reg("s2", "a1", "n1"))?;
                txn.put_service(reg("s3", "a2", "n2"))
            })
            .await
            .unwrap();
        store
            .write(|txn| {
                txn.delete_alloc_services("a1");
                Ok(())
            })
            .await
            .unwrap();
        let snap = store.snapshot();
        assert!(snap.services.by_alloc("a1").is_empty());
        assert_eq!(snap.services.regs.len(), 1);
        store
            .write(|txn| {
                txn.delete_node_services("n2");
                Ok(())
            })
            .await
            .unwrap();
        assert!(store.snapshot().services.regs.is_empty());
    }
}
