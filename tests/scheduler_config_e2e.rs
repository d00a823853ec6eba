//! `/v1/operator/scheduler/configuration`: read, check-and-set, and each setting honoured —
//! `spread` changes where allocations land, memory oversubscription decides whether a task
//! keeps its `MemoryMaxMB`, and a paused eval broker holds evaluations until resumed.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Agent, AgentOpts, Http, SimNode, wait_for};
use serde_json::{Value, json};

fn job(id: &str, count: i64, cpu: i64, mem: i64) -> Value {
    json!({"Job": {
        "ID": id, "Type": "service", "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "g", "Count": count,
            "Tasks": [{"Name": "t", "Driver": "raw_exec",
                       "Config": {"command": "/bin/sleep", "args": ["1000"]},
                       "Resources": {"CPU": cpu, "MemoryMB": mem, "MemoryMaxMB": 4 * mem}}],
        }],
    }})
}

/// Allocations of `job` per node, once `count` are placed.
fn placements(
    http: &Http,
    agent: &Agent,
    job: &str,
    count: usize,
) -> (BTreeMap<String, usize>, Vec<Value>) {
    let allocs = wait_for(Duration::from_secs(30), "placements", || {
        let list = http
            .get(&agent.url(&format!("/v1/job/{job}/allocations")))
            .json();
        let list = list.as_array()?.clone();
        (list.len() == count).then_some(list)
    });
    let mut per_node = BTreeMap::new();
    for a in &allocs {
        *per_node
            .entry(a["NodeID"].as_str().unwrap_or_default().to_string())
            .or_insert(0) += 1;
    }
    (per_node, allocs)
}

/// The memory the scheduler gave task `t` of an allocation (list stubs do not carry it).
fn memory(http: &Http, agent: &Agent, stub: &Value) -> Value {
    let id = stub["ID"].as_str().unwrap_or_default();
    let alloc = http.get(&agent.url(&format!("/v1/allocation/{id}"))).json();
    let m = alloc["AllocatedResources"]["Tasks"]["t"]["Memory"].clone();
    assert!(!m.is_null(), "{alloc}");
    m
}

#[test]
fn scheduler_configuration_is_read_written_and_honoured() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let url = agent.url("/v1/operator/scheduler/configuration");
    let _a = SimNode::register(&agent.rpc_addr(), "a", "dc1", 4000, 8192);
    let _b = SimNode::register(&agent.rpc_addr(), "b", "dc1", 4000, 8192);

    // Nomad's defaults, stored with real indexes.
    let r = wait_for(Duration::from_secs(10), "stored configuration", || {
        let r = http.get(&url);
        (r.json()["SchedulerConfig"]["ModifyIndex"].as_u64() > Some(0)).then_some(r)
    });
    let body = r.json();
    let cfg = &body["SchedulerConfig"];
    assert_eq!(cfg["SchedulerAlgorithm"], "binpack");
    assert_eq!(cfg["MemoryOversubscriptionEnabled"], false);
    assert_eq!(cfg["PauseEvalBroker"], false);
    assert_eq!(
        cfg["PreemptionConfig"],
        json!({"SystemSchedulerEnabled": true, "SysBatchSchedulerEnabled": false,
               "BatchSchedulerEnabled": false, "ServiceSchedulerEnabled": false})
    );
    assert_eq!(body["KnownLeader"], true);
    assert_eq!(r.index(), cfg["ModifyIndex"].as_u64().unwrap_or(0));
    let first_index = cfg["ModifyIndex"].as_u64().unwrap_or(0);

    // One node gets busy; binpack then puts another job's allocation beside it (a job's own
    // allocations repel each other through anti-affinity, so they would not show it).
    assert_eq!(
        http.put(&agent.url("/v1/jobs"), &job("base", 1, 2000, 4096))
            .status,
        200
    );
    let (base, _) = placements(&http, &agent, "base", 1);
    let busy = base.keys().next().cloned().unwrap_or_default();
    assert_eq!(
        http.put(&agent.url("/v1/jobs"), &job("packed", 1, 100, 64))
            .status,
        200
    );
    let (per_node, allocs) = placements(&http, &agent, "packed", 1);
    assert!(
        per_node.contains_key(&busy),
        "binpack: {per_node:?}, busy {busy}"
    );
    let mem = memory(&http, &agent, &allocs[0]);
    assert_eq!(
        mem["MemoryMaxMB"], 0,
        "no oversubscription by default: {mem}"
    );

    // A stale check-and-set changes nothing; a current one writes.
    let spread = json!({"SchedulerAlgorithm": "spread", "MemoryOversubscriptionEnabled": true,
                        "PreemptionConfig": null});
    let r = http.put(&format!("{url}?cas=1"), &spread);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["Updated"], false);
    assert_eq!(
        http.get(&url).json()["SchedulerConfig"]["SchedulerAlgorithm"],
        "binpack"
    );
    let r = http.put(&format!("{url}?cas={first_index}"), &spread);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["Updated"], true);
    let after = http.get(&url).json();
    assert_eq!(after["SchedulerConfig"]["SchedulerAlgorithm"], "spread");
    assert_eq!(after["SchedulerConfig"]["CreateIndex"], first_index);

    // spread: the next job's allocation goes to the idle node, keeping its MemoryMaxMB.
    assert_eq!(
        http.put(&agent.url("/v1/jobs"), &job("spread", 1, 100, 64))
            .status,
        200
    );
    let (per_node, allocs) = placements(&http, &agent, "spread", 1);
    assert!(
        !per_node.contains_key(&busy),
        "spread: {per_node:?}, busy {busy}"
    );
    assert_eq!(memory(&http, &agent, &allocs[0])["MemoryMaxMB"], 256);

    // A paused broker leaves new evaluations pending until it resumes.
    let r = http.put(&url, &json!({"PauseEvalBroker": true}));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http.put(&agent.url("/v1/jobs"), &job("held", 1, 100, 64));
    let eval = r.json()["EvalID"].as_str().unwrap_or_default().to_string();
    std::thread::sleep(Duration::from_millis(1500));
    let e = http
        .get(&agent.url(&format!("/v1/evaluation/{eval}")))
        .json();
    assert_eq!(e["Status"], "pending", "{e}");
    assert!(http.get(&agent.url("/v1/job/held/allocations")).json() == json!([]));
    let r = http.put(&url, &json!({"PauseEvalBroker": false}));
    assert_eq!(r.status, 200, "{}", r.body);
    placements(&http, &agent, "held", 1);

    // Bad input.
    let r = http.put(&url, &json!({"SchedulerAlgorithm": "random"}));
    assert_eq!(r.status, 400);
    assert_eq!(r.body, "invalid scheduler algorithm: random");
    let r = http.put(&format!("{url}?cas=x"), &json!({}));
    assert_eq!(r.status, 400);
    assert!(r.body.starts_with("Error parsing cas value"), "{}", r.body);
    let r = http.put(&url, &json!({"MemoryOversubscriptionEnabled": "yes"}));
    assert_eq!(r.status, 400);
    assert!(
        r.body.starts_with("Error parsing scheduler config"),
        "{}",
        r.body
    );
}

#[test]
fn the_configuration_survives_a_restart() {
    let mut agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let url = agent.url("/v1/operator/scheduler/configuration");
    let r = http.put(&url, &json!({"SchedulerAlgorithm": "spread"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let before = http.get(&url).json()["SchedulerConfig"].clone();
    agent.kill9();
    agent.restart();
    let after = http
        .get(&agent.url("/v1/operator/scheduler/configuration"))
        .json();
    assert_eq!(after["SchedulerConfig"], before);
}
