//! End-to-end tests of garbage collection: the server's periodic GC under lowered thresholds,
//! `PUT /v1/system/gc` ignoring them, and the client's allocation GC endpoints.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// A batch job whose one task exits at once.
fn quick_batch(id: &str) -> Value {
    json!({
        "ID": id,
        "Name": id,
        "Type": "batch",
        "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "g",
            "Count": 1,
            "Tasks": [{
                "Name": "t",
                "Driver": "raw_exec",
                "Config": {"command": "/bin/true"},
                "Resources": {"CPU": 100, "MemoryMB": 64},
            }],
        }],
    })
}

/// Runs the batch job and waits until it is dead with its allocation complete; returns the
/// allocation's ID.
fn run_to_death(http: &Http, agent: &Agent, id: &str) -> String {
    let r = http.put(&agent.url("/v1/jobs"), &json!({"Job": quick_batch(id)}));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(Duration::from_secs(60), "batch job dead", || {
        let job = http.get(&agent.url(&format!("/v1/job/{id}"))).json();
        let allocs = http
            .get(&agent.url(&format!("/v1/job/{id}/allocations")))
            .json();
        let alloc = allocs.as_array()?.first()?.clone();
        (job["Status"] == "dead" && alloc["ClientStatus"] == "complete")
            .then(|| alloc["ID"].as_str().map(str::to_string))
            .flatten()
    })
}

/// A dev agent with `server_hcl` merged in from a second config file.
fn dev_with(dirs: &mut DirGuard, server_hcl: &str) -> (Agent, TempDir) {
    let extra = TempDir::new("gc-config");
    let path = extra.path().join("gc.hcl");
    std::fs::write(&path, format!("server {{\n{server_hcl}\n}}\n")).expect("write gc config");
    let mut opts = AgentOpts::dev();
    opts.extra_args = vec!["-config".into(), path.display().to_string()];
    (dirs.start(opts), extra)
}

#[test]
fn periodic_gc_removes_a_dead_batch_job_after_its_threshold() {
    let mut dirs = DirGuard::default();
    let http = Http::default();
    let (agent, _cfg) = dev_with(
        &mut dirs,
        "job_gc_interval = \"1s\"\njob_gc_threshold = \"3s\"\neval_gc_threshold = \"3s\"\nbatch_eval_gc_threshold = \"3s\"",
    );
    let alloc = run_to_death(&http, &agent, "short-lived");
    let evals = http
        .get(&agent.url("/v1/job/short-lived/evaluations"))
        .json();
    let eval_id = evals[0]["ID"].as_str().unwrap().to_string();
    // Still there right after it died: the threshold has not passed.
    assert_eq!(http.get(&agent.url("/v1/job/short-lived")).status, 200);
    wait_for(Duration::from_secs(30), "job collected", || {
        (http.get(&agent.url("/v1/job/short-lived")).status == 404).then_some(())
    });
    assert_eq!(
        http.get(&agent.url(&format!("/v1/allocation/{alloc}")))
            .status,
        404
    );
    assert_eq!(
        http.get(&agent.url(&format!("/v1/evaluation/{eval_id}")))
            .status,
        404
    );
}

#[test]
fn system_gc_forces_collection_and_client_gc_frees_alloc_dirs() {
    let mut dirs = DirGuard::default();
    let http = Http::default();
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=keepalive".into()]);
    // Nomad's default thresholds: nothing young is collected by the periodic GC.
    let (agent, _cfg) = dev_with(&mut dirs, "job_gc_interval = \"1s\"");
    let alloc = run_to_death(&http, &agent, "done");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(http.get(&agent.url("/v1/job/done")).status, 200);

    // The client frees the dead allocation's directory on request; a running one is refused.
    let running = run_job_and_wait(&http, &agent.url(""), &service_job("keepalive", 1));
    let r = http.put(
        &agent.url(&format!("/v1/client/allocation/{running}/gc")),
        &json!({}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(alloc_dir(&agent, &running).exists());
    let dir = alloc_dir(&agent, &alloc);
    assert!(dir.exists(), "{dir:?}");
    let r = http.get(&agent.url(&format!("/v1/client/allocation/{alloc}/gc")));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!dir.exists(), "alloc dir still there: {dir:?}");
    let r = http.put(
        &agent.url("/v1/client/allocation/00000000-0000-0000-0000-000000000000/gc"),
        &json!({}),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        http.put(&agent.url("/v1/client/gc"), &json!({})).status,
        200
    );
    assert!(alloc_dir(&agent, &running).exists(), "running alloc kept");

    // Forced server GC ignores the thresholds; the running service job stays.
    let r = http.put(&agent.url("/v1/system/gc"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(http.get(&agent.url("/v1/job/done")).status, 404);
    assert_eq!(
        http.get(&agent.url(&format!("/v1/allocation/{alloc}")))
            .status,
        404
    );
    assert_eq!(http.get(&agent.url("/v1/job/keepalive")).status, 200);
    assert_eq!(
        http.get(&agent.url(&format!("/v1/allocation/{running}")))
            .status,
        200
    );
    let r = http.put(&agent.url("/v1/system/reconcile/summaries"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
}
