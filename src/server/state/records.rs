//! The tables as the records the durable store keeps: what a Raft snapshot writes, and what
//! [`Restorer`](super::restore::Restorer) reads back into equal tables.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::StateError;
use super::durable::Kind;
use super::tables::Tables;
use super::txn::{
    SCHEDULER_CONFIG_KEY, StoredAllocRef, alloc_job_key, encode, ns_disk_key, version_disk_key,
};
use crate::structs::Job;

/// Calls `f` with every record of `t` — kind, key and JSON — kind by kind in [`Kind::ALL`]'s
/// order, each kind in key order, as `Durable::load` lists them.
///
/// Allocations' job copies are written for the allocations that point at them; a copy no
/// allocation points at any more (its allocations were garbage collected) is left out.
pub fn for_each_record(
    t: &Tables,
    mut f: impl FnMut(Kind, &str, &[u8]) -> Result<(), StateError>,
) -> Result<(), StateError> {
    let mut put = |kind: Kind, key: &str, value: &[u8]| f(kind, key, value);
    for kind in Kind::ALL {
        match kind {
            Kind::Meta => {
                put(kind, "index", &encode(&t.index)?)?;
                if t.acl.bootstrap_index != 0 {
                    put(
                        kind,
                        super::acl::BOOTSTRAP_META_KEY,
                        &encode(&t.acl.bootstrap_index)?,
                    )?;
                }
                for table in super::Table::ALL {
                    let index = t.table_index[table.pos()];
                    if index != 0 {
                        put(kind, &format!("table:{}", table.name()), &encode(&index)?)?;
                    }
                }
                if let Some(config) = &t.scheduler_config {
                    put(kind, SCHEDULER_CONFIG_KEY, &encode(config.as_ref())?)?;
                }
            }
            Kind::Jobs => {
                for job in t.jobs.values() {
                    put(kind, &ns_disk_key(&job.namespace, &job.id), &encode(job)?)?;
                }
            }
            Kind::JobVersions => {
                for versions in t.job_versions.values() {
                    // Oldest first: the restorer pushes each to the front.
                    for job in versions.iter().rev() {
                        let key = version_disk_key(&job.namespace, &job.id, job.version);
                        put(kind, &key, &encode(job)?)?;
                    }
                }
            }
            Kind::AllocJobs => {
                let mut copies: BTreeMap<String, &Arc<Job>> = BTreeMap::new();
                for alloc in t.allocs.values() {
                    if let Some(job) = &alloc.job {
                        copies.entry(alloc_job_key(job)).or_insert(job);
                    }
                }
                for (key, job) in copies {
                    put(kind, &key, &encode(job.as_ref())?)?;
                }
            }
            Kind::Allocs => {
                for alloc in t.allocs.values() {
                    let job_key = alloc.job.as_deref().map(alloc_job_key);
                    // Stored without its job, which has a record of its own; the copy is
                    // shallow where it matters (shared strings and resources are `Arc`s).
                    let mut bare = (**alloc).clone();
                    bare.job = None;
                    let value = encode(&StoredAllocRef {
                        alloc: &bare,
                        job_key: job_key.as_deref(),
                    })?;
                    put(kind, &alloc.id, &value)?;
                }
            }
            Kind::Nodes => {
                for node in t.nodes.values() {
                    put(kind, &node.id, &encode(node.as_ref())?)?;
                }
            }
            Kind::Evals => {
                for eval in t.evals.values() {
                    put(kind, &eval.id, &encode(eval.as_ref())?)?;
                }
            }
            Kind::Deployments => {
                for d in t.deployments.values() {
                    put(kind, &d.id, &encode(d.as_ref())?)?;
                }
            }
            Kind::ScalingEvents => {
                for ((ns, id), events) in t.scaling_events.iter() {
                    put(kind, &ns_disk_key(ns, id), &encode(events.as_ref())?)?;
                }
            }
            Kind::Namespaces => {
                for ns in t.namespaces.values() {
                    put(kind, &ns.name, &encode(ns.as_ref())?)?;
                }
            }
            Kind::AclPolicies => {
                for p in t.acl.policies.values() {
                    put(kind, &p.name, &encode(p.as_ref())?)?;
                }
            }
            Kind::AclTokens => {
                for tok in t.acl.tokens.values() {
                    put(kind, &tok.accessor_id, &encode(tok.as_ref())?)?;
                }
            }
            Kind::AclRoles => {
                for r in t.acl.roles.values() {
                    put(kind, &r.id, &encode(r.as_ref())?)?;
                }
            }
            Kind::AclOneTimeTokens => {
                let mut all: Vec<_> = t.acl.one_time_tokens().collect();
                all.sort_by(|a, b| a.one_time_secret_id.cmp(&b.one_time_secret_id));
                for o in all {
                    put(kind, &o.one_time_secret_id, &encode(o.as_ref())?)?;
                }
            }
            Kind::JobSubmissions => {
                for ((ns, id), subs) in t.job_submissions.iter() {
                    put(kind, &ns_disk_key(ns, id), &encode(subs.as_ref())?)?;
                }
            }
            Kind::Variables => {
                for v in t.vars.variables.values() {
                    let key = ns_disk_key(&v.meta.namespace, &v.meta.path);
                    put(kind, &key, &encode(v.as_ref())?)?;
                }
            }
            Kind::RootKeys => {
                for k in t.vars.root_keys.values() {
                    put(kind, &k.key_id, &encode(k.as_ref())?)?;
                }
            }
            Kind::Services => {
                for r in t.services.regs.values() {
                    put(
                        kind,
                        &ns_disk_key(&r.namespace, &r.id),
                        &encode(r.as_ref())?,
                    )?;
                }
            }
        }
    }
    Ok(())
}
