//! The server goes away from a client agent (its process stopped, or the network between
//! them cut): the client keeps its tasks running, retries slowly and with jitter rather than
//! flooding the servers, and re-syncs what happened meanwhile once they are back; a node
//! silent past its TTL and `heartbeat_grace` has its allocations marked lost, and the client
//! stops them when it returns, as Nomad's does.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::*;
use serde_json::{Value, json};

/// How long the server stays away while requests are counted.
const OUTAGE: Duration = Duration::from_secs(12);

fn server_with_failover(failover: &str) -> AgentOpts {
    AgentOpts {
        server: false,
        client: false,
        extra_hcl: format!(
            "server {{\n  enabled = true\n  heartbeat_grace = \"1s\"\n  min_heartbeat_ttl = \"1s\"\n  failover_heartbeat_ttl = {failover:?}\n}}\n"
        ),
        ..AgentOpts::server()
    }
}

fn allocs_of(http: &Http, server: &Agent, job: &str) -> Vec<Value> {
    http.get(&server.url(&format!("/v1/job/{job}/allocations")))
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn node_status(http: &Http, server: &Agent, node_id: &str) -> String {
    http.get(&server.url(&format!("/v1/node/{node_id}"))).json()["Status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// The PID of the (only) task process of an allocation.
fn task_pid(alloc_id: &str) -> i32 {
    wait_for(Duration::from_secs(30), "task process", || {
        pids_matching(&format!("NOMAD_ALLOC_ID={alloc_id}"))
            .first()
            .copied()
    })
}

/// A batch job whose task finishes once `flag` exists: a trigger, not a timer, so it ends
/// exactly while the server is away however slow the machine is.
fn batch_until(id: &str, flag: &std::path::Path) -> Value {
    json!({
        "ID": id, "Name": id, "Type": "batch", "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "g",
            "Count": 1,
            "Tasks": [{
                "Name": "wait",
                "Driver": "raw_exec",
                "Config": {"command": "/bin/sh", "args": ["-c",
                    format!("while [ ! -e {} ]; do sleep 0.1; done", flag.display())]},
                "Resources": {"CPU": 50, "MemoryMB": 32},
            }],
        }],
    })
}

#[test]
fn server_stopped_for_a_while_client_keeps_tasks_backs_off_and_resyncs() {
    let http = Http::default();
    let mut server = Agent::start(server_with_failover("5m"));
    let proxy = Proxy::start(&server.rpc_addr());
    let client = Agent::start(AgentOpts::client(vec![proxy.addr()], "c1"));
    let node_id = wait_for(Duration::from_secs(30), "node ready", || {
        let nodes = http.get(&server.url("/v1/nodes")).json();
        nodes
            .as_array()?
            .iter()
            .find_map(|n| (n["Status"] == "ready").then(|| n["ID"].as_str().map(str::to_string))?)
    });

    let svc = run_job_and_wait(&http, &server.url(""), &service_job("svc", 1));
    let flag = client.data_dir.path().join("batch-may-finish");
    let batch = run_job_and_wait(&http, &server.url(""), &batch_until("batch", &flag));
    let svc_pid = task_pid(&svc);
    let batch_pid = task_pid(&batch);

    server.kill9();
    proxy.clear_refused();
    let outage_start = Instant::now();
    // The batch task finishes while no server can hear about it.
    std::fs::write(&flag, b"").expect("write flag");
    wait_for(Duration::from_secs(30), "batch task exits", || {
        (!alive(batch_pid)).then_some(())
    });
    std::thread::sleep(OUTAGE.saturating_sub(outage_start.elapsed()));
    let refused = proxy.refused();
    let window = outage_start.elapsed();
    assert!(
        alive(svc_pid),
        "the service task must keep running while the server is away"
    );

    // No storm: every loop retries no faster than about once a second (the heartbeat) or
    // with a doubling backoff from one second (the others), so a slower machine can only
    // send fewer requests than these bounds.
    let mut by_path: BTreeMap<String, usize> = BTreeMap::new();
    for r in &refused {
        *by_path.entry(r.path.clone()).or_default() += 1;
    }
    let secs = window.as_secs_f64().ceil() as usize;
    let heartbeats = by_path
        .get("/v1/internal/node/status")
        .copied()
        .unwrap_or(0);
    assert!(
        heartbeats >= 2,
        "the client should keep trying to heartbeat: {by_path:?}"
    );
    assert!(
        heartbeats <= secs + 1,
        "heartbeat retries faster than once a second over {window:?}: {by_path:?}"
    );
    // Doubling from 1 s: attempts at 0, 1, 3, 7, 15, … s; ⌈log2(secs+1)⌉+1 fit in the window.
    let backoff_bound = (usize::BITS - (secs + 1).leading_zeros()) as usize + 1;
    for (path, n) in &by_path {
        if path != "/v1/internal/node/status" {
            assert!(
                *n <= backoff_bound,
                "{path} retried {n} times in {window:?} (bound {backoff_bound}): {by_path:?}"
            );
        }
    }

    server.restart();
    // The client is heard again within the failover TTL, the batch allocation's completion
    // reaches the server, and the service allocation was never touched.
    wait_for(
        Duration::from_secs(90),
        "batch complete on the server",
        || {
            let a = allocs_of(&http, &server, "batch");
            a.iter()
                .any(|a| a["ID"] == batch.as_str() && a["ClientStatus"] == "complete")
                .then_some(())
        },
    );
    assert_eq!(node_status(&http, &server, &node_id), "ready");
    let svc_allocs = allocs_of(&http, &server, "svc");
    assert_eq!(
        svc_allocs.len(),
        1,
        "no replacement was made: {svc_allocs:?}"
    );
    let a = &svc_allocs[0];
    assert_eq!(a["ID"], svc.as_str());
    assert_eq!(a["ClientStatus"], "running");
    assert_eq!(a["DesiredStatus"], "run");
    assert_eq!(a["TaskStates"]["server"]["Restarts"], 0);
    assert!(
        alive(svc_pid),
        "same task process after the server returned"
    );
    drop(client);
}

#[test]
fn node_silent_past_heartbeat_grace_has_allocs_lost_and_stopped_on_return() {
    let http = Http::default();
    let server = Agent::start(AgentOpts::server());
    let proxy = Proxy::start(&server.rpc_addr());
    let client = Agent::start(AgentOpts::client(vec![proxy.addr()], "c1"));
    let svc = run_job_and_wait(&http, &server.url(""), &service_job("svc", 1));
    let node_id = allocs_of(&http, &server, "svc")[0]["NodeID"]
        .as_str()
        .expect("NodeID")
        .to_string();
    let pid = task_pid(&svc);

    proxy.cut();
    // TTL 1–2 s plus 1 s grace in the test config.
    wait_for(Duration::from_secs(30), "node down", || {
        (node_status(&http, &server, &node_id) == "down").then_some(())
    });
    wait_for(Duration::from_secs(30), "alloc lost", || {
        allocs_of(&http, &server, "svc")
            .iter()
            .any(|a| a["ID"] == svc.as_str() && a["ClientStatus"] == "lost")
            .then_some(())
    });
    // Cut off, the client cannot know: its task keeps running (no
    // `stop_after_client_disconnect` is set).
    assert!(alive(pid), "the task runs on while the client is cut off");

    proxy.restore();
    wait_for(
        Duration::from_secs(90),
        "lost task stopped on return",
        || (!alive(pid)).then_some(()),
    );
    // The server's verdict stands, and the job's replacement runs on the returned node.
    let deadline = Instant::now() + Duration::from_secs(90);
    let all = loop {
        let all = allocs_of(&http, &server, "svc");
        // Placed by the evaluation that was blocked while no node was ready, so as a new
        // instance of the same name rather than with a link back to the lost one.
        let replaced = all.iter().any(|a| {
            a["ID"] != svc.as_str()
                && a["Name"] == "svc.web[0]"
                && a["ClientStatus"] == "running"
                && a["NodeID"] == node_id.as_str()
        });
        if replaced {
            break all;
        }
        if Instant::now() > deadline {
            let evals = http.get(&server.url("/v1/job/svc/evaluations")).json();
            let node = http.get(&server.url(&format!("/v1/node/{node_id}"))).json();
            panic!(
                "no replacement running after 90s\nallocs: {all:#?}\nevals: {evals:#?}\nnode status: {}",
                node["Status"]
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let old = all
        .iter()
        .find(|a| a["ID"] == svc.as_str())
        .expect("original alloc");
    assert_eq!(old["ClientStatus"], "lost", "{old}");
    assert_eq!(old["DesiredStatus"], "stop");
    assert_eq!(node_status(&http, &server, &node_id), "ready");
    drop(client);
}

#[test]
fn disconnect_window_keeps_the_original_when_its_client_returns_in_time() {
    let http = Http::default();
    let server = Agent::start(AgentOpts::server());
    let proxy = Proxy::start(&server.rpc_addr());
    let c1 = Agent::start(AgentOpts::client(vec![proxy.addr()], "c1"));
    let mut job = service_job("svc", 1);
    // Two minutes to come back: far longer than the cut below.
    job["TaskGroups"][0]["Disconnect"] = json!({"LostAfter": 120_000_000_000i64});
    let orig = run_job_and_wait(&http, &server.url(""), &job);
    let c1_id = allocs_of(&http, &server, "svc")[0]["NodeID"]
        .as_str()
        .expect("NodeID")
        .to_string();
    let pid = task_pid(&orig);
    // A second node, joined only now so the original surely went to the first.
    let c2 = Agent::start(AgentOpts::client(vec![server.rpc_addr()], "c2"));
    wait_for(Duration::from_secs(30), "two ready nodes", || {
        let nodes = http.get(&server.url("/v1/nodes")).json();
        let ready = nodes
            .as_array()?
            .iter()
            .filter(|n| n["Status"] == "ready")
            .count();
        (ready == 2).then_some(())
    });

    proxy.cut();
    wait_for(Duration::from_secs(30), "c1 disconnected", || {
        (node_status(&http, &server, &c1_id) == "disconnected").then_some(())
    });
    let replacement = wait_for(Duration::from_secs(60), "unknown + replaced", || {
        let all = allocs_of(&http, &server, "svc");
        let o = all.iter().find(|a| a["ID"] == orig.as_str())?;
        if o["ClientStatus"] != "unknown" || o["DesiredStatus"] != "run" {
            return None;
        }
        all.iter()
            .find(|a| {
                a["PreviousAllocation"] == orig.as_str()
                    && a["ClientStatus"] == "running"
                    && a["NodeID"] != c1_id.as_str()
            })
            .and_then(|a| a["ID"].as_str().map(str::to_string))
    });
    assert!(
        alive(pid),
        "the original runs on while its client is cut off"
    );

    proxy.restore();
    // Back within its window and still running: the original stays, the replacement goes.
    wait_for(
        Duration::from_secs(90),
        "original kept, replacement stopped",
        || {
            let all = allocs_of(&http, &server, "svc");
            let o = all.iter().find(|a| a["ID"] == orig.as_str())?;
            let r = all.iter().find(|a| a["ID"] == replacement.as_str())?;
            (o["ClientStatus"] == "running"
                && o["DesiredStatus"] == "run"
                && r["DesiredStatus"] == "stop")
                .then_some(())
        },
    );
    assert!(alive(pid), "the original's task was never restarted");
    assert_eq!(node_status(&http, &server, &c1_id), "ready");
    let o = http
        .get(&server.url(&format!("/v1/allocation/{orig}")))
        .json();
    assert_eq!(o["TaskStates"]["server"]["Restarts"], 0);
    let events = o["TaskStates"]["server"]["Events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        events.iter().any(|e| e["Type"] == "Reconnected"),
        "a Reconnected event: {events:?}"
    );
    wait_for(
        Duration::from_secs(30),
        "the replacement's task stopped",
        || {
            pids_matching(&format!("NOMAD_ALLOC_ID={replacement}"))
                .is_empty()
                .then_some(())
        },
    );
    drop((c1, c2));
}

#[test]
fn stop_after_client_disconnect_stops_the_task_on_the_cut_off_client() {
    let http = Http::default();
    let server = Agent::start(AgentOpts::server());
    let proxy = Proxy::start(&server.rpc_addr());
    let client = Agent::start(AgentOpts::client(vec![proxy.addr()], "c1"));
    let mut job = service_job("svc", 1);
    job["TaskGroups"][0]["StopAfterClientDisconnect"] = json!(3_000_000_000i64);
    let orig = run_job_and_wait(&http, &server.url(""), &job);
    let pid = task_pid(&orig);

    proxy.cut();
    // The client stops it on its own, without a word from any server.
    wait_for(
        Duration::from_secs(60),
        "task stopped by its client",
        || (!alive(pid)).then_some(()),
    );
    assert_eq!(http.get(&client.url("/v1/agent/health")).status, 200);

    proxy.restore();
    // Once back, the server hears how it ended, and it is not started again on its own.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let a = http
            .get(&server.url(&format!("/v1/allocation/{orig}")))
            .json();
        if a["TaskStates"]["server"]["State"] == "dead" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "its end never reported: {a:#}\nclient log:\n{}",
            client.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(pids_matching(&format!("NOMAD_ALLOC_ID={orig}")).is_empty());
}
