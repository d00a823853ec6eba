//! The reconciler for service and batch jobs: compares what the job asks for with the
//! allocations it has and decides what to place, stop, update in place or replace.
//!
//! It decides names and reasons only; node selection is the generic scheduler's job.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::deployment::{self as deploy, DeployCtx};
use super::disconnect::{self, DESC_RECONNECTED, DESC_UNKNOWN, Standing};
use super::reschedule::{self, RESCHEDULE_WINDOW_NS};
use crate::structs::{
    AllocClientStatus, Allocation, DESC_SUCCESSFUL, Deployment, DeploymentStatus,
    DeploymentStatusUpdate, EvalStatus, Evaluation, Job, RescheduleTracker, TaskGroup, alloc_name,
    trigger,
};

/// Stop reason: the job no longer wants this allocation.
pub const DESC_NOT_NEEDED: &str = "alloc not needed due to job update";
/// Stop reason: the job was stopped or deregistered.
pub const DESC_JOB_STOPPED: &str = "alloc not needed as job is stopped";
/// Stop reason: its node went down.
pub const DESC_LOST: &str = "alloc is lost since its node is down";
/// Stop reason: replaced by a destructive update.
pub const DESC_UPDATING: &str = "alloc is being updated due to job update";
/// Stop reason: moved off a draining node.
pub const DESC_MIGRATING: &str = "alloc is being migrated";
/// Stop reason: it failed and a replacement was placed.
pub const DESC_RESCHEDULED: &str = "alloc was rescheduled because it failed";
/// Description of the follow-up evaluation of a delayed reschedule.
pub const DESC_FOLLOWUP: &str = "created for delayed rescheduling";

/// Failed allocations due within this window of each other share one follow-up eval.
const FOLLOWUP_BATCH_NS: i64 = 5_000_000_000;

/// Why a placement is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceReason {
    /// A missing instance (new job, count increase).
    New,
    /// Replaces an allocation whose node is down (already stopped as lost).
    Lost,
    /// Replaces a failed allocation under the reschedule policy.
    Reschedule,
    /// Replaces a running allocation whose job changed destructively.
    Destructive,
    /// Moves an allocation off a draining node.
    Migrate,
    /// A canary of a new version, placed beside the old allocations.
    Canary,
}

impl PlaceReason {
    /// The stop description of the previous allocation, when the placement stops it on success.
    pub fn stop_description(self) -> Option<&'static str> {
        match self {
            PlaceReason::Reschedule => Some(DESC_RESCHEDULED),
            PlaceReason::Destructive => Some(DESC_UPDATING),
            PlaceReason::Migrate => Some(DESC_MIGRATING),
            PlaceReason::New | PlaceReason::Lost | PlaceReason::Canary => None,
        }
    }
}

/// One allocation to place.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Task group name.
    pub group: String,
    /// `<job>.<group>[<index>]`.
    pub name: String,
    /// Why.
    pub reason: PlaceReason,
    /// The allocation it replaces.
    pub previous: Option<Arc<Allocation>>,
    /// The replacement's reschedule history (reschedules only).
    pub tracker: Option<RescheduleTracker>,
}

/// An allocation to stop unconditionally.
#[derive(Debug, Clone)]
pub struct Stop {
    /// The allocation as it is now.
    pub alloc: Arc<Allocation>,
    /// DesiredDescription to set.
    pub description: &'static str,
    /// ClientStatus to set (`lost`), if any.
    pub client_status: Option<crate::structs::AllocClientStatus>,
}

/// What the reconciler decided.
#[derive(Debug, Clone, Default)]
pub struct Reconciliation {
    /// Allocations to place.
    pub place: Vec<Placement>,
    /// Allocations to stop (or mark lost) regardless of placements.
    pub stop: Vec<Stop>,
    /// Allocations to move to the new job version without replacing them.
    pub inplace: Vec<Arc<Allocation>>,
    /// Attribute-only updates (a failed allocation's `FollowupEvalID`).
    pub updates: Vec<Allocation>,
    /// Delayed reschedule evaluations to create.
    pub followup_evals: Vec<Evaluation>,
    /// The deployment placements join ("" for none).
    pub deployment_id: String,
    /// A deployment to create, or the current one with groups the scheduler changed.
    pub deployment: Option<Deployment>,
    /// Deployment status changes (cancelled, successful).
    pub deployment_updates: Vec<DeploymentStatusUpdate>,
}

/// Inputs of [`reconcile`].
pub struct ReconcileInput<'a> {
    /// The evaluation being processed.
    pub eval: &'a Evaluation,
    /// The current job version; `None` when it was deregistered.
    pub job: Option<&'a Arc<Job>>,
    /// Every allocation of the job (any version, any status).
    pub allocs: &'a [Arc<Allocation>],
    /// True when the allocation's node is down or gone.
    pub node_lost: &'a dyn Fn(&str) -> bool,
    /// True when the allocation's node is disconnected (missed its heartbeat while running
    /// something that may wait out a disconnect).
    pub node_disconnected: &'a dyn Fn(&str) -> bool,
    /// True for batch jobs (completed allocations are not replaced).
    pub batch: bool,
    /// Now, in Unix nanoseconds.
    pub now: i64,
    /// The job's latest deployment, if it has one.
    pub deployment: Option<&'a Arc<Deployment>>,
}

/// How an existing allocation takes part in reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Running or pending on a healthy node; may need an update.
    Untainted,
    /// Holds its name but needs nothing: a completed batch allocation, or a failed one the
    /// policy does not (yet) replace.
    Settled,
    /// On a down node.
    Lost,
    /// On a disconnected node, within its window: becomes unknown, and is replaced.
    Disconnecting,
    /// Unknown past its window on a still disconnected node: lost.
    Expired,
    /// Marked for migration off a draining node.
    Migrate,
    /// Failed; replace now.
    RescheduleNow,
    /// Failed; replace at the given time.
    RescheduleLater(i64),
}

impl Class {
    /// Lower keeps its name first when two allocations share an index.
    fn keep_rank(self) -> u8 {
        match self {
            Class::Untainted | Class::Settled => 0,
            Class::Migrate | Class::RescheduleLater(_) => 1,
            Class::Lost | Class::RescheduleNow | Class::Disconnecting | Class::Expired => 2,
        }
    }
}

/// Decides what to do with a job's allocations.
pub fn reconcile(inp: &ReconcileInput<'_>) -> Reconciliation {
    let mut out = Reconciliation::default();
    let mut by_group: BTreeMap<&str, Vec<&Arc<Allocation>>> = BTreeMap::new();
    for a in inp.allocs {
        by_group.entry(&*a.task_group).or_default().push(a);
    }
    let mut ctx = DeployCtx::new(inp.job.map(|j| j.as_ref()), inp.deployment);
    let job = match inp.job {
        Some(j) if !j.stopped() => j,
        _ => {
            for a in inp.allocs.iter().filter(|a| !a.terminal()) {
                stop_or_lose(&mut out, inp, a, DESC_JOB_STOPPED);
            }
            out.deployment_updates = ctx.updates;
            return out;
        }
    };
    let mut stopped: HashSet<String> = HashSet::new();
    for id in ctx.canaries_to_stop() {
        if let Some(a) = inp.allocs.iter().find(|a| a.id == id && !a.terminal()) {
            stop_or_lose(&mut out, inp, a, DESC_NOT_NEEDED);
            stopped.insert(id);
        }
    }
    for (group, allocs) in &by_group {
        if job.group(group).is_none() {
            for a in allocs.iter().filter(|a| !a.terminal()) {
                stop_or_lose(&mut out, inp, a, DESC_NOT_NEEDED);
            }
        }
    }
    for tg in job.groups() {
        let allocs: Vec<&Arc<Allocation>> = by_group
            .get(tg.name.as_str())
            .into_iter()
            .flatten()
            .filter(|a| !stopped.contains(&a.id))
            .copied()
            .collect();
        reconcile_group(&mut out, inp, job, tg, &allocs, &mut ctx);
    }
    finish_deployment(&mut out, ctx);
    out
}

/// Moves the deployment decisions into the result: the created or changed deployment, its
/// description when it waits for promotion, and success when every group is done.
fn finish_deployment(out: &mut Reconciliation, mut ctx: DeployCtx) {
    out.deployment_id = ctx.current_id().to_string();
    if let Some(d) = ctx.current.as_mut() {
        if ctx.created {
            if d.requires_promotion() {
                d.status_description = if d.has_auto_promote() {
                    crate::structs::DESC_RUNNING_AUTO_PROMOTION
                } else {
                    crate::structs::DESC_RUNNING_NEEDS_PROMOTION
                }
                .to_string();
            }
        } else if ctx.complete && d.status != DeploymentStatus::Failed {
            ctx.updates.push(DeploymentStatusUpdate {
                deployment_id: d.id.clone(),
                status: DeploymentStatus::Successful,
                status_description: DESC_SUCCESSFUL.to_string(),
            });
        }
    }
    if ctx.created || ctx.changed {
        out.deployment = ctx.current;
    }
    out.deployment_updates = ctx.updates;
}

fn stop_or_lose(
    out: &mut Reconciliation,
    inp: &ReconcileInput<'_>,
    a: &Arc<Allocation>,
    desc: &'static str,
) {
    let stop = if (inp.node_lost)(&a.node_id) {
        Stop {
            alloc: a.clone(),
            description: DESC_LOST,
            client_status: Some(AllocClientStatus::Lost),
        }
    } else {
        Stop {
            alloc: a.clone(),
            description: desc,
            client_status: None,
        }
    };
    out.stop.push(stop);
}

fn classify(inp: &ReconcileInput<'_>, tg: &TaskGroup, a: &Allocation) -> Option<Class> {
    if !a.next_allocation.is_empty() {
        // Already replaced; the replacement holds the name.
        return None;
    }
    if inp.batch && a.client_status == AllocClientStatus::Complete {
        // A batch allocation that finished successfully is done for good.
        return Some(Class::Settled);
    }
    if a.server_terminal() {
        return None;
    }
    if a.client_status == AllocClientStatus::Failed {
        return Some(classify_failed(inp, tg, a));
    }
    if a.client_terminal() {
        // Completed (service) or already lost: no longer holds its name.
        return None;
    }
    if (inp.node_lost)(&a.node_id) {
        return Some(Class::Lost);
    }
    if a.desired_transition.migrate == Some(true) {
        return Some(Class::Migrate);
    }
    Some(Class::Untainted)
}

fn classify_failed(inp: &ReconcileInput<'_>, tg: &TaskGroup, a: &Allocation) -> Class {
    if a.desired_transition.force_reschedule == Some(true) {
        return Class::RescheduleNow;
    }
    // The policy the allocation was placed with governs its replacement.
    let Some(policy) = a
        .group()
        .and_then(|g| g.reschedule_policy.as_ref())
        .or(tg.reschedule_policy.as_ref())
    else {
        return Class::Settled;
    };
    let Some(at) = reschedule::next_reschedule_time(a, policy) else {
        return Class::Settled;
    };
    if a.followup_eval_id == inp.eval.id || at <= inp.now + RESCHEDULE_WINDOW_NS {
        Class::RescheduleNow
    } else if a.followup_eval_id.is_empty() {
        Class::RescheduleLater(at)
    } else {
        // A follow-up evaluation is already pending for it.
        Class::Settled
    }
}

fn reconcile_group(
    out: &mut Reconciliation,
    inp: &ReconcileInput<'_>,
    job: &Arc<Job>,
    tg: &TaskGroup,
    allocs: &[&Arc<Allocation>],
    ctx: &mut DeployCtx,
) {
    let strategy = deploy::strategy(tg.update.as_ref());
    let (mut dstate, existing) = ctx.group_state(&tg.name, strategy);
    let current_id = ctx.current_id().to_string();
    let deployment_running = ctx.current.is_some() && !ctx.failed;
    let was_canarying = dstate.desired_canaries != 0 && !dstate.promoted;
    let is_canary = |a: &Allocation| {
        !current_id.is_empty()
            && a.deployment_id == current_id
            && a.deployment_status.as_ref().is_some_and(|d| d.canary)
    };

    // An allocation whose client came back from a disconnect still running it keeps its
    // place; the replacement made meanwhile goes.
    let replacements = disconnect::replacements(allocs);
    let mut superseded: HashSet<&str> = HashSet::new();
    for a in allocs {
        let node_ok = !(inp.node_lost)(&a.node_id) && !(inp.node_disconnected)(&a.node_id);
        if let Some(r) = replacements.get(a.id.as_str())
            && disconnect::reconnected(a, node_ok, true)
            && superseded.insert(r.id.as_str())
        {
            out.stop.push(Stop {
                alloc: (*r).clone(),
                description: DESC_RECONNECTED,
                client_status: None,
            });
        }
    }

    // Canaries under test stand beside the old allocations: they hold no name until promoted.
    let mut canaries: Vec<&Arc<Allocation>> = Vec::new();
    let mut entries: Vec<(u64, Class, &Arc<Allocation>)> = Vec::new();
    for a in allocs {
        if superseded.contains(a.id.as_str()) {
            continue;
        }
        let standing = disconnect::standing(
            a,
            tg,
            (inp.node_disconnected)(&a.node_id),
            replacements.contains_key(a.id.as_str()),
            &inp.eval.id,
        );
        let class = match standing {
            Standing::Normal => classify(inp, tg, a),
            Standing::Disconnecting => Some(Class::Disconnecting),
            Standing::Lost => Some(Class::Lost),
            Standing::Expired => Some(Class::Expired),
            Standing::Replaced => None,
            Standing::Waiting => Some(Class::Settled),
        };
        let Some(mut class) = class else {
            continue;
        };
        if was_canarying && is_canary(a) && class == Class::Untainted {
            canaries.push(a);
            continue;
        }
        // A failure during an active deployment fails the deployment instead of being
        // replaced (unless forced); the deployment's outcome decides what happens next.
        let reschedule = matches!(class, Class::RescheduleNow | Class::RescheduleLater(_));
        if reschedule
            && deployment_running
            && a.deployment_id == current_id
            && a.desired_transition.force_reschedule != Some(true)
            && a.desired_transition.reschedule != Some(true)
        {
            class = Class::Settled;
        }
        entries.push((a.index(), class, *a));
    }
    entries.sort_by_key(|(idx, c, a)| (*idx, c.keep_rank(), std::cmp::Reverse(a.create_index)));

    // Keep the lowest `count` distinct indexes; everything else is extra.
    let count = usize::try_from(tg.count).unwrap_or(0);
    let mut used: HashSet<u64> = HashSet::new();
    let mut kept = Vec::new();
    let mut extra = Vec::new();
    for e in entries {
        if kept.len() < count && used.insert(e.0) {
            kept.push(e);
        } else {
            extra.push(e);
        }
    }

    for (_, class, a) in extra {
        match class {
            Class::Untainted | Class::Migrate => out.stop.push(Stop {
                alloc: a.clone(),
                description: DESC_NOT_NEEDED,
                client_status: None,
            }),
            Class::Lost | Class::Disconnecting | Class::Expired => out.stop.push(Stop {
                alloc: a.clone(),
                description: DESC_LOST,
                client_status: Some(AllocClientStatus::Lost),
            }),
            // Terminal already; nothing to stop and nothing to replace.
            Class::Settled | Class::RescheduleNow | Class::RescheduleLater(_) => {}
        }
    }

    let mut later: Vec<(i64, &Arc<Allocation>)> = Vec::new();
    let mut destructive: Vec<&Arc<Allocation>> = Vec::new();
    let mut inplace = 0usize;
    let mut migrate = 0usize;
    let mut places: Vec<Placement> = Vec::new();
    let mut disconnecting: Vec<&Arc<Allocation>> = Vec::new();
    for (_, class, a) in &kept {
        match class {
            Class::Disconnecting => disconnecting.push(*a),
            Class::Expired => {
                out.stop.push(Stop {
                    alloc: (*a).clone(),
                    description: DESC_LOST,
                    client_status: Some(AllocClientStatus::Lost),
                });
                if !replacements.contains_key(a.id.as_str()) {
                    places.push(replacement(tg, a, PlaceReason::Lost, None));
                }
            }
            Class::Settled => {}
            Class::Untainted => match update_kind(a, job, tg) {
                Update::None => {}
                Update::InPlace => {
                    inplace += 1;
                    out.inplace.push((*a).clone());
                }
                Update::Destructive => destructive.push(a),
            },
            Class::Lost => {
                out.stop.push(Stop {
                    alloc: (*a).clone(),
                    description: DESC_LOST,
                    client_status: Some(AllocClientStatus::Lost),
                });
                places.push(replacement(tg, a, PlaceReason::Lost, None));
            }
            Class::Migrate => {
                migrate += 1;
                places.push(replacement(tg, a, PlaceReason::Migrate, None));
            }
            Class::RescheduleNow => {
                let policy = a
                    .group()
                    .and_then(|g| g.reschedule_policy.as_ref())
                    .or(tg.reschedule_policy.as_ref());
                let tracker = reschedule::replacement_tracker(a, policy, inp.now);
                places.push(replacement(tg, a, PlaceReason::Reschedule, Some(tracker)));
            }
            Class::RescheduleLater(at) => later.push((*at, a)),
        }
    }
    let later_n = later.len();
    followups(out, inp, job, later);
    mark_unknown(out, inp, job, tg, &disconnecting, &mut places);

    let missing = count.saturating_sub(kept.len());
    let mut next = 0u64;
    for _ in 0..missing {
        while used.contains(&next) {
            next += 1;
        }
        used.insert(next);
        places.push(Placement {
            group: tg.name.clone(),
            name: alloc_name(&job.id, &tg.name, next),
            reason: PlaceReason::New,
            previous: None,
            tracker: None,
        });
    }

    if !existing {
        dstate.desired_total += (destructive.len() + inplace) as i64;
    }
    let requires_canaries = strategy.is_some_and(|u| {
        !destructive.is_empty() && (canaries.len() as i64) < u.canary && !dstate.promoted
    });
    let mut canary_places = 0;
    if let (true, Some(u)) = (requires_canaries, strategy) {
        dstate.desired_canaries = u.canary;
        if !ctx.paused && !ctx.failed {
            let n = usize::try_from(u.canary).unwrap_or(0) - canaries.len();
            for name in canary_names(job, tg, n, &canaries, &destructive) {
                canary_places += 1;
                out.place.push(Placement {
                    group: tg.name.clone(),
                    name,
                    reason: PlaceReason::Canary,
                    previous: None,
                    tracker: None,
                });
            }
        }
    }

    let canarying = dstate.desired_canaries != 0 && !dstate.promoted;
    let live: Vec<&Arc<Allocation>> = kept
        .iter()
        .filter(|(_, c, _)| *c == Class::Untainted)
        .map(|(_, _, a)| *a)
        .collect();
    let mut limit = deploy::limit(
        strategy,
        count,
        destructive.len(),
        migrate,
        ctx,
        canarying,
        &live,
    );
    let place_ready = !ctx.paused && !ctx.failed && !canarying;
    let pending = places.len();
    if !existing {
        dstate.desired_total += places
            .iter()
            .filter(|p| p.reason != PlaceReason::Migrate)
            .count() as i64;
    }
    for p in places {
        // Held back while the deployment waits, except what replaces lost allocations,
        // migrations, and (unless the deployment failed) failed allocations.
        let allowed = place_ready
            || match p.reason {
                PlaceReason::Lost | PlaceReason::Migrate => true,
                PlaceReason::Reschedule => !ctx.failed,
                _ => false,
            };
        if !allowed {
            continue;
        }
        if place_ready && p.reason != PlaceReason::Migrate {
            limit = limit.saturating_sub(1);
        }
        out.place.push(p);
    }
    if place_ready {
        for a in destructive.iter().take(limit) {
            out.place
                .push(replacement(tg, a, PlaceReason::Destructive, None));
        }
    }

    let had_running = allocs.iter().any(|a| {
        !a.server_terminal()
            && a.job
                .as_ref()
                .is_some_and(|j| j.version == job.version && j.create_index == job.create_index)
    });
    let nothing_left = destructive.is_empty()
        && inplace == 0
        && pending == 0
        && canary_places == 0
        && later_n == 0
        && !requires_canaries;
    ctx.complete &= if existing {
        deploy::group_complete(&dstate, nothing_left)
    } else {
        nothing_left
    };
    let updating_spec = !destructive.is_empty() || inplace > 0;
    ctx.record_group(
        job,
        inp.eval.priority,
        inp.now,
        &tg.name,
        strategy,
        dstate,
        existing,
        updating_spec,
        had_running,
    );
}

/// The placement that replaces `a` under its name.
fn replacement(
    tg: &TaskGroup,
    a: &Arc<Allocation>,
    reason: PlaceReason,
    tracker: Option<RescheduleTracker>,
) -> Placement {
    Placement {
        group: tg.name.clone(),
        name: a.name.clone(),
        reason,
        previous: Some(a.clone()),
        tracker,
    }
}

/// Names for `n` new canaries: those of the allocations they will replace first (lowest
/// index first), then indexes past the count; never one an existing canary holds.
fn canary_names(
    job: &Job,
    tg: &TaskGroup,
    n: usize,
    canaries: &[&Arc<Allocation>],
    destructive: &[&Arc<Allocation>],
) -> Vec<String> {
    let taken: HashSet<&str> = canaries.iter().map(|a| a.name.as_str()).collect();
    let mut names: Vec<String> = destructive
        .iter()
        .map(|a| a.name.clone())
        .filter(|name| !taken.contains(name.as_str()))
        .take(n)
        .collect();
    let mut idx = u64::try_from(tg.count).unwrap_or(0);
    while names.len() < n {
        let name = alloc_name(&job.id, &tg.name, idx);
        if !taken.contains(name.as_str()) && !names.contains(&name) {
            names.push(name);
        }
        idx += 1;
    }
    names
}

/// Creates follow-up evaluations for delayed reschedules, one per 5 s window, and marks
/// each failed allocation with the evaluation that will replace it.
fn followups(
    out: &mut Reconciliation,
    inp: &ReconcileInput<'_>,
    job: &Job,
    mut later: Vec<(i64, &Arc<Allocation>)>,
) {
    later.sort_by_key(|(at, _)| *at);
    let mut current: Option<(i64, String)> = None;
    for (at, a) in later {
        let eval_id = match &current {
            Some((start, id)) if at - start <= FOLLOWUP_BATCH_NS => id.clone(),
            _ => {
                let ev = followup_eval(inp, job, at);
                let id = ev.id.clone();
                out.followup_evals.push(ev);
                current = Some((at, id.clone()));
                id
            }
        };
        let mut updated = (**a).clone();
        updated.followup_eval_id = eval_id;
        updated.modify_time = inp.now;
        out.updates.push(updated);
    }
}

/// Marks allocations on a disconnected node `unknown`, with one evaluation at the end of
/// their window to mark whatever is still unknown then lost, and places their replacements
/// unless the group says not to.
fn mark_unknown(
    out: &mut Reconciliation,
    inp: &ReconcileInput<'_>,
    job: &Job,
    tg: &TaskGroup,
    allocs: &[&Arc<Allocation>],
    places: &mut Vec<Placement>,
) {
    let Some(longest) = allocs.iter().map(|a| disconnect::window(a, tg)).max() else {
        return;
    };
    let mut ev = followup_eval(inp, job, inp.now.saturating_add(longest));
    ev.triggered_by = disconnect::TRIGGER_MAX_DISCONNECT_TIMEOUT.to_string();
    ev.status_description = String::new();
    for a in allocs {
        let mut updated = (***a).clone();
        updated.client_status = AllocClientStatus::Unknown;
        updated.client_description = DESC_UNKNOWN.to_string();
        updated.followup_eval_id = ev.id.clone();
        updated.modify_time = inp.now;
        out.updates.push(updated);
        if disconnect::replace(a, tg) {
            places.push(replacement(tg, a, PlaceReason::Lost, None));
        }
    }
    out.followup_evals.push(ev);
}

fn followup_eval(inp: &ReconcileInput<'_>, job: &Job, at: i64) -> Evaluation {
    Evaluation {
        id: crate::structs::generate_uuid(),
        namespace: job.namespace.clone(),
        priority: job.priority,
        r#type: job.r#type.clone(),
        triggered_by: trigger::RETRY_FAILED_ALLOC.to_string(),
        job_id: job.id.clone(),
        job_modify_index: job.job_modify_index,
        status: EvalStatus::Pending,
        status_description: DESC_FOLLOWUP.to_string(),
        wait_until: Some(DateTime::<Utc>::from_timestamp_nanos(at)),
        previous_eval: inp.eval.id.clone(),
        create_time: inp.now,
        modify_time: inp.now,
        ..Default::default()
    }
}

/// How a running allocation follows a job change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Same job version.
    None,
    /// Only fields the client can take without a restart changed.
    InPlace,
    /// Tasks changed: stop and replace.
    Destructive,
}

/// Compares the allocation's job version with `job` for group `tg`.
pub fn update_kind(a: &Allocation, job: &Job, tg: &TaskGroup) -> Update {
    let Some(old_job) = a.job.as_deref() else {
        return Update::Destructive;
    };
    if old_job.version == job.version && old_job.job_modify_index == job.job_modify_index {
        return Update::None;
    }
    let Some(old_tg) = old_job.group(&tg.name) else {
        return Update::Destructive;
    };
    if tasks_updated(old_job, old_tg, job, tg) {
        Update::Destructive
    } else {
        Update::InPlace
    }
}

/// True when the group changed in a way the running tasks must be restarted for: anything
/// but the count, update/migrate/reschedule/restart policies, services, scaling and
/// constraints (constraints are re-checked against the node by the scheduler), or a
/// change to the job's meta (it reaches the tasks' environment).
pub fn tasks_updated(old_job: &Job, old: &TaskGroup, new_job: &Job, new: &TaskGroup) -> bool {
    old_job.meta != new_job.meta || normalized(old) != normalized(new)
}

fn normalized(tg: &TaskGroup) -> TaskGroup {
    let mut g = tg.clone();
    g.count = 0;
    g.update = None;
    g.migrate = None;
    g.reschedule_policy = None;
    g.restart_policy = None;
    g.services = None;
    g.scaling = None;
    g.constraints = None;
    g.shutdown_delay = None;
    g.stop_after_client_disconnect = None;
    g.max_client_disconnect = None;
    g.disconnect = None;
    g.prevent_reschedule_on_lost = false;
    for t in g.tasks.iter_mut().flatten() {
        t.services = None;
        t.restart_policy = None;
        t.constraints = None;
        t.scaling_policies = None;
    }
    g
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::structs::{
        DesiredTransition, ReschedulePolicy, RescheduleTracker, Resources, Task, TaskState,
    };

    const S: i64 = 1_000_000_000;
    const NOW: i64 = 1_700_000_000 * S;

    fn job(count: i64, version: i64, cpu: i64, batch: bool) -> Arc<Job> {
        Arc::new(Job {
            id: "web".into(),
            namespace: "default".into(),
            r#type: if batch { "batch" } else { "service" }.into(),
            priority: 50,
            version,
            job_modify_index: version as u64 + 10,
            task_groups: Some(vec![TaskGroup {
                name: "g".into(),
                count,
                reschedule_policy: Some(ReschedulePolicy {
                    attempts: 2,
                    interval: 3600 * S,
                    delay: 30 * S,
                    delay_function: "constant".into(),
                    max_delay: 0,
                    unlimited: false,
                }),
                tasks: Some(vec![Task {
                    name: "t".into(),
                    driver: "exec".into(),
                    resources: Some(Resources {
                        cpu,
                        memory_mb: 64,
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }]),
            ..Default::default()
        })
    }

    fn alloc(job: &Arc<Job>, idx: u64, node: &str, client: AllocClientStatus) -> Arc<Allocation> {
        Arc::new(Allocation {
            id: format!("a{idx}-{node}-{client}"),
            name: alloc_name("web", "g", idx),
            node_id: node.into(),
            job_id: "web".into(),
            job: Some(job.clone()),
            task_group: "g".into(),
            desired_status: crate::structs::AllocDesiredStatus::Run,
            client_status: client,
            modify_time: NOW - 100 * S,
            ..Default::default()
        })
    }

    fn eval() -> Evaluation {
        Evaluation {
            id: "eval-1".into(),
            ..Default::default()
        }
    }

    fn run(job: Option<&Arc<Job>>, allocs: &[Arc<Allocation>], down: &[&str]) -> Reconciliation {
        let batch = job.is_some_and(|j| j.r#type == "batch");
        let down: Vec<String> = down.iter().map(|s| s.to_string()).collect();
        let lost = move |n: &str| down.iter().any(|d| d == n);
        let ev = eval();
        reconcile(&ReconcileInput {
            eval: &ev,
            job,
            allocs,
            node_lost: &lost,
            node_disconnected: &|_| false,
            batch,
            now: NOW,
            deployment: None,
        })
    }

    fn run_disconnected(
        job: &Arc<Job>,
        allocs: &[Arc<Allocation>],
        disconnected: &[&str],
        ev: &Evaluation,
    ) -> Reconciliation {
        let disconnected: Vec<String> = disconnected.iter().map(|s| s.to_string()).collect();
        let disc = move |n: &str| disconnected.iter().any(|d| d == n);
        reconcile(&ReconcileInput {
            eval: ev,
            job: Some(job),
            allocs,
            node_lost: &|_| false,
            node_disconnected: &disc,
            batch: false,
            now: NOW,
            deployment: None,
        })
    }

    fn with_window(count: i64) -> Arc<Job> {
        let mut j = (*job(count, 1, 100, false)).clone();
        if let Some(g) = j.task_groups.as_mut().and_then(|g| g.first_mut()) {
            g.disconnect = Some(Box::new(serde_json::json!({"LostAfter": 60 * S})));
        }
        Arc::new(j)
    }

    #[test]
    fn disconnect_marks_unknown_replaces_and_reconnect_keeps_the_original() {
        let j = with_window(1);
        let mut orig = (*alloc(&j, 0, "n1", AllocClientStatus::Running)).clone();
        orig.job = Some(j.clone());
        let orig = Arc::new(orig);

        // Disconnected: unknown (still wanted), one follow-up at the window's end, replaced.
        let r = run_disconnected(&j, std::slice::from_ref(&orig), &["n1"], &eval());
        assert!(r.stop.is_empty(), "{:?}", r.stop);
        assert_eq!(r.updates.len(), 1);
        assert_eq!(r.updates[0].client_status, AllocClientStatus::Unknown);
        assert_eq!(r.updates[0].client_description, DESC_UNKNOWN);
        assert_eq!(r.followup_evals.len(), 1);
        let followup = &r.followup_evals[0];
        assert_eq!(r.updates[0].followup_eval_id, followup.id);
        assert_eq!(
            followup.wait_until,
            Some(DateTime::<Utc>::from_timestamp_nanos(NOW + 60 * S))
        );
        assert_eq!(r.place.len(), 1);
        assert_eq!(r.place[0].name, orig.name);
        assert_eq!(
            r.place[0].previous.as_ref().map(|a| a.id.clone()),
            Some(orig.id.clone())
        );

        let unknown = Arc::new(r.updates[0].clone());
        let mut repl = (*alloc(&j, 0, "n2", AllocClientStatus::Running)).clone();
        repl.previous_allocation = orig.id.clone();
        repl.job = Some(j.clone());
        let repl = Arc::new(repl);

        // Still disconnected, another evaluation: nothing more to do.
        let both = vec![unknown.clone(), repl.clone()];
        let r = run_disconnected(&j, &both, &["n1"], &eval());
        assert!(r.stop.is_empty() && r.place.is_empty() && r.updates.is_empty());

        // The window ends first: lost, and the replacement stays.
        let expiry = Evaluation {
            id: followup.id.clone(),
            ..Default::default()
        };
        let r = run_disconnected(&j, &both, &["n1"], &expiry);
        assert_eq!(r.stop.len(), 1);
        assert_eq!(r.stop[0].alloc.id, orig.id);
        assert_eq!(r.stop[0].client_status, Some(AllocClientStatus::Lost));
        assert!(r.place.is_empty());

        // Back in time and reported running: the replacement goes, the original stays.
        let mut back = (*unknown).clone();
        back.client_status = AllocClientStatus::Running;
        let r = run_disconnected(&j, &[Arc::new(back), repl.clone()], &[], &eval());
        assert_eq!(r.stop.len(), 1, "{:?}", r.stop);
        assert_eq!(r.stop[0].alloc.id, repl.id);
        assert_eq!(r.stop[0].description, DESC_RECONNECTED);
        assert!(r.place.is_empty());
    }

    #[test]
    fn no_window_on_a_disconnected_node_is_lost() {
        let j = job(1, 1, 100, false);
        let a = alloc(&j, 0, "n1", AllocClientStatus::Running);
        let r = run_disconnected(&j, &[a], &["n1"], &eval());
        assert_eq!(r.stop.len(), 1);
        assert_eq!(r.stop[0].client_status, Some(AllocClientStatus::Lost));
        assert_eq!(r.place.len(), 1);
        assert_eq!(r.place[0].reason, PlaceReason::Lost);
    }

    fn names(r: &Reconciliation) -> Vec<String> {
        let mut v: Vec<String> = r.place.iter().map(|p| p.name.clone()).collect();
        v.sort();
        v
    }

    #[test]
    fn places_missing_lowest_indexes() {
        let j = job(4, 1, 100, false);
        let allocs = vec![
            alloc(&j, 0, "n1", AllocClientStatus::Running),
            alloc(&j, 2, "n1", AllocClientStatus::Running),
        ];
        let r = run(Some(&j), &allocs, &[]);
        assert_eq!(names(&r), vec!["web.g[1]", "web.g[3]"]);
        assert!(r.stop.is_empty());
        assert!(r.place.iter().all(|p| p.reason == PlaceReason::New));
    }

    #[test]
    fn count_decrease_stops_highest_indexes() {
        let j = job(2, 1, 100, false);
        let allocs: Vec<_> = (0..4)
            .map(|i| alloc(&j, i, "n1", AllocClientStatus::Running))
            .collect();
        let r = run(Some(&j), &allocs, &[]);
        assert!(r.place.is_empty());
        let mut stopped: Vec<_> = r.stop.iter().map(|s| s.alloc.name.clone()).collect();
        stopped.sort();
        assert_eq!(stopped, vec!["web.g[2]", "web.g[3]"]);
        assert!(r.stop.iter().all(|s| s.description == DESC_NOT_NEEDED));
    }

    #[test]
    fn stopped_or_missing_job_stops_everything() {
        let j = job(2, 1, 100, false);
        let allocs = vec![
            alloc(&j, 0, "n1", AllocClientStatus::Running),
            alloc(&j, 1, "down", AllocClientStatus::Running),
            alloc(&j, 2, "n1", AllocClientStatus::Complete),
        ];
        let mut stopped = (*j).clone();
        stopped.stop = true;
        let stopped = Arc::new(stopped);
        for r in [
            run(Some(&stopped), &allocs, &["down"]),
            run(None, &allocs, &["down"]),
        ] {
            assert!(r.place.is_empty());
            assert_eq!(r.stop.len(), 2);
            let on_n1 = r.stop.iter().find(|s| &*s.alloc.node_id == "n1").unwrap();
            assert_eq!(on_n1.description, DESC_JOB_STOPPED);
            let lost = r.stop.iter().find(|s| &*s.alloc.node_id == "down").unwrap();
            assert_eq!(lost.client_status, Some(AllocClientStatus::Lost));
        }
    }

    #[test]
    fn destructive_vs_inplace_update() {
        let v1 = job(2, 1, 100, false);
        let allocs: Vec<_> = (0..2)
            .map(|i| alloc(&v1, i, "n1", AllocClientStatus::Running))
            .collect();
        // Same version: nothing to do.
        let r = run(Some(&v1), &allocs, &[]);
        assert!(r.place.is_empty() && r.inplace.is_empty() && r.stop.is_empty());
        // Task resources changed: destructive.
        let v2 = job(2, 2, 200, false);
        let r = run(Some(&v2), &allocs, &[]);
        assert_eq!(r.place.len(), 2);
        assert!(r.place.iter().all(|p| p.reason == PlaceReason::Destructive));
        assert!(r.place.iter().all(|p| p.previous.is_some()));
        assert_eq!(names(&r), vec!["web.g[0]", "web.g[1]"]);
        // Only the reschedule policy changed: in place.
        let mut v3 = (*job(2, 3, 100, false)).clone();
        if let Some(tg) = v3.task_groups.as_mut().and_then(|g| g.first_mut()) {
            tg.reschedule_policy = None;
        }
        let r = run(Some(&Arc::new(v3)), &allocs, &[]);
        assert!(r.place.is_empty());
        assert_eq!(r.inplace.len(), 2);
    }

    #[test]
    fn lost_allocs_are_marked_and_replaced() {
        let j = job(2, 1, 100, false);
        let allocs = vec![
            alloc(&j, 0, "n1", AllocClientStatus::Running),
            alloc(&j, 1, "down", AllocClientStatus::Running),
        ];
        let r = run(Some(&j), &allocs, &["down"]);
        assert_eq!(r.stop.len(), 1);
        assert_eq!(r.stop[0].description, DESC_LOST);
        assert_eq!(r.stop[0].client_status, Some(AllocClientStatus::Lost));
        assert_eq!(r.place.len(), 1);
        assert_eq!(r.place[0].name, "web.g[1]");
        assert_eq!(r.place[0].reason, PlaceReason::Lost);
    }

    #[test]
    fn batch_complete_is_not_replaced_but_service_complete_is() {
        let b = job(2, 1, 100, true);
        let allocs = vec![
            alloc(&b, 0, "n1", AllocClientStatus::Complete),
            alloc(&b, 1, "n1", AllocClientStatus::Running),
        ];
        let r = run(Some(&b), &allocs, &[]);
        assert!(r.place.is_empty());
        let s = job(2, 1, 100, false);
        let allocs = vec![
            alloc(&s, 0, "n1", AllocClientStatus::Complete),
            alloc(&s, 1, "n1", AllocClientStatus::Running),
        ];
        let r = run(Some(&s), &allocs, &[]);
        assert_eq!(names(&r), vec!["web.g[0]"]);
        assert_eq!(r.place[0].reason, PlaceReason::New);
    }

    fn failed(j: &Arc<Job>, finished: i64, events: usize) -> Arc<Allocation> {
        let mut a = (*alloc(j, 0, "n1", AllocClientStatus::Failed)).clone();
        let st = TaskState {
            finished_at: DateTime::<Utc>::from_timestamp_nanos(finished),
            ..Default::default()
        };
        a.task_states = Some(BTreeMap::from([("t".to_string(), st)]));
        a.reschedule_tracker = Some(RescheduleTracker {
            events: Some(
                (0..events)
                    .map(|i| crate::structs::RescheduleEvent {
                        reschedule_time: finished - (i as i64 + 1) * 60 * S,
                        prev_alloc_id: format!("old{i}"),
                        prev_node_id: "n0".into(),
                        delay: 30 * S,
                    })
                    .collect(),
            ),
        });
        Arc::new(a)
    }

    #[test]
    fn failed_alloc_rescheduled_with_tracker() {
        let j = job(1, 1, 100, false);
        // Failed long enough ago that the 30 s delay has passed.
        let a = failed(&j, NOW - 60 * S, 1);
        let r = run(Some(&j), std::slice::from_ref(&a), &[]);
        assert_eq!(r.place.len(), 1);
        let p = &r.place[0];
        assert_eq!(p.reason, PlaceReason::Reschedule);
        assert_eq!(p.previous.as_ref().unwrap().id, a.id);
        let ev = p.tracker.as_ref().unwrap().events.as_ref().unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1].prev_alloc_id, a.id);
        assert_eq!(ev[1].prev_node_id, "n1");
        assert_eq!(ev[1].reschedule_time, NOW);
        assert_eq!(ev[1].delay, 30 * S);
        assert!(r.followup_evals.is_empty());
    }

    #[test]
    fn failed_alloc_waits_for_delay_with_followup_eval() {
        let j = job(1, 1, 100, false);
        let a = failed(&j, NOW - 10 * S, 0);
        let r = run(Some(&j), std::slice::from_ref(&a), &[]);
        assert!(r.place.is_empty());
        assert_eq!(r.followup_evals.len(), 1);
        let ev = &r.followup_evals[0];
        assert_eq!(ev.triggered_by, "alloc-failure");
        assert_eq!(ev.status, EvalStatus::Pending);
        assert_eq!(ev.previous_eval, "eval-1");
        assert_eq!(
            ev.wait_until.unwrap().timestamp_nanos_opt().unwrap(),
            NOW - 10 * S + 30 * S
        );
        assert_eq!(r.updates.len(), 1);
        assert_eq!(r.updates[0].id, a.id);
        assert_eq!(r.updates[0].followup_eval_id, ev.id);

        // When that follow-up eval runs, the allocation is replaced even if clocks disagree.
        let mut waiting = (*a).clone();
        waiting.followup_eval_id = "eval-1".into();
        let r = run(Some(&j), &[Arc::new(waiting.clone())], &[]);
        assert_eq!(r.place.len(), 1);
        // Another eval leaves it alone while its follow-up is pending.
        waiting.followup_eval_id = "other".into();
        let r = run(Some(&j), &[Arc::new(waiting)], &[]);
        assert!(r.place.is_empty() && r.followup_evals.is_empty());
    }

    #[test]
    fn exhausted_attempts_leave_alloc_failed() {
        let j = job(1, 1, 100, false);
        let a = failed(&j, NOW - 600 * S, 2);
        let r = run(Some(&j), &[a], &[]);
        assert!(r.place.is_empty());
        assert!(r.followup_evals.is_empty());
        assert!(r.stop.is_empty());
    }

    #[test]
    fn replaced_and_forced_allocs() {
        let j = job(1, 1, 100, false);
        let mut done = (*failed(&j, NOW - 600 * S, 2)).clone();
        done.next_allocation = "next".into();
        // Already replaced: its slot is free, a new instance is placed.
        let r = run(Some(&j), &[Arc::new(done.clone())], &[]);
        assert_eq!(r.place.len(), 1);
        assert_eq!(r.place[0].reason, PlaceReason::New);
        // Forced reschedule ignores the exhausted policy.
        done.next_allocation.clear();
        done.desired_transition = DesiredTransition {
            force_reschedule: Some(true),
            ..Default::default()
        };
        let r = run(Some(&j), &[Arc::new(done)], &[]);
        assert_eq!(r.place[0].reason, PlaceReason::Reschedule);
    }

    #[test]
    fn removed_group_is_stopped_and_migration_replaces() {
        let j = job(1, 1, 100, false);
        let mut other = (*alloc(&j, 0, "n1", AllocClientStatus::Running)).clone();
        other.task_group = "gone".into();
        let mut mig = (*alloc(&j, 0, "n2", AllocClientStatus::Running)).clone();
        mig.desired_transition.migrate = Some(true);
        let r = run(Some(&j), &[Arc::new(other), Arc::new(mig)], &[]);
        assert_eq!(r.stop.len(), 1);
        assert_eq!(&*r.stop[0].alloc.task_group, "gone");
        assert_eq!(r.place.len(), 1);
        assert_eq!(r.place[0].reason, PlaceReason::Migrate);
        assert_eq!(r.place[0].reason.stop_description(), Some(DESC_MIGRATING));
    }
}
