//! End-to-end tests of a small cluster: one `yurt agent -server` and two `yurt agent -client`
//! processes, each with its own ports, data dir and node name, talking over the RPC port.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

struct Cluster {
    server: Agent,
    clients: Vec<Agent>,
}

impl Cluster {
    fn start(dirs: &mut DirGuard) -> Cluster {
        let server = dirs.start(AgentOpts::server());
        let clients = ["c1", "c2"]
            .iter()
            .map(|n| dirs.start(AgentOpts::client(vec![server.rpc_addr()], n)))
            .collect();
        Cluster { server, clients }
    }
}

fn nodes(http: &Http, server: &Agent) -> Vec<Value> {
    http.get(&server.url("/v1/nodes"))
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Node name → ID, once every named node is `ready`.
fn wait_ready(http: &Http, server: &Agent, names: &[&str]) -> HashMap<String, String> {
    wait_for(Duration::from_secs(30), "client nodes ready", || {
        let ns = nodes(http, server);
        let ready: HashMap<String, String> = ns
            .iter()
            .filter(|n| n["Status"] == "ready")
            .map(|n| {
                (
                    n["Name"].as_str().unwrap().to_string(),
                    n["ID"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        names
            .iter()
            .all(|n| ready.contains_key(*n))
            .then_some(ready)
    })
}

fn allocs_of(http: &Http, server: &Agent, job: &str) -> Vec<Value> {
    let r = http.get(&server.url(&format!("/v1/job/{job}/allocations")));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().cloned().unwrap_or_default()
}

fn node_status(http: &Http, server: &Agent, id: &str) -> String {
    http.get(&server.url(&format!("/v1/node/{id}"))).json()["Status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn ids(allocs: &[Value]) -> Vec<String> {
    allocs
        .iter()
        .map(|a| a["ID"].as_str().unwrap().to_string())
        .collect()
}

/// Starts the cluster, runs a Count 4 job spread over both clients, kills `c1`'s agent with
/// SIGKILL and waits until the server has marked it down, its allocations lost and replaced
/// them on `c2`. With `machine_loss` the tasks and their supervisors are killed with the
/// agent (they outlive it by design otherwise). Returns the cluster, node IDs, and the IDs of
/// the allocations lost on c1.
fn lose_c1(
    dirs: &mut DirGuard,
    http: &Http,
    job: &str,
    machine_loss: bool,
) -> (Cluster, HashMap<String, String>, Vec<String>) {
    let mut cluster = Cluster::start(dirs);
    let ids_by_name = wait_ready(http, &cluster.server, &["c1", "c2"]);
    let (c1, c2) = (ids_by_name["c1"].clone(), ids_by_name["c2"].clone());
    let r = http.put(
        &cluster.server.url("/v1/jobs"),
        &json!({"Job": service_job(job, 4)}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let running = wait_for(Duration::from_secs(30), "4 running allocs", || {
        let a: Vec<Value> = allocs_of(http, &cluster.server, job)
            .into_iter()
            .filter(|a| a["ClientStatus"] == "running")
            .collect();
        (a.len() == 4).then_some(a)
    });
    let on = |n: &str| -> Vec<Value> {
        running
            .iter()
            .filter(|a| a["NodeID"] == n)
            .cloned()
            .collect()
    };
    assert_eq!(on(&c1).len(), 2, "Count 4 spreads 2/2 over two empty nodes");
    assert_eq!(on(&c2).len(), 2);
    // Every running allocation is a real process on its client.
    for id in ids(&running) {
        wait_for(Duration::from_secs(10), "task process", || {
            (!pids_matching(&format!("NOMAD_ALLOC_ID={id}")).is_empty()).then_some(())
        });
    }
    let lost = ids(&on(&c1));

    cluster.clients[0].kill9();
    if machine_loss {
        for id in &lost {
            kill_matching(id);
        }
    }
    wait_for(Duration::from_secs(30), "c1 down", || {
        (node_status(http, &cluster.server, &c1) == "down").then_some(())
    });
    wait_for(Duration::from_secs(30), "c1's allocs lost", || {
        let all = allocs_of(http, &cluster.server, job);
        lost.iter()
            .all(|id| {
                all.iter()
                    .any(|a| a["ID"] == id.as_str() && a["ClientStatus"] == "lost")
            })
            .then_some(())
    });
    wait_for(Duration::from_secs(30), "4 running on c2", || {
        let n = allocs_of(http, &cluster.server, job)
            .iter()
            .filter(|a| {
                a["NodeID"] == c2.as_str()
                    && a["ClientStatus"] == "running"
                    && a["DesiredStatus"] == "run"
            })
            .count();
        (n == 4).then_some(())
    });
    for a in allocs_of(http, &cluster.server, job) {
        if lost.contains(&a["ID"].as_str().unwrap().to_string()) {
            assert_eq!(a["DesiredStatus"], "stop", "{a}");
        }
    }
    (cluster, ids_by_name, lost)
}

#[test]
fn lost_client_is_replaced_and_rejoins() {
    let mut dirs = DirGuard::default();
    let http = Http::default();
    // Agents stopped by the harness leave their tasks running (by design): kill them after.
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=spread".into()]);
    // Machine loss: the tasks and their supervisors die with the agent.
    let (mut cluster, nodes_by_name, lost) = lose_c1(&mut dirs, &http, "spread", true);

    // The machine comes back: same node, ready again, and nothing of the old allocations
    // runs there; the job stays at 4 running on c2.
    cluster.clients[0].restart();
    let c1 = &nodes_by_name["c1"];
    wait_for(Duration::from_secs(30), "c1 ready again", || {
        (node_status(&http, &cluster.server, c1) == "ready").then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let all = allocs_of(&http, &cluster.server, "spread");
    for a in &all {
        let id = a["ID"].as_str().unwrap();
        if lost.contains(&id.to_string()) {
            assert_eq!(a["DesiredStatus"], "stop", "{a}");
            assert_eq!(
                a["ClientStatus"], "lost",
                "the server's verdict stands: {a}"
            );
            assert!(pids_matching(id).is_empty(), "{id} runs again on c1");
        }
    }
    let live = all
        .iter()
        .filter(|a| a["DesiredStatus"] == "run" && a["ClientStatus"] == "running")
        .count();
    assert_eq!(live, 4);
    assert_eq!(nodes(&http, &cluster.server).len(), 2);
}

#[test]
fn returning_client_stops_what_the_server_no_longer_wants() {
    let mut dirs = DirGuard::default();
    let http = Http::default();
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=partition".into()]);
    // Like a partition: the agent dies but its tasks keep running under their supervisors.
    let (mut cluster, nodes_by_name, lost) = lose_c1(&mut dirs, &http, "partition", false);
    for id in &lost {
        assert!(
            !pids_matching(&format!("NOMAD_ALLOC_ID={id}")).is_empty(),
            "the task of {id} survives its agent"
        );
    }
    cluster.clients[0].restart();
    let c1 = &nodes_by_name["c1"];
    wait_for(Duration::from_secs(30), "c1 ready again", || {
        (node_status(&http, &cluster.server, c1) == "ready").then_some(())
    });
    // The old allocations are DesiredStatus stop: their processes are killed.
    for id in &lost {
        wait_for(Duration::from_secs(20), "old task killed", || {
            pids_matching(&format!("NOMAD_ALLOC_ID={id}"))
                .is_empty()
                .then_some(())
        });
    }
    let live = allocs_of(&http, &cluster.server, "partition")
        .iter()
        .filter(|a| a["DesiredStatus"] == "run" && a["ClientStatus"] == "running")
        .count();
    assert_eq!(live, 4);
}

#[test]
fn clients_come_back_after_the_server_restarts() {
    let mut dirs = DirGuard::default();
    let http = Http::default();
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=afterrestart".into()]);
    let mut cluster = Cluster::start(&mut dirs);
    let before = wait_ready(&http, &cluster.server, &["c1", "c2"]);
    // The server loses its process (not its data dir) and comes back on the same ports.
    cluster.server.restart();
    let after = wait_ready(&http, &cluster.server, &["c1", "c2"]);
    assert_eq!(before, after, "same node IDs");
    assert_eq!(nodes(&http, &cluster.server).len(), 2);
    // And the cluster still runs work on both clients.
    let r = http.put(
        &cluster.server.url("/v1/jobs"),
        &json!({"Job": service_job("afterrestart", 2)}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let running = wait_for(Duration::from_secs(30), "2 running allocs", || {
        let a: Vec<Value> = allocs_of(&http, &cluster.server, "afterrestart")
            .into_iter()
            .filter(|a| a["ClientStatus"] == "running")
            .collect();
        (a.len() == 2).then_some(a)
    });
    let on: std::collections::HashSet<&str> = running
        .iter()
        .map(|a| a["NodeID"].as_str().unwrap())
        .collect();
    assert_eq!(on.len(), 2, "one per client");
}
