//! End to end: the Cluster API of seed 001 on a real agent with a directory of job templates
//! (JSON ones, an HCL one, one not autostart, one that does not parse, one in HCL1):
//! listing shapes against the seed's example, startall, the `waitIndex` long poll, count
//! changes, stop with and without purge, start with and without force after the template
//! changed, templates added while the agent runs, kill -9 and restart, ACLs, and the CLI.

mod common;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// How long a placement or a restart may take on the shared, often heavily loaded machine.
const LIMIT: Duration = Duration::from_secs(120);

/// The seed's example `GET /jobs` entry.
const SEED_EXAMPLE: &str = r#"{ "name": "jobName", "status": "running", "autostart": true, "byCluster": true, "taskGroups": [ { "name": "takGroupName", "count": 0, "summary": { "queued": 0, "complete": 0, "failed": 0, "running": 0, "starting": 0, "lost": 0 } } ], "hclv1": false }"#;

const API_HCL: &str = r#"
variable "count" {
  default = 1
}

job "api" {
  datacenters = ["dc1"]
  group "api" {
    count = var.count
    task "server" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["1000"]
      }
      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
"#;

const BROKEN_HCL: &str = "job \"broken\" {\n  group \"g\" {\n";

const HCL1: &str = r#"
job "legacy" {
  meta {
    "team.name" = "ops"
  }
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
      }
    }
  }
}
"#;

/// A raw_exec sleep job template with `meta` and group `web` of `count`.
fn job_template(id: &str, count: i64, meta: Value) -> String {
    let mut job = service_job(id, count);
    job["Meta"] = meta;
    // Without a deployment: Nomad refuses count changes while one is active, and a default
    // update block would keep one active for MinHealthyTime after every change.
    job["Update"] = json!({"MaxParallel": 0});
    serde_json::to_string_pretty(&json!({ "Job": job })).expect("json")
}

/// A template directory: web (byCluster), manual (not autostart), api (HCL), broken (does
/// not parse) and legacy (HCL1).
fn template_dir() -> TempDir {
    let dir = TempDir::new("cluster-templates");
    let write =
        |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
    write(
        "web.json",
        &job_template("web", 1, json!({"byCluster": "true", "rev": "1"})),
    );
    write(
        "manual.json",
        &job_template("manual", 1, json!({"autostart": "false"})),
    );
    write("api.nomad.hcl", API_HCL);
    write("broken.hcl", BROKEN_HCL);
    write("legacy.hcl", HCL1);
    write("README.md", "not a template");
    dir
}

fn cluster_opts(dir: &Path) -> AgentOpts {
    let mut opts = AgentOpts::dev();
    opts.extra_hcl = format!(
        "cluster_api {{\n  enabled  = true\n  jobs_dir = {:?}\n}}\n",
        dir.display().to_string()
    );
    opts
}

fn list(http: &Http, agent: &Agent) -> Vec<Value> {
    let r = http.get(&agent.url("/jobs"));
    assert_eq!(r.status, 200, "GET /jobs: {}", r.body);
    r.json().as_array().expect("a list").clone()
}

fn entry(http: &Http, agent: &Agent, name: &str) -> Value {
    let r = http.get(&agent.url(&format!("/job/{name}/summary")));
    assert_eq!(r.status, 200, "summary of {name}: {}", r.body);
    r.json()
}

fn group<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["taskGroups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["name"] == name))
        .unwrap_or_else(|| panic!("no group {name} in {view}"))
}

fn post(http: &Http, agent: &Agent, path: &str, body: Value) -> Resp {
    http.post(&agent.url(path), &body)
}

fn counts(http: &Http, agent: &Agent, verb: &str, job: &str, group: &str, count: Value) -> Resp {
    post(
        http,
        agent,
        &format!("/jobs/{verb}"),
        json!({"jobID": job, "taskGroup": group, "count": count}),
    )
}

/// The count of group `web` of job `web` after a count change that must succeed.
fn change(http: &Http, agent: &Agent, verb: &str, count: i64) -> i64 {
    let r = counts(http, agent, verb, "web", "web", json!(count));
    assert_eq!(r.status, 200, "{verb} {count}: {}", r.body);
    let answered = group(&r.json(), "web")["count"].as_i64().expect("count");
    let stored = http.get(&agent.url("/v1/job/web")).json()["TaskGroups"][0]["Count"]
        .as_i64()
        .expect("Count");
    assert_eq!(answered, stored, "{verb} {count}");
    stored
}

/// Same keys, in the same order, with the same JSON types, as the seed's example (and an
/// `error` string only where there is one).
fn assert_seed_shape(view: &Value) {
    fn kind(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
    let seed: Value = serde_json::from_str(SEED_EXAMPLE).expect("seed example");
    let obj = view.as_object().expect("an object");
    let mut keys: Vec<&String> = obj.keys().collect();
    if obj.contains_key("error") {
        assert_eq!(kind(&obj["error"]), "string", "{view}");
        keys.retain(|k| *k != "error");
    }
    let seed_keys: Vec<&String> = seed.as_object().expect("object").keys().collect();
    let mut sorted_keys = keys.clone();
    sorted_keys.sort();
    let mut sorted_seed = seed_keys.clone();
    sorted_seed.sort();
    assert_eq!(sorted_keys, sorted_seed, "{view}");
    for k in &seed_keys {
        assert_eq!(kind(&obj[*k]), kind(&seed[*k]), "{k} in {view}");
    }
    let seed_group = &seed["taskGroups"][0];
    for g in obj["taskGroups"].as_array().expect("taskGroups") {
        for (k, v) in seed_group.as_object().expect("group") {
            assert_eq!(kind(&g[k]), kind(v), "taskGroups[].{k} in {view}");
        }
        assert_eq!(g.as_object().expect("group").len(), 3, "{g}");
        for (k, v) in seed_group["summary"].as_object().expect("summary") {
            assert_eq!(kind(&g["summary"][k]), kind(v), "summary.{k} in {view}");
        }
        assert_eq!(g["summary"].as_object().expect("summary").len(), 6, "{g}");
    }
}

fn running(http: &Http, agent: &Agent, name: &str, n: i64) {
    wait_for(LIMIT, &format!("{name} running {n}"), || {
        let v = entry(http, agent, name);
        (v["status"] == "running" && group(&v, name)["summary"]["running"] == n).then_some(())
    });
}

/// `GET /jobs` with the `waitIndex` header, on a thread; the answer comes on the channel.
fn long_poll(agent: &Agent, index: u64) -> mpsc::Receiver<(u16, Option<u64>, Value, Duration)> {
    let url = agent.url("/jobs?wait=60s");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let started = Instant::now();
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .expect("client");
        let r = client
            .get(url)
            .header("waitIndex", index.to_string())
            .send()
            .expect("long poll");
        let status = r.status().as_u16();
        let next = r
            .headers()
            .get("waitIndex")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = r.json().unwrap_or(Value::Null);
        let _ = tx.send((status, next, body, started.elapsed()));
    });
    rx
}

fn wait_index(r: &Resp) -> u64 {
    r.header("waitIndex")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no waitIndex header: {:?}", r.headers))
}

#[test]
fn listing_startall_long_poll_counts_bad_input_and_stop() {
    let dir = template_dir();
    let agent = Agent::start(cluster_opts(dir.path()));
    let http = Http::default();

    // Every template is listed, by name, stopped, with the seed's shape.
    let jobs = list(&http, &agent);
    let names: Vec<&str> = jobs.iter().filter_map(|j| j["name"].as_str()).collect();
    assert_eq!(names, ["api", "broken", "legacy", "manual", "web"]);
    for j in &jobs {
        assert_seed_shape(j);
        assert_eq!(j["status"], "stopped", "{j}");
    }
    let by_name = |n: &str| {
        jobs.iter()
            .find(|j| j["name"] == n)
            .expect("listed")
            .clone()
    };
    let web = by_name("web");
    assert_eq!(
        web,
        json!({"name": "web", "status": "stopped", "autostart": true, "byCluster": true,
               "taskGroups": [{"name": "web", "count": 1, "summary": {"queued": 0, "complete": 0,
               "failed": 0, "running": 0, "starting": 0, "lost": 0}}], "hclv1": false})
    );
    assert_eq!(by_name("manual")["autostart"], false);
    assert_eq!(by_name("api")["byCluster"], false);
    assert_eq!(group(&by_name("api"), "api")["count"], 1);
    let broken = by_name("broken");
    assert!(
        broken["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{broken}"
    );
    assert_eq!(broken["hclv1"], false);
    assert_eq!(broken["taskGroups"], json!([]));
    let legacy = by_name("legacy");
    assert_eq!(legacy["hclv1"], true, "{legacy}");
    assert!(
        legacy["error"].as_str().is_some_and(|e| e.contains("HCL1")),
        "{legacy}"
    );
    assert_eq!(entry(&http, &agent, "web"), web);
    let r = http.get(&agent.url("/job/nope/summary"));
    assert_eq!(r.status, 404, "{}", r.body);

    // startall starts exactly the autostart templates that parse, and reports the others.
    let r = post(&http, &agent, "/jobs/startall", json!({}));
    assert_eq!(r.status, 400, "{}", r.body);
    let reply = r.json();
    assert_eq!(reply["jobs"], json!(["api", "web"]), "{reply}");
    let failed: Vec<&str> = reply["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(failed, ["broken", "legacy"], "{reply}");
    assert!(
        reply["failures"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("broken")),
        "{reply}"
    );
    assert_eq!(http.get(&agent.url("/v1/job/manual")).status, 404);
    assert_eq!(http.get(&agent.url("/v1/job/web")).status, 200);
    assert_eq!(http.get(&agent.url("/v1/job/api")).status, 200);
    running(&http, &agent, "web", 1);
    running(&http, &agent, "api", 1);
    for j in list(&http, &agent) {
        assert_seed_shape(&j);
    }

    // A long poll returns when a count changes, and not before.
    let settled = wait_for(Duration::from_secs(30), "a settled answer", || {
        let first = http.get(&agent.url("/jobs"));
        std::thread::sleep(Duration::from_millis(500));
        let second = http.get(&agent.url("/jobs"));
        (wait_index(&first) == wait_index(&second)).then_some(second)
    });
    let index = wait_index(&settled);
    let poll = long_poll(&agent, index);
    // Writes that change nothing in the answer (a job that is no template, placed and
    // running) do not wake it.
    let r = http.put(
        &agent.url("/v1/jobs"),
        &json!({"Job": service_job("unrelated", 1)}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(LIMIT, "unrelated running", || {
        let allocs = http.get(&agent.url("/v1/job/unrelated/allocations")).json();
        (allocs[0]["ClientStatus"] == "running").then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        poll.try_recv().is_err(),
        "the long poll answered while its answer did not change"
    );
    assert_eq!(change(&http, &agent, "updatecounts", 1), 2);
    let (status, next, body, took) = poll
        .recv_timeout(Duration::from_secs(30))
        .expect("the long poll answers after a count change");
    assert_eq!(status, 200);
    assert!(next.is_some_and(|n| n > index), "{next:?} after {index}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    let web = body
        .as_array()
        .and_then(|l| l.iter().find(|j| j["name"] == "web"))
        .expect("web listed");
    assert_eq!(group(web, "web")["count"], 2, "{body}");

    // updatecounts up, down, below zero and zero; settaskgroupcount.
    assert_eq!(change(&http, &agent, "updatecounts", -1), 1);
    assert_eq!(change(&http, &agent, "updatecounts", 2), 3);
    assert_eq!(change(&http, &agent, "updatecounts", -10), 0);
    assert_eq!(change(&http, &agent, "updatecounts", 2), 2);
    assert_eq!(change(&http, &agent, "updatecounts", 0), 0);
    assert_eq!(change(&http, &agent, "settaskgroupcount", 3), 3);
    // Each went through the scale path: a version and a scaling event each.
    let job = http.get(&agent.url("/v1/job/web")).json();
    assert_eq!(job["Version"], 7, "{job}");
    let scale = http.get(&agent.url("/v1/job/web/scale")).json();
    let events = scale["TaskGroups"]["web"]["Events"]
        .as_array()
        .expect("scaling events")
        .clone();
    assert_eq!(events.len(), 7, "{scale}");
    assert_eq!(events[0]["Count"], 3);
    assert!(events.iter().all(|e| !e["EvalID"].is_null()), "{scale}");
    running(&http, &agent, "web", 3);

    // Bad input: 404 for unknown templates, 400 naming the field otherwise.
    for path in ["/jobs/start/nope", "/jobs/stop/nope"] {
        let r = post(&http, &agent, path, json!({}));
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    let r = counts(&http, &agent, "updatecounts", "nope", "web", json!(1));
    assert_eq!(r.status, 404, "{}", r.body);
    let r = counts(&http, &agent, "updatecounts", "web", "nope", json!(1));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("taskGroup"), "{}", r.body);
    let r = counts(&http, &agent, "settaskgroupcount", "web", "web", json!(-1));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("count"), "{}", r.body);
    let r = counts(&http, &agent, "settaskgroupcount", "web", "web", json!("3"));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("count"), "{}", r.body);
    let r = post(
        &http,
        &agent,
        "/jobs/updatecounts",
        json!({"jobID": ["web"], "taskGroup": "web", "count": 1}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("jobID"), "{}", r.body);
    let r = http.post_raw(&agent.url("/jobs/updatecounts"), b"{\"jobID\": ".to_vec());
    assert_eq!(r.status, 400, "{}", r.body);
    let r = post(&http, &agent, "/jobs/start/broken", json!({}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("broken"), "{}", r.body);
    // Nothing was half-applied.
    assert_eq!(
        http.get(&agent.url("/v1/job/web")).json()["TaskGroups"][0]["Count"],
        3
    );
    assert_eq!(http.get(&agent.url("/v1/job/broken")).status, 404);

    // Stop without purge keeps the (stopped) job; with purge it is gone.
    let r = post(&http, &agent, "/jobs/stop/web", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(http.get(&agent.url("/v1/job/web")).json()["Stop"], true);
    wait_for(LIMIT, "web dead", || {
        let v = entry(&http, &agent, "web");
        (v["status"] == "dead" && group(&v, "web")["summary"]["running"] == 0).then_some(())
    });
    let r = post(&http, &agent, "/jobs/stop/api?purge=true", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(http.get(&agent.url("/v1/job/api")).status, 404);
    assert_eq!(entry(&http, &agent, "api")["status"], "stopped");

    // stopall stops what is still registered (web, stopped already, is purged with it).
    let r = post(&http, &agent, "/jobs/start/manual", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post(&http, &agent, "/jobs/stopall?purge=true", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["jobs"], json!(["manual", "web"]));
    for j in list(&http, &agent) {
        assert_eq!(j["status"], "stopped", "{j}");
    }
}

#[test]
fn start_with_and_without_force_after_the_template_changed_and_new_templates_appear() {
    let dir = template_dir();
    let agent = Agent::start(cluster_opts(dir.path()));
    let http = Http::default();

    let r = post(&http, &agent, "/jobs/start/web", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["name"], "web");
    assert_eq!(change(&http, &agent, "settaskgroupcount", 3), 3);

    // The template changes: count 2 and a new meta value.
    std::fs::write(
        dir.path().join("web.json"),
        job_template("web", 2, json!({"byCluster": "true", "rev": "2"})),
    )
    .expect("rewrite");
    // Without force the job is refreshed from the template, its live count kept.
    wait_for(
        Duration::from_secs(20),
        "web refreshed from the new template",
        || {
            let r = post(&http, &agent, "/jobs/start/web", json!({}));
            assert_eq!(r.status, 200, "{}", r.body);
            let job = http.get(&agent.url("/v1/job/web")).json();
            (job["Meta"]["rev"] == "2").then_some(())
        },
    );
    let job = http.get(&agent.url("/v1/job/web")).json();
    assert_eq!(job["TaskGroups"][0]["Count"], 3, "{job}");
    // With force the template's count wins.
    let r = post(&http, &agent, "/jobs/start/web?force=true", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(group(&r.json(), "web")["count"], 2);
    assert_eq!(
        http.get(&agent.url("/v1/job/web")).json()["TaskGroups"][0]["Count"],
        2
    );
    // startall refreshes a running job the same way (count kept without force).
    assert_eq!(change(&http, &agent, "settaskgroupcount", 4), 4);
    post(&http, &agent, "/jobs/startall", json!({}));
    assert_eq!(
        http.get(&agent.url("/v1/job/web")).json()["TaskGroups"][0]["Count"],
        4
    );

    // A template added while the agent runs appears (waking a long poll); one removed
    // disappears.
    let settled = wait_for(Duration::from_secs(30), "a settled answer", || {
        let first = http.get(&agent.url("/jobs"));
        std::thread::sleep(Duration::from_millis(500));
        let second = http.get(&agent.url("/jobs"));
        (wait_index(&first) == wait_index(&second)).then_some(wait_index(&second))
    });
    let poll = long_poll(&agent, settled);
    std::fs::write(
        dir.path().join("late.json"),
        job_template("late", 1, json!({})),
    )
    .expect("write late");
    std::fs::remove_file(dir.path().join("manual.json")).expect("remove manual");
    wait_for(Duration::from_secs(20), "late listed, manual gone", || {
        let names: Vec<String> = list(&http, &agent)
            .iter()
            .filter_map(|j| j["name"].as_str().map(str::to_string))
            .collect();
        (names.contains(&"late".to_string()) && !names.contains(&"manual".to_string()))
            .then_some(())
    });
    let (status, next, body, _) = poll
        .recv_timeout(Duration::from_secs(30))
        .expect("the long poll answers when the template set changes");
    assert_eq!(status, 200);
    assert!(
        next.is_some_and(|n| n > settled),
        "{next:?} after {settled}"
    );
    let names: Vec<&str> = body
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|j| j["name"].as_str())
        .collect();
    assert!(
        names.contains(&"late") || !names.contains(&"manual"),
        "{names:?}"
    );
    let late = entry(&http, &agent, "late");
    assert_eq!(late["status"], "stopped");
    assert_seed_shape(&late);

    // The CLI drives the same API.
    let addr = agent.url("");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_yurt"))
            .args(args)
            .env("NOMAD_ADDR", &addr)
            .env_remove("NOMAD_TOKEN")
            .env_remove("NOMAD_NAMESPACE")
            .env_remove("NOMAD_REGION")
            .output()
            .expect("run yurt");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = cli(&["cluster", "start", "late"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"name\": \"late\""), "{out}");
    let (code, out, err) = cli(&["cluster", "scale", "late", "web", "3"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = cli(&["cluster", "scale", "-delta", "late", "web", "-1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        http.get(&agent.url("/v1/job/late")).json()["TaskGroups"][0]["Count"],
        2
    );
    let (code, out, err) = cli(&["cluster", "jobs"]);
    assert_eq!(code, 0, "{out}{err}");
    let late_row = out
        .lines()
        .find(|l| l.starts_with("late "))
        .unwrap_or_else(|| panic!("no late row in\n{out}"));
    assert!(late_row.contains("web="), "{late_row}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("legacy ") && l.contains("HCL1")),
        "{out}"
    );
    let (code, out, err) = cli(&["cluster", "jobs", "-json"]);
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).expect("json");
    assert!(listed.as_array().is_some_and(|l| l.len() == 5), "{listed}");
    let (code, out, err) = cli(&["cluster", "stop", "-purge", "late"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(http.get(&agent.url("/v1/job/late")).status, 404);
    let (code, _, err) = cli(&["cluster", "startall"]);
    assert_eq!(code, 1, "startall with broken templates fails");
    assert!(err.contains("broken"), "{err}");
    let (code, out, err) = cli(&["cluster", "stopall"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Stopped web"), "{out}");
    let (code, _, err) = cli(&["cluster", "start", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");
}

#[test]
fn kill9_and_restart_keep_the_jobs_running_and_the_list_identical() {
    let dir = template_dir();
    let mut agent = Agent::start(cluster_opts(dir.path()));
    let http = Http::default();
    post(&http, &agent, "/jobs/startall", json!({}));
    assert_eq!(change(&http, &agent, "settaskgroupcount", 2), 2);
    running(&http, &agent, "web", 2);
    running(&http, &agent, "api", 1);
    // A settled answer: two reads apart in time agree.
    let before = wait_for(LIMIT, "a settled list", || {
        let first = list(&http, &agent);
        std::thread::sleep(Duration::from_millis(500));
        (list(&http, &agent) == first).then_some(first)
    });
    let allocs = |http: &Http, agent: &Agent| {
        let mut ids: Vec<String> = http
            .get(&agent.url("/v1/allocations"))
            .json()
            .as_array()
            .expect("allocs")
            .iter()
            .filter(|a| a["ClientStatus"] == "running")
            .filter_map(|a| a["ID"].as_str().map(str::to_string))
            .collect();
        ids.sort();
        ids
    };
    let allocs_before = allocs(&http, &agent);
    assert_eq!(allocs_before.len(), 3);

    agent.kill9();
    agent.restart();
    // Until it is the same again (the restarted client reconnects), or a timeout shows how
    // it differs.
    let deadline = Instant::now() + LIMIT;
    let mut after = list(&http, &agent);
    while after != before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        after = list(&http, &agent);
    }
    assert_eq!(after, before, "the list after kill -9 and restart");
    // The same allocations still run: nothing was restarted or replaced.
    assert_eq!(allocs(&http, &agent), allocs_before);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(list(&http, &agent), before);
}

/// A tiny client that sends a token.
fn with_token(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, String) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client.request(method, url);
    if let Some(t) = token {
        req = req.header("X-Nomad-Token", t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().expect("request");
    let status = r.status().as_u16();
    (status, r.text().unwrap_or_default())
}

#[test]
fn acls_apply_as_for_the_equivalent_v1_calls() {
    let dir = template_dir();
    let mut opts = cluster_opts(dir.path());
    opts.extra_hcl.push_str("acl {\n  enabled = true\n}\n");
    let agent = Agent::start(opts);
    let (status, body) = with_token(
        "POST",
        &agent.url("/v1/acl/bootstrap"),
        None,
        Some(json!({})),
    );
    assert_eq!(status, 200, "{body}");
    let mgmt: Value = serde_json::from_str(&body).expect("token");
    let mgmt = mgmt["SecretID"].as_str().expect("SecretID").to_string();
    let token_for = |name: &str, rules: &str| {
        let (s, b) = with_token(
            "POST",
            &agent.url(&format!("/v1/acl/policy/{name}")),
            Some(&mgmt),
            Some(json!({"Name": name, "Rules": rules})),
        );
        assert_eq!(s, 200, "{b}");
        let (s, b) = with_token(
            "POST",
            &agent.url("/v1/acl/token"),
            Some(&mgmt),
            Some(json!({"Name": name, "Type": "client", "Policies": [name]})),
        );
        assert_eq!(s, 200, "{b}");
        let v: Value = serde_json::from_str(&b).expect("token");
        v["SecretID"].as_str().expect("SecretID").to_string()
    };
    let reader = token_for(
        "reader",
        r#"namespace "default" { capabilities = ["read-job"] }"#,
    );
    let scaler = token_for(
        "scaler",
        r#"namespace "default" { capabilities = ["read-job", "scale-job"] }"#,
    );
    let submitter = token_for(
        "submitter",
        r#"namespace "default" { capabilities = ["read-job", "submit-job"] }"#,
    );
    let other_ns = token_for("elsewhere", r#"namespace "other" { policy = "write" }"#);
    let count = json!({"jobID": "web", "taskGroup": "web", "count": 2});
    let url = |p: &str| agent.url(p);

    // Reads need read-job in the namespace.
    assert_eq!(with_token("GET", &url("/jobs"), None, None).0, 403);
    assert_eq!(
        with_token("GET", &url("/jobs"), Some(&other_ns), None).0,
        403
    );
    assert_eq!(with_token("GET", &url("/jobs"), Some(&reader), None).0, 200);
    assert_eq!(
        with_token("GET", &url("/job/web/summary"), Some(&reader), None).0,
        200
    );
    assert_eq!(
        with_token("GET", &url("/job/web/summary"), None, None).0,
        403
    );

    // Starting and stopping need submit-job.
    for token in [None, Some(reader.as_str()), Some(scaler.as_str())] {
        for path in [
            "/jobs/start/web",
            "/jobs/startall",
            "/jobs/stop/web",
            "/jobs/stopall",
        ] {
            let (s, b) = with_token("POST", &url(path), token, Some(json!({})));
            assert_eq!(s, 403, "{path}: {b}");
        }
    }
    assert_eq!(
        http_status(with_token(
            "POST",
            &url("/jobs/start/web"),
            Some(&submitter),
            None
        )),
        200
    );

    // Count changes need scale-job (or submit-job).
    let (s, b) = with_token(
        "POST",
        &url("/jobs/updatecounts"),
        Some(&reader),
        Some(count.clone()),
    );
    assert_eq!(s, 403, "{b}");
    let (s, b) = with_token(
        "POST",
        &url("/jobs/settaskgroupcount"),
        Some(&scaler),
        Some(count.clone()),
    );
    assert_eq!(s, 200, "{b}");
    let (s, b) = with_token(
        "POST",
        &url("/jobs/updatecounts"),
        Some(&submitter),
        Some(count),
    );
    assert_eq!(s, 200, "{b}");
    let (s, b) = with_token("GET", &url("/v1/job/web"), Some(&mgmt), None);
    assert_eq!(s, 200, "{b}");
    let job: Value = serde_json::from_str(&b).expect("job");
    assert_eq!(job["TaskGroups"][0]["Count"], 4);
    let (s, b) = with_token(
        "POST",
        &url("/jobs/stopall?purge=true"),
        Some(&submitter),
        None,
    );
    assert_eq!(s, 200, "{b}");
}

fn http_status((status, body): (u16, String)) -> u16 {
    assert!(status < 500, "{body}");
    status
}
