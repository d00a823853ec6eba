//! Deletions: what purge and garbage collection remove from the state.

use std::borrow::Borrow;
use std::hash::Hash;

use imbl::{HashMap, OrdSet};

use super::Txn;
use super::durable::Kind;
use super::tables::{Table, ns_key};

impl Txn {
    /// Removes a node (purge, GC). Its allocations stay, now on a node that is gone.
    pub fn delete_node(&mut self, node_id: &str) -> bool {
        if self.tables.nodes.remove(node_id).is_none() {
            return false;
        }
        self.batch.delete(Kind::Nodes, node_id.to_string());
        self.touch(Table::Nodes);
        true
    }

    /// Removes an evaluation.
    pub fn delete_eval(&mut self, eval_id: &str) {
        let Some(eval) = self.tables.evals.remove(eval_id) else {
            return;
        };
        unindex(
            &mut self.tables.evals_by_job,
            &ns_key(&eval.namespace, &eval.job_id),
            eval_id,
        );
        self.batch.delete(Kind::Evals, eval_id.to_string());
        self.touch(Table::Evals);
    }

    /// Removes an allocation and its index entries.
    pub fn delete_alloc(&mut self, alloc_id: &str) {
        let Some(alloc) = self.tables.allocs.remove(alloc_id) else {
            return;
        };
        unindex(
            &mut self.tables.allocs_by_node,
            &alloc.node_id.to_string(),
            alloc_id,
        );
        unindex(
            &mut self.tables.allocs_by_job,
            &ns_key(&alloc.namespace, &alloc.job_id),
            alloc_id,
        );
        self.batch.delete(Kind::Allocs, alloc_id.to_string());
        self.touch(Table::Allocs);
        self.delete_alloc_services(alloc_id);
    }

    /// Removes a deployment.
    pub fn delete_deployment(&mut self, id: &str) {
        if self.tables.deployments.remove(id).is_some() {
            self.batch.delete(Kind::Deployments, id.to_string());
            self.touch(Table::Deployments);
        }
    }

    /// Forgets the job copies stored for a job's allocations; only for a job that has no
    /// allocation left (garbage collection), or they could not be restored.
    pub fn delete_alloc_jobs(&mut self, ns: &str, job_id: &str) {
        let prefix = format!("{ns}\0{job_id}\0");
        let keys: Vec<String> = self
            .tables
            .alloc_job_keys
            .iter()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        for k in keys {
            self.tables.alloc_job_keys.remove(&k);
            self.batch.delete(Kind::AllocJobs, k);
        }
    }
}

/// Drops `id` from the set an index keeps under `key`, and the set once it is empty.
fn unindex<K, V>(index: &mut HashMap<K, OrdSet<V>>, key: &K, id: &str)
where
    K: Hash + Eq + Clone,
    V: Ord + Clone + Borrow<str>,
{
    if let Some(set) = index.get_mut(key) {
        set.remove(id);
        if set.is_empty() {
            index.remove(key);
        }
    }
}
