//! Parent jobs end to end on a dev agent: a parameterized job dispatched (the child runs with
//! the payload in `local/` and the dispatch meta in its environment), and periodic jobs
//! launched on their cron spec and on demand.

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

fn periodic_job(id: &str, spec: &str, overlap: bool, script: &str) -> Value {
    json!({
        "ID": id,
        "Name": id,
        "Type": "batch",
        "Datacenters": ["dc1"],
        "Periodic": {"Enabled": true, "Spec": spec, "SpecType": "cron", "ProhibitOverlap": overlap},
        "TaskGroups": [{
            "Name": "g",
            "Count": 1,
            "Tasks": [{
                "Name": "t",
                "Driver": "raw_exec",
                "Config": {"command": "/bin/sh", "args": ["-c", script]},
                "Resources": {"CPU": 100, "MemoryMB": 64},
            }],
        }],
    })
}

/// IDs of the periodic children of `parent`, sorted.
fn children(http: &Http, agent: &Agent, parent: &str) -> Vec<String> {
    let jobs = http
        .get(&agent.url(&format!("/v1/jobs?prefix={parent}/periodic-")))
        .json();
    let mut ids: Vec<String> = jobs
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|j| j["ID"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

#[test]
fn periodic_jobs_launch_on_schedule_and_on_demand() {
    let agent = Agent::start(AgentOpts::dev());
    let http = Http::default();
    // Nomad's seven-field form: every two seconds.
    let r = http.put(
        &agent.url("/v1/jobs"),
        &json!({"Job": periodic_job("tick", "*/2 * * * * * *", false, "echo tick")}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["EvalID"],
        "",
        "a periodic parent is never placed itself"
    );
    let launched = wait_for(Duration::from_secs(20), "two launches", || {
        let ids = children(&http, &agent, "tick");
        (ids.len() >= 2).then_some(ids)
    });
    let secs: Vec<i64> = launched
        .iter()
        .map(|id| id.rsplit('-').next().unwrap().parse().unwrap())
        .collect();
    assert!(secs.iter().all(|s| s % 2 == 0), "{launched:?}");
    let child = http
        .get(&agent.url(&format!("/v1/job/{}", launched[0])))
        .json();
    assert_eq!(child["ParentID"], "tick");
    assert_eq!(child["Periodic"], Value::Null);
    wait_for(Duration::from_secs(20), "a child's task ran", || {
        let allocs = http
            .get(&agent.url(&format!("/v1/job/{}/allocations", launched[0])))
            .json();
        (allocs.as_array()?.first()?["ClientStatus"] == "complete").then_some(())
    });
    // The plan of a periodic job names its next launch.
    let plan = http.post(
        &agent.url("/v1/job/tick/plan"),
        &json!({"Job": periodic_job("tick", "*/2 * * * * * *", false, "echo tick")}),
    );
    assert_ne!(
        plan.json()["NextPeriodicLaunch"],
        "0001-01-01T00:00:00Z",
        "{}",
        plan.body
    );

    // Stopping the parent stops the launches.
    assert_eq!(http.delete(&agent.url("/v1/job/tick")).status, 200);
    std::thread::sleep(Duration::from_millis(500));
    let before = children(&http, &agent, "tick").len();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(children(&http, &agent, "tick").len(), before);

    // A daily job launches on demand only.
    let r = http.put(
        &agent.url("/v1/jobs"),
        &json!({"Job": periodic_job("daily", "0 3 * * *", true, "sleep 30")}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(children(&http, &agent, "daily").is_empty());
    let r = http.post(&agent.url("/v1/job/daily/periodic/force"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        !r.json()["EvalID"].as_str().unwrap().is_empty(),
        "{}",
        r.body
    );
    assert_eq!(children(&http, &agent, "daily").len(), 1);
    // Forcing ignores prohibit_overlap (the first child still sleeps).
    let r = http.post(&agent.url("/v1/job/daily/periodic/force"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(children(&http, &agent, "daily").len(), 2);

    // Refusals.
    let r = http.post(&agent.url("/v1/job/proc-none/periodic/force"), &json!({}));
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "job \"proc-none\" not found")
    );
    http.put(
        &agent.url("/v1/jobs"),
        &json!({"Job": service_job("plain", 1)}),
    );
    let r = http.post(&agent.url("/v1/job/plain/periodic/force"), &json!({}));
    // Nomad answers 500 here; the caller's mistake is a 400.
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "can't force launch non-periodic job")
    );
    let r = http.put(
        &agent.url("/v1/jobs"),
        &json!({"Job": periodic_job("bad", "61 * * * *", false, "true")}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("Periodic: Invalid cron spec"), "{}", r.body);
}

#[test]
fn prohibit_overlap_skips_launches_while_a_child_runs() {
    let agent = Agent::start(AgentOpts::dev());
    let http = Http::default();
    let r = http.put(
        &agent.url("/v1/jobs"),
        &json!({"Job": periodic_job("slow", "* * * * * * *", true, "sleep 30")}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(Duration::from_secs(20), "first launch", || {
        (!children(&http, &agent, "slow").is_empty()).then_some(())
    });
    // Every second is a launch time, but the first child is still running.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(children(&http, &agent, "slow").len(), 1);
}

#[test]
fn one_missed_periodic_launch_is_caught_up_after_a_restart() {
    let mut agent = Agent::start(AgentOpts::dev());
    let http = Http::default();
    let r = http.put(
        &agent.url("/v1/jobs"),
        &json!({"Job": periodic_job("catch", "*/5 * * * * * *", false, "true")}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(Duration::from_secs(15), "a first launch", || {
        (!children(&http, &agent, "catch").is_empty()).then_some(())
    });
    let unix = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    agent.kill9();
    // At least two launch times pass while the server is down.
    std::thread::sleep(Duration::from_secs(11));
    let up = unix();
    agent.restart();
    // Children registered after the restart for a launch time before it: the catch-up.
    let caught_up = |http: &Http, agent: &Agent| -> Vec<String> {
        children(http, agent, "catch")
            .into_iter()
            .filter(|id| {
                let launch = id.rsplit('-').next().and_then(|s| s.parse::<i64>().ok());
                let job = http.get(&agent.url(&format!("/v1/job/{id}"))).json();
                let submitted = job["SubmitTime"].as_i64().unwrap_or(0) / 1_000_000_000;
                launch.is_some_and(|l| l <= up) && submitted >= up
            })
            .collect()
    };
    let caught = wait_for(Duration::from_secs(10), "the catch-up launch", || {
        let l = caught_up(&http, &agent);
        (!l.is_empty()).then_some(l)
    });
    // Give a second catch-up the chance to appear: it must not.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(caught_up(&http, &agent), caught);
    assert_eq!(caught.len(), 1, "{caught:?}");
}
