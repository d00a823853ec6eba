//! A write transaction: a private copy of the tables plus the matching on-disk batch.
//! Nothing is visible to readers until the store commits it.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::StateError;
use super::durable::Kind;
use super::group_commit::Batch;
use super::tables::{JOB_TRACKED_VERSIONS, NsKey, Table, Tables, ns_key};
use crate::server::events::{Event, EventBatch, EventType, Object};
use crate::structs::time::{is_zero, now_nanos};
use crate::structs::{
    Allocation, Deployment, DeploymentStatus, DeploymentStatusUpdate, Evaluation,
    JOB_TRACKED_SCALING_EVENTS, Job, JobScalingEvents, JobStatus, JobSubmission, Namespace, Node,
    ScalingEvent, SchedulerConfiguration,
};

/// An allocation as stored on disk: without its job, which is stored once per version.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct StoredAlloc {
    pub alloc: Allocation,
    pub job_key: Option<String>,
}

/// [`StoredAlloc`]'s encoding side, borrowing the allocation (whose `job` is taken out while
/// it is encoded) so a plan of thousands of allocations is not copied once more to be written.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct StoredAllocRef<'a> {
    pub alloc: &'a Allocation,
    pub job_key: Option<&'a str>,
}

/// On-disk key of a job copy that allocations point at.
pub(super) fn alloc_job_key(job: &Job) -> String {
    format!(
        "{}\0{}\0{}\0{}",
        job.namespace, job.id, job.version, job.job_modify_index
    )
}

pub(super) fn ns_disk_key(ns: &str, id: &str) -> String {
    format!("{ns}\0{id}")
}

pub(super) fn version_disk_key(ns: &str, id: &str, version: i64) -> String {
    format!("{ns}\0{id}\0{version:020}")
}

/// Room a record's encoding starts with: an allocation is a few KiB of JSON, and growing
/// from serde_json's default 128 bytes took five reallocations each, which showed in a
/// large plan's profile. The buffer lives only until the committer has stored it.
const ENCODE_CAPACITY: usize = 4096;

/// The meta record holding the scheduler configuration (every other meta record is an index).
pub(super) const SCHEDULER_CONFIG_KEY: &str = "scheduler_config";

pub(super) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StateError> {
    let mut buf = Vec::with_capacity(ENCODE_CAPACITY);
    serde_json::to_writer(&mut buf, v)
        .map_err(|e| StateError::Storage(format!("encoding: {e}")))?;
    Ok(buf)
}

/// One write in progress.
pub struct Txn {
    pub(super) tables: Tables,
    pub(super) batch: Batch,
    pub(super) touched: [bool; Table::ALL.len()],
    index: u64,
    jobs_to_refresh: BTreeSet<NsKey>,
    /// Deployments changed by this write, encoded once when it finishes (a plan placing
    /// thousands of allocations updates its deployment's counts once per allocation).
    deployments_to_store: BTreeSet<String>,
    /// The objects this write changed, in order, each with whether it was removed; None
    /// when the store publishes no events.
    changes: Option<Vec<(Object, bool)>>,
    /// Why this write changes what it does (see [`Txn::set_event_type`]).
    event_type: Option<EventType>,
    /// The time this write stamps on what it changes (a command's apply sets its
    /// request's, so every server stamps the same).
    now: i64,
}

impl Txn {
    pub(super) fn new(tables: Tables, batch: Batch, record_changes: bool) -> Self {
        let index = tables.index + 1;
        Self::new_at(tables, index, batch, record_changes)
    }

    /// A write at `index` (a Raft log index, which every write of one entry shares).
    pub(super) fn new_at(
        mut tables: Tables,
        index: u64,
        batch: Batch,
        record_changes: bool,
    ) -> Self {
        tables.index = index;
        Txn {
            tables,
            batch,
            touched: [false; Table::ALL.len()],
            index,
            jobs_to_refresh: BTreeSet::new(),
            deployments_to_store: BTreeSet::new(),
            changes: record_changes.then(Vec::new),
            event_type: None,
            now: now_nanos(),
        }
    }

    /// Makes `now` (unix nanoseconds) the time this write stamps.
    pub(super) fn set_now(&mut self, now: i64) {
        self.now = now;
    }

    /// Names the `Type` of the events this write yields (Nomad types every event of a
    /// write by the operation: a job registration's evaluation is `JobRegistered` too).
    /// A write that names none yields each object's usual type (a job `JobRegistered`,
    /// an allocation `AllocationUpdated`, a node `NodeRegistration`, …).
    pub fn set_event_type(&mut self, ty: EventType) {
        self.event_type = Some(ty);
    }

    /// Records a changed object for the event stream: a shared pointer, nothing copied.
    pub(super) fn record(&mut self, object: Object, deleted: bool) {
        if let Some(changes) = self.changes.as_mut() {
            changes.push((object, deleted));
        }
    }

    /// The events of this write, to publish once it is visible.
    pub(super) fn take_events(&mut self) -> Option<EventBatch> {
        let changes = self.changes.take()?;
        if changes.is_empty() {
            return None;
        }
        let ty = self.event_type;
        Some(EventBatch {
            index: self.index,
            events: changes
                .into_iter()
                .map(|(object, deleted)| Event::new(object, deleted, ty))
                .collect(),
        })
    }

    /// The index this write will be committed at.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// True when nothing was written (deployments are encoded only when the write
    /// finishes, so the batch alone does not say).
    pub(super) fn writes_nothing(&self) -> bool {
        self.batch.is_empty() && self.deployments_to_store.is_empty()
    }

    /// The state as this transaction sees it (its own changes included).
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    pub(super) fn touch(&mut self, t: Table) {
        self.touched[t.pos()] = true;
        self.tables.table_index[t.pos()] = self.index;
    }

    /// Stores a job, stamping ModifyIndex (and CreateIndex when new). With `new_version` the
    /// job is also recorded as a version (the caller sets Version and JobModifyIndex).
    pub fn put_job(&mut self, mut job: Job, new_version: bool) -> Result<Arc<Job>, StateError> {
        job.modify_index = self.index;
        if job.create_index == 0 {
            job.create_index = self.index;
        }
        let key = ns_key(&job.namespace, &job.id);
        let previous = self.tables.jobs.get(&key).cloned();
        crate::structs::carry_policy_identity(&mut job, previous.as_deref(), self.index);
        let job = Arc::new(job);
        self.batch.put(
            Kind::Jobs,
            ns_disk_key(&job.namespace, &job.id),
            self.batch.encode(job.as_ref())?,
        );
        self.tables.jobs.insert(key.clone(), job.clone());
        self.touch(Table::Jobs);
        if new_version {
            let mut versions = self
                .tables
                .job_versions
                .get(&key)
                .cloned()
                .unwrap_or_default();
            versions.retain(|v| v.version != job.version);
            versions.push_front(job.clone());
            while versions.len() > JOB_TRACKED_VERSIONS {
                if let Some(old) = versions.pop_back() {
                    self.batch.delete(
                        Kind::JobVersions,
                        version_disk_key(&old.namespace, &old.id, old.version),
                    );
                }
            }
            self.batch.put(
                Kind::JobVersions,
                version_disk_key(&job.namespace, &job.id, job.version),
                self.batch.encode(job.as_ref())?,
            );
            self.tables.job_versions.insert(key.clone(), versions);
            self.touch(Table::JobVersions);
        }
        self.jobs_to_refresh.insert(key);
        self.record(Object::Job(job.clone()), false);
        Ok(job)
    }

    /// Sets the `Stable` flag of a stored job version, and of the job itself when that
    /// version is the current one. Neither the version nor JobModifyIndex moves.
    pub fn set_version_stable(
        &mut self,
        ns: &str,
        id: &str,
        version: i64,
        stable: bool,
    ) -> Result<(), StateError> {
        let key = ns_key(ns, id);
        let Some(mut versions) = self.tables.job_versions.get(&key).cloned() else {
            return Err(StateError::NotFound(format!("job {id:?} has no versions")));
        };
        let Some(pos) = versions.iter().position(|v| v.version == version) else {
            return Err(StateError::NotFound(format!(
                "job {id:?} has no version {version}"
            )));
        };
        let mut updated = (*versions[pos]).clone();
        updated.stable = stable;
        updated.modify_index = self.index;
        self.batch.put(
            Kind::JobVersions,
            version_disk_key(ns, id, version),
            self.batch.encode(&updated)?,
        );
        versions.set(pos, Arc::new(updated));
        self.tables.job_versions.insert(key, versions);
        self.touch(Table::JobVersions);
        if let Some(current) = self.tables.job(ns, id)
            && current.version == version
            && current.stable != stable
        {
            let mut job = (*current).clone();
            job.stable = stable;
            self.put_job(job, false)?;
        }
        Ok(())
    }

    /// Changes one stored version of a job in place (and the job itself when that version
    /// is the current one), stamping the version's ModifyIndex.
    pub fn update_version(
        &mut self,
        ns: &str,
        id: &str,
        version: i64,
        change: impl Fn(&mut Job),
    ) -> Result<(), StateError> {
        let key = ns_key(ns, id);
        let Some(mut versions) = self.tables.job_versions.get(&key).cloned() else {
            return Err(StateError::NotFound(format!("job {id:?} has no versions")));
        };
        let Some(pos) = versions.iter().position(|v| v.version == version) else {
            return Err(StateError::NotFound(format!(
                "job {id:?} has no version {version}"
            )));
        };
        let mut updated = (*versions[pos]).clone();
        change(&mut updated);
        updated.modify_index = self.index;
        self.batch.put(
            Kind::JobVersions,
            version_disk_key(ns, id, version),
            encode(&updated)?,
        );
        versions.set(pos, Arc::new(updated));
        self.tables.job_versions.insert(key, versions);
        self.touch(Table::JobVersions);
        if let Some(current) = self.tables.job(ns, id)
            && current.version == version
        {
            let mut job = (*current).clone();
            change(&mut job);
            self.put_job(job, false)?;
        }
        Ok(())
    }

    /// Records a scaling event of `group` (newest first, at most
    /// [`JOB_TRACKED_SCALING_EVENTS`] kept per group), stamping its CreateIndex.
    pub fn add_scaling_event(
        &mut self,
        ns: &str,
        id: &str,
        group: &str,
        mut event: ScalingEvent,
    ) -> Result<(), StateError> {
        event.create_index = self.index;
        let key = ns_key(ns, id);
        let mut all = self
            .tables
            .scaling_events
            .get(&key)
            .map(|e| (**e).clone())
            .unwrap_or_else(|| JobScalingEvents {
                namespace: ns.to_string(),
                job_id: id.to_string(),
                ..JobScalingEvents::default()
            });
        let events = all.scaling_events.entry(group.to_string()).or_default();
        events.insert(0, event);
        events.truncate(JOB_TRACKED_SCALING_EVENTS);
        self.batch.put(
            Kind::ScalingEvents,
            ns_disk_key(ns, id),
            self.batch.encode(&all)?,
        );
        self.tables.scaling_events.insert(key, Arc::new(all));
        self.touch(Table::ScalingEvents);
        Ok(())
    }

    /// Keeps the job file a version was registered from, for as long as the version is kept.
    pub fn put_job_submission(&mut self, sub: JobSubmission) -> Result<(), StateError> {
        let key = ns_key(&sub.namespace, &sub.job_id);
        let kept: Vec<u64> = self
            .tables
            .job_versions
            .get(&key)
            .map(|v| v.iter().map(|j| j.version.max(0) as u64).collect())
            .unwrap_or_default();
        let mut subs: Vec<JobSubmission> = self
            .tables
            .job_submissions
            .get(&key)
            .map(|s| s.as_ref().clone())
            .unwrap_or_default();
        subs.retain(|s| s.version != sub.version && kept.contains(&s.version));
        let disk_key = ns_disk_key(&sub.namespace, &sub.job_id);
        subs.insert(0, sub);
        self.batch
            .put(Kind::JobSubmissions, disk_key, self.batch.encode(&subs)?);
        self.tables.job_submissions.insert(key, Arc::new(subs));
        self.touch(Table::Jobs);
        Ok(())
    }

    /// Removes a job and its versions (purge). Its allocations and evaluations stay.
    pub fn delete_job(&mut self, ns: &str, id: &str) {
        let key = ns_key(ns, id);
        if self.tables.job_submissions.remove(&key).is_some() {
            self.batch.delete(Kind::JobSubmissions, ns_disk_key(ns, id));
        }
        if self.tables.scaling_events.remove(&key).is_some() {
            self.batch.delete(Kind::ScalingEvents, ns_disk_key(ns, id));
            self.touch(Table::ScalingEvents);
        }
        if let Some(old) = self.tables.jobs.remove(&key) {
            self.batch.delete(Kind::Jobs, ns_disk_key(ns, id));
            self.touch(Table::Jobs);
            self.record(Object::Job(old), true);
        }
        if let Some(versions) = self.tables.job_versions.remove(&key) {
            for v in versions.iter() {
                self.batch
                    .delete(Kind::JobVersions, version_disk_key(ns, id, v.version));
            }
            self.touch(Table::JobVersions);
        }
    }

    /// Stores an allocation changed by the server (bumps AllocModifyIndex, which makes the
    /// client pull it).
    pub fn put_alloc_server(&mut self, mut alloc: Allocation) -> Result<(), StateError> {
        alloc.alloc_modify_index = self.index;
        self.put_alloc(alloc)
    }

    /// Stores an allocation changed by its client (AllocModifyIndex stays).
    pub fn put_alloc_client(&mut self, alloc: Allocation) -> Result<(), StateError> {
        self.put_alloc(alloc)
    }

    fn put_alloc(&mut self, mut alloc: Allocation) -> Result<(), StateError> {
        let old = self.tables.allocs.get(alloc.id.as_str()).cloned();
        self.count_in_deployment(&mut alloc, old.as_deref())?;
        alloc.modify_index = self.index;
        if alloc.create_index == 0 {
            alloc.create_index = self.index;
        }
        if alloc.alloc_modify_index == 0 {
            alloc.alloc_modify_index = self.index;
        }
        let job_key = match alloc.job.as_ref() {
            Some(job) => {
                let key = alloc_job_key(job);
                if !self.tables.alloc_job_keys.contains(&key) {
                    self.batch.put(
                        Kind::AllocJobs,
                        key.clone(),
                        self.batch.encode(job.as_ref())?,
                    );
                    self.tables.alloc_job_keys.insert(key.clone());
                }
                Some(key)
            }
            None => None,
        };
        let job = alloc.job.take();
        let encoded = self.batch.encode(&StoredAllocRef {
            alloc: &alloc,
            job_key: job_key.as_deref(),
        });
        alloc.job = job;
        self.batch.put(Kind::Allocs, alloc.id.clone(), encoded?);

        // One shared copy of the ID serves as the key of the table and of both indexes.
        let id: Arc<str> = match self.tables.allocs.get_key_value(alloc.id.as_str()) {
            Some((key, old)) => {
                let key = key.clone();
                if old.node_id != alloc.node_id {
                    let old_node = old.node_id.clone();
                    if let Some(set) = self.tables.allocs_by_node.get_mut(&*old_node) {
                        set.remove(alloc.id.as_str());
                    }
                }
                key
            }
            None => Arc::from(alloc.id.as_str()),
        };
        self.tables
            .allocs_by_node
            .entry(alloc.node_id.to_string())
            .or_default()
            .insert(id.clone());
        let job_key = ns_key(&alloc.namespace, &alloc.job_id);
        self.tables
            .allocs_by_job
            .entry(job_key.clone())
            .or_default()
            .insert(id.clone());
        // An allocation that stopped running serves nothing any more, whatever its
        // client managed to deregister.
        if alloc.client_terminal() {
            self.delete_alloc_services(&alloc.id);
        }
        let alloc = Arc::new(alloc);
        self.record(Object::Allocation(alloc.clone()), false);
        self.tables.allocs.insert(id, alloc);
        self.touch(Table::Allocs);
        self.jobs_to_refresh.insert(job_key);
        Ok(())
    }

    /// Stores a node, stamping its indexes.
    pub fn put_node(&mut self, mut node: Node) -> Result<Arc<Node>, StateError> {
        node.modify_index = self.index;
        if node.create_index == 0 {
            node.create_index = self.index;
        }
        self.batch
            .put(Kind::Nodes, node.id.clone(), self.batch.encode(&node)?);
        let node = Arc::new(node);
        self.tables.nodes.insert(node.id.clone(), node.clone());
        self.touch(Table::Nodes);
        self.record(Object::Node(node.clone()), false);
        Ok(node)
    }

    /// Stores an evaluation, stamping its indexes.
    pub fn put_eval(&mut self, mut eval: Evaluation) -> Result<Arc<Evaluation>, StateError> {
        eval.modify_index = self.index;
        if eval.create_index == 0 {
            eval.create_index = self.index;
        }
        self.batch
            .put(Kind::Evals, eval.id.clone(), self.batch.encode(&eval)?);
        let key = ns_key(&eval.namespace, &eval.job_id);
        self.tables
            .evals_by_job
            .entry(key.clone())
            .or_default()
            .insert(eval.id.clone());
        let eval = Arc::new(eval);
        self.tables.evals.insert(eval.id.clone(), eval.clone());
        self.touch(Table::Evals);
        self.record(Object::Evaluation(eval.clone()), false);
        self.jobs_to_refresh.insert(key);
        Ok(eval)
    }

    /// Stores a deployment, stamping its indexes.
    pub fn put_deployment(&mut self, mut d: Deployment) -> Result<Arc<Deployment>, StateError> {
        d.modify_index = self.index;
        if d.create_index == 0 {
            d.create_index = self.index;
        }
        let d = Arc::new(d);
        self.deployments_to_store.insert(d.id.clone());
        self.tables.deployments.insert(d.id.clone(), d.clone());
        self.touch(Table::Deployments);
        Ok(d)
    }

    /// Stores the deployment a plan created or changed. Of a stored one the scheduler owns
    /// only the groups' desired numbers (and groups it adds); the counters, promotion and
    /// status are the state's, which may have moved since the scheduler's snapshot.
    pub fn put_plan_deployment(&mut self, d: Deployment) -> Result<Arc<Deployment>, StateError> {
        let Some(stored) = self.tables.deployments.get(&d.id).cloned() else {
            return self.put_deployment(d);
        };
        let mut merged = (*stored).clone();
        for (name, g) in d.task_groups {
            match merged.task_groups.get_mut(&name) {
                Some(m) => {
                    m.desired_canaries = g.desired_canaries;
                    m.desired_total = g.desired_total;
                }
                None => {
                    merged.task_groups.insert(name, g);
                }
            }
        }
        merged.modify_time = self.now;
        self.put_deployment(merged)
    }

    /// Applies a status change; a successful deployment marks its job version stable.
    /// None when the deployment is gone.
    pub fn update_deployment_status(
        &mut self,
        u: &DeploymentStatusUpdate,
    ) -> Result<Option<Arc<Deployment>>, StateError> {
        let Some(stored) = self.tables.deployments.get(&u.deployment_id).cloned() else {
            return Ok(None);
        };
        let mut d = (*stored).clone();
        d.status = u.status;
        d.status_description = u.status_description.clone();
        d.modify_time = self.now;
        if u.status == DeploymentStatus::Successful {
            match self.set_version_stable(&d.namespace, &d.job_id, d.job_version, true) {
                // The version may have been purged meanwhile; the deployment still ends.
                Ok(()) | Err(StateError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.put_deployment(d).map(Some)
    }

    /// Nomad's `updateDeploymentWithAlloc`: counts a placement into its deployment's group,
    /// and a first (or healthy-to-unhealthy) health verdict; moves the group's progress
    /// deadline on a placement that starts it and on each healthy allocation.
    fn count_in_deployment(
        &mut self,
        alloc: &mut Allocation,
        old: Option<&Allocation>,
    ) -> Result<(), StateError> {
        if alloc.deployment_id.is_empty() {
            return Ok(());
        }
        let Some(stored) = self.tables.deployments.get(&alloc.deployment_id).cloned() else {
            return Ok(());
        };
        if !stored.task_groups.contains_key(&*alloc.task_group) {
            return Ok(());
        }
        let health = |a: &Allocation| a.deployment_status.as_ref().and_then(|d| d.healthy);
        // A client repeats its verdict with every update; the index of the verdict is the one
        // it was first stored at (the deployment watcher compares it with what the scheduler
        // has seen).
        if let Some(o) = old.filter(|o| o.deployment_id == alloc.deployment_id)
            && let (Some(prev), Some(ds)) = (
                o.deployment_status.as_ref(),
                alloc.deployment_status.as_mut(),
            )
            && prev.healthy == ds.healthy
        {
            ds.modify_index = prev.modify_index;
        }
        let (mut placed, mut healthy, mut unhealthy) = (0i64, 0i64, 0i64);
        match old {
            Some(o) if o.deployment_id == alloc.deployment_id => match (health(o), health(alloc)) {
                (None, Some(true)) => healthy += 1,
                (None, Some(false)) => unhealthy += 1,
                (Some(true), Some(false)) => {
                    healthy -= 1;
                    unhealthy += 1;
                }
                _ => {}
            },
            _ => placed += 1,
        }
        let canary = alloc.deployment_status.as_ref().is_some_and(|d| d.canary);
        let new_canary = canary
            && !stored
                .task_groups
                .get(&*alloc.task_group)
                .and_then(|g| g.placed_canaries.as_ref())
                .is_some_and(|c| c.contains(&alloc.id));
        if placed == 0 && healthy == 0 && unhealthy == 0 && !new_canary {
            return Ok(());
        }
        drop(stored);
        let now = self.now;
        // A plan places thousands of allocations of one deployment: the deployment is copied
        // once per write (the first change detaches it from the published tables) and then
        // counted in place; it is stamped, recorded and stored once, in `finish`.
        let Some(d) = self.tables.deployments.get_mut(&alloc.deployment_id) else {
            return Ok(());
        };
        let d = Arc::make_mut(d);
        let Some(g) = d.task_groups.get_mut(&*alloc.task_group) else {
            return Ok(());
        };
        if (healthy != 0 || unhealthy != 0)
            && let Some(ds) = alloc.deployment_status.as_mut()
        {
            ds.modify_index = self.index;
        }
        g.placed_allocs += placed;
        g.healthy_allocs += healthy;
        g.unhealthy_allocs += unhealthy;
        if new_canary {
            g.placed_canaries
                .get_or_insert_with(Vec::new)
                .push(alloc.id.clone());
        }
        if g.progress_deadline > 0 {
            let pd = chrono::Duration::nanoseconds(g.progress_deadline);
            if placed != 0 && is_zero(&g.require_progress_by) {
                g.require_progress_by =
                    chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(alloc.modify_time) + pd;
            } else if healthy > 0 {
                let at = alloc
                    .deployment_status
                    .as_ref()
                    .and_then(|s| s.timestamp)
                    .unwrap_or_else(|| chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(now))
                    + pd;
                if at > g.require_progress_by {
                    g.require_progress_by = at;
                }
            }
        }
        d.modify_time = now;
        self.deployments_to_store
            .insert(alloc.deployment_id.clone());
        self.touch(Table::Deployments);
        Ok(())
    }

    /// Stores a namespace, stamping ModifyIndex (and CreateIndex when new; an update keeps
    /// the one it had).
    pub fn put_namespace(&mut self, mut ns: Namespace) -> Result<Arc<Namespace>, StateError> {
        ns.modify_index = self.index;
        ns.create_index = match self.tables.namespace(&ns.name) {
            Some(old) => old.create_index,
            None => self.index,
        };
        self.batch
            .put(Kind::Namespaces, ns.name.clone(), self.batch.encode(&ns)?);
        let ns = Arc::new(ns);
        self.tables.namespaces.insert(ns.name.clone(), ns.clone());
        self.touch(Table::Namespaces);
        Ok(ns)
    }

    /// Removes a namespace; false when there was none.
    pub fn delete_namespace(&mut self, name: &str) -> bool {
        if self.tables.namespaces.remove(name).is_none() {
            return false;
        }
        self.batch.delete(Kind::Namespaces, name.to_string());
        self.touch(Table::Namespaces);
        true
    }

    /// Stores the scheduler configuration, stamping its indexes.
    pub fn put_scheduler_config(
        &mut self,
        mut config: SchedulerConfiguration,
    ) -> Result<Arc<SchedulerConfiguration>, StateError> {
        config.create_index = match &self.tables.scheduler_config {
            Some(old) => old.create_index,
            None => self.index,
        };
        config.modify_index = self.index;
        self.batch.put(
            Kind::Meta,
            SCHEDULER_CONFIG_KEY.to_string(),
            self.batch.encode(&config)?,
        );
        let config = Arc::new(config);
        self.tables.scheduler_config = Some(config.clone());
        self.touch(Table::SchedulerConfig);
        Ok(config)
    }

    /// Recomputes the status of every job this write touched (Nomad's rules), then records
    /// the table indexes; called by the store just before committing.
    pub(super) fn finish(&mut self) -> Result<(), StateError> {
        let keys = std::mem::take(&mut self.jobs_to_refresh);
        for (ns, id) in keys {
            let Some(job) = self.tables.job(&ns, &id) else {
                continue;
            };
            let status = job_status(&self.tables, &job);
            if Some(status) != job.status {
                let mut updated = (*job).clone();
                updated.status = Some(status);
                self.put_job(updated, false)?;
            }
        }
        self.jobs_to_refresh.clear();
        for id in std::mem::take(&mut self.deployments_to_store) {
            let index = self.index;
            let Some(d) = self.tables.deployments.get_mut(&id) else {
                continue; // deleted later in the same write, which recorded that
            };
            if d.modify_index != index {
                let d = Arc::make_mut(d);
                d.modify_index = index;
                if d.create_index == 0 {
                    d.create_index = index;
                }
            }
            let d = d.clone();
            self.batch
                .put(Kind::Deployments, id, self.batch.encode(d.as_ref())?);
            self.record(Object::Deployment(d), false);
        }
        self.batch.put(
            Kind::Meta,
            "index".to_string(),
            self.batch.encode(&self.index)?,
        );
        for t in Table::ALL {
            if self.touched[t.pos()] {
                self.batch.put(
                    Kind::Meta,
                    format!("table:{}", t.name()),
                    self.batch.encode(&self.index)?,
                );
            }
        }
        Ok(())
    }
}

/// A job's status from its allocations and evaluations, as Nomad derives it.
pub fn job_status(tables: &Tables, job: &Job) -> JobStatus {
    if job.stop {
        return JobStatus::Dead;
    }
    if job.is_parent() {
        return JobStatus::Running;
    }
    let allocs = tables.allocs_by_job(&job.namespace, &job.id);
    if allocs.iter().any(|a| !a.terminal()) {
        return JobStatus::Running;
    }
    let evals = tables.evals_by_job(&job.namespace, &job.id);
    if evals.iter().any(|e| !e.terminal()) {
        return JobStatus::Pending;
    }
    if !allocs.is_empty() || !evals.is_empty() {
        return JobStatus::Dead;
    }
    JobStatus::Pending
}
