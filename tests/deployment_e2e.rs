//! End-to-end tests of deployments: a real dev agent runs raw_exec `sleep` tasks and the
//! tests drive rolling updates, canaries, auto-revert, pause/resume and manual health over
//! the HTTP API, watching allocation by allocation.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const MS: i64 = 1_000_000;
const SEC: i64 = 1_000_000_000;
const LONG: Duration = Duration::from_secs(60);

/// A service job `web` with `count` sleeping tasks; `tag` goes into the task's environment
/// so that a new tag is a destructive update.
fn job(count: i64, tag: &str, update: Value) -> Value {
    json!({
        "ID": "web",
        "Name": "web",
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "web",
            "Count": count,
            "Update": update,
            "Tasks": [{
                "Name": "server",
                "Driver": "raw_exec",
                "Config": {"command": "/bin/sleep", "args": ["1000"]},
                "Env": {"TAG": tag},
                "Resources": {"CPU": 20, "MemoryMB": 16},
                "KillTimeout": SEC,
            }],
        }],
    })
}

fn rolling(extra: Value) -> Value {
    let mut u = json!({
        "MaxParallel": 1,
        "HealthCheck": "task_states",
        "MinHealthyTime": 400 * MS,
        "HealthyDeadline": 20 * SEC,
        "ProgressDeadline": 40 * SEC,
    });
    if let (Some(u), Some(extra)) = (u.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            u.insert(k.clone(), v.clone());
        }
    }
    u
}

struct Cluster {
    agent: Agent,
    http: Http,
}

impl Cluster {
    fn start() -> Cluster {
        Cluster {
            agent: Agent::start(AgentOpts::dev()),
            http: Http::default(),
        }
    }

    fn get(&self, path: &str) -> Value {
        let r = self.http.get(&self.agent.url(path));
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        r.json()
    }

    fn post(&self, path: &str, body: Value) -> Resp {
        self.http.post(&self.agent.url(path), &body)
    }

    fn register(&self, job: Value) {
        let r = self
            .http
            .put(&self.agent.url("/v1/jobs"), &json!({ "Job": job }));
        assert_eq!(r.status, 200, "register: {}", r.body);
    }

    fn allocs(&self) -> Vec<Value> {
        self.get("/v1/job/web/allocations")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The latest deployment, once it is for `version`.
    fn deployment_of(&self, version: i64) -> Option<Value> {
        let d = self.get("/v1/job/web/deployment");
        (d["JobVersion"] == version).then_some(d)
    }

    /// Waits for the deployment of `version` (not necessarily the latest: an auto-revert
    /// follows a failure at once) to reach `status`.
    fn wait_deployment(&self, version: i64, status: &str) -> Value {
        wait_for(LONG, &format!("deployment of v{version} {status}"), || {
            self.get("/v1/job/web/deployments")
                .as_array()?
                .iter()
                .find(|d| d["JobVersion"] == version && d["Status"] == status)
                .cloned()
        })
    }

    /// Registers version 0 and waits for its deployment to succeed.
    fn deploy_first(&self, count: i64, update: Value) -> Value {
        self.register(job(count, "v0", update));
        self.wait_deployment(0, "successful")
    }

    fn version_stable(&self, version: i64) -> bool {
        self.get("/v1/job/web/versions")["Versions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v["Version"] == version && v["Stable"] == true)
    }
}

fn tag(a: &Value) -> String {
    a["JobVersion"].to_string()
}

fn healthy(a: &Value) -> bool {
    a["DeploymentStatus"]["Healthy"] == true
}

fn live(a: &Value) -> bool {
    a["DesiredStatus"] == "run"
}

#[test]
fn a_rolling_update_replaces_one_allocation_at_a_time_and_marks_the_version_stable() {
    let c = Cluster::start();
    let first = c.deploy_first(4, rolling(json!({})));
    assert_eq!(
        first["StatusDescription"],
        "Deployment completed successfully"
    );
    assert!(
        c.version_stable(0),
        "a successful deployment marks v0 stable"
    );

    c.register(job(4, "v1", rolling(json!({}))));
    let started = Instant::now();
    let mut max_unready_new = 0;
    let done = loop {
        assert!(started.elapsed() < LONG, "rollout did not finish");
        let allocs = c.allocs();
        let old_live = allocs.iter().filter(|a| tag(a) == "0" && live(a)).count();
        let new_healthy = allocs
            .iter()
            .filter(|a| tag(a) == "1" && live(a) && healthy(a))
            .count();
        let new_unready = allocs
            .iter()
            .filter(|a| tag(a) == "1" && live(a) && !healthy(a))
            .count();
        max_unready_new = max_unready_new.max(new_unready);
        assert!(
            4 - old_live <= new_healthy + 1,
            "more than one old allocation stopped before its replacement was healthy: \
             {old_live} old running, {new_healthy} new healthy"
        );
        if let Some(d) = c.deployment_of(1).filter(|d| d["Status"] == "successful") {
            break d;
        }
        std::thread::sleep(Duration::from_millis(40));
    };
    assert_eq!(
        max_unready_new, 1,
        "MaxParallel 1 keeps one new allocation in flight"
    );
    let g = &done["TaskGroups"]["web"];
    assert_eq!(g["DesiredTotal"], 4);
    assert_eq!(g["PlacedAllocs"], 4);
    assert_eq!(g["HealthyAllocs"], 4);
    assert_eq!(g["UnhealthyAllocs"], 0);
    assert_ne!(g["RequireProgressBy"], "0001-01-01T00:00:00Z");
    assert!(c.version_stable(1));
    let live_now: Vec<Value> = c.allocs().into_iter().filter(live).collect();
    assert_eq!(live_now.len(), 4);
    assert!(live_now.iter().all(|a| tag(a) == "1"));

    // The deployment endpoints agree with what the job reports.
    let id = done["ID"].as_str().unwrap();
    assert_eq!(c.get(&format!("/v1/deployment/{id}"))["ID"], done["ID"]);
    let of_deployment = c.get(&format!("/v1/deployment/allocations/{id}"));
    let mut ids: Vec<&str> = of_deployment
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["ID"].as_str())
        .collect();
    let mut live_ids: Vec<&str> = live_now.iter().filter_map(|a| a["ID"].as_str()).collect();
    ids.sort();
    live_ids.sort();
    assert_eq!(
        ids, live_ids,
        "the deployment's allocations are the live ones"
    );
    let listed = c.get("/v1/deployments");
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    let by_prefix = c.get(&format!("/v1/deployments?prefix={}", &id[..6]));
    assert_eq!(by_prefix.as_array().map(Vec::len), Some(1));
    let of_job = c.get("/v1/job/web/deployments");
    assert_eq!(of_job[0]["ID"], done["ID"], "newest first");
    let r = c.http.get(&c.agent.url("/v1/deployment/no-such-id"));
    assert_eq!(r.status, 404);
    let r = c.post(&format!("/v1/deployment/fail/{id}"), json!({}));
    assert_eq!(r.status, 500);
    assert!(
        r.body.contains("can't fail terminal deployment"),
        "{}",
        r.body
    );
    // A blocking read wakes when the deployment changes, not before.
    let index = c
        .http
        .get(&c.agent.url(&format!("/v1/deployment/{id}")))
        .index();
    let t0 = Instant::now();
    let r = c.http.get(
        &c.agent
            .url(&format!("/v1/deployment/{id}?index={index}&wait=300ms")),
    );
    assert_eq!(r.status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(250));
}

#[test]
fn a_canary_waits_beside_the_old_version_until_promoted_and_auto_promote_needs_nobody() {
    let c = Cluster::start();
    c.deploy_first(4, rolling(json!({"Canary": 1})));

    c.register(job(4, "v1", rolling(json!({"Canary": 1}))));
    let d = wait_for(LONG, "healthy canary", || {
        c.deployment_of(1)
            .filter(|d| d["TaskGroups"]["web"]["HealthyAllocs"] == 1)
    });
    let g = &d["TaskGroups"]["web"];
    assert_eq!(g["DesiredCanaries"], 1);
    assert_eq!(g["PlacedCanaries"].as_array().map(Vec::len), Some(1));
    assert_eq!(g["Promoted"], false);
    assert_eq!(
        d["StatusDescription"],
        "Deployment is running but requires manual promotion"
    );
    // Nothing moves until promotion: the 4 old ones keep running beside the canary.
    std::thread::sleep(Duration::from_millis(1500));
    let allocs = c.allocs();
    assert_eq!(
        allocs.iter().filter(|a| tag(a) == "0" && live(a)).count(),
        4
    );
    let canaries: Vec<&Value> = allocs.iter().filter(|a| tag(a) == "1" && live(a)).collect();
    assert_eq!(canaries.len(), 1);
    assert_eq!(canaries[0]["DeploymentStatus"]["Canary"], true);

    let id = d["ID"].as_str().unwrap().to_string();
    let r = c.post(&format!("/v1/deployment/promote/{id}"), json!({}));
    assert_eq!(r.status, 400, "neither All nor Groups: {}", r.body);
    let r = c.post(
        &format!("/v1/deployment/promote/{id}"),
        json!({"DeploymentID": id, "All": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let resp = r.json();
    assert!(resp["EvalID"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(resp["DeploymentModifyIndex"].as_u64().unwrap_or(0) > 0);
    let done = c.wait_deployment(1, "successful");
    assert_eq!(done["TaskGroups"]["web"]["Promoted"], true);
    let live_now: Vec<Value> = c.allocs().into_iter().filter(live).collect();
    assert_eq!(live_now.len(), 4);
    assert!(live_now.iter().all(|a| tag(a) == "1"));

    // AutoPromote: the same rollout finishes with nobody promoting.
    c.register(job(
        4,
        "v2",
        rolling(json!({"Canary": 1, "AutoPromote": true})),
    ));
    let auto = c.wait_deployment(2, "successful");
    assert_eq!(auto["TaskGroups"]["web"]["Promoted"], true);
    assert_eq!(auto["TaskGroups"]["web"]["AutoPromote"], true);
}

#[test]
fn a_version_that_never_gets_healthy_fails_at_the_healthy_deadline_and_reverts() {
    let c = Cluster::start();
    let update = rolling(json!({"AutoRevert": true, "HealthyDeadline": 2 * SEC}));
    c.deploy_first(2, update.clone());

    // v1's task exits at once and is restarted over and over: never healthy.
    let mut bad = job(2, "v1", update);
    bad["TaskGroups"][0]["Tasks"][0]["Config"] =
        json!({"command": "/bin/sh", "args": ["-c", "exit 1"]});
    bad["TaskGroups"][0]["RestartPolicy"] =
        json!({"Attempts": 100, "Interval": 600 * SEC, "Delay": 200 * MS, "Mode": "delay"});
    bad["TaskGroups"][0]["ReschedulePolicy"] = json!({"Attempts": 0, "Unlimited": false});
    let t0 = Instant::now();
    c.register(bad);
    let failed = c.wait_deployment(1, "failed");
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "failed before the healthy deadline"
    );
    assert_eq!(
        failed["StatusDescription"],
        "Failed due to unhealthy allocations - rolling back to job version 0"
    );
    assert_eq!(failed["TaskGroups"]["web"]["UnhealthyAllocs"], 1);

    // The revert is a new version (2) with version 0's spec, rolled out and stable.
    let reverted = c.wait_deployment(2, "successful");
    assert_eq!(reverted["JobVersion"], 2);
    let job_now = c.get("/v1/job/web");
    assert_eq!(job_now["Version"], 2);
    assert_eq!(job_now["TaskGroups"][0]["Tasks"][0]["Env"]["TAG"], "v0");
    assert!(c.version_stable(2));
    let live_now: Vec<Value> = c.allocs().into_iter().filter(live).collect();
    assert_eq!(live_now.len(), 2);
    assert!(live_now.iter().all(|a| tag(a) == "2"));
}

#[test]
fn pause_holds_the_rollout_resume_continues_and_manual_health_drives_it() {
    let c = Cluster::start();
    let manual = rolling(json!({"HealthCheck": "manual"}));
    c.register(job(3, "v0", manual.clone()));
    let d0 = wait_for(LONG, "v0 deployment", || c.deployment_of(0));
    let id0 = d0["ID"].as_str().unwrap().to_string();
    let running = wait_for(LONG, "3 running allocs", || {
        let a: Vec<Value> = c
            .allocs()
            .into_iter()
            .filter(|a| a["ClientStatus"] == "running")
            .collect();
        (a.len() == 3).then_some(a)
    });
    // Manual health: nothing decides it but the operator.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(c.deployment_of(0).unwrap()["Status"], "running");
    let ids: Vec<Value> = running.iter().map(|a| a["ID"].clone()).collect();
    let path = format!("/v1/deployment/allocation-health/{id0}");
    let r = c.post(&path, json!({"HealthyAllocationIDs": []}));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = c.post(
        &path,
        json!({"DeploymentID": "other", "HealthyAllocationIDs": ids}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = c.post(
        &path,
        json!({"DeploymentID": id0, "HealthyAllocationIDs": ids}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    c.wait_deployment(0, "successful");

    c.register(job(3, "v1", manual));
    let first_new = wait_for(LONG, "first v1 alloc", || {
        c.allocs().into_iter().find(|a| tag(a) == "1" && live(a))
    });
    let d1 = c.deployment_of(1).expect("v1 deployment");
    let id1 = d1["ID"].as_str().unwrap().to_string();

    let r = c.post(
        &format!("/v1/deployment/pause/{id1}"),
        json!({"DeploymentID": id1, "Pause": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["EvalID"], "", "pausing creates no evaluation");
    let paused = c.deployment_of(1).unwrap();
    assert_eq!(
        paused["Status"],
        "paused",
        "{:#}",
        c.get("/v1/job/web/deployments")
    );
    assert_eq!(paused["StatusDescription"], "Deployment is paused");
    // Scaling is refused while the deployment is active.
    let r = c.post(
        "/v1/job/web/scale",
        json!({"Count": 5, "Target": {"Group": "web"}}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body
            .contains("job scaling blocked due to active deployment")
    );

    let health = format!("/v1/deployment/allocation-health/{id1}");
    let r = c.post(&health, json!({"HealthyAllocationIDs": [first_new["ID"]]}));
    assert_eq!(r.status, 200, "{}", r.body);
    std::thread::sleep(Duration::from_millis(1500));
    let new_live = c
        .allocs()
        .into_iter()
        .filter(|a| tag(a) == "1" && live(a))
        .count();
    assert_eq!(new_live, 1, "paused: no further replacement");

    let r = c.post(
        &format!("/v1/deployment/pause/{id1}"),
        json!({"Pause": false}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["EvalID"].as_str().is_some_and(|e| !e.is_empty()));
    // Each new allocation is marked healthy by hand as it appears.
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < LONG, "manual rollout did not finish");
        if c.deployment_of(1)
            .is_some_and(|d| d["Status"] == "successful")
        {
            break;
        }
        let waiting: Vec<Value> = c
            .allocs()
            .into_iter()
            .filter(|a| tag(a) == "1" && live(a) && !healthy(a))
            .map(|a| a["ID"].clone())
            .collect();
        if !waiting.is_empty() {
            let r = c.post(&health, json!({"HealthyAllocationIDs": waiting}));
            assert!(r.status == 200 || r.body.contains("terminal"), "{}", r.body);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(c.version_stable(1));
}

#[test]
fn a_rollout_continues_after_the_agent_is_killed_mid_way() {
    let mut c = Cluster::start();
    let update = rolling(json!({"MinHealthyTime": SEC}));
    c.deploy_first(3, update.clone());
    c.register(job(3, "v1", update));
    wait_for(LONG, "one v1 allocation healthy", || {
        c.deployment_of(1)
            .filter(|d| d["Status"] == "running" && d["TaskGroups"]["web"]["HealthyAllocs"] == 1)
    });
    c.agent.kill9();
    c.agent.restart();
    let done = c.wait_deployment(1, "successful");
    assert_eq!(done["TaskGroups"]["web"]["HealthyAllocs"], 3);
    let live_now: Vec<Value> = c.allocs().into_iter().filter(live).collect();
    assert_eq!(live_now.len(), 3);
    assert!(live_now.iter().all(|a| tag(a) == "1"));
    assert!(c.version_stable(1));
}

fn yurt(c: &Cluster, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yurt"))
        .args(args)
        .env("NOMAD_ADDR", c.agent.url(""))
        .env_remove("NOMAD_TOKEN")
        .env_remove("NOMAD_NAMESPACE")
        .output()
        .expect("run yurt");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "yurt {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_cli_follows_a_deployment_and_shows_it() {
    let c = Cluster::start();
    let dir = TempDir::new("deploy-cli");
    let file = dir.path().join("web.json");
    let spec = json!({"Job": job(2, "v0", rolling(json!({"Canary": 1})))});
    std::fs::write(&file, serde_json::to_vec(&spec).unwrap()).unwrap();
    let path = file.to_str().unwrap();

    // `job run` follows the deployment to its end.
    let out = yurt(&c, &["job", "run", path]);
    assert!(out.contains("Monitoring deployment"), "{out}");
    assert!(out.contains("successful"), "{out}");
    assert!(
        out.contains("Task Group  Desired  Placed  Healthy  Unhealthy  Progress Deadline"),
        "{out}"
    );
    let first = c.deployment_of(0).expect("v0 deployment");
    let id = first["ID"].as_str().unwrap();

    let out = yurt(&c, &["deployment", "list"]);
    assert!(out.starts_with("ID"), "{out}");
    assert!(
        out.contains(&id[..8]) && out.contains("successful"),
        "{out}"
    );
    let out = yurt(&c, &["deployment", "status", &id[..8]]);
    assert!(out.contains("Deployment completed successfully"), "{out}");
    assert!(out.contains("Deployed"), "{out}");

    // A canary rollout waits for `deployment promote`.
    let spec = json!({"Job": job(2, "v1", rolling(json!({"Canary": 1})))});
    std::fs::write(&file, serde_json::to_vec(&spec).unwrap()).unwrap();
    let out = yurt(&c, &["job", "run", "-detach", path]);
    assert!(out.contains("Evaluation ID"), "{out}");
    let d = wait_for(LONG, "healthy canary", || {
        c.deployment_of(1)
            .filter(|d| d["TaskGroups"]["web"]["HealthyAllocs"] == 1)
    });
    let id = d["ID"].as_str().unwrap();
    let out = yurt(&c, &["deployment", "status", id]);
    assert!(out.contains("Promoted  Desired  Canaries"), "{out}");
    let out = yurt(&c, &["deployment", "promote", "-detach", &id[..8]]);
    assert!(out.contains("Evaluation ID"), "{out}");
    c.wait_deployment(1, "successful");
}
