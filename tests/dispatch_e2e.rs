//! End-to-end dispatch of a parameterized job on a dev agent: the child job runs with the
//! payload in `local/` and the dispatch meta in its environment.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use serde_json::{Value, json};

fn parameterized_job() -> Value {
    json!({
        "ID": "proc",
        "Name": "proc",
        "Type": "batch",
        "Datacenters": ["dc1"],
        "ParameterizedJob": {"Payload": "required", "MetaRequired": ["key"], "MetaOptional": ["extra"]},
        "TaskGroups": [{
            "Name": "g",
            "Count": 1,
            "Tasks": [{
                "Name": "t",
                "Driver": "raw_exec",
                "Config": {"command": "/bin/sh", "args": ["-c",
                    "cat \"$NOMAD_TASK_DIR/input.txt\"; echo meta=$NOMAD_META_key; sleep 3"]},
                "DispatchPayload": {"File": "input.txt"},
                "Resources": {"CPU": 100, "MemoryMB": 64},
            }],
        }],
    })
}

#[test]
fn dispatch_runs_a_child_with_payload_and_meta() {
    let agent = Agent::start(AgentOpts::dev());
    let http = Http::default();
    let r = http.put(&agent.url("/v1/jobs"), &json!({"Job": parameterized_job()}));
    assert_eq!(r.status, 200, "{}", r.body);
    // A parameterized parent is never placed itself.
    assert_eq!(r.json()["EvalID"], "");
    let url = agent.url("/v1/job/proc/dispatch");
    let payload = STANDARD.encode("hello payload\n");

    // Refusals in Nomad's words.
    let bad = |body: Value, msg: &str| {
        let r = http.post(&url, &body);
        assert_eq!((r.status, r.body.as_str()), (400, msg), "{body}");
    };
    bad(json!({"Meta": {"key": "v"}}), "Payload is required");
    bad(
        json!({"Payload": payload, "Meta": {}}),
        "Dispatch did not provide required meta keys: [key]",
    );
    bad(
        json!({"Payload": payload, "Meta": {"key": "v", "nope": "x"}}),
        "Dispatch provided unpermitted meta keys: [nope]",
    );
    let big = STANDARD.encode(vec![b'x'; 16 * 1024 + 1]);
    bad(
        json!({"Payload": big, "Meta": {"key": "v"}}),
        "Payload exceeds maximum size; 16385 > 16384",
    );
    let r = http.post(
        &agent.url("/v1/job/nope/dispatch"),
        &json!({"Payload": payload}),
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "parameterized job not found")
    );
    http.put(
        &agent.url("/v1/jobs"),
        &json!({"Job": service_job("plain", 1)}),
    );
    let r = http.post(&agent.url("/v1/job/plain/dispatch"), &json!({}));
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "Specified job is not a parameterized job")
    );

    // A real dispatch: the child runs with the payload file and the meta.
    let r = http.post(
        &format!("{url}?idempotency_token=once"),
        &json!({"Payload": payload, "Meta": {"key": "Value"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let resp = r.json();
    let child = resp["DispatchedJobID"].as_str().unwrap().to_string();
    assert!(child.starts_with("proc/dispatch-"), "{child}");
    assert!(!resp["EvalID"].as_str().unwrap().is_empty());
    assert!(resp["JobCreateIndex"].as_u64().unwrap() > 0);
    // The same idempotency token while the child lives: the same child.
    let again = http.post(
        &format!("{url}?idempotency_token=once"),
        &json!({"Payload": payload, "Meta": {"key": "Value"}}),
    );
    assert_eq!(
        again.json()["DispatchedJobID"],
        child.as_str(),
        "{}",
        again.body
    );

    let job = http.get(&agent.url(&format!("/v1/job/{child}"))).json();
    assert_eq!(job["ParentID"], "proc");
    assert_eq!(job["Dispatched"], true);
    assert_eq!(job["ParameterizedJob"], Value::Null);
    assert_eq!(job["Meta"]["key"], "Value");

    let alloc = wait_for(Duration::from_secs(30), "child allocation", || {
        let allocs = http
            .get(&agent.url(&format!("/v1/job/{child}/allocations")))
            .json();
        allocs.as_array()?.first()?["ID"]
            .as_str()
            .map(str::to_string)
    });
    let logs = wait_for(Duration::from_secs(30), "child output", || {
        let r = http.get(&agent.url(&format!(
            "/v1/client/fs/logs/{alloc}?task=t&type=stdout&plain=true"
        )));
        (r.status == 200 && r.body.contains("meta=")).then_some(r.body)
    });
    assert_eq!(logs, "hello payload\nmeta=Value\n");
    let summary = http.get(&agent.url("/v1/job/proc/summary")).json();
    let children = &summary["Children"];
    assert_eq!(
        children["Running"].as_i64().unwrap()
            + children["Pending"].as_i64().unwrap()
            + children["Dead"].as_i64().unwrap(),
        1,
        "{summary}"
    );
}
