//! Commands are deterministic: the same requests applied to the same state give the same
//! state, however that state's maps were filled; and a command survives the JSON a log
//! entry is made of.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::server::gc::collect::{Garbage, Thresholds};
use crate::server::state::{
    Command, DrainBatch, PlanApply, Promotion, RegisterOptions, Request, ScaleRequest, StateError,
    StateStore, Tables, Txn, VarWrite,
};
use crate::structs::acl::{AclPolicy, AclRole, AclToken, OneTimeToken};
use crate::structs::variable::VariableEncrypted;
use crate::structs::{Allocation, Evaluation, Job, Namespace, SchedulerConfiguration};

fn from<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("test fixture decodes")
}

/// 2026-01-01, the time every test request is proposed at (plus its number in ns).
const T0: i64 = 1_767_225_600_000_000_000;

fn sealed(path: &str, key: &str, data: &[u8]) -> VariableEncrypted {
    VariableEncrypted {
        meta: from(
            json!({"Namespace": "default", "Path": path, "CreateTime": T0, "ModifyTime": T0}),
        ),
        data: data.to_vec(),
        key_id: key.into(),
    }
}

/// A plan placing one allocation of j1 on `node`, with a follow-up evaluation.
fn plan(node: &str, alloc_id: &str, eval_id: &str) -> PlanApply {
    let mut a: Allocation = from(json!({
        "ID": alloc_id, "Namespace": "default", "JobID": "j1", "TaskGroup": "g",
        "Name": "j1.g[9]", "NodeID": node, "DesiredStatus": "run", "ClientStatus": "pending"
    }));
    a.job = Some(Arc::new(job("j1")));
    let mut p = PlanApply {
        eval: eval(eval_id, "j1", "pending"),
        followup_evals: vec![eval(&format!("{eval_id}-later"), "j1", "pending")],
        queued_allocations: [("g".to_string(), 0)].into(),
        snapshot_index: 7,
        ..PlanApply::default()
    };
    p.plan.node_allocation.insert(node.to_string(), vec![a]);
    p
}

fn req(n: u128, cmd: Command) -> Request {
    Request {
        at: T0 + n as i64,
        seed: Uuid::from_u128(n),
        cmd,
    }
}

fn job(id: &str) -> Job {
    let mut j: Job = from(json!({
        "ID": id,
        "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "raw_exec"}]}]
    }));
    crate::structs::canonicalize::canonicalize_job(&mut j, "global");
    j
}

fn token(accessor: &str, secret: &str, expires: Option<&str>) -> AclToken {
    from(json!({
        "AccessorID": accessor,
        "SecretID": secret,
        "Name": accessor,
        "Type": "client",
        "Policies": ["p1"],
        "ExpirationTime": expires,
    }))
}

fn one_time(secret: &str, accessor: &str, expires: &str) -> OneTimeToken {
    from(json!({"OneTimeSecretID": secret, "AccessorID": accessor, "ExpiresAt": expires}))
}

fn eval(id: &str, job_id: &str, status: &str) -> Evaluation {
    from(json!({
        "ID": id, "Namespace": "default", "JobID": job_id, "Type": "service",
        "Priority": 50, "Status": status, "TriggeredBy": "job-register"
    }))
}

/// The objects every test state holds, each put by one closure; `reversed` puts them in
/// the opposite order, which fills the hash maps differently but must not matter.
fn setup(txn: &mut Txn, reversed: bool) -> Result<(), StateError> {
    type Put = Box<dyn Fn(&mut Txn) -> Result<(), StateError>>;
    let mut puts: Vec<Put> = vec![
        Box::new(|t| t.put_namespace(from(json!({"Name": "a"}))).map(drop)),
        Box::new(|t| t.put_namespace(from(json!({"Name": "b"}))).map(drop)),
        Box::new(|t| t.put_acl_policy(from(json!({"Name": "p1", "Rules": "" })))),
        Box::new(|t| t.put_acl_policy(from(json!({"Name": "p2", "Rules": "" })))),
        Box::new(|t| {
            t.put_acl_role(from(
                json!({"ID": "r1", "Name": "role1", "Policies": [{"Name": "p1"}]}),
            ))
            .map(drop)
        }),
        Box::new(|t| t.put_acl_token(token("tok-a", "sec-a", None)).map(drop)),
        Box::new(|t| {
            t.put_acl_token(token("tok-old", "sec-old", Some("2025-01-01T00:00:00Z")))
                .map(drop)
        }),
        Box::new(|t| {
            t.put_acl_token(token(
                "tok-later",
                "sec-later",
                Some("2027-01-01T00:00:00Z"),
            ))
            .map(drop)
        }),
        Box::new(|t| {
            t.put_one_time_token(one_time("ot-old", "tok-a", "2025-01-01T00:00:00Z"))
                .map(drop)
        }),
        Box::new(|t| {
            t.put_one_time_token(one_time("ot-live", "tok-a", "2027-01-01T00:00:00Z"))
                .map(drop)
        }),
        Box::new(|t| {
            t.put_node(from(json!({"ID": "n1", "Name": "n1", "Status": "ready"})))
                .map(drop)
        }),
        Box::new(|t| {
            t.put_node(from(json!({"ID": "n2", "Name": "n2", "Status": "ready"})))
                .map(drop)
        }),
        Box::new(|t| t.put_eval(eval("e1", "j1", "pending")).map(drop)),
        Box::new(|t| {
            t.put_deployment(from(json!({
                "ID": "d1", "Namespace": "default", "JobID": "j1", "Status": "running",
                "TaskGroups": {"g": {"DesiredCanaries": 1, "PlacedCanaries": ["a0"], "DesiredTotal": 2}}
            })))
            .map(drop)
        }),
        Box::new(|t| t.put_eval(eval("e2", "j2", "blocked")).map(drop)),
        Box::new(|t| t.put_eval(eval("e3", "j2", "complete")).map(drop)),
    ];
    for (i, node) in ["n1", "n2", "n1", "n2"].into_iter().enumerate() {
        puts.push(Box::new(move |t| {
            let job = t.tables().job("default", "j1").expect("j1 is put first");
            let mut a: Allocation = from(json!({
                "ID": format!("a{i}"), "Namespace": "default", "JobID": "j1",
                "TaskGroup": "g", "Name": format!("j1.g[{i}]"), "NodeID": node,
                "DesiredStatus": "run", "ClientStatus": "running"
            }));
            a.job = Some(job);
            t.put_alloc_server(a)
        }));
    }
    if reversed {
        puts.reverse();
    }
    // Jobs go first: the allocations embed them.
    let jobs = if reversed { ["j2", "j1"] } else { ["j1", "j2"] };
    for id in jobs {
        txn.put_job(job(id), true)?;
    }
    for put in puts {
        put(txn)?;
    }
    Ok(())
}

fn store(reversed: bool) -> StateStore {
    let s = StateStore::in_memory();
    s.write_blocking(|t| setup(t, reversed)).expect("setup");
    s
}

fn sorted_set<K, I>(m: &imbl::HashMap<K, imbl::OrdSet<I>>) -> BTreeMap<String, Vec<String>>
where
    K: std::fmt::Debug + std::hash::Hash + Eq + Clone,
    I: std::fmt::Display + Ord + Clone,
{
    m.iter()
        .map(|(k, v)| (format!("{k:?}"), v.iter().map(|i| i.to_string()).collect()))
        .collect()
}

/// Everything the tables hold, in an order that does not depend on how they were filled.
fn fingerprint(t: &Tables) -> Value {
    let vals = Value::Array;
    let mut one_time: Vec<&Arc<OneTimeToken>> = t.acl.one_time_tokens().collect();
    one_time.sort_by(|a, b| a.one_time_secret_id.cmp(&b.one_time_secret_id));
    let mut alloc_job_keys: Vec<&String> = t.alloc_job_keys.iter().collect();
    alloc_job_keys.sort();
    json!({
        "index": t.index,
        "table_index": t.table_index.to_vec(),
        "jobs": vals(t.jobs.values().map(to).collect()),
        "job_versions": vals(t.job_versions.values().flat_map(|v| v.iter().map(to).collect::<Vec<_>>()).collect()),
        "allocs": vals(t.allocs.values().map(to).collect()),
        "allocs_by_node": sorted_set(&t.allocs_by_node),
        "allocs_by_job": sorted_set(&t.allocs_by_job),
        "nodes": vals(t.nodes.values().map(to).collect()),
        "evals": vals(t.evals.values().map(to).collect()),
        "evals_by_job": sorted_set(&t.evals_by_job),
        "deployments": vals(t.deployments.values().map(to).collect()),
        "scaling_events": vals(t.scaling_events.values().map(to).collect()),
        "namespaces": vals(t.namespaces.values().map(to).collect()),
        "acl_policies": vals(t.acl.policies.values().map(to).collect()),
        "acl_tokens": vals(t.acl.tokens.values().map(to).collect()),
        "acl_roles": vals(t.acl.roles.values().map(to).collect()),
        "acl_one_time": vals(one_time.into_iter().map(to).collect()),
        "acl_bootstrap": t.acl.bootstrap_index,
        "job_submissions": vals(t.job_submissions.values().map(to).collect()),
        "scheduler_config": t.scheduler_config.as_ref().map(to),
        "variables": vals(t.vars.variables.values().map(to).collect()),
        "root_keys": vals(t.vars.root_keys.values().map(to).collect()),
        "alloc_job_keys": alloc_job_keys,
    })
}

fn to<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("stored objects encode")
}

/// One request of every command kind, in an order where each finds what it works on;
/// some are refused (a missing object, a failed check-and-set).
fn requests() -> Vec<Request> {
    let new_token: AclToken = from(json!({
        "AccessorID": "tok-new", "SecretID": "sec-new", "Name": "new", "Type": "client",
        "Roles": [{"Name": "role1"}], "CreateTime": "2026-01-01T00:00:00Z"
    }));
    let role: AclRole = from(json!({"ID": "r2", "Name": "role2", "Policies": [{"Name": "p2"}]}));
    let ns: Namespace = from(json!({"Name": "c", "Description": "third"}));
    let policy: AclPolicy = from(json!({"Name": "p3", "Rules": "namespace \"default\" {}"}));
    let config: SchedulerConfiguration = from(json!({"SchedulerAlgorithm": "spread"}));
    let mut failed = eval("e1", "j1", "failed");
    failed.status_description = "maximum attempts reached (5)".into();
    let cmds = vec![
        Command::NamespaceUpsert { ns },
        Command::NamespaceDelete {
            name: "b".into(),
            region: "global".into(),
        },
        Command::NamespaceDelete {
            name: "missing".into(),
            region: "global".into(),
        },
        Command::AclBootstrap {
            token: from(
                json!({"AccessorID": "boot", "SecretID": "sec-boot", "Type": "management"}),
            ),
            reset_index: 0,
        },
        Command::AclBootstrap {
            token: from(
                json!({"AccessorID": "boot2", "SecretID": "sec-boot2", "Type": "management"}),
            ),
            reset_index: 0,
        },
        Command::AclPolicyUpsert { policy },
        Command::AclPolicyDelete {
            names: vec!["p2".into(), "nope".into()],
        },
        Command::AclRoleUpsert {
            role: role.clone(),
            creating: true,
        },
        Command::AclPolicyUpsert {
            policy: from(json!({"Name": "p2", "Rules": ""})),
        },
        Command::AclRoleUpsert {
            role,
            creating: true,
        },
        Command::AclTokenUpsert {
            token: new_token,
            creating: true,
        },
        Command::AclTokenDelete {
            accessors: vec!["tok-a".into()],
        },
        Command::AclRoleDelete {
            ids: vec!["r1".into(), "r9".into()],
        },
        Command::AclTokensReap {
            accessors: vec!["tok-old".into(), "tok-later".into()],
            one_time: vec!["ot-old".into(), "ot-live".into()],
        },
        Command::AclOneTimeCreate {
            token: one_time("ot-new", "tok-new", "2026-01-01T00:10:00Z"),
        },
        Command::AclOneTimeExchange {
            secret: "ot-new".into(),
        },
        Command::SchedulerConfigEnsure {
            config: config.clone(),
        },
        Command::SchedulerConfigSet {
            config: config.clone(),
            cas: Some(999),
        },
        Command::SchedulerConfigSet { config, cas: None },
        Command::JobRegister {
            job: Box::new(job("j3")),
            opts: RegisterOptions {
                eval_id: "reg-j3".into(),
                submission: Some(from(json!({"Source": "job \"j3\" {}", "Format": "hcl2"}))),
                ..RegisterOptions::default()
            },
        },
        Command::JobRegister {
            job: Box::new(job("j1")),
            opts: RegisterOptions {
                enforce_index: true,
                job_modify_index: 999,
                eval_id: "refused".into(),
                ..RegisterOptions::default()
            },
        },
        Command::JobRegister {
            job: Box::new({
                let mut j = job("j1");
                j.priority = 70;
                j
            }),
            opts: RegisterOptions {
                preserve_counts: true,
                eval_priority: 90,
                eval_id: "reg-j1".into(),
                ..RegisterOptions::default()
            },
        },
        Command::JobDeregister {
            ns: "default".into(),
            id: "j2".into(),
            purge: false,
            eval_priority: 0,
            eval_id: "dereg-j2".into(),
        },
        Command::JobDeregister {
            ns: "default".into(),
            id: "missing".into(),
            purge: true,
            eval_priority: 0,
            eval_id: "refused".into(),
        },
        Command::JobEvaluate {
            ns: "default".into(),
            id: "j1".into(),
            force_reschedule: true,
            eval_id: "evaluate-j1".into(),
        },
        Command::JobScale(ScaleRequest {
            ns: "default".into(),
            id: "j1".into(),
            group: "g".into(),
            count: Some(3),
            message: "more".into(),
            eval_id: "scale-j1".into(),
            ..ScaleRequest::default()
        }),
        Command::JobScale(ScaleRequest {
            ns: "default".into(),
            id: "j1".into(),
            group: "nope".into(),
            count: Some(1),
            eval_id: "refused".into(),
            ..ScaleRequest::default()
        }),
        Command::JobStability {
            ns: "default".into(),
            id: "j1".into(),
            version: 0,
            stable: true,
        },
        Command::JobStability {
            ns: "default".into(),
            id: "j1".into(),
            version: 7,
            stable: true,
        },
        Command::JobVersionTag {
            ns: "default".into(),
            id: "j1".into(),
            version: 0,
            name: "golden".into(),
            tag: Some(crate::structs::JobVersionTag {
                name: "golden".into(),
                description: "first".into(),
                tagged_time: 5,
            }),
        },
        // The name is taken by another version: refused.
        Command::JobVersionTag {
            ns: "default".into(),
            id: "j1".into(),
            version: 7,
            name: "golden".into(),
            tag: Some(crate::structs::JobVersionTag {
                name: "golden".into(),
                ..Default::default()
            }),
        },
        Command::JobVersionTag {
            ns: "default".into(),
            id: "j1".into(),
            version: 0,
            name: "golden".into(),
            tag: None,
        },
        Command::JobVersionTag {
            ns: "default".into(),
            id: "j1".into(),
            version: 0,
            name: "never-set".into(),
            tag: None,
        },
        Command::AllocStop {
            alloc_id: "a1".into(),
            no_shutdown_delay: true,
            eval_id: "stop-eval".into(),
        },
        Command::DeploymentAllocHealth {
            marks: vec![("a0".into(), true), ("a9".into(), false)],
            fail: None,
            eval: eval("dep-health", "j1", "pending"),
        },
        Command::DeploymentPromote {
            promotion: Promotion {
                deployment_id: "d1".into(),
                all: true,
                groups: Vec::new(),
            },
            eval: eval("dep-promote", "j1", "pending"),
            refusal: "can't promote terminal deployment".into(),
        },
        Command::DeploymentPromote {
            promotion: Promotion {
                deployment_id: "nope".into(),
                all: true,
                groups: Vec::new(),
            },
            eval: eval("refused", "j1", "pending"),
            refusal: "can't promote terminal deployment".into(),
        },
        Command::DeploymentReschedule {
            alloc_ids: vec!["a2".into()],
            eval: eval("dep-replace", "j1", "pending"),
        },
        Command::DeploymentStatus {
            update: from(
                json!({"DeploymentID": "d1", "Status": "paused", "StatusDescription": "paused"}),
            ),
            eval: None,
            refusal: "can't pause terminal deployment".into(),
        },
        Command::DeploymentStatus {
            update: from(
                json!({"DeploymentID": "d1", "Status": "failed", "StatusDescription": "by user"}),
            ),
            eval: Some(eval("dep-fail", "j1", "pending")),
            refusal: "can't fail terminal deployment".into(),
        },
        Command::DeploymentStatus {
            update: from(
                json!({"DeploymentID": "d1", "Status": "running", "StatusDescription": ""}),
            ),
            eval: None,
            refusal: "can't resume terminal deployment".into(),
        },
        Command::NodeRegister {
            node: from(json!({
                "ID": "n3", "Name": "n3", "SecretID": "sec-n3", "Status": "ready",
                "Datacenter": "dc1", "NodePool": "default", "ComputedClass": "v1:1",
                "Attributes": {"kernel.name": "linux"}
            })),
        },
        Command::NodeRegister {
            node: from(json!({"ID": "n1", "Name": "n1", "SecretID": "wrong", "Status": "ready"})),
        },
        Command::NodeStatus {
            node_id: "n2".into(),
            status: crate::structs::NodeStatus::Initializing,
        },
        Command::NodeStatus {
            node_id: "n2".into(),
            status: crate::structs::NodeStatus::Ready,
        },
        Command::AllocClientUpdate {
            node_id: "n2".into(),
            updates: vec![
                from(json!({"id": "a1", "client_status": "failed", "client_description": "oom"})),
                from(json!({"id": "a3", "client_status": "running"})),
                from(json!({"id": "a0", "client_status": "complete"})),
            ],
        },
        Command::NodeEligibility {
            node_id: "n3".into(),
            eligibility: "ineligible".into(),
        },
        Command::NodeEligibility {
            node_id: "gone".into(),
            eligibility: "eligible".into(),
        },
        Command::NodeDrain {
            node_id: "n2".into(),
            spec: Some(from(json!({"Deadline": 3_600_000_000_000i64}))),
            mark_eligible: false,
            meta: Some([("reason".to_string(), "kernel".to_string())].into()),
        },
        Command::DrainBatch(DrainBatch {
            migrate: vec!["a3".into(), "a1".into()],
            complete: vec![("n2".into(), true), ("n1".into(), false)],
        }),
        Command::NodeDrain {
            node_id: "n3".into(),
            spec: None,
            mark_eligible: true,
            meta: None,
        },
        Command::NodeEvaluate {
            node_id: "n1".into(),
        },
        Command::NodeDown {
            node_id: "n1".into(),
        },
        Command::NodeDown {
            node_id: "n1".into(),
        },
        Command::NodePurge {
            node_id: "n3".into(),
        },
        Command::NodePurge {
            node_id: "n3".into(),
        },
        Command::EvalUpdate {
            evals: vec![failed],
        },
        Command::EvalsCancel {
            ids: vec!["e2".into(), "e3".into(), "gone".into()],
        },
        Command::RootKeyUpsert {
            meta: from(json!({"KeyID": "k1", "State": "active", "CreateTime": T0})),
            rekey: false,
            resealed: Vec::new(),
        },
        Command::VarApply {
            op: VarWrite::Set,
            ns: "default".into(),
            path: "app/db".into(),
            lock: None,
            sealed: Some(sealed("app/db", "k1", b"one")),
        },
        Command::VarApply {
            op: VarWrite::Cas(1),
            ns: "default".into(),
            path: "app/db".into(),
            lock: None,
            sealed: Some(sealed("app/db", "k1", b"refused")),
        },
        Command::VarApply {
            op: VarWrite::LockAcquire,
            ns: "default".into(),
            path: "app/lock".into(),
            lock: Some(from(json!({"ID": "l1", "TTL": "15s"}))),
            sealed: Some(sealed("app/lock", "k1", b"held")),
        },
        Command::VarApply {
            op: VarWrite::Delete,
            ns: "default".into(),
            path: "app/lock".into(),
            lock: None,
            sealed: None,
        },
        Command::VarLockExpire {
            ns: "default".into(),
            path: "app/lock".into(),
            lock_id: "l1".into(),
        },
        Command::VarApply {
            op: VarWrite::LockRelease,
            ns: "default".into(),
            path: "app/lock".into(),
            lock: Some(from(json!({"ID": "l1"}))),
            sealed: None,
        },
        Command::RootKeyUpsert {
            meta: from(json!({"KeyID": "k2", "State": "active", "CreateTime": T0})),
            rekey: true,
            resealed: vec![{
                // As read before the rotation: ModifyIndex of its last write.
                let mut v = sealed("app/lock", "k2", b"held");
                v.meta.modify_index = 999;
                v
            }],
        },
        Command::RootKeyDelete {
            key_id: "k2".into(),
            force: false,
        },
        Command::RootKeyDelete {
            key_id: "k1".into(),
            force: true,
        },
        Command::PlanApply(Box::new(plan("n2", "placed", "e-plan"))),
        Command::PlanApply(Box::new(plan("gone", "never", "refused"))),
        Command::ServicesSync {
            upsert: vec![
                from(
                    json!({"ID": "s1", "ServiceName": "web", "Namespace": "default",
                    "NodeID": "n2", "JobID": "j1", "AllocID": "placed",
                    "Address": "10.0.0.2", "Port": 8080}),
                ),
                // An allocation that is not there registers nothing.
                from(
                    json!({"ID": "s2", "ServiceName": "web", "Namespace": "default",
                    "NodeID": "n2", "JobID": "j1", "AllocID": "never", "Port": 1}),
                ),
            ],
            delete: vec![("default".into(), "not-there".into())],
        },
        Command::ServiceDelete {
            ns: "default".into(),
            id: "missing".into(),
        },
        Command::GcReap {
            garbage: Garbage {
                evals: ["e3".to_string(), "not-there".to_string()].into(),
                nodes: vec!["n2".into()],
                ..Garbage::default()
            },
            thresholds: Thresholds::forced(),
        },
    ];
    cmds.into_iter()
        .enumerate()
        .map(|(i, c)| req(i as u128 + 1, c))
        .collect()
}

/// The name of a command's kind; a new kind does not compile here until it is named, and
/// [`every_kind_is_exercised`] then asks for a request of it.
fn kind(c: &Command) -> &'static str {
    match c {
        Command::NamespaceUpsert { .. } => "NamespaceUpsert",
        Command::NamespaceDelete { .. } => "NamespaceDelete",
        Command::AclBootstrap { .. } => "AclBootstrap",
        Command::AclPolicyUpsert { .. } => "AclPolicyUpsert",
        Command::AclPolicyDelete { .. } => "AclPolicyDelete",
        Command::AclTokenUpsert { .. } => "AclTokenUpsert",
        Command::AclTokenDelete { .. } => "AclTokenDelete",
        Command::AclRoleUpsert { .. } => "AclRoleUpsert",
        Command::AclRoleDelete { .. } => "AclRoleDelete",
        Command::AclTokensReap { .. } => "AclTokensReap",
        Command::AclOneTimeCreate { .. } => "AclOneTimeCreate",
        Command::AclOneTimeExchange { .. } => "AclOneTimeExchange",
        Command::SchedulerConfigEnsure { .. } => "SchedulerConfigEnsure",
        Command::SchedulerConfigSet { .. } => "SchedulerConfigSet",
        Command::JobRegister { .. } => "JobRegister",
        Command::JobDeregister { .. } => "JobDeregister",
        Command::JobEvaluate { .. } => "JobEvaluate",
        Command::JobScale(_) => "JobScale",
        Command::JobStability { .. } => "JobStability",
        Command::JobVersionTag { .. } => "JobVersionTag",
        Command::AllocStop { .. } => "AllocStop",
        Command::NodeRegister { .. } => "NodeRegister",
        Command::NodeStatus { .. } => "NodeStatus",
        Command::NodeDown { .. } => "NodeDown",
        Command::AllocClientUpdate { .. } => "AllocClientUpdate",
        Command::NodeEligibility { .. } => "NodeEligibility",
        Command::NodeDrain { .. } => "NodeDrain",
        Command::NodePurge { .. } => "NodePurge",
        Command::NodeEvaluate { .. } => "NodeEvaluate",
        Command::DrainBatch(_) => "DrainBatch",
        Command::DeploymentStatus { .. } => "DeploymentStatus",
        Command::DeploymentPromote { .. } => "DeploymentPromote",
        Command::DeploymentAllocHealth { .. } => "DeploymentAllocHealth",
        Command::DeploymentReschedule { .. } => "DeploymentReschedule",
        Command::VarApply { .. } => "VarApply",
        Command::VarLockExpire { .. } => "VarLockExpire",
        Command::RootKeyUpsert { .. } => "RootKeyUpsert",
        Command::RootKeyDelete { .. } => "RootKeyDelete",
        Command::PlanApply(_) => "PlanApply",
        Command::GcReap { .. } => "GcReap",
        Command::EvalUpdate { .. } => "EvalUpdate",
        Command::EvalsCancel { .. } => "EvalsCancel",
        Command::ServicesSync { .. } => "ServicesSync",
        Command::ServiceDelete { .. } => "ServiceDelete",
    }
}

const KINDS: &[&str] = &[
    "NamespaceUpsert",
    "NamespaceDelete",
    "AclBootstrap",
    "AclPolicyUpsert",
    "AclPolicyDelete",
    "AclTokenUpsert",
    "AclTokenDelete",
    "AclRoleUpsert",
    "AclRoleDelete",
    "AclTokensReap",
    "AclOneTimeCreate",
    "AclOneTimeExchange",
    "SchedulerConfigEnsure",
    "SchedulerConfigSet",
    "JobRegister",
    "JobDeregister",
    "JobEvaluate",
    "JobScale",
    "JobStability",
    "JobVersionTag",
    "AllocStop",
    "NodeRegister",
    "NodeStatus",
    "NodeDown",
    "AllocClientUpdate",
    "NodeEligibility",
    "NodeDrain",
    "NodePurge",
    "NodeEvaluate",
    "DrainBatch",
    "DeploymentStatus",
    "DeploymentPromote",
    "DeploymentAllocHealth",
    "DeploymentReschedule",
    "VarApply",
    "VarLockExpire",
    "RootKeyUpsert",
    "RootKeyDelete",
    "PlanApply",
    "GcReap",
    "EvalUpdate",
    "EvalsCancel",
    "ServicesSync",
    "ServiceDelete",
];

/// Applies `reqs` one by one; what each answered (refusals included), as text.
fn run(s: &StateStore, reqs: Vec<Request>) -> Vec<String> {
    reqs.into_iter()
        .map(|r| format!("{:?}", s.commit_blocking(r)))
        .collect()
}

#[test]
fn every_kind_is_exercised() {
    let mut seen: Vec<&str> = requests().iter().map(|r| kind(&r.cmd)).collect();
    seen.sort();
    seen.dedup();
    let mut all = KINDS.to_vec();
    all.sort();
    assert_eq!(seen, all);
}

#[test]
fn tables_filled_in_different_orders_start_equal() {
    let (a, b) = (store(false), store(true));
    assert_eq!(fingerprint(&a.snapshot()), fingerprint(&b.snapshot()));
}

#[test]
fn the_same_requests_give_the_same_state_whatever_the_fill_order() {
    let (a, b) = (store(false), store(true));
    let (out_a, out_b) = (run(&a, requests()), run(&b, requests()));
    assert_eq!(out_a, out_b);
    assert_eq!(fingerprint(&a.snapshot()), fingerprint(&b.snapshot()));
    // The requests did something, and some were refused.
    assert!(a.latest_index() > 2 + 15);
    assert!(out_a.iter().any(|o| o.starts_with("Err(NotFound")));
    assert!(out_a.iter().any(|o| o.starts_with("Err(Conflict")));
    assert!(out_a.iter().any(|o| o.starts_with("Err(BadRequest")));
    // Each command did its part.
    let t = a.snapshot();
    assert!(t.namespace("c").is_some() && t.namespace("b").is_none());
    assert_eq!(t.acl.bootstrap_index, 5);
    assert!(t.acl.policies.contains_key("p3") && !t.acl.roles.contains_key("r1"));
    assert!(!t.acl.tokens.contains_key("tok-old") && t.acl.tokens.contains_key("tok-later"));
    assert!(t.acl.one_time_by_secret("ot-old").is_none());
    assert!(t.acl.one_time_by_secret("ot-live").is_some());
    assert!(t.acl.one_time_by_secret("ot-new").is_none(), "exchanged");
    assert_eq!(t.scheduler_config().scheduler_algorithm, "spread");
    assert!(t.evals.contains_key("reg-j3") && t.evals.contains_key("scale-j1"));
    assert!(!t.evals.contains_key("refused"));
    let j1 = t.job("default", "j1").expect("j1");
    assert_eq!((j1.priority, j1.groups()[0].count), (70, 3));
    assert!(t.job("default", "j2").expect("j2").stop);
    assert_eq!(
        t.alloc("a1").expect("a1").client_status.to_string(),
        "failed"
    );
    assert_eq!(
        t.alloc("a0").expect("a0").client_status.to_string(),
        "running"
    );
    assert_eq!(
        t.alloc("a3").expect("a3").desired_transition.migrate,
        Some(true)
    );
    assert_eq!(t.node("n1").expect("n1").status.to_string(), "down");
    assert!(t.node("n3").is_none());
    let n2 = t.node("n2").expect("n2");
    assert!(n2.drain_strategy.is_none());
    assert_eq!(n2.last_drain.as_ref().expect("drained").status, "complete");
    let node_evals = t
        .evals
        .values()
        .filter(|e| e.triggered_by == "node-update")
        .count();
    assert!(node_evals >= 2, "{node_evals}");
    // Deployments.
    let d1 = t.deployment("d1").expect("d1");
    assert!(d1.task_groups["g"].promoted);
    assert_eq!(d1.status.to_string(), "failed");
    let failed_at = requests().into_iter().find_map(|r| match &r.cmd {
        Command::DeploymentStatus { update, .. }
            if update.status == crate::structs::DeploymentStatus::Failed =>
        {
            Some(r.at)
        }
        _ => None,
    });
    assert_eq!(
        Some(d1.modify_time),
        failed_at,
        "stamped by the request that failed it"
    );
    let a2 = t.alloc("a2").expect("a2");
    assert_eq!(a2.desired_transition.reschedule, Some(true));
    assert!(t.evals.contains_key("dep-fail") && t.evals.contains_key("dep-replace"));
    // Variables and root keys.
    let db = t.vars.get("default", "app/db").expect("app/db");
    assert_eq!(
        (db.data.as_slice(), db.key_id.as_str()),
        (&b"one"[..], "k1")
    );
    let lock = t.vars.get("default", "app/lock").expect("app/lock");
    assert!(lock.meta.lock.is_none(), "expired");
    assert_eq!(
        lock.key_id, "k1",
        "written since it was read for the rotation"
    );
    assert!(t.vars.root_keys.contains_key("k2") && !t.vars.root_keys.contains_key("k1"));
    // The plan and the garbage collection.
    assert_eq!(t.alloc("placed").expect("placed").node_id.to_string(), "n2");
    assert!(t.alloc("never").is_none());
    let planned = t.evals.get("e-plan").expect("e-plan");
    assert_eq!(planned.status.to_string(), "complete");
    assert_eq!(planned.next_eval, "e-plan-later");
    assert!(!t.evals.contains_key("e3"), "collected");
    assert!(
        t.node("n2").is_some(),
        "a ready node is not garbage, whatever was proposed"
    );
}

#[test]
fn every_request_survives_its_json_and_applies_the_same_after_it() {
    let decoded: Vec<Request> = requests()
        .into_iter()
        .map(|r| {
            let json = serde_json::to_string(&r).expect("request encodes");
            let back: Request = serde_json::from_str(&json).expect("request decodes");
            assert_eq!(serde_json::to_string(&back).expect("re-encodes"), json);
            back
        })
        .collect();
    let (a, b) = (store(false), store(false));
    assert_eq!(run(&a, requests()), run(&b, decoded));
    assert_eq!(fingerprint(&a.snapshot()), fingerprint(&b.snapshot()));
}

#[test]
fn apply_reads_the_clock_and_ids_only_from_the_request() {
    let s = store(false);
    let at = T0 + 42;
    let (_, applied) = s
        .commit_blocking(Request {
            at,
            seed: Uuid::from_u128(42),
            cmd: Command::AllocStop {
                alloc_id: "a2".into(),
                no_shutdown_delay: false,
                eval_id: "chosen".into(),
            },
        })
        .expect("stop");
    let crate::server::state::Applied::Eval(e) = applied else {
        panic!("AllocStop answers its evaluation");
    };
    assert_eq!(
        (e.id.as_str(), e.create_time, e.modify_time),
        ("chosen", at, at)
    );
    let (_, _) = s
        .commit_blocking(req(
            43,
            Command::EvalsCancel {
                ids: vec!["e1".into()],
            },
        ))
        .expect("cancel");
    let snap = s.snapshot();
    let e1 = snap.evals.get("e1").expect("e1");
    assert_eq!(e1.status, crate::structs::EvalStatus::Canceled);
    assert_eq!(e1.modify_time, T0 + 43);
}

#[test]
fn derived_ids_depend_on_the_seed_kind_and_key_only() {
    use crate::server::state::ApplyCtx;
    let ctx = |seed| ApplyCtx {
        now: T0,
        seed: Uuid::from_u128(seed),
    };
    assert_eq!(
        ctx(1).derive_id("eval", "default\0web"),
        ctx(1).derive_id("eval", "default\0web")
    );
    assert_ne!(
        ctx(1).derive_id("eval", "default\0web"),
        ctx(2).derive_id("eval", "default\0web")
    );
    assert_ne!(
        ctx(1).derive_id("eval", "default\0web"),
        ctx(1).derive_id("eval", "default\0api")
    );
    // The separator keeps a kind and a key from running into each other.
    assert_ne!(ctx(1).derive_id("ab", "c"), ctx(1).derive_id("a", "bc"));
    assert!(Uuid::parse_str(&ctx(1).derive_id("k", "v")).is_ok());
}

#[test]
fn a_plan_carries_its_job_once_and_apply_puts_the_same_job_back() {
    let mut p = plan("n2", "shared", "e-shared");
    let job = p.plan.node_allocation["n2"][0].job.clone().expect("job");
    p.plan.job = Some(job.clone());
    p.share_plan_job();
    assert!(p.placements_share_job);
    assert!(p.plan.node_allocation["n2"][0].job.is_none());
    let json = serde_json::to_string(&p).expect("encode");
    assert_eq!(json.matches("\"TaskGroups\"").count(), 1, "{json}");
    let decoded: PlanApply = serde_json::from_str(&json).expect("decode");
    let s = store(false);
    s.commit_blocking(req(77, Command::PlanApply(Box::new(decoded))))
        .expect("plan");
    let stored = s.snapshot().allocs.get("shared").cloned().expect("placed");
    let stored_job = stored.job.as_ref().expect("the plan's job");
    assert_eq!(stored_job.id, job.id);
    assert_eq!(stored_job.version, job.version);
}
