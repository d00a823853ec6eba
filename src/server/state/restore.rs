//! Rebuilds the in-memory tables from the durable store at start.

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

/// Loads every record and rebuilds tables and secondary indexes.
pub(super) fn restore(d: &Durable) -> Result<Tables, StateError> {
    let mut t = Tables::default();
    for (key, bytes) in d.load(Kind::Meta)? {
        if key == super::txn::SCHEDULER_CONFIG_KEY {
            t.scheduler_config = Some(Arc::new(decode(Kind::Meta, &key, &bytes)?));
            continue;
        }
        let value: u64 = decode(Kind::Meta, &key, &bytes)?;
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
    for (key, bytes) in d.load(Kind::Jobs)? {
        let job: Job = decode(Kind::Jobs, &key, &bytes)?;
        t.jobs
            .insert(ns_key(&job.namespace, &job.id), Arc::new(job));
    }
    // Keys sort by version ascending, so pushing to the front leaves newest first.
    for (key, bytes) in d.load(Kind::JobVersions)? {
        let job: Job = decode(Kind::JobVersions, &key, &bytes)?;
        let k = ns_key(&job.namespace, &job.id);
        let mut versions = t.job_versions.get(&k).cloned().unwrap_or_default();
        versions.push_front(Arc::new(job));
        t.job_versions.insert(k, versions);
    }
    let mut alloc_jobs: HashMap<String, Arc<Job>> = HashMap::new();
    for (key, bytes) in d.load(Kind::AllocJobs)? {
        let job: Job = decode(Kind::AllocJobs, &key, &bytes)?;
        t.alloc_job_keys.insert(key.clone());
        alloc_jobs.insert(key, Arc::new(job));
    }
    let mut sharing = Sharing::default();
    for (key, bytes) in d.load(Kind::Allocs)? {
        let stored: StoredAlloc = decode(Kind::Allocs, &key, &bytes)?;
        let mut alloc = stored.alloc;
        sharing.share(&mut alloc);
        alloc.job = stored.job_key.and_then(|k| alloc_jobs.get(&k).cloned());
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
    for (key, bytes) in d.load(Kind::Nodes)? {
        let node: Node = decode(Kind::Nodes, &key, &bytes)?;
        t.nodes.insert(node.id.clone(), Arc::new(node));
    }
    for (key, bytes) in d.load(Kind::Evals)? {
        let eval: Evaluation = decode(Kind::Evals, &key, &bytes)?;
        t.evals_by_job
            .entry(ns_key(&eval.namespace, &eval.job_id))
            .or_default()
            .insert(eval.id.clone());
        t.evals.insert(eval.id.clone(), Arc::new(eval));
    }
    for (key, bytes) in d.load(Kind::Deployments)? {
        let dep: Deployment = decode(Kind::Deployments, &key, &bytes)?;
        t.deployments.insert(dep.id.clone(), Arc::new(dep));
    }
    for (key, bytes) in d.load(Kind::JobSubmissions)? {
        let subs: Vec<JobSubmission> = decode(Kind::JobSubmissions, &key, &bytes)?;
        if let Some(first) = subs.first() {
            t.job_submissions
                .insert(ns_key(&first.namespace, &first.job_id), Arc::new(subs));
        }
    }
    for (key, bytes) in d.load(Kind::ScalingEvents)? {
        let events: JobScalingEvents = decode(Kind::ScalingEvents, &key, &bytes)?;
        t.scaling_events
            .insert(ns_key(&events.namespace, &events.job_id), Arc::new(events));
    }
    for (key, bytes) in d.load(Kind::Namespaces)? {
        let ns: Namespace = decode(Kind::Namespaces, &key, &bytes)?;
        t.namespaces.insert(ns.name.clone(), Arc::new(ns));
    }
    super::acl::restore(d, &mut t.acl)?;
    super::variables::restore(d, &mut t.vars)?;
    Ok(t)
}
