//! The state's writes as data: each write an op makes is a [`Command`], wrapped in a
//! [`Request`] that carries the time and the seed of every ID its apply creates. A command
//! holds everything its apply needs besides the state itself, so applying the same requests
//! in the same order to the same state gives the same state on every server (docs/raft.md §2).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::server::gc::collect::{Garbage, Thresholds};

use super::apply::{
    AllocClientUpdate, DrainBatch, PlanApply, Promotion, RegisterOptions, ScaleRequest, VarWrite,
};
use crate::structs::acl::{AclPolicy, AclRole, AclToken, OneTimeToken};
use crate::structs::keyring::RootKeyMeta;
use crate::structs::service::ServiceRegistration;
use crate::structs::time::now_nanos;
use crate::structs::variable::{VariableEncrypted, VariableLock};
use crate::structs::{
    DeploymentStatusUpdate, DrainSpec, Evaluation, Job, Namespace, Node, NodeStatus,
    SchedulerConfiguration, StrMap,
};

/// One write to propose: a command with the time and the seed the proposer chose for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// When the write was proposed (unix nanoseconds): the only clock its apply reads.
    pub at: i64,
    /// What IDs the apply derives are made from (see `ApplyCtx::derive_id`).
    pub seed: Uuid,
    /// The write.
    pub cmd: Command,
}

impl Request {
    /// `cmd`, proposed now with a fresh seed.
    pub fn new(cmd: Command) -> Self {
        Self::new_at(now_nanos(), cmd)
    }

    /// `cmd`, proposed at `at` (the time the proposer decided it at) with a fresh seed.
    pub fn new_at(at: i64, cmd: Command) -> Self {
        Request {
            at,
            seed: Uuid::new_v4(),
            cmd,
        }
    }
}

/// Every kind of write the state takes. Values are decided by the proposer (IDs, times,
/// validation, canonical forms); what depends on the state at apply time (indexes,
/// versions, statuses, conflict checks) is decided by the apply.
#[derive(Debug, Clone, Serialize, Deserialize)]
// Jobs, nodes and plans are boxed; what remains differs by an evaluation or so, and a
// command is built once per write and moved, never copied in bulk.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Creates or replaces a namespace (validated by the proposer).
    NamespaceUpsert { ns: Namespace },
    /// Deletes a namespace that holds nothing still running; `region` names the region in
    /// the refusal.
    NamespaceDelete { name: String, region: String },

    /// Creates the bootstrap management token; `reset_index` is the index an operator's
    /// reset file names (0: none), which allows one more bootstrap after the one at it.
    AclBootstrap { token: AclToken, reset_index: u64 },
    /// Creates or replaces a policy (rules parsed by the proposer).
    AclPolicyUpsert { policy: AclPolicy },
    /// Deletes policies; unknown names are skipped.
    AclPolicyDelete { names: Vec<String> },
    /// Creates (`creating`: IDs and times already set) or updates a token.
    AclTokenUpsert { token: AclToken, creating: bool },
    /// Deletes tokens by accessor ID.
    AclTokenDelete { accessors: Vec<String> },
    /// Creates (`creating`: ID already set) or updates a role.
    AclRoleUpsert { role: AclRole, creating: bool },
    /// Deletes roles by ID.
    AclRoleDelete { ids: Vec<String> },
    /// Deletes the named tokens and one-time tokens that have expired by the request's time.
    AclTokensReap {
        accessors: Vec<String>,
        one_time: Vec<String>,
    },
    /// Stores a one-time token (secret and expiry chosen by the proposer).
    AclOneTimeCreate { token: OneTimeToken },
    /// Consumes a one-time token, answering the token it was made for while both are live.
    AclOneTimeExchange { secret: String },

    /// Writes `config` as the scheduler configuration unless one is stored already.
    SchedulerConfigEnsure { config: SchedulerConfiguration },
    /// Replaces the scheduler configuration; with `cas`, only when the stored one's
    /// ModifyIndex is `cas` (0: none stored).
    SchedulerConfigSet {
        config: SchedulerConfiguration,
        cas: Option<u64>,
    },

    /// Registers a job (canonical and validated, its pool defaulted) and creates its
    /// evaluation, unless the spec did not change or the job is a parent.
    JobRegister {
        job: Box<Job>,
        opts: RegisterOptions,
    },
    /// Stops (a new version with `Stop`) or purges a job and creates the evaluation that
    /// stops its allocations.
    JobDeregister {
        ns: String,
        id: String,
        purge: bool,
        eval_priority: i64,
        eval_id: String,
    },
    /// Creates an evaluation of a job; with `force_reschedule`, its failed allocations are
    /// marked to be rescheduled now.
    JobEvaluate {
        ns: String,
        id: String,
        force_reschedule: bool,
        eval_id: String,
    },
    /// Changes a group's count and records a scaling event.
    JobScale(ScaleRequest),
    /// Sets the `Stable` flag of one version of a job.
    JobStability {
        ns: String,
        id: String,
        version: i64,
        stable: bool,
    },
    /// Puts a tag on one version of a job (`tag: Some`), or takes the tag named `name` off
    /// (`tag: None`; `version` unused).
    JobVersionTag {
        ns: String,
        id: String,
        version: i64,
        name: String,
        tag: Option<crate::structs::JobVersionTag>,
    },
    /// Marks an allocation for migration and creates the `alloc-stop` evaluation
    /// (`eval_id`) that replaces it.
    AllocStop {
        alloc_id: String,
        no_shutdown_delay: bool,
        eval_id: String,
    },

    /// Registers a node (validated, defaults and computed class set) and evaluates what
    /// runs or may run on it.
    NodeRegister { node: Box<Node> },
    /// A heartbeat that changes a node's status.
    NodeStatus { node_id: String, status: NodeStatus },
    /// A missed heartbeat: the node goes down (no-op when it already is).
    NodeDown { node_id: String },
    /// A client's reports on its allocations (authenticated, none foreign).
    AllocClientUpdate {
        node_id: String,
        updates: Vec<AllocClientUpdate>,
    },
    /// Marks a node eligible or ineligible (`eligibility` validated).
    NodeEligibility {
        node_id: String,
        eligibility: String,
    },
    /// Starts, updates or (`spec: None`) cancels a node's drain.
    NodeDrain {
        node_id: String,
        spec: Option<DrainSpec>,
        mark_eligible: bool,
        meta: StrMap,
    },
    /// Removes a node; its work is evaluated elsewhere.
    NodePurge { node_id: String },
    /// Evaluates every job with work on a node.
    NodeEvaluate { node_id: String },
    /// One pass of the drainer.
    DrainBatch(DrainBatch),

    /// Changes an active deployment's status, with its evaluation; `refusal` is the
    /// conflict answered when the deployment ended meanwhile.
    DeploymentStatus {
        update: DeploymentStatusUpdate,
        eval: Option<Evaluation>,
        refusal: String,
    },
    /// Promotes canaries, with the evaluation that places the rest.
    DeploymentPromote {
        promotion: Promotion,
        eval: Evaluation,
        refusal: String,
    },
    /// Sets allocations' health by hand (true: healthy), failing the deployment with
    /// `fail` when given.
    DeploymentAllocHealth {
        marks: Vec<(String, bool)>,
        fail: Option<DeploymentStatusUpdate>,
        eval: Evaluation,
    },
    /// The deployment watcher's replacement of unhealthy allocations.
    DeploymentReschedule {
        alloc_ids: Vec<String>,
        eval: Evaluation,
    },

    /// Removes the garbage the proposer found that is still eligible under `thresholds`
    /// at the request's time.
    GcReap {
        garbage: Garbage,
        thresholds: Thresholds,
    },

    /// A variable write on `ns`/`path`; `sealed` holds the items of a set or acquire.
    VarApply {
        op: VarWrite,
        ns: String,
        path: String,
        lock: Option<VariableLock>,
        sealed: Option<VariableEncrypted>,
    },
    /// Takes an expired lock off a variable still holding it.
    VarLockExpire {
        ns: String,
        path: String,
        lock_id: String,
    },

    /// Stores a new root key; with `rekey` (a full rotation), the variables `resealed`
    /// with it replace those not written since the proposer read them.
    RootKeyUpsert {
        meta: RootKeyMeta,
        rekey: bool,
        resealed: Vec<VariableEncrypted>,
    },
    /// Deletes a root key that is not active (and, unless `force`, seals nothing).
    RootKeyDelete { key_id: String, force: bool },

    /// Commits a scheduler outcome (boxed: a plan is large, the other commands small).
    PlanApply(Box<PlanApply>),

    /// Stores evaluations as given (a worker recording a failed one).
    EvalUpdate { evals: Vec<Evaluation> },
    /// Marks evaluations cancelled, superseded by newer ones; those already terminal keep
    /// what they have.
    EvalsCancel { ids: Vec<String> },

    /// A client's sync of its allocations' service registrations: stores `upsert` and
    /// removes `delete` (`(namespace, ID)`), all checked by the proposer to belong to the
    /// client's node.
    ServicesSync {
        upsert: Vec<ServiceRegistration>,
        delete: Vec<(String, String)>,
    },
    /// Removes one service registration.
    ServiceDelete { ns: String, id: String },
}
