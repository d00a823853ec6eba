//! End-to-end tests of node operations on a server with two real client agents: scheduling
//! eligibility, drains under a group's `Migrate` block, drain deadlines, purge and evaluate.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

struct Cluster {
    server: Agent,
    _clients: Vec<Agent>,
    nodes: HashMap<String, String>,
}

impl Cluster {
    fn start(dirs: &mut DirGuard, http: &Http) -> Cluster {
        let server = dirs.start(AgentOpts::server());
        let clients = ["c1", "c2"]
            .iter()
            .map(|n| dirs.start(AgentOpts::client(vec![server.rpc_addr()], n)))
            .collect();
        let nodes = wait_for(Duration::from_secs(30), "client nodes ready", || {
            let list = http.get(&server.url("/v1/nodes")).json();
            let ready: HashMap<String, String> = list
                .as_array()?
                .iter()
                .filter(|n| n["Status"] == "ready")
                .map(|n| {
                    (
                        n["Name"].as_str().unwrap_or_default().to_string(),
                        n["ID"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            (ready.contains_key("c1") && ready.contains_key("c2")).then_some(ready)
        });
        Cluster {
            server,
            _clients: clients,
            nodes,
        }
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    fn node(&self, http: &Http, name: &str) -> Value {
        http.get(&self.url(&format!("/v1/node/{}", self.nodes[name])))
            .json()
    }

    fn set_eligibility(&self, http: &Http, name: &str, value: &str) -> Resp {
        http.post(
            &self.url(&format!("/v1/node/{}/eligibility", self.nodes[name])),
            &json!({"Eligibility": value}),
        )
    }

    fn allocs(&self, http: &Http, job: &str) -> Vec<Value> {
        let r = http.get(&self.url(&format!("/v1/job/{job}/allocations")));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json().as_array().cloned().unwrap_or_default()
    }
}

/// A Count `count` service job whose group migrates one allocation at a time, healthy after
/// `min_healthy` of running.
fn migrating_job(id: &str, count: i64, min_healthy: Duration) -> Value {
    let mut job = service_job(id, count);
    job["TaskGroups"][0]["Migrate"] = json!({
        "MaxParallel": 1,
        "HealthCheck": "task_states",
        "MinHealthyTime": min_healthy.as_nanos() as i64,
        "HealthyDeadline": 300_000_000_000i64,
    });
    job["TaskGroups"][0]["Tasks"][0]["KillTimeout"] = json!(1_000_000_000i64);
    job
}

fn healthy(a: &Value) -> bool {
    a["DeploymentStatus"]["Healthy"] == true
}

fn live_on<'a>(allocs: &'a [Value], node: &str) -> Vec<&'a Value> {
    allocs
        .iter()
        .filter(|a| a["NodeID"] == node && a["DesiredStatus"] == "run")
        .collect()
}

fn events(node: &Value) -> Vec<String> {
    node["Events"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e["Message"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Registers the job and waits until `count` allocations run, healthy, on node `on`.
fn run_on(cluster: &Cluster, http: &Http, job: &Value, count: usize, on: &str) {
    let r = http.put(&cluster.url("/v1/jobs"), &json!({"Job": job}));
    assert_eq!(r.status, 200, "{}", r.body);
    let id = job["ID"].as_str().unwrap_or_default();
    wait_for(Duration::from_secs(60), "allocations running", || {
        let all = cluster.allocs(http, id);
        let live = live_on(&all, &cluster.nodes[on]);
        (live.len() == count
            && live
                .iter()
                .all(|a| a["ClientStatus"] == "running" && healthy(a)))
        .then_some(())
    });
}

#[test]
fn drain_moves_allocations_one_at_a_time_and_completes() {
    let mut dirs = DirGuard::default();
    let http = Http::default();
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=drainme".into()]);
    let cluster = Cluster::start(&mut dirs, &http);
    let (c1, c2) = (cluster.nodes["c1"].clone(), cluster.nodes["c2"].clone());

    // Bad values are refused, naming the field's value.
    let r = cluster.set_eligibility(&http, "c2", "maybe");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("invalid scheduling eligibility"),
        "{}",
        r.body
    );

    // Ineligible: c2 gets nothing new, so all three land on c1.
    let r = cluster.set_eligibility(&http, "c2", "ineligible");
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert!(body["NodeModifyIndex"].as_u64().unwrap() > 0, "{body}");
    assert_eq!(
        cluster.node(&http, "c2")["SchedulingEligibility"],
        "ineligible"
    );
    assert!(
        events(&cluster.node(&http, "c2"))
            .contains(&"Node marked as ineligible for scheduling".to_string())
    );
    let job = migrating_job("drainme", 3, Duration::from_secs(2));
    run_on(&cluster, &http, &job, 3, "c1");
    let all = cluster.allocs(&http, "drainme");
    assert!(
        live_on(&all, &c2).is_empty(),
        "nothing placed on ineligible c2"
    );

    let r = cluster.set_eligibility(&http, "c2", "eligible");
    assert_eq!(r.status, 200, "{}", r.body);
    // No system job and nothing on c2: no evaluation to create (`EvalIDs` null as in Nomad).
    assert!(r.json()["EvalIDs"].is_null(), "{}", r.body);
    let node = cluster.node(&http, "c2");
    assert_eq!(node["SchedulingEligibility"], "eligible");
    assert!(events(&node).contains(&"Node marked as eligible for scheduling".to_string()));

    let started = Instant::now();
    let r = http.post(
        &cluster.url(&format!("/v1/node/{c1}/drain")),
        &json!({"DrainSpec": {"Deadline": 600_000_000_000i64, "IgnoreSystemJobs": false}, "Meta": {"reason": "kernel"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["NodeModifyIndex"].as_u64().unwrap() > 0);
    let node = cluster.node(&http, "c1");
    assert_eq!(node["SchedulingEligibility"], "ineligible");
    assert_eq!(node["DrainStrategy"]["Deadline"], 600_000_000_000i64);
    assert_eq!(node["LastDrain"]["Status"], "draining");
    // A draining node cannot be made eligible (Nomad's message).
    let r = cluster.set_eligibility(&http, "c1", "eligible");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("while it is draining"), "{}", r.body);

    // Watch the move: at no time are two allocations migrating (marked or replaced but not
    // yet healthy), and each old one stops only after the previous replacement is healthy.
    let mut stopped_at: HashMap<String, Duration> = HashMap::new();
    let mut max_moving = 0;
    wait_for(Duration::from_secs(120), "three healthy on c2", || {
        let all = cluster.allocs(&http, "drainme");
        let unhealthy_new = live_on(&all, &c2).iter().filter(|a| !healthy(a)).count();
        let marked_old = live_on(&all, &c1)
            .iter()
            .filter(|a| a["DesiredTransition"]["Migrate"] == true)
            .count();
        max_moving = max_moving.max(unhealthy_new + marked_old);
        for a in all
            .iter()
            .filter(|a| a["NodeID"] == c1.as_str() && a["DesiredStatus"] == "stop")
        {
            stopped_at
                .entry(a["ID"].as_str().unwrap_or_default().to_string())
                .or_insert_with(|| started.elapsed());
        }
        let moved = live_on(&all, &c2);
        (moved.len() == 3 && moved.iter().all(|a| healthy(a)) && live_on(&all, &c1).is_empty())
            .then_some(())
    });
    assert!(
        max_moving <= 1,
        "MaxParallel 1 but {max_moving} moved at once"
    );
    let mut times: Vec<Duration> = stopped_at.values().copied().collect();
    times.sort();
    assert_eq!(times.len(), 3, "{stopped_at:?}");
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(1500),
            "the next allocation left before its predecessor's replacement was healthy: {times:?}"
        );
    }

    let node = wait_for(Duration::from_secs(30), "drain complete", || {
        let n = cluster.node(&http, "c1");
        n["DrainStrategy"].is_null().then_some(n)
    });
    assert_eq!(node["LastDrain"]["Status"], "complete", "{node}");
    assert_eq!(node["LastDrain"]["Meta"]["reason"], "kernel");
    assert_eq!(
        node["SchedulingEligibility"], "ineligible",
        "stays ineligible"
    );
    let ev = events(&node);
    assert!(
        ev.contains(&"Node drain strategy set".to_string()),
        "{ev:?}"
    );
    assert!(ev.contains(&"Node drain complete".to_string()), "{ev:?}");
    let list = http.get(&cluster.url("/v1/nodes")).json();
    let stub = list
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["ID"] == c1.as_str())
        .cloned()
        .unwrap();
    assert_eq!(stub["Drain"], false);
    assert_eq!(stub["LastDrain"]["Status"], "complete");
}

#[test]
fn drain_deadline_force_stops_what_is_left() {
    let mut dirs = DirGuard::default();
    let http = Http::default();
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=stubborn".into()]);
    let cluster = Cluster::start(&mut dirs, &http);
    let (c1, c2) = (cluster.nodes["c1"].clone(), cluster.nodes["c2"].clone());
    assert_eq!(
        cluster.set_eligibility(&http, "c2", "ineligible").status,
        200
    );
    // Healthy only after an hour: the drainer never migrates them on its own.
    let job = migrating_job("stubborn", 2, Duration::from_secs(3600));
    let r = http.put(&cluster.url("/v1/jobs"), &json!({"Job": job}));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(Duration::from_secs(60), "two running on c1", || {
        let all = cluster.allocs(&http, "stubborn");
        let live = live_on(&all, &c1);
        (live.len() == 2 && live.iter().all(|a| a["ClientStatus"] == "running")).then_some(())
    });
    assert_eq!(cluster.set_eligibility(&http, "c2", "eligible").status, 200);

    let started = Instant::now();
    let r = http.post(
        &cluster.url(&format!("/v1/node/{c1}/drain")),
        &json!({"DrainSpec": {"Deadline": 4_000_000_000i64}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let forced_at = wait_for(Duration::from_secs(60), "allocations forced off c1", || {
        let all = cluster.allocs(&http, "stubborn");
        live_on(&all, &c1).is_empty().then(|| started.elapsed())
    });
    assert!(
        forced_at >= Duration::from_millis(3500),
        "stopped before the deadline: {forced_at:?}"
    );
    wait_for(Duration::from_secs(60), "replacements on c2", || {
        let all = cluster.allocs(&http, "stubborn");
        (live_on(&all, &c2).len() == 2).then_some(())
    });
    let node = cluster.node(&http, "c1");
    assert!(node["DrainStrategy"].is_null(), "{node}");
    assert_eq!(node["LastDrain"]["Status"], "complete");
    let done = node["Events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Message"] == "Node drain complete")
        .cloned()
        .unwrap();
    assert_eq!(done["Details"]["deadline_reached"], "true", "{done}");
}

#[test]
fn cancelled_drain_is_recorded_and_mark_eligible_restores_placement() {
    let mut dirs = DirGuard::default();
    let http = Http::default();
    let cluster = Cluster::start(&mut dirs, &http);
    let c2 = cluster.nodes["c2"].clone();
    // No deadline (0): only the operator ends it.
    let r = http.post(
        &cluster.url(&format!("/v1/node/{c2}/drain")),
        &json!({"DrainSpec": {"Deadline": 0}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // An empty node has nothing to move: the drain completes by itself.
    let node = wait_for(Duration::from_secs(30), "empty drain complete", || {
        let n = cluster.node(&http, "c2");
        n["DrainStrategy"].is_null().then_some(n)
    });
    assert_eq!(node["LastDrain"]["Status"], "complete");

    let r = http.post(
        &cluster.url(&format!("/v1/node/{c2}/drain")),
        &json!({"DrainSpec": null, "MarkEligible": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let node = cluster.node(&http, "c2");
    assert_eq!(node["SchedulingEligibility"], "eligible");

    let r = http.post(&cluster.url(&format!("/v1/node/{c2}/drain")), &json!(5));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = http.post(
        &cluster.url("/v1/node/00000000-0000-0000-0000-000000000000/drain"),
        &json!({"DrainSpec": null}),
    );
    assert_eq!(r.status, 404, "{}", r.body);
}

#[test]
fn purge_loses_and_replaces_allocations_and_evaluate_creates_evals() {
    let mut dirs = DirGuard::default();
    let http = Http::default();
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=purged".into()]);
    let server = dirs.start(AgentOpts::server());
    let client = dirs.start(AgentOpts::client(vec![server.rpc_addr()], "real"));
    let real = wait_for(Duration::from_secs(30), "real node ready", || {
        let list = http.get(&server.url("/v1/nodes")).json();
        list.as_array()?
            .iter()
            .find(|n| n["Name"] == "real" && n["Status"] == "ready")
            .and_then(|n| n["ID"].as_str().map(str::to_string))
    });
    // A simulated node, still heartbeating when purged: purge, not a missed heartbeat,
    // is what loses its allocations.
    let sim = SimNode::register(&server.rpc_addr(), "sim", "dc1", 4000, 8192);
    wait_for(Duration::from_secs(10), "sim ready", || {
        (http
            .get(&server.url(&format!("/v1/node/{}", sim.id)))
            .json()["Status"]
            == "ready")
            .then_some(())
    });
    let r = http.post(
        &server.url(&format!("/v1/node/{real}/eligibility")),
        &json!({"Eligibility": "ineligible"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http.put(
        &server.url("/v1/jobs"),
        &json!({"Job": service_job("purged", 2)}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let on_sim: Vec<String> = wait_for(Duration::from_secs(30), "two allocs on sim", || {
        let all = http.get(&server.url("/v1/job/purged/allocations")).json();
        let ids: Vec<String> = all
            .as_array()?
            .iter()
            .filter(|a| a["NodeID"] == sim.id.as_str())
            .filter_map(|a| a["ID"].as_str().map(str::to_string))
            .collect();
        (ids.len() == 2).then_some(ids)
    });
    let r = http.post(
        &server.url(&format!("/v1/node/{real}/eligibility")),
        &json!({"Eligibility": "eligible"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // Evaluate: one evaluation per job with work on the node.
    let r = http.post(
        &server.url(&format!("/v1/node/{}/evaluate", sim.id)),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["EvalIDs"].as_array().map(Vec::len), Some(1), "{body}");
    assert!(body["EvalCreateIndex"].as_u64().unwrap() > 0);
    assert!(body["HeartbeatTTL"].as_i64().unwrap() > 0);

    let r = http.post(
        &server.url(&format!("/v1/node/{}/purge", sim.id)),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert!(!body["EvalIDs"].as_array().unwrap().is_empty(), "{body}");
    assert!(body["NodeModifyIndex"].as_u64().unwrap() > 0);
    assert_eq!(
        http.get(&server.url(&format!("/v1/node/{}", sim.id)))
            .status,
        404
    );
    wait_for(Duration::from_secs(60), "lost and replaced on real", || {
        let all = http.get(&server.url("/v1/job/purged/allocations")).json();
        let all = all.as_array()?;
        let lost = on_sim.iter().all(|id| {
            all.iter().any(|a| {
                a["ID"] == id.as_str()
                    && a["ClientStatus"] == "lost"
                    && a["DesiredStatus"] == "stop"
            })
        });
        let replaced = all
            .iter()
            .filter(|a| {
                a["NodeID"] == real.as_str()
                    && a["DesiredStatus"] == "run"
                    && a["ClientStatus"] == "running"
            })
            .count();
        (lost && replaced == 2).then_some(())
    });
    assert_eq!(
        http.post(
            &server.url(&format!("/v1/node/{}/purge", sim.id)),
            &json!({})
        )
        .status,
        404
    );
    drop(client);
}

#[test]
fn cli_node_status_eligibility_drain_and_system_gc() {
    let mut dirs = DirGuard::default();
    let http = Http::default();
    let agent = dirs.start(AgentOpts::dev());
    let addr = agent.url("");
    let id = wait_for(Duration::from_secs(30), "node ready", || {
        let list = http.get(&agent.url("/v1/nodes")).json();
        let n = list.as_array()?.first()?.clone();
        (n["Status"] == "ready")
            .then(|| n["ID"].as_str().map(str::to_string))
            .flatten()
    });
    let (code, out, err) = yurt_cli(&addr, &["node", "status"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("ID        Node Pool  DC   Name"),
        "Nomad's columns: {out}"
    );
    assert!(out.contains(&id[..8]) && out.contains("eligible"), "{out}");

    let (code, out, err) = yurt_cli(&addr, &["node", "eligibility", "-disable", &id[..8]]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        format!("Node {id:?} scheduling eligibility set: ineligible for scheduling")
    );
    let node = http.get(&agent.url(&format!("/v1/node/{id}"))).json();
    assert_eq!(node["SchedulingEligibility"], "ineligible");

    // Nothing runs there: the drain completes at once and the monitor says so.
    let (code, out, err) = yurt_cli(
        &addr,
        &["node", "drain", "-enable", "-yes", "-deadline", "30s", &id],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("drain strategy set"), "{out}");
    assert!(out.contains("Drain complete for node"), "{out}");
    let (code, out, _) = yurt_cli(&addr, &["node", "status", &id]);
    assert_eq!(code, 0);
    assert!(out.contains("Node drain complete"), "{out}");
    assert!(out.contains("Eligibility = ineligible"), "{out}");

    let (code, _, err) = yurt_cli(&addr, &["node", "drain", "-enable", "-disable", &id]);
    assert_eq!(code, 1, "both flags refused");
    assert!(err.contains("-enable"), "{err}");
    let (code, _, err) = yurt_cli(&addr, &["node", "status", "zz"]);
    assert_eq!(code, 1);
    assert!(err.contains("No node(s) with prefix \"zz\" found"), "{err}");

    let (code, _, err) = yurt_cli(&addr, &["system", "gc"]);
    assert_eq!(code, 0, "{err}");
}
