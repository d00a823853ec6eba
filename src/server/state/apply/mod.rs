//! The one function every state write goes through: [`apply`] carries out a [`Command`] on
//! a transaction. It reads nothing but the transaction's tables and the [`ApplyCtx`], so
//! every server applying the same requests in the same order ends with the same state.

mod acl;
mod allocs;
mod deployments;
mod evals;
mod gc;
mod jobs;
mod namespaces;
mod nodes;
mod operator;
mod plan;
mod services;
mod variables;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::command::Command;
use super::{StateError, Txn};
use crate::structs::acl::{AclRole, AclToken, OneTimeToken};
use crate::structs::{EvalStatus, Evaluation, Node};

pub use deployments::Promotion;
pub use jobs::{RegisterOptions, ScaleRequest, same_spec};
pub use namespaces::admit_job;
pub use nodes::{
    AllocClientUpdate, DRAINING_NOT_ELIGIBLE, DrainBatch, EVENT_DRAIN_COMPLETE,
    EVENT_DRAIN_DISABLED, EVENT_DRAIN_SET, EVENT_DRAIN_UPDATED, EVENT_ELIGIBLE, EVENT_INELIGIBLE,
    SECRET_MISMATCH, SUBSYSTEM_CLUSTER, SUBSYSTEM_DRAIN, apply_drain,
};
pub use plan::PlanApply;
pub use variables::{VarOutcome, VarWrite};

/// Why a command changed nothing; the kinds call sites map to answers (a conflict, a
/// missing object, or an internal fault).
pub type ApplyError = StateError;

/// What an apply may read besides the state: the request's time and seed.
#[derive(Debug, Clone, Copy)]
pub struct ApplyCtx {
    /// The request's time (unix nanoseconds).
    pub now: i64,
    /// The request's seed.
    pub seed: Uuid,
}

impl ApplyCtx {
    /// The request's time as a timestamp.
    pub fn now_utc(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_nanos(self.now)
    }

    /// An ID only this request's apply makes for `kind` and `key`: the same on every
    /// server, whatever order the apply visits things in.
    pub fn derive_id(&self, kind: &str, key: &str) -> String {
        let mut name = Vec::with_capacity(kind.len() + 1 + key.len());
        name.extend_from_slice(kind.as_bytes());
        name.push(0);
        name.extend_from_slice(key.as_bytes());
        Uuid::new_v5(&self.seed, &name).to_string()
    }

    /// A pending evaluation `id` of a job, created at the request's time.
    pub fn new_eval(
        &self,
        id: String,
        namespace: &str,
        job_id: &str,
        job_type: &str,
        priority: i64,
        triggered_by: &str,
    ) -> Evaluation {
        Evaluation {
            id,
            namespace: namespace.to_string(),
            priority,
            r#type: job_type.to_string(),
            triggered_by: triggered_by.to_string(),
            job_id: job_id.to_string(),
            status: EvalStatus::Pending,
            create_time: self.now,
            modify_time: self.now,
            ..Default::default()
        }
    }
}

/// A node write's node (None: removed, or left as it was) and the evaluations it made.
pub type NodeWritten = (Option<Arc<Node>>, Vec<Arc<Evaluation>>);

/// What an applied command reports back to the op that proposed it.
#[derive(Debug, Clone)]
pub enum Applied {
    /// The command ran; there is nothing to report besides the index.
    Done,
    /// Whether a conditional write (check-and-set) was made.
    Written(bool),
    /// How many of the named objects existed and were deleted.
    Deleted(usize),
    /// The token a write stored or an exchange yielded (None: nothing to yield).
    Token(Option<Arc<AclToken>>),
    /// The role a write stored.
    Role(Arc<AclRole>),
    /// The one-time token a write stored.
    OneTime(Arc<OneTimeToken>),
    /// The evaluation a write created.
    Eval(Arc<Evaluation>),
    /// A job write's evaluation (None: the job is a parent, or nothing changed) and the
    /// job's JobModifyIndex.
    Job {
        eval: Option<Arc<Evaluation>>,
        job_modify_index: u64,
    },
    /// A node write's node (None: removed, or left as it was) and the evaluations it made.
    Node {
        node: Option<Arc<Node>>,
        evals: Vec<Arc<Evaluation>>,
    },
    /// A client update's evaluations, and whether some allocation stopped on its client.
    ClientUpdate {
        evals: Vec<Arc<Evaluation>>,
        freed: bool,
    },
    /// The root key a write stored.
    RootKey(Arc<crate::structs::keyring::RootKeyMeta>),
    /// How a variable write ended.
    Var(VarOutcome),
    /// A committed plan: the evaluation as completed (or re-blocked), the blocked
    /// evaluation it created and its follow-ups.
    Plan {
        done: Arc<Evaluation>,
        blocked: Option<Arc<Evaluation>>,
        followups: Vec<Arc<Evaluation>>,
    },
    /// What a garbage collection removed.
    Garbage(crate::server::gc::collect::Garbage),
    /// The evaluations a write stored.
    Evals(Vec<Arc<Evaluation>>),
    /// A deployment write's evaluation (None: the change makes none).
    DeploymentEval(Option<Arc<Evaluation>>),
    /// A drainer pass: whether it changed anything, and its evaluations.
    Drained {
        changed: bool,
        evals: Vec<Arc<Evaluation>>,
    },
}

impl Applied {
    /// The fault of an op receiving an answer its command does not give.
    pub fn unexpected(self) -> StateError {
        StateError::Storage(format!("unexpected apply result: {self:?}"))
    }

    /// A node write's node and evaluations.
    pub fn into_node(self) -> Result<NodeWritten, StateError> {
        match self {
            Applied::Node { node, evals } => Ok((node, evals)),
            other => Err(other.unexpected()),
        }
    }

    /// A deployment write's evaluation.
    pub fn into_deployment_eval(self) -> Result<Option<Arc<Evaluation>>, StateError> {
        match self {
            Applied::DeploymentEval(eval) => Ok(eval),
            other => Err(other.unexpected()),
        }
    }

    /// A job write's evaluation and JobModifyIndex.
    pub fn into_job(self) -> Result<(Option<Arc<Evaluation>>, u64), StateError> {
        match self {
            Applied::Job {
                eval,
                job_modify_index,
            } => Ok((eval, job_modify_index)),
            other => Err(other.unexpected()),
        }
    }
}

/// Carries out `cmd` on `txn`. On an error nothing the command did may be kept: the caller
/// drops the transaction.
pub fn apply(txn: &mut Txn, cmd: Command, ctx: &ApplyCtx) -> Result<Applied, ApplyError> {
    match cmd {
        Command::NamespaceUpsert { ns } => namespaces::upsert(txn, ns),
        Command::NamespaceDelete { name, region } => namespaces::delete(txn, &name, &region),

        Command::AclBootstrap { token, reset_index } => acl::bootstrap(txn, token, reset_index),
        Command::AclPolicyUpsert { policy } => acl::upsert_policy(txn, policy),
        Command::AclPolicyDelete { names } => acl::delete_policies(txn, &names),
        Command::AclTokenUpsert { token, creating } => acl::upsert_token(txn, token, creating),
        Command::AclTokenDelete { accessors } => acl::delete_tokens(txn, &accessors),
        Command::AclRoleUpsert { role, creating } => acl::upsert_role(txn, role, creating),
        Command::AclRoleDelete { ids } => acl::delete_roles(txn, &ids),
        Command::AclTokensReap {
            accessors,
            one_time,
        } => acl::reap_tokens(txn, &accessors, &one_time, ctx),
        Command::AclOneTimeCreate { token } => acl::create_one_time(txn, token),
        Command::AclOneTimeExchange { secret } => acl::exchange_one_time(txn, &secret, ctx),

        Command::SchedulerConfigEnsure { config } => operator::ensure_config(txn, config),
        Command::SchedulerConfigSet { config, cas } => operator::set_config(txn, config, cas),

        Command::JobRegister { job, opts } => jobs::register(txn, *job, opts, ctx),
        Command::JobDeregister {
            ns,
            id,
            purge,
            eval_priority,
            eval_id,
        } => jobs::deregister(txn, &ns, &id, purge, eval_priority, eval_id, ctx),
        Command::JobEvaluate {
            ns,
            id,
            force_reschedule,
            eval_id,
        } => jobs::evaluate(txn, &ns, &id, force_reschedule, eval_id, ctx),
        Command::JobScale(r) => jobs::scale(txn, r, ctx),
        Command::JobStability {
            ns,
            id,
            version,
            stable,
        } => jobs::stability(txn, &ns, &id, version, stable),
        Command::JobVersionTag {
            ns,
            id,
            version,
            name,
            tag,
        } => jobs::version_tag(txn, &ns, &id, version, &name, tag),
        Command::AllocStop {
            alloc_id,
            no_shutdown_delay,
            eval_id,
        } => allocs::stop(txn, &alloc_id, no_shutdown_delay, eval_id, ctx),
        Command::NodeRegister { node } => nodes::register(txn, *node, ctx),
        Command::NodeStatus { node_id, status } => nodes::status(txn, &node_id, status, ctx),
        Command::NodeDown { node_id } => nodes::down(txn, &node_id, ctx),
        Command::AllocClientUpdate { node_id, updates } => {
            nodes::client_update(txn, &node_id, updates, ctx)
        }
        Command::NodeEligibility {
            node_id,
            eligibility,
        } => nodes::eligibility(txn, &node_id, &eligibility, ctx),
        Command::NodeDrain {
            node_id,
            spec,
            mark_eligible,
            meta,
        } => nodes::drain(txn, &node_id, spec, mark_eligible, meta, ctx),
        Command::NodePurge { node_id } => nodes::purge(txn, &node_id, ctx),
        Command::NodeEvaluate { node_id } => nodes::evaluate(txn, &node_id, ctx),
        Command::DrainBatch(batch) => nodes::drain_batch(txn, batch, ctx),
        Command::DeploymentStatus {
            update,
            eval,
            refusal,
        } => deployments::status(txn, &update, eval, refusal),
        Command::DeploymentPromote {
            promotion,
            eval,
            refusal,
        } => deployments::promote(txn, promotion, eval, refusal, ctx),
        Command::DeploymentAllocHealth { marks, fail, eval } => {
            deployments::alloc_health(txn, marks, fail, eval, ctx)
        }
        Command::DeploymentReschedule { alloc_ids, eval } => {
            deployments::reschedule(txn, &alloc_ids, eval)
        }
        Command::GcReap {
            garbage,
            thresholds,
        } => gc::reap(txn, garbage, &thresholds, ctx),
        Command::VarApply {
            op,
            ns,
            path,
            lock,
            sealed,
        } => variables::apply(txn, op, &ns, &path, lock, sealed, ctx),
        Command::VarLockExpire { ns, path, lock_id } => {
            variables::expire_lock(txn, &ns, &path, &lock_id, ctx)
        }
        Command::RootKeyUpsert {
            meta,
            rekey,
            resealed,
        } => variables::root_key_upsert(txn, meta, rekey, resealed),
        Command::RootKeyDelete { key_id, force } => variables::root_key_delete(txn, &key_id, force),
        Command::PlanApply(p) => plan::apply(txn, *p, ctx),
        Command::EvalUpdate { evals } => evals::update(txn, evals),
        Command::EvalsCancel { ids } => evals::cancel(txn, &ids, ctx),
        Command::ServicesSync { upsert, delete } => services::sync(txn, upsert, delete),
        Command::ServiceDelete { ns, id } => services::delete(txn, &ns, &id),
    }
}

#[cfg(test)]
mod tests;
