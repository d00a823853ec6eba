//! Node identity on the RPC port (ACLs off): every client call after registering carries the
//! node's SecretID, a node can neither take over another node's ID nor read or report on
//! another node's allocations, and a real client keeps its identity across restarts.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn live_alloc(http: &Http, agent: &Agent, job: &str) -> Value {
    wait_for(Duration::from_secs(20), "a placed allocation", || {
        let r = http.get(&agent.url(&format!("/v1/job/{job}/allocations")));
        r.json()
            .as_array()
            .and_then(|a| a.first().cloned())
            .filter(|a| a["DesiredStatus"] == "run")
    })
}

#[test]
fn a_fake_node_cannot_take_over_read_or_report_for_another_node() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let victim = SimNode::register(&agent.rpc_addr(), "victim", "dc1", 4000, 8192);
    let r = http.put(
        &agent.url("/v1/jobs"),
        &json!({"Job": service_job("secret-work", 1)}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let alloc = live_alloc(&http, &agent, "secret-work");
    let alloc_id = alloc["ID"].as_str().expect("ID").to_string();
    assert_eq!(alloc["NodeID"], victim.id.as_str());

    let rpc = |path: &str, body: Value| http.post(&agent.rpc_url(path), &body);
    let wrong = "00000000-0000-0000-0000-000000000000";

    // Re-registering over the victim's ID with another secret is refused, and changes nothing.
    let mut hijack = sim_node_json(&victim.id, wrong, "thief", "dc1", 4000, 8192);
    hijack["Meta"] = json!({"owner": "thief"});
    let r = rpc("/v1/internal/node/register", hijack);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body, "node secret ID does not match");
    let node = http
        .get(&agent.url(&format!("/v1/node/{}", victim.id)))
        .json();
    assert_eq!(node["Name"], "victim");
    assert_eq!(node["SecretID"], "", "the API never shows a node's secret");

    // With the victim's ID but not its secret: no heartbeat, no allocation list, no reads,
    // no status updates.
    let r = rpc(
        "/v1/internal/node/status",
        json!({"NodeID": victim.id, "SecretID": wrong, "Status": "down"}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = rpc(
        "/v1/internal/node/allocs?index=0&wait=1s",
        json!({"NodeID": victim.id, "SecretID": wrong}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = rpc(
        "/v1/internal/allocs",
        json!({"NodeID": victim.id, "SecretID": wrong, "AllocIDs": [alloc_id]}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = rpc("/v1/internal/allocs", json!({"AllocIDs": [alloc_id]}));
    assert_eq!(
        r.status, 404,
        "an anonymous fetch names no node: {}",
        r.body
    );
    let fail_it = json!([{"ID": alloc_id, "NodeID": victim.id, "ClientStatus": "failed"}]);
    let r = rpc(
        "/v1/internal/allocs/update",
        json!({"NodeID": victim.id, "SecretID": wrong, "Alloc": fail_it.clone()}),
    );
    assert_eq!(r.status, 403, "{}", r.body);

    // A node of its own, with its own valid secret, still cannot touch the victim's work.
    let thief = SimNode::register(&agent.rpc_addr(), "thief", "dc1", 100, 128);
    let r = rpc(
        "/v1/internal/allocs",
        json!({"NodeID": thief.id, "SecretID": thief.secret, "AllocIDs": [alloc_id]}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body, "Permission denied");
    let r = rpc(
        "/v1/internal/allocs/update",
        json!({"NodeID": thief.id, "SecretID": thief.secret, "Alloc": fail_it}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let listed = rpc(
        "/v1/internal/node/allocs?index=0&wait=1s",
        json!({"NodeID": thief.id, "SecretID": thief.secret}),
    );
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(
        listed.json()["Allocs"].get(&alloc_id).is_none(),
        "{}",
        listed.body
    );
    let after = http
        .get(&agent.url(&format!("/v1/allocation/{alloc_id}")))
        .json();
    assert_eq!(after["ClientStatus"], "pending", "{after}");
    let node = http
        .get(&agent.url(&format!("/v1/node/{}", victim.id)))
        .json();
    assert_eq!(node["Status"], "ready");

    // The victim itself is served.
    let r = rpc(
        "/v1/internal/allocs",
        json!({"NodeID": victim.id, "SecretID": victim.secret, "AllocIDs": [alloc_id]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["Allocs"][0]["ID"], alloc_id.as_str());
    assert!(r.json()["Allocs"][0]["Job"].is_object());
    let r = victim.update_allocs(&[(alloc_id.clone(), "running")]);
    assert_eq!(r.status, 200, "{}", r.body);
    let after = http
        .get(&agent.url(&format!("/v1/allocation/{alloc_id}")))
        .json();
    assert_eq!(after["ClientStatus"], "running");
}

#[test]
fn a_real_client_keeps_its_identity_across_restarts() {
    let mut dirs = DirGuard::default();
    let http = Http::default();
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=ident".into()]);
    let mut server = dirs.start(AgentOpts::server());
    let mut client = dirs.start(AgentOpts::client(vec![server.rpc_addr()], "c1"));
    let node_id = wait_for(Duration::from_secs(30), "c1 ready", || {
        let nodes = http.get(&server.url("/v1/nodes")).json();
        nodes.as_array()?.iter().find_map(|n| {
            (n["Name"] == "c1" && n["Status"] == "ready")
                .then(|| n["ID"].as_str().map(str::to_string))?
        })
    });
    let run = |server: &Agent, job: &str| {
        let r = http.put(
            &server.url("/v1/jobs"),
            &json!({"Job": service_job(job, 1)}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        wait_for(Duration::from_secs(30), &format!("{job} running"), || {
            let allocs = http
                .get(&server.url(&format!("/v1/job/{job}/allocations")))
                .json();
            allocs
                .as_array()?
                .iter()
                .find(|a| a["ClientStatus"] == "running")
                .map(|a| a["NodeID"].as_str().unwrap_or_default().to_string())
        })
    };
    assert_eq!(run(&server, "ident-1"), node_id);

    // The client restarts: it comes back as the same node (its secret was kept, or the
    // server would refuse the registration), and pulls and reports new work.
    client.restart();
    let ready_again = |server: &Agent| {
        wait_for(Duration::from_secs(30), "c1 ready again", || {
            let n = http.get(&server.url(&format!("/v1/node/{node_id}"))).json();
            (n["Status"] == "ready").then_some(())
        })
    };
    ready_again(&server);
    assert_eq!(run(&server, "ident-2"), node_id);
    assert!(
        !client.log().contains("registration refused"),
        "{}",
        client.log()
    );

    // And after the server restarts too.
    server.restart();
    ready_again(&server);
    assert_eq!(run(&server, "ident-3"), node_id);
    let nodes = http.get(&server.url("/v1/nodes")).json();
    assert_eq!(nodes.as_array().map(Vec::len), Some(1));
}
