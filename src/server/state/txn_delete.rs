//! Deletions: what purge and garbage collection remove from the state.

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
        let key = ns_key(&eval.namespace, &eval.job_id);
        if let Some(set) = self.tables.evals_by_job.get_mut(&key) {
            set.remove(eval_id);
            if set.is_empty() {
                self.tables.evals_by_job.remove(&key);
            }
        }
        self.batch.delete(Kind::Evals, eval_id.to_string());
        self.touch(Table::Evals);
    }

    /// Removes an allocation and its index entries.
    pub fn delete_alloc(&mut self, alloc_id: &str) {
        let Some(alloc) = self.tables.allocs.remove(alloc_id) else {
            return;
        };
        if let Some(set) = self.tables.allocs_by_node.get_mut(&*alloc.node_id) {
            set.remove(alloc_id);
            if set.is_empty() {
                self.tables.allocs_by_node.remove(&*alloc.node_id);
            }
        }
        let key = ns_key(&alloc.namespace, &alloc.job_id);
        if let Some(set) = self.tables.allocs_by_job.get_mut(&key) {
            set.remove(alloc_id);
            if set.is_empty() {
                self.tables.allocs_by_job.remove(&key);
            }
        }
        self.batch.delete(Kind::Allocs, alloc_id.to_string());
        self.touch(Table::Allocs);
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
