//! End-to-end tests of the bundled server: a real `yurt agent -server` process, simulated
//! nodes registered through the server ↔ client interface, and jobs submitted over HTTP.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// Sends raw request bytes and returns the response status.
fn raw_status(port: u16, request: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn allocs_of(http: &Http, agent: &Agent, job: &str) -> Vec<Value> {
    let r = http.get(&agent.url(&format!("/v1/job/{job}/allocations")));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().cloned().unwrap_or_default()
}

fn running(allocs: &[Value]) -> Vec<Value> {
    allocs
        .iter()
        .filter(|a| a["DesiredStatus"] == "run" && a["ClientStatus"] != "lost")
        .cloned()
        .collect()
}

fn wait_allocs(http: &Http, agent: &Agent, job: &str, n: usize) -> Vec<Value> {
    wait_for(
        Duration::from_secs(15),
        &format!("{n} live allocs of {job}"),
        || {
            let live = running(&allocs_of(http, agent, job));
            (live.len() == n).then_some(live)
        },
    )
}

fn register(http: &Http, agent: &Agent, job: Value) -> Value {
    let r = http.put(&agent.url("/v1/jobs"), &json!({ "Job": job }));
    assert_eq!(r.status, 200, "register: {}", r.body);
    r.json()
}

#[test]
fn places_allocations_and_follows_count_changes() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let nodes: Vec<SimNode> = (0..3)
        .map(|i| SimNode::register(&agent.rpc_addr(), &format!("n{i}"), "dc1", 4000, 8192))
        .collect();
    let node_ids: HashSet<String> = nodes.iter().map(|n| n.id.clone()).collect();

    let resp = register(&http, &agent, service_job("web", 5));
    assert!(!resp["EvalID"].as_str().unwrap().is_empty());
    assert!(resp["JobModifyIndex"].as_u64().unwrap() > 0);
    assert!(resp["EvalCreateIndex"].as_u64().unwrap() > 0);

    let allocs = wait_allocs(&http, &agent, "web", 5);
    let names: HashSet<String> = allocs
        .iter()
        .map(|a| a["Name"].as_str().unwrap().to_string())
        .collect();
    let expected: HashSet<String> = (0..5).map(|i| format!("web.web[{i}]")).collect();
    assert_eq!(names, expected);
    for a in &allocs {
        assert!(node_ids.contains(a["NodeID"].as_str().unwrap()));
    }
    // The full allocation carries the job, resources and the scheduler's metrics.
    let id = allocs[0]["ID"].as_str().unwrap();
    let full = http.get(&agent.url(&format!("/v1/allocation/{id}"))).json();
    assert_eq!(full["Job"]["ID"], "web");
    assert!(full["Metrics"]["NodesEvaluated"].as_i64().unwrap() >= 1);
    assert!(
        full["AllocatedResources"]["Tasks"]["server"]["Cpu"]["CpuShares"]
            .as_i64()
            .unwrap()
            == 100
    );
    assert_eq!(full["ClientStatus"], "pending");

    // Job anti-affinity spreads five allocations over three empty nodes.
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for a in &allocs {
        *per_node
            .entry(a["NodeID"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_node.len(), 3, "{per_node:?}");

    // Scale down to 2: the highest indexes stop.
    let mut job = service_job("web", 2);
    register(&http, &agent, job.clone());
    let live = wait_allocs(&http, &agent, "web", 2);
    let names: HashSet<String> = live
        .iter()
        .map(|a| a["Name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        HashSet::from(["web.web[0]".to_string(), "web.web[1]".to_string()])
    );
    let stopped: Vec<Value> = allocs_of(&http, &agent, "web")
        .into_iter()
        .filter(|a| a["DesiredStatus"] == "stop")
        .collect();
    assert_eq!(stopped.len(), 3);

    // Scale up to 4: new allocations fill indexes 2 and 3.
    job["TaskGroups"][0]["Count"] = json!(4);
    register(&http, &agent, job);
    let live = wait_allocs(&http, &agent, "web", 4);
    let names: HashSet<String> = live
        .iter()
        .map(|a| a["Name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 4);

    // Stopping the job stops everything and the job reads as stopped.
    let r = http.delete(&agent.url("/v1/job/web"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.json()["EvalID"].as_str().unwrap().is_empty());
    wait_allocs(&http, &agent, "web", 0);
    let job = http.get(&agent.url("/v1/job/web")).json();
    assert_eq!(job["Stop"], true);
    // Purge removes it.
    assert_eq!(
        http.delete(&agent.url("/v1/job/web?purge=true")).status,
        200
    );
    assert_eq!(http.get(&agent.url("/v1/job/web")).status, 404);
}

#[test]
fn reregistering_an_unchanged_job_creates_no_version_and_no_allocations() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let _n = SimNode::register(&agent.rpc_addr(), "n0", "dc1", 4000, 8192);
    let first = register(&http, &agent, service_job("api", 2));
    let allocs = wait_allocs(&http, &agent, "api", 2);
    let second = register(&http, &agent, service_job("api", 2));
    assert_eq!(first["JobModifyIndex"], second["JobModifyIndex"]);
    // Give the second evaluation time to run, then check nothing changed.
    let eval_id = second["EvalID"].as_str().unwrap().to_string();
    wait_for(Duration::from_secs(10), "second eval complete", || {
        (http
            .get(&agent.url(&format!("/v1/evaluation/{eval_id}")))
            .json()["Status"]
            == "complete")
            .then_some(())
    });
    let after = allocs_of(&http, &agent, "api");
    assert_eq!(after.len(), allocs.len());
    let versions = http.get(&agent.url("/v1/job/api/versions")).json();
    assert_eq!(versions["Versions"].as_array().unwrap().len(), 1);
    assert_eq!(http.get(&agent.url("/v1/job/api")).json()["Version"], 0);
}

#[test]
fn lost_nodes_have_their_allocations_replaced() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let mut a = SimNode::register(&agent.rpc_addr(), "a", "dc1", 4000, 8192);
    let b = SimNode::register(&agent.rpc_addr(), "b", "dc1", 4000, 8192);
    register(&http, &agent, service_job("svc", 4));
    let allocs = wait_allocs(&http, &agent, "svc", 4);
    let on_a: Vec<String> = allocs
        .iter()
        .filter(|x| x["NodeID"] == a.id.as_str())
        .map(|x| x["ID"].as_str().unwrap().to_string())
        .collect();
    assert!(!on_a.is_empty(), "anti-affinity should use both nodes");

    a.stop_heartbeats();
    // TTL is 1-2 s plus 1 s grace in the test config.
    wait_for(Duration::from_secs(15), "node a down", || {
        (http.get(&agent.url(&format!("/v1/node/{}", a.id))).json()["Status"] == "down")
            .then_some(())
    });
    let live = wait_for(Duration::from_secs(15), "replacements on b", || {
        let all = allocs_of(&http, &agent, "svc");
        let live: Vec<Value> = all
            .iter()
            .filter(|x| x["DesiredStatus"] == "run" && x["ClientStatus"] != "lost")
            .cloned()
            .collect();
        (live.len() == 4 && live.iter().all(|x| x["NodeID"] == b.id.as_str())).then_some(all)
    });
    for id in &on_a {
        let old = live.iter().find(|x| x["ID"] == id.as_str()).unwrap();
        assert_eq!(old["ClientStatus"], "lost");
        assert_eq!(old["DesiredStatus"], "stop");
    }
    let node = http.get(&agent.url(&format!("/v1/node/{}", a.id))).json();
    assert_eq!(node["SecretID"], "", "the API must not leak node secrets");
}

#[test]
fn failed_allocations_are_rescheduled_with_links() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let n = SimNode::register(&agent.rpc_addr(), "n", "dc1", 4000, 8192);
    let mut job = service_job("flaky", 1);
    job["TaskGroups"][0]["ReschedulePolicy"] = json!({"Attempts": 1, "Interval": 3_600_000_000_000i64, "Delay": 1_000_000, "DelayFunction": "constant", "Unlimited": false});
    register(&http, &agent, job);
    let first = wait_allocs(&http, &agent, "flaky", 1).remove(0);
    let first_id = first["ID"].as_str().unwrap().to_string();
    let r = n.update_allocs(&[(first_id.clone(), "failed")]);
    assert_eq!(r.status, 200, "{}", r.body);
    let replacement = wait_for(Duration::from_secs(15), "replacement", || {
        allocs_of(&http, &agent, "flaky")
            .into_iter()
            .find(|a| a["ID"] != first_id.as_str() && a["DesiredStatus"] == "run")
    });
    let rid = replacement["ID"].as_str().unwrap();
    let full = http
        .get(&agent.url(&format!("/v1/allocation/{rid}")))
        .json();
    assert_eq!(full["PreviousAllocation"], first_id.as_str());
    assert_eq!(
        full["RescheduleTracker"]["Events"][0]["PrevAllocID"],
        first_id.as_str()
    );
    assert_eq!(full["Name"], first["Name"]);
    let old = http
        .get(&agent.url(&format!("/v1/allocation/{first_id}")))
        .json();
    assert_eq!(old["NextAllocation"], rid);
}

#[test]
fn blocking_queries_wake_on_writes_and_time_out() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let r = http.get(&agent.url("/v1/jobs"));
    assert_eq!(r.status, 200);
    let index = r.index();
    assert!(index >= 1);
    assert_eq!(r.header("X-Nomad-KnownLeader").as_deref(), Some("true"));
    assert!(r.header("X-Nomad-LastContact").is_some());

    // No write: returns after `wait` (plus at most wait/16), same index.
    let start = Instant::now();
    let r = http.get(&agent.url(&format!("/v1/jobs?index={index}&wait=1s")));
    let took = start.elapsed();
    assert_eq!(r.status, 200);
    assert!(
        took >= Duration::from_millis(990),
        "returned early after {took:?}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(r.index(), index);

    // A write during the wait wakes it early.
    let url = agent.url(&format!("/v1/jobs?index={index}&wait=30s"));
    let waiter = std::thread::spawn(move || {
        let start = Instant::now();
        let r = Http::default().get(&url);
        (start.elapsed(), r.status, r.index(), r.body)
    });
    std::thread::sleep(Duration::from_millis(300));
    register(&http, &agent, service_job("wake", 1));
    let (took, status, new_index, body) = waiter.join().unwrap();
    assert_eq!(status, 200);
    assert!(
        took < Duration::from_secs(10),
        "not woken by the write: {took:?}"
    );
    assert!(new_index > index);
    assert!(body.contains("\"wake\""));
}

#[test]
fn state_survives_kill_9_with_the_same_indexes() {
    let mut agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let n = SimNode::register(&agent.rpc_addr(), "n", "dc1", 4000, 8192);
    register(&http, &agent, service_job("durable", 3));
    let mut job2 = service_job("durable", 3);
    job2["Meta"] = json!({"v": "2"});
    register(&http, &agent, job2);
    wait_allocs(&http, &agent, "durable", 3);
    // Every evaluation must have finished so its final state is written before the snapshot
    // (waited for: a fixed pause is too short on a loaded machine).
    wait_for(Duration::from_secs(15), "evaluations finished", || {
        let evals = http.get(&agent.url("/v1/evaluations")).json();
        let evals = evals.as_array()?;
        (!evals.is_empty()
            && evals.iter().all(|e| {
                matches!(
                    e["Status"].as_str(),
                    Some("complete" | "failed" | "canceled")
                )
            }))
        .then_some(())
    });
    let before_job = http.get(&agent.url("/v1/job/durable"));
    let before_allocs = http.get(&agent.url("/v1/allocations"));
    let before_evals = http.get(&agent.url("/v1/evaluations"));
    let before_nodes = http.get(&agent.url("/v1/nodes"));
    let before_versions = http.get(&agent.url("/v1/job/durable/versions")).json();

    agent.restart();
    drop(n);

    let after_job = http.get(&agent.url("/v1/job/durable"));
    assert_eq!(
        after_job.json()["JobModifyIndex"],
        before_job.json()["JobModifyIndex"]
    );
    assert_eq!(after_job.json()["Version"], 1);
    assert_eq!(
        after_job.json()["CreateIndex"],
        before_job.json()["CreateIndex"]
    );
    let strip = |v: Value| -> Vec<(String, u64, u64)> {
        let mut out: Vec<_> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["ID"].as_str().unwrap().to_string(),
                    a["CreateIndex"].as_u64().unwrap(),
                    a["ModifyIndex"].as_u64().unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    };
    assert_eq!(
        strip(http.get(&agent.url("/v1/allocations")).json()),
        strip(before_allocs.json())
    );
    assert_eq!(
        strip(http.get(&agent.url("/v1/evaluations")).json()),
        strip(before_evals.json())
    );
    assert_eq!(
        strip(http.get(&agent.url("/v1/nodes")).json()),
        strip(before_nodes.json())
    );
    let after_versions = http.get(&agent.url("/v1/job/durable/versions")).json();
    assert_eq!(
        after_versions["Versions"].as_array().unwrap().len(),
        before_versions["Versions"].as_array().unwrap().len()
    );
    assert!(http.get(&agent.url("/v1/allocations")).index() >= before_allocs.index());
    // The full allocation still carries its job after the restore.
    let id = before_allocs.json()[0]["ID"].as_str().unwrap().to_string();
    assert_eq!(
        http.get(&agent.url(&format!("/v1/allocation/{id}"))).json()["Job"]["ID"],
        "durable"
    );
    // Writes continue above the old index.
    let r = register(&http, &agent, service_job("after", 1));
    assert!(r["Index"].as_u64().unwrap() > before_evals.index());
}

#[test]
fn bad_input_gets_the_right_4xx_and_never_a_500() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("/v1/jobs", b"{not json".to_vec(), 400),
        ("/v1/jobs", b"{\"Job\": {\"ID\": 5}}".to_vec(), 400),
        (
            "/v1/jobs",
            b"{\"Job\": {\"ID\": \"x\", \"TaskGroups\": \"nope\"}}".to_vec(),
            400,
        ),
        ("/v1/jobs", b"{}".to_vec(), 400),
        ("/v1/jobs", b"{\"Job\": {\"ID\": \"x\"}}".to_vec(), 400),
        ("/v1/jobs", b"[]".to_vec(), 400),
        (
            "/v1/job/other",
            serde_json::to_vec(&json!({"Job": service_job("mismatch", 1)})).unwrap(),
            400,
        ),
    ];
    for (path, body, want) in cases {
        let r = http.post_raw(&agent.url(path), body.clone());
        assert_eq!(
            r.status,
            want,
            "{path} {:?} -> {} {}",
            String::from_utf8_lossy(&body),
            r.status,
            r.body
        );
        assert!(!r.body.is_empty(), "error bodies name the problem");
    }
    // Validation errors name the offending field.
    let mut bad = service_job("bad", -1);
    bad["Priority"] = json!(1000);
    let r = http.put(&agent.url("/v1/jobs"), &json!({"Job": bad}));
    assert_eq!(r.status, 400);
    assert!(r.body.contains("count can't be negative"), "{}", r.body);
    assert!(r.body.contains("priority"), "{}", r.body);
    // Oversized bodies are refused (announced by Content-Length, before any is read).
    assert_eq!(
        raw_status(
            agent.http_port,
            "PUT /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 67108864\r\n\r\n"
        ),
        413
    );
    // Unknown IDs.
    for path in [
        "/v1/job/nope",
        "/v1/allocation/00000000-0000-0000-0000-000000000000",
        "/v1/node/nope",
        "/v1/evaluation/nope",
        "/v1/job/nope/summary",
    ] {
        let r = http.get(&agent.url(path));
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    assert_eq!(http.delete(&agent.url("/v1/job/nope")).status, 404);
    // Bad query parameters.
    assert_eq!(http.get(&agent.url("/v1/jobs?index=abc")).status, 400);
    assert_eq!(http.get(&agent.url("/v1/jobs?wait=forever")).status, 400);
    // Unknown paths and methods.
    assert_eq!(http.get(&agent.url("/v1/nope")).status, 404);
    let r = http.client.patch(agent.url("/v1/jobs")).send().unwrap();
    assert_eq!(r.status().as_u16(), 405);
    // The server is still healthy.
    assert_eq!(http.get(&agent.url("/v1/agent/health")).status, 200);
}

#[test]
fn blocked_evaluations_place_when_capacity_appears() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let _small = SimNode::register(&agent.rpc_addr(), "small", "dc1", 250, 8192);
    let mut job = service_job("big", 3);
    job["TaskGroups"][0]["Tasks"][0]["Resources"]["CPU"] = json!(200);
    let resp = register(&http, &agent, job);
    wait_allocs(&http, &agent, "big", 1);
    let eval_id = resp["EvalID"].as_str().unwrap();
    let eval = wait_for(Duration::from_secs(10), "eval complete", || {
        let e = http
            .get(&agent.url(&format!("/v1/evaluation/{eval_id}")))
            .json();
        (e["Status"] == "complete").then_some(e)
    });
    assert!(!eval["BlockedEval"].as_str().unwrap().is_empty());
    assert!(
        eval["FailedTGAllocs"]["web"]["DimensionExhausted"]["cpu"]
            .as_i64()
            .unwrap_or(0)
            >= 1,
        "{eval}"
    );
    assert_eq!(eval["QueuedAllocations"]["web"], 2);
    let summary = http.get(&agent.url("/v1/job/big/summary")).json();
    assert_eq!(summary["Summary"]["web"]["Queued"], 2);
    let _big = SimNode::register(&agent.rpc_addr(), "big", "dc1", 4000, 8192);
    wait_allocs(&http, &agent, "big", 3);
}

#[test]
fn constraints_and_datacenters_filter_nodes() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let a = SimNode::register(&agent.rpc_addr(), "a", "dc1", 4000, 8192);
    let _b = SimNode::register(&agent.rpc_addr(), "b", "dc2", 4000, 8192);
    let mut job = service_job("pinned", 2);
    job["Datacenters"] = json!(["dc*"]);
    job["Constraints"] = json!([{"LTarget": "${meta.rack}", "RTarget": "r-a", "Operand": "="}]);
    register(&http, &agent, job);
    let allocs = wait_allocs(&http, &agent, "pinned", 2);
    assert!(allocs.iter().all(|x| x["NodeID"] == a.id.as_str()));
    let full = http
        .get(&agent.url(&format!(
            "/v1/allocation/{}",
            allocs[0]["ID"].as_str().unwrap()
        )))
        .json();
    assert!(
        full["Metrics"]["NodesFiltered"].as_i64().unwrap() >= 1,
        "{}",
        full["Metrics"]
    );
}

#[test]
fn agent_status_and_formatting_endpoints() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let me = http.get(&agent.url("/v1/agent/self")).json();
    assert!(me["config"].is_object());
    assert!(me["member"]["Name"].is_string());
    let members = http.get(&agent.url("/v1/agent/members")).json();
    assert_eq!(members["Members"].as_array().unwrap().len(), 1);
    assert_eq!(
        http.get(&agent.url("/v1/status/leader")).json(),
        json!(agent.rpc_addr())
    );
    assert_eq!(
        http.get(&agent.url("/v1/status/peers")).json(),
        json!([agent.rpc_addr()])
    );
    assert_eq!(
        http.get(&agent.url("/v1/regions")).json(),
        json!(["global"])
    );
    let health = http.get(&agent.url("/v1/agent/health")).json();
    assert_eq!(health["server"]["ok"], true);
    // pretty and gzip
    register(&http, &agent, service_job("fmt", 0));
    let r = http.get(&agent.url("/v1/job/fmt?pretty"));
    assert!(r.body.contains("\n    \"ID\": \"fmt\""), "{}", r.body);
    let r = http
        .client
        .get(agent.url("/v1/jobs"))
        .header("Accept-Encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(
        r.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    // namespaces: a job in another namespace is only listed there or with *. As in Nomad,
    // the namespace must exist before a job can be written into it.
    let mut other = service_job("ns-job", 0);
    other["Namespace"] = json!("team");
    let refused = http.put(&agent.url("/v1/jobs"), &json!({ "Job": other.clone() }));
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(
        refused.body,
        "job \"ns-job\" is in nonexistent namespace \"team\""
    );
    let created = http.post(&agent.url("/v1/namespace/team"), &json!({"Name": "team"}));
    assert_eq!(created.status, 200, "{}", created.body);
    register(&http, &agent, other);
    let default_list = http.get(&agent.url("/v1/jobs")).json();
    assert!(
        default_list
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["Namespace"] == "default")
    );
    let all = http.get(&agent.url("/v1/jobs?namespace=*")).json();
    assert!(all.as_array().unwrap().iter().any(|j| j["ID"] == "ns-job"));
    let team = http
        .get(&agent.url("/v1/jobs?namespace=team&prefix=ns"))
        .json();
    assert_eq!(team.as_array().unwrap().len(), 1);
    assert_eq!(team[0]["JobSummary"]["Namespace"], "team");
}

#[test]
fn revert_and_stable_write_job_versions() {
    let mut agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let _node = SimNode::register(&agent.rpc_addr(), "n0", "dc1", 4000, 8192);
    register(&http, &agent, service_job("rev", 1));
    register(&http, &agent, service_job("rev", 2));
    wait_allocs(&http, &agent, "rev", 2);
    let post = |path: &str, body: Value| http.post(&agent.url(path), &body);

    // Errors, in Nomad's words and statuses.
    let r = post(
        "/v1/job/rev/revert",
        json!({"JobID": "rev", "JobVersion": 1}),
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (500, "can't revert to current version")
    );
    let r = post(
        "/v1/job/rev/revert",
        json!({"JobID": "rev", "JobVersion": 9}),
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            500,
            "job \"rev\" in namespace \"default\" at version 9 not found"
        )
    );
    let r = post(
        "/v1/job/rev/revert",
        json!({"JobID": "rev", "JobVersion": 0, "EnforcePriorVersion": 0}),
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (500, "Current job has version 1; enforcing version 0")
    );
    let r = post(
        "/v1/job/rev/revert",
        json!({"JobID": "other", "JobVersion": 0}),
    );
    assert_eq!((r.status, r.body.as_str()), (400, "Job ID does not match"));
    let r = post("/v1/job/rev/revert", json!({"JobVersion": 0}));
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "JobID must be specified")
    );
    let r = post(
        "/v1/job/nope/revert",
        json!({"JobID": "nope", "JobVersion": 0}),
    );
    assert_eq!((r.status, r.body.as_str()), (500, "job \"nope\" not found"));
    assert_eq!(http.get(&agent.url("/v1/job/rev/revert")).status, 405);

    // Mark version 1 stable: the current job carries the flag, no new version.
    let r = post(
        "/v1/job/rev/stable",
        json!({"JobID": "rev", "JobVersion": 1, "Stable": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["Index"].as_u64().unwrap() > 0);
    assert_eq!(
        r.header("x-nomad-index"),
        Some(r.json()["Index"].to_string())
    );
    let job = http.get(&agent.url("/v1/job/rev")).json();
    assert_eq!(
        (job["Version"].as_i64(), job["Stable"].as_bool()),
        (Some(1), Some(true))
    );
    let r = post(
        "/v1/job/rev/stable",
        json!({"JobID": "rev", "JobVersion": 7, "Stable": true}),
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            500,
            "job \"rev\" in namespace \"default\" at version 7 not found"
        )
    );

    // Revert to version 0 (Count 1): a new version 2 with the old spec, not stable, and an
    // evaluation that brings the job back to one allocation.
    let r = post(
        "/v1/job/rev/revert",
        json!({"JobID": "rev", "JobVersion": 0, "EnforcePriorVersion": 1}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let resp = r.json();
    assert!(!resp["EvalID"].as_str().unwrap().is_empty(), "{resp}");
    assert!(resp["JobModifyIndex"].as_u64().unwrap() > 0);
    let job = http.get(&agent.url("/v1/job/rev")).json();
    assert_eq!(job["Version"], 2);
    assert_eq!(job["Stable"], false);
    assert_eq!(job["TaskGroups"][0]["Count"], 1);
    wait_allocs(&http, &agent, "rev", 1);
    let versions = http.get(&agent.url("/v1/job/rev/versions")).json();
    let flags: Vec<(i64, bool)> = versions["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["Version"].as_i64().unwrap(),
                v["Stable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(flags, vec![(2, false), (1, true), (0, false)]);

    // Both writes survive a restart.
    agent.restart();
    let versions = http.get(&agent.url("/v1/job/rev/versions")).json();
    assert_eq!(versions["Versions"][1]["Stable"], true);
    assert_eq!(http.get(&agent.url("/v1/job/rev")).json()["Version"], 2);
}

#[test]
fn scale_changes_counts_and_records_events() {
    let mut agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let _node = SimNode::register(&agent.rpc_addr(), "n0", "dc1", 8000, 16384);
    let mut job = service_job("sc", 1);
    job["TaskGroups"][0]["Scaling"] = json!({"Min": 1, "Max": 4, "Enabled": true});
    // No deployments: the simulated node never reports health, and a running deployment
    // refuses scaling (covered in deployment_e2e).
    job["TaskGroups"][0]["Update"] = json!({"MaxParallel": 0});
    register(&http, &agent, job);
    wait_allocs(&http, &agent, "sc", 1);
    let url = agent.url("/v1/job/sc/scale");
    let status = || {
        let r = http.get(&url);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let s = status();
    assert_eq!(s["JobID"], "sc");
    assert_eq!(s["JobStopped"], false);
    let g = &s["TaskGroups"]["web"];
    assert_eq!(
        (g["Desired"].as_i64(), g["Placed"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(g["Events"], Value::Null);

    // Refusals, with Nomad's statuses and words.
    let bad = |body: Value, status: u16, msg: &str| {
        let r = http.post(&url, &body);
        assert_eq!((r.status, r.body.as_str()), (status, msg), "{body}");
    };
    bad(
        json!({"Count": 2}),
        400,
        "missing task group name for scaling action",
    );
    bad(
        json!({"Count": -1, "Target": {"Group": "web"}}),
        400,
        "scaling action count can't be negative",
    );
    bad(
        json!({"Count": 2, "Error": true, "Target": {"Group": "web"}}),
        400,
        "scaling action should not contain count if error is true",
    );
    bad(
        json!({"Count": 2, "Target": {"Group": "nope"}}),
        400,
        "task group \"nope\" specified for scaling does not exist in job",
    );
    bad(
        json!({"Count": 2, "Target": {"Group": "web", "Job": "other"}}),
        400,
        "job ID in payload did not match URL",
    );
    bad(
        json!({"Count": 5, "Target": {"Group": "web"}}),
        400,
        "group count was greater than scaling policy maximum: 5 > 4",
    );
    bad(
        json!({"Count": 2, "Target": {"Group": "web"}, "JobModifyIndex": 1}),
        500,
        &format!(
            "Enforcing job modify index 1: job exists with conflicting job modify index: {}",
            http.get(&agent.url("/v1/job/sc")).json()["JobModifyIndex"]
        ),
    );
    let r = http.post(
        &agent.url("/v1/job/nope/scale"),
        &json!({"Count": 1, "Target": {"Group": "web"}}),
    );
    assert_eq!((r.status, r.body.as_str()), (404, "job \"nope\" not found"));
    assert_eq!(http.get(&agent.url("/v1/job/nope/scale")).status, 404);

    // Scale to 3: a new version, an evaluation, three allocations, one event.
    let r = http.post(
        &url,
        &json!({"Count": 3, "Message": "load", "Meta": {"by": "test"}, "Target": {"Group": "web"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let resp = r.json();
    let eval_id = resp["EvalID"].as_str().unwrap().to_string();
    assert!(!eval_id.is_empty(), "{resp}");
    let eval = http
        .get(&agent.url(&format!("/v1/evaluation/{eval_id}")))
        .json();
    assert_eq!(eval["TriggeredBy"], "job-scaling");
    assert_eq!(http.get(&agent.url("/v1/job/sc")).json()["Version"], 1);
    wait_allocs(&http, &agent, "sc", 3);
    let s = status();
    let g = &s["TaskGroups"]["web"];
    assert_eq!(
        (g["Desired"].as_i64(), g["Placed"].as_i64()),
        (Some(3), Some(3))
    );
    let ev = &g["Events"][0];
    assert_eq!(
        (ev["Count"].as_i64(), ev["PreviousCount"].as_i64()),
        (Some(3), Some(1))
    );
    assert_eq!(ev["Message"], "load");
    assert_eq!(ev["Meta"]["by"], "test");
    assert_eq!(ev["EvalID"], eval_id.as_str());
    assert!(ev["CreateIndex"].as_u64().unwrap() > 0 && ev["Time"].as_i64().unwrap() > 0);

    // Without Count only an event is recorded: no version, no evaluation; 20 kept.
    for i in 0..21 {
        let r = http.post(
            &url,
            &json!({"Message": format!("note {i}"), "Error": i == 20, "Target": {"Group": "web"}}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["EvalID"], "");
    }
    assert_eq!(http.get(&agent.url("/v1/job/sc")).json()["Version"], 1);
    let events = status()["TaskGroups"]["web"]["Events"].clone();
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 20);
    assert_eq!(
        (events[0]["Message"].as_str(), events[0]["Error"].as_bool()),
        (Some("note 20"), Some(true))
    );
    assert_eq!(events[0]["Count"], Value::Null);
    assert_eq!(events[19]["Message"], "note 1");

    // Events survive a restart.
    agent.restart();
    let after = status()["TaskGroups"]["web"]["Events"].clone();
    assert_eq!(after.as_array().map(Vec::len), Some(20));
    assert_eq!(after[0]["Message"], "note 20");

    // A purged job takes its events with it.
    let r = http.delete(&agent.url("/v1/job/sc?purge=true"));
    assert_eq!(r.status, 200, "{}", r.body);
    register(&http, &agent, service_job("sc", 1));
    assert_eq!(status()["TaskGroups"]["web"]["Events"], Value::Null);
}

#[test]
fn plan_is_a_dry_run_with_annotations_and_diff() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let _node = SimNode::register(&agent.rpc_addr(), "n0", "dc1", 4000, 16384);
    let url = agent.url("/v1/job/pl/plan");
    let plan = |job: Value| {
        let r = http.post(&url, &json!({"Job": job, "Diff": true}));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let updates = |p: &Value| p["Annotations"]["DesiredTGUpdates"]["web"].clone();

    // A new job: two placements, an "Added" diff, nothing written.
    let p = plan(service_job("pl", 2));
    assert_eq!(updates(&p)["Place"], 2, "{p}");
    assert_eq!(p["Diff"]["Type"], "Added");
    // The counts also sit in the group's diff, where Nomad's CLI reads "(2 create)".
    assert_eq!(p["Diff"]["TaskGroups"][0]["Updates"], json!({"create": 2}));
    assert_eq!(p["JobModifyIndex"], 0);
    assert_eq!(p["FailedTGAllocs"], Value::Null);
    assert_eq!(p["NextPeriodicLaunch"], "0001-01-01T00:00:00Z");
    assert_eq!(http.get(&agent.url("/v1/job/pl")).status, 404);
    assert_eq!(http.get(&agent.url("/v1/evaluations")).json(), json!([]));

    let resp = register(&http, &agent, service_job("pl", 2));
    wait_allocs(&http, &agent, "pl", 2);
    let jmi = resp["JobModifyIndex"].clone();

    // Unchanged: both allocations ignored, no diff.
    let p = plan(service_job("pl", 2));
    assert_eq!(
        (
            updates(&p)["Ignore"].as_u64(),
            updates(&p)["Place"].as_u64()
        ),
        (Some(2), Some(0))
    );
    assert_eq!(p["Diff"]["Type"], "None");
    assert_eq!(p["Diff"]["TaskGroups"][0]["Type"], "None");
    assert_eq!(p["Diff"]["TaskGroups"][0]["Updates"], json!({"ignore": 2}));
    assert_eq!(p["JobModifyIndex"], jmi);

    // Count 3: one placement, and the two running allocations move to the new version in
    // place (as Nomad plans a count change); the diff names the field.
    let p = plan(service_job("pl", 3));
    let u = updates(&p);
    assert_eq!(
        (
            u["Place"].as_u64(),
            u["InPlaceUpdate"].as_u64(),
            u["Ignore"].as_u64()
        ),
        (Some(1), Some(2), Some(0)),
        "{u}"
    );
    assert_eq!(p["Diff"]["Type"], "Edited");
    let count = p["Diff"]["TaskGroups"][0]["Fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["Name"] == "Count")
        .cloned()
        .unwrap();
    assert_eq!(
        (count["Old"].as_str(), count["New"].as_str()),
        (Some("2"), Some("3"))
    );

    // A changed task command replaces both allocations.
    let mut changed = service_job("pl", 2);
    changed["TaskGroups"][0]["Tasks"][0]["Config"]["args"] = json!(["999"]);
    // Under Nomad's default update block (MaxParallel 1) one is replaced, one waits.
    let u = updates(&plan(changed));
    assert_eq!(
        (u["DestructiveUpdate"].as_u64(), u["Ignore"].as_u64()),
        (Some(1), Some(1))
    );

    // More than the node holds: the failure and the blocked evaluation it would create.
    let p = plan(service_job("pl", 100));
    assert!(
        p["FailedTGAllocs"]["web"]["NodesExhausted"]
            .as_i64()
            .unwrap()
            >= 1,
        "{p}"
    );
    assert_eq!(p["CreatedEvals"][0]["Status"], "blocked");

    // Errors; and the state is exactly as before the plans.
    let r = http.post(&url, &json!({"Diff": true}));
    assert_eq!((r.status, r.body.as_str()), (400, "Job must be specified"));
    let r = http.post(&url, &json!({"Job": service_job("other", 1)}));
    assert_eq!((r.status, r.body.as_str()), (400, "Job ID does not match"));
    let job = http.get(&agent.url("/v1/job/pl")).json();
    assert_eq!(
        (job["Version"].clone(), job["JobModifyIndex"].clone()),
        (json!(0), jmi)
    );
    assert_eq!(allocs_of(&http, &agent, "pl").len(), 2);
    assert_eq!(
        http.get(&agent.url("/v1/evaluations"))
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
