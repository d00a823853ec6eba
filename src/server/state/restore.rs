//! Rebuilds the in-memory tables from a stream of records: the durable store's at start, or a
//! Raft snapshot's. Both hold the same `(Kind, key, JSON)` records (see `records.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::StateError;
use super::durable::{Durable, Kind};
use super::sharing::Sharing;
use super::tables::{Table, Tables, ns_key};
use super::txn::StoredAlloc;
use crate::structs::{
    Deployment, Evaluation, Job, JobScalingEvents, JobSubmission, Namespace, Node,
};

pub(super) fn decode<T: DeserializeOwned>(
    kind: Kind,
    key: &str,
    bytes: &[u8],
) -> Result<T, StateError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StateError::Storage(format!("decoding {kind:?} record {key:?}: {e}")))
}

/// Loads every record of the durable store and rebuilds tables and secondary indexes.
pub(super) fn restore(d: &Durable) -> Result<Tables, StateError> {
    let mut r = Restorer::default();
    // One kind in memory at a time, in the order the restorer needs them.
    for kind in Kind::ALL {
        for (key, bytes) in d.load(kind)? {
            r.add(kind, &key, &bytes)?;
        }
    }
    Ok(r.finish())
}

/// Tables rebuilt one record at a time. Records must come kind by kind in [`Kind::ALL`]'s
/// order (allocations after the job copies they point at); within a kind, job versions in
/// ascending key order, as the durable store and snapshots both list them.
#[derive(Default)]
pub struct Restorer {
    t: Tables,
    alloc_jobs: HashMap<String, Arc<Job>>,
    sharing: Sharing,
    /// Position in [`Kind::ALL`] of the last record's kind.
    at: usize,
}

impl Restorer {
    /// Puts one record (its plain JSON) back.
    pub fn add(&mut self, kind: Kind, key: &str, bytes: &[u8]) -> Result<(), StateError> {
        let pos = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        if pos < self.at {
            return Err(StateError::Storage(format!(
                "{kind:?} record {key:?} after the {:?} records: records out of order",
                Kind::ALL[self.at]
            )));
        }
        self.at = pos;
        let t = &mut self.t;
        match kind {
            Kind::Meta => {
                if key == super::txn::SCHEDULER_CONFIG_KEY {
                    t.scheduler_config = Some(Arc::new(decode(kind, key, bytes)?));
                    return Ok(());
                }
                let value: u64 = decode(kind, key, bytes)?;
                if key == "index" {
                    t.index = value;
                } else if key == super::acl::BOOTSTRAP_META_KEY {
                    t.acl.bootstrap_index = value;
                } else if let Some(name) = key.strip_prefix("table:")
                    && let Some(table) = Table::ALL.iter().find(|tb| tb.name() == name)
                {
                    t.table_index[table.pos()] = value;
                }
            }
            Kind::Jobs => {
                let job: Job = decode(kind, key, bytes)?;
                t.jobs
                    .insert(ns_key(&job.namespace, &job.id), Arc::new(job));
            }
            Kind::JobVersions => {
                // Keys sort by version ascending, so pushing to the front leaves newest first.
                let job: Job = decode(kind, key, bytes)?;
                let k = ns_key(&job.namespace, &job.id);
                let mut versions = t.job_versions.get(&k).cloned().unwrap_or_default();
                versions.push_front(Arc::new(job));
                t.job_versions.insert(k, versions);
            }
            Kind::AllocJobs => {
                let job: Job = decode(kind, key, bytes)?;
                t.alloc_job_keys.insert(key.to_string());
                self.alloc_jobs.insert(key.to_string(), Arc::new(job));
            }
            Kind::Allocs => {
                let stored: StoredAlloc = decode(kind, key, bytes)?;
                let mut alloc = stored.alloc;
                self.sharing.share(&mut alloc);
                alloc.job = stored
                    .job_key
                    .and_then(|k| self.alloc_jobs.get(&k).cloned());
                let id: Arc<str> = Arc::from(alloc.id.as_str());
                t.allocs_by_node
                    .entry(alloc.node_id.to_string())
                    .or_default()
                    .insert(id.clone());
                t.allocs_by_job
                    .entry(ns_key(&alloc.namespace, &alloc.job_id))
                    .or_default()
                    .insert(id.clone());
                t.allocs.insert(id, Arc::new(alloc));
            }
            Kind::Nodes => {
                let node: Node = decode(kind, key, bytes)?;
                t.nodes.insert(node.id.clone(), Arc::new(node));
            }
            Kind::Evals => {
                let eval: Evaluation = decode(kind, key, bytes)?;
                t.evals_by_job
                    .entry(ns_key(&eval.namespace, &eval.job_id))
                    .or_default()
                    .insert(eval.id.clone());
                t.evals.insert(eval.id.clone(), Arc::new(eval));
            }
            Kind::Deployments => {
                let dep: Deployment = decode(kind, key, bytes)?;
                t.deployments.insert(dep.id.clone(), Arc::new(dep));
            }
            Kind::JobSubmissions => {
                let subs: Vec<JobSubmission> = decode(kind, key, bytes)?;
                if let Some(first) = subs.first() {
                    t.job_submissions
                        .insert(ns_key(&first.namespace, &first.job_id), Arc::new(subs));
                }
            }
            Kind::ScalingEvents => {
                let events: JobScalingEvents = decode(kind, key, bytes)?;
                t.scaling_events
                    .insert(ns_key(&events.namespace, &events.job_id), Arc::new(events));
            }
            Kind::Namespaces => {
                let ns: Namespace = decode(kind, key, bytes)?;
                t.namespaces.insert(ns.name.clone(), Arc::new(ns));
            }
            Kind::AclPolicies | Kind::AclTokens | Kind::AclRoles | Kind::AclOneTimeTokens => {
                super::acl::restore_record(&mut t.acl, kind, key, bytes)?;
            }
            Kind::Variables | Kind::RootKeys => {
                super::variables::restore_record(&mut t.vars, kind, key, bytes)?;
            }
            Kind::Services => t.services.insert(Arc::new(decode(kind, key, bytes)?)),
        }
        Ok(())
    }

    /// The tables rebuilt so far.
    pub fn finish(self) -> Tables {
        self.t
    }
}
