//! Agent endpoints of issue 15: `GET|PUT /v1/agent/servers`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn node_names(http: &Http, agent: &Agent) -> Vec<String> {
    let r = http.get(&agent.url("/v1/nodes"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter_map(|n| n["Name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_replaced_server_list_is_what_the_client_talks_to_next() {
    let first = Agent::start(AgentOpts::server());
    let second = Agent::start(AgentOpts::server());
    let client = Agent::start(AgentOpts::client(vec![first.rpc_addr()], "moving-client"));
    let http = Http::default();
    wait_for(Duration::from_secs(30), "the client registered", || {
        node_names(&http, &first)
            .contains(&"moving-client".to_string())
            .then_some(())
    });
    // Only the first server has this namespace: it tells which server the proxy asks.
    let r = http.put(
        &first.url("/v1/namespace/only-on-first"),
        &json!({"Name": "only-on-first"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        http.get(&client.url("/v1/namespace/only-on-first")).status,
        200
    );

    let servers = |agent: &Agent| http.get(&agent.url("/v1/agent/servers"));
    let r = servers(&client);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([first.rpc_addr()]));

    // Refused replacements leave the list as it was.
    let r = http.put(&client.url("/v1/agent/servers"), &json!(null));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("missing server address"), "{}", r.body);
    let r = http.put(
        &client.url("/v1/agent/servers?address=127.0.0.1:notaport"),
        &json!(null),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("127.0.0.1:notaport"), "{}", r.body);
    let nobody = format!("127.0.0.1:{}", free_port());
    let r = http.put(
        &client.url(&format!("/v1/agent/servers?address={nobody}")),
        &json!(null),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("failed ping"), "{}", r.body);
    assert_eq!(servers(&client).json(), json!([first.rpc_addr()]));

    // An unreachable address beside a reachable one is left out, as Nomad does.
    let r = http.put(
        &client.url(&format!(
            "/v1/agent/servers?address={}&address={nobody}",
            second.rpc_addr()
        )),
        &json!(null),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(servers(&client).json(), json!([second.rpc_addr()]));

    // The client's next heartbeat goes to the second server, which does not know the node
    // and has it register there.
    wait_for(
        Duration::from_secs(30),
        "the client registered anew",
        || {
            node_names(&http, &second)
                .contains(&"moving-client".to_string())
                .then_some(())
        },
    );
    // The agent's proxy of the public API follows the list too.
    assert_eq!(
        http.get(&client.url("/v1/namespace/only-on-first")).status,
        404
    );
    assert_eq!(
        node_names(&http, &client),
        node_names(&http, &second),
        "the client agent answers from the second server"
    );

    // A server without a client has no list (Nomad: 501).
    let r = servers(&first);
    assert_eq!(r.status, 501, "{}", r.body);
    let r = http.put(
        &first.url(&format!("/v1/agent/servers?address={}", second.rpc_addr())),
        &json!(null),
    );
    assert_eq!(r.status, 501, "{}", r.body);
}

#[test]
fn an_agent_running_both_lists_its_own_server() {
    let agent = Agent::start(AgentOpts::dev());
    let http = Http::default();
    let r = http.get(&agent.url("/v1/agent/servers"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([agent.rpc_addr()]));
    let r = http.put(
        &agent.url(&format!("/v1/agent/servers?address={}", agent.rpc_addr())),
        &json!(null),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("own server"), "{}", r.body);
}
