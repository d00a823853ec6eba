//! Namespaces as objects over HTTP, against a real `yurt agent -server` process: create,
//! read, list (prefix, blocking), update, delete rules, job admission, and restarts.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|n| n["Name"].as_str().expect("Name").to_string())
        .collect()
}

#[test]
fn namespaces_are_objects_with_nomads_rules() {
    let mut agent = Agent::start(AgentOpts::server());
    let http = Http::default();

    // `default` exists from the first start.
    let list = http.get(&agent.url("/v1/namespaces"));
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(names(&list.json()), ["default"]);
    let d = http.get(&agent.url("/v1/namespace/default")).json();
    assert_eq!(d["Description"], "Default shared namespace");
    assert_eq!(d["Capabilities"], Value::Null);

    // Create, then update through the named path; CreateIndex stays, ModifyIndex moves.
    let created = http.post(
        &agent.url("/v1/namespace"),
        &json!({"Name": "team-a", "Description": "A team", "Meta": {"owner": "ops"},
            "Capabilities": {"DisabledTaskDrivers": ["raw_exec"]}}),
    );
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.body, "");
    let first_index = created.index();
    let ns = http.get(&agent.url("/v1/namespace/team-a"));
    assert_eq!(ns.status, 200, "{}", ns.body);
    let ns = ns.json();
    assert_eq!(ns["CreateIndex"], first_index);
    assert_eq!(ns["Meta"]["owner"], "ops");
    assert_eq!(
        ns["Capabilities"]["DisabledTaskDrivers"],
        json!(["raw_exec"])
    );
    assert_eq!(ns["Capabilities"]["EnabledTaskDrivers"], Value::Null);
    let updated = http.put(
        &agent.url("/v1/namespace/team-a"),
        &json!({"Name": "team-a", "Description": "Team A",
            "Capabilities": {"DisabledTaskDrivers": ["raw_exec"]}}),
    );
    assert_eq!(updated.status, 200, "{}", updated.body);
    let ns = http.get(&agent.url("/v1/namespace/team-a")).json();
    assert_eq!(ns["CreateIndex"], first_index);
    assert_eq!(ns["ModifyIndex"], updated.index());
    assert_eq!(ns["Description"], "Team A");
    assert_eq!(
        ns["Meta"],
        Value::Null,
        "an update replaces the whole namespace"
    );

    // Bad input is a 400 that says what is wrong.
    let cases = [
        (
            "/v1/namespace/other",
            json!({"Name": "team-a"}),
            "Namespace name does not match request path",
        ),
        (
            "/v1/namespace",
            json!({"Name": "bad_name"}),
            "Invalid namespace \"bad_name\": 1 error occurred:\n\t* invalid name \"bad_name\". Must match regex ^[a-zA-Z0-9-]{1,128}$\n",
        ),
        (
            "/v1/namespace",
            json!({"Name": "x", "Description": "d".repeat(257)}),
            "description longer than 256",
        ),
        ("/v1/namespace", json!({"Name": 5}), "Name"),
    ];
    for (path, body, want) in cases {
        let r = http.post(&agent.url(path), &body);
        assert_eq!(r.status, 400, "{path} {body}: {}", r.body);
        assert!(r.body.contains(want), "{path} {body}: {}", r.body);
    }
    let missing = http.get(&agent.url("/v1/namespace/nope"));
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body, "Namespace not found");

    // List with a prefix, and a blocking list that wakes when a namespace is written.
    http.post(&agent.url("/v1/namespace"), &json!({"Name": "team-b"}));
    let teams = http.get(&agent.url("/v1/namespaces?prefix=team"));
    assert_eq!(names(&teams.json()), ["team-a", "team-b"]);
    let index = teams.index();
    let url = agent.url(&format!("/v1/namespaces?index={index}&wait=20s"));
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        (Http::default().get(&url), started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    http.post(&agent.url("/v1/namespace"), &json!({"Name": "late"}));
    let (woken, took) = waiter.join().expect("waiter");
    assert!(took < Duration::from_secs(10), "blocked {took:?}");
    assert!(woken.index() > index);
    assert!(names(&woken.json()).contains(&"late".to_string()));

    // Jobs: an unknown namespace and a disabled driver are refused with Nomad's messages.
    let mut job = service_job("svc", 1);
    job["Namespace"] = json!("nowhere");
    let r = http.put(&agent.url("/v1/jobs"), &json!({"Job": job.clone()}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body,
        "job \"svc\" is in nonexistent namespace \"nowhere\""
    );
    let plan = http.put(&agent.url("/v1/job/svc/plan"), &json!({"Job": job.clone()}));
    assert_eq!(plan.status, 400, "{}", plan.body);
    assert_eq!(
        plan.body,
        "job \"svc\" is in nonexistent namespace \"nowhere\""
    );
    job["Namespace"] = json!("team-a");
    let r = http.put(&agent.url("/v1/jobs"), &json!({"Job": job.clone()}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body,
        "used task driver \"raw_exec\" is not allowed in namespace \"team-a\""
    );
    // `?namespace=` names the namespace of a job that names none.
    let mut in_b = service_job("svc", 1);
    in_b.as_object_mut().expect("job").remove("Namespace");
    let r = http.put(
        &agent.url("/v1/jobs?namespace=team-b"),
        &json!({"Job": in_b}),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // Delete rules: default never; a namespace with a live job not; an empty one yes.
    let r = http.delete(&agent.url("/v1/namespace/default"));
    assert_eq!(r.status, 400);
    assert_eq!(r.body, "can not delete default namespace");
    let r = http.delete(&agent.url("/v1/namespace/team-b"));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body
            .contains("namespace \"team-b\" has non-terminal jobs in regions: [global]"),
        "{}",
        r.body
    );
    let r = http.delete(&agent.url("/v1/namespace/nope"));
    assert_eq!(r.status, 404, "{}", r.body);
    let r = http.delete(&agent.url("/v1/namespace/late"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.index() > 0);
    assert_eq!(http.get(&agent.url("/v1/namespace/late")).status, 404);

    // Everything survives a restart.
    agent.restart();
    let after = http.get(&agent.url("/v1/namespaces")).json();
    assert_eq!(names(&after), ["default", "team-a", "team-b"]);
    let ns = http.get(&agent.url("/v1/namespace/team-a")).json();
    assert_eq!(ns["CreateIndex"], first_index);
    assert_eq!(ns["Description"], "Team A");
    let job = http.get(&agent.url("/v1/job/svc?namespace=team-b"));
    assert_eq!(job.status, 200, "{}", job.body);
}
