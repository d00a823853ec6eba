//! A data dir written by a server from before Raft (tables in `server/state.redb`) is migrated
//! onto the Raft log at start (docs/raft.md §3): the jobs, allocations, nodes and their
//! indexes come back as they were, `state.redb` is kept as `state.redb.pre-raft`, and the
//! next write gets an index above every one the old server handed out.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use serde_json::{Value, json};
use yurt::server::state::StateStore;
use yurt::structs::{Allocation, Evaluation, Job, Node};

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("fixture object")
}

/// Writes a small cluster's state the way a pre-Raft server did: through the store's own
/// writer, into `server_dir/state.redb`. Returns the index it ended at and the job's
/// CreateIndex and ModifyIndex as stored.
fn write_pre_raft_fixture(server_dir: &Path) -> (u64, u64, u64) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = StateStore::open(server_dir).expect("open the pre-raft store");
        let mut job: Job = from(json!({
            "ID": "web",
            "Name": "web",
            "Type": "service",
            "Datacenters": ["dc1"],
            "TaskGroups": [{"Name": "g", "Count": 2,
                "Tasks": [{"Name": "t", "Driver": "raw_exec",
                    "Config": {"command": "/bin/sleep", "args": ["1000"]}}]}],
        }));
        yurt::structs::canonicalize::canonicalize_job(&mut job, "global");
        let (_, job) = store.write(|t| t.put_job(job, true)).await.expect("job");
        let node: Node = from(json!({
            "ID": "6b1e4bd4-0000-4000-8000-000000000001",
            "Name": "old-node",
            "Datacenter": "dc1",
            "Status": "down",
            "SchedulingEligibility": "eligible",
            "NodeResources": {"Cpu": {"CpuShares": 4000}, "Memory": {"MemoryMB": 8192}},
        }));
        store.write(|t| t.put_node(node)).await.expect("node");
        let eval: Evaluation = from(json!({
            "ID": "6b1e4bd4-0000-4000-8000-0000000000e1",
            "Namespace": "default",
            "JobID": "web",
            "Type": "service",
            "TriggeredBy": "job-register",
            "Priority": 50,
            "Status": "complete",
        }));
        store.write(|t| t.put_eval(eval)).await.expect("eval");
        for i in 0..2 {
            let mut alloc: Allocation = from(json!({
                "ID": format!("6b1e4bd4-0000-4000-8000-00000000a00{i}"),
                "Namespace": "default",
                "EvalID": "6b1e4bd4-0000-4000-8000-0000000000e1",
                "Name": format!("web.g[{i}]"),
                "NodeID": "6b1e4bd4-0000-4000-8000-000000000001",
                "JobID": "web",
                "TaskGroup": "g",
                "DesiredStatus": "stop",
                "ClientStatus": "complete",
            }));
            alloc.job = Some(Arc::clone(&job));
            store
                .write(|t| t.put_alloc_server(alloc))
                .await
                .expect("alloc");
        }
        let tables = store.snapshot();
        let job = tables.job("default", "web").expect("the fixture's job");
        let out = (tables.index, job.create_index, job.modify_index);
        drop((job, tables, store));
        out
    })
}

/// What a read answers, without what a restart may change.
fn objects(http: &Http, url: &str) -> Vec<(String, u64, u64)> {
    let body = http.get(url).json();
    let mut out: Vec<_> = body
        .as_array()
        .expect("a list")
        .iter()
        .map(|o| {
            (
                o["ID"].as_str().unwrap_or_default().to_string(),
                o["CreateIndex"].as_u64().unwrap_or(0),
                o["ModifyIndex"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_pre_raft_data_dir_comes_back_with_its_indexes_and_moves_on() {
    let mut agent = Agent::start(AgentOpts::server());
    agent.kill9();
    // Replace what this build wrote with what a pre-Raft server left behind.
    let server_dir = agent.data_dir.path().join("data/server");
    std::fs::remove_dir_all(&server_dir).expect("clear the server dir");
    std::fs::create_dir_all(&server_dir).expect("server dir");
    let (n, job_create, job_modify) = write_pre_raft_fixture(&server_dir);
    assert!(server_dir.join("state.redb").exists());
    assert!(!server_dir.join("raft").exists());

    agent.restart();
    let http = Http::default();
    let job = http.get(&agent.url("/v1/job/web"));
    assert_eq!(job.status, 200, "{}", job.body);
    let job = job.json();
    assert_eq!(job["Version"], 0);
    let job_index = job["ModifyIndex"].as_u64().expect("ModifyIndex");
    assert_eq!(job_index, job_modify);
    assert_eq!(job["CreateIndex"].as_u64(), Some(job_create));
    assert!(
        job_create > 1 && job_modify <= n,
        "{job_create}/{job_modify} of {n}"
    );
    let allocs = objects(&http, &agent.url("/v1/allocations"));
    assert_eq!(allocs.len(), 2, "{allocs:?}");
    assert!(
        allocs.iter().all(|(_, c, m)| *c == *m && *m <= n),
        "{allocs:?}"
    );
    assert_eq!(allocs[1].2, n, "the last write of the fixture: {allocs:?}");
    let nodes = objects(&http, &agent.url("/v1/nodes"));
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let evals = objects(&http, &agent.url("/v1/evaluations"));
    assert!(
        evals
            .iter()
            .any(|(id, _, _)| id == "6b1e4bd4-0000-4000-8000-0000000000e1"),
        "{evals:?}"
    );
    // The old file is kept for a downgrade, beside the new log.
    assert!(!server_dir.join("state.redb").exists());
    assert!(server_dir.join("state.redb.pre-raft").exists());
    assert!(server_dir.join("raft/log.redb").exists());
    assert!(server_dir.join("raft/server-id").exists());

    // A write lands above every index the old server handed out.
    let put = http.post(
        &agent.url("/v1/namespace/after"),
        &json!({"Name": "after", "Description": "written after the migration"}),
    );
    assert_eq!(put.status, 200, "{}", put.body);
    let ns = http.get(&agent.url("/v1/namespace/after")).json();
    let written = ns["ModifyIndex"].as_u64().expect("ModifyIndex");
    assert!(written > n, "{written} after {n}");

    // Started again, it keeps both what was migrated and what was written since.
    agent.restart();
    let ns = http.get(&agent.url("/v1/namespace/after"));
    assert_eq!(ns.status, 200, "{}", ns.body);
    assert_eq!(ns.json()["ModifyIndex"].as_u64(), Some(written));
    let again = http.get(&agent.url("/v1/job/web")).json();
    assert_eq!(again["ModifyIndex"].as_u64(), Some(job_index));
}
