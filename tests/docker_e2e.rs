//! The docker driver end to end: a real `yurt agent` (server + client) driving the local Docker
//! engine, with jobs submitted over HTTP as a user would.
//!
//! These tests FAIL when no engine answers: CI must not pass without exercising docker. Set
//! `YURT_SKIP_DOCKER_TESTS=1` to skip them explicitly. The image comes from
//! `YURT_TEST_DOCKER_IMAGE` (default `yurt-test/busybox:1`, built by `tests/run-all.sh`).
//! Every container a test starts carries a `yurt.e2e=<token>` label and is force-removed when
//! the test ends, pass or fail.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// Bound on any single wait; each test is a handful of them.
const WAIT: Duration = Duration::from_secs(60);
/// The label every test container carries, for cleanup.
const TEST_LABEL: &str = "yurt.e2e";
/// Nomad's alloc label the driver sets on every container.
const ALLOC_LABEL: &str = "com.hashicorp.nomad.alloc_id";
/// An image no registry serves: the pull fails with the engine's own message.
const MISSING_IMAGE: &str = "127.0.0.1:5999/nope:1";

fn skip() -> bool {
    if std::env::var("YURT_SKIP_DOCKER_TESTS").as_deref() == Ok("1") {
        eprintln!("YURT_SKIP_DOCKER_TESTS=1: docker end-to-end test skipped");
        return true;
    }
    false
}

fn image() -> String {
    std::env::var("YURT_TEST_DOCKER_IMAGE").unwrap_or_else(|_| "yurt-test/busybox:1".to_string())
}

/// Runs the docker CLI; returns success and trimmed stdout (stderr on failure).
fn docker(args: &[&str]) -> (bool, String) {
    match Command::new("docker").args(args).output() {
        Ok(o) => {
            let text = if o.status.success() {
                o.stdout
            } else {
                o.stderr
            };
            (
                o.status.success(),
                String::from_utf8_lossy(&text).trim().to_string(),
            )
        }
        Err(e) => (false, format!("running docker: {e}")),
    }
}

/// IDs of the containers (running or not) matching a `docker ps` filter.
fn containers(filter: &str) -> Vec<String> {
    let (ok, out) = docker(&["ps", "-aq", "--no-trunc", "--filter", filter]);
    assert!(ok, "docker ps failed: {out}");
    out.lines().map(str::to_string).collect()
}

/// A `yurt agent` with docker enabled, its HTTP client, and the cleanup of its containers.
struct DockerAgent {
    agent: Agent,
    http: Http,
    /// Unique per test; put on every container as the `yurt.e2e` label.
    token: String,
}

/// Plugin config for tests: never garbage-collect the shared test image.
fn docker_plugin(extra: &str) -> String {
    format!(
        "plugin \"docker\" {{\n  config {{\n    gc {{\n      image = false\n    }}\n{extra}  }}\n}}\n"
    )
}

impl DockerAgent {
    /// Starts an agent, or returns None when docker tests are explicitly skipped. Panics
    /// when no engine answers or the agent does not fingerprint docker as healthy.
    fn start() -> Option<DockerAgent> {
        Self::start_with(&docker_plugin(""))
    }

    fn start_with(plugin_hcl: &str) -> Option<DockerAgent> {
        if skip() {
            return None;
        }
        let (ok, out) = docker(&["info", "--format", "{{.ServerVersion}}"]);
        assert!(
            ok,
            "no Docker engine answers ({out}); start dockerd (tests/run-all.sh --setup-only \
             does) or set YURT_SKIP_DOCKER_TESTS=1 to skip explicitly"
        );
        let mut opts = AgentOpts::dev();
        opts.extra_hcl = plugin_hcl.to_string();
        let a = DockerAgent {
            agent: Agent::start(opts),
            http: Http::default(),
            token: uuid::Uuid::new_v4().simple().to_string(),
        };
        Some(a)
    }

    /// The node once the client registered it with a healthy docker driver.
    fn wait_docker_node(&self) -> Value {
        wait_for(WAIT, "a node with a healthy docker driver", || {
            let nodes = self.http.get(&self.agent.url("/v1/nodes")).json();
            let id = nodes.as_array()?.first()?["ID"].as_str()?.to_string();
            let node = self
                .http
                .get(&self.agent.url(&format!("/v1/node/{id}")))
                .json();
            (node["Drivers"]["docker"]["Healthy"] == true && node["Status"] == "ready")
                .then_some(node)
        })
    }

    /// Registers `job`, returning the response.
    fn register(&self, job: Value) -> Value {
        let r = self
            .http
            .put(&self.agent.url("/v1/jobs"), &json!({ "Job": job }));
        assert_eq!(r.status, 200, "register: {}", r.body);
        r.json()
    }

    /// The single allocation of `job` once placed.
    fn alloc_id(&self, job: &str) -> String {
        wait_for(WAIT, &format!("an allocation of {job}"), || {
            let r = self
                .http
                .get(&self.agent.url(&format!("/v1/job/{job}/allocations")));
            let list = r.json();
            Some(list.as_array()?.first()?["ID"].as_str()?.to_string())
        })
    }

    fn alloc(&self, id: &str) -> Value {
        let r = self
            .http
            .get(&self.agent.url(&format!("/v1/allocation/{id}")));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    /// Polls the allocation until `f` accepts it; `what` names the condition for the panic,
    /// which also shows the task states and the agent's log tail.
    fn wait_alloc(&self, id: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let a = self.alloc(id);
            if f(&a) {
                return a;
            }
            if Instant::now() > deadline {
                let log = self.agent.log();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                panic!(
                    "timed out waiting for {what}; alloc {}; task states {}\nagent log tail:\n{}",
                    a["ClientStatus"],
                    a["TaskStates"],
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_task_state(&self, id: &str, task: &str, state: &str) -> Value {
        self.wait_alloc(id, &format!("task {task} {state}"), |a| {
            a["TaskStates"][task]["State"] == state
        })
    }

    fn wait_client_status(&self, id: &str, status: &str) -> Value {
        self.wait_alloc(id, &format!("client status {status}"), |a| {
            a["ClientStatus"] == status
        })
    }

    /// `<data_dir>/data/alloc/<alloc_id>`.
    fn alloc_dir(&self, alloc_id: &str) -> PathBuf {
        self.agent
            .data_dir
            .path()
            .join("data")
            .join("alloc")
            .join(alloc_id)
    }

    fn log_file(&self, alloc_id: &str, task: &str, stream: &str) -> PathBuf {
        self.alloc_dir(alloc_id)
            .join("alloc")
            .join("logs")
            .join(format!("{task}.{stream}.0"))
    }

    /// Containers of this test's allocation `alloc_id`.
    fn alloc_containers(&self, alloc_id: &str) -> Vec<String> {
        containers(&format!("label={ALLOC_LABEL}={alloc_id}"))
    }

    /// A task config running `script` in the test image, labelled for cleanup.
    fn config(&self, script: &str) -> Value {
        json!({
            "image": image(),
            "command": "sh",
            "args": ["-c", script],
            "labels": { TEST_LABEL: self.token },
        })
    }
}

impl Drop for DockerAgent {
    fn drop(&mut self) {
        // The agent first, so it cannot restart a task whose container is being removed.
        self.agent.kill9();
        let ids = containers(&format!("label={TEST_LABEL}={}", self.token));
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            let _ = docker(&args);
        }
    }
}

/// A one-group job running `task` (a full task JSON) with the group settings in `group`.
fn job(id: &str, kind: &str, task: Value, group: Value) -> Value {
    let mut g = json!({
        "Name": "g",
        "Count": 1,
        "RestartPolicy": {"Attempts": 0, "Interval": 3_600_000_000_000_i64, "Delay": 1_000_000_000_i64, "Mode": "fail"},
        "Tasks": [task],
    });
    if let (Some(g), Some(extra)) = (g.as_object_mut(), group.as_object()) {
        for (k, v) in extra {
            g.insert(k.clone(), v.clone());
        }
    }
    json!({
        "ID": id,
        "Name": id,
        "Type": kind,
        "Datacenters": ["dc1"],
        "TaskGroups": [g],
    })
}

fn docker_task(name: &str, config: Value) -> Value {
    json!({
        "Name": name,
        "Driver": "docker",
        "Config": config,
        "Resources": {"CPU": 100, "MemoryMB": 64},
    })
}

fn events(alloc: &Value, task: &str) -> Vec<Value> {
    alloc["TaskStates"][task]["Events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn event_types(alloc: &Value, task: &str) -> Vec<String> {
    events(alloc, task)
        .iter()
        .map(|e| e["Type"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn first_event(alloc: &Value, task: &str, kind: &str) -> Value {
    events(alloc, task)
        .into_iter()
        .find(|e| e["Type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {:?}", event_types(alloc, task)))
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn docker_driver_fingerprinted_on_the_node() {
    let Some(t) = DockerAgent::start() else {
        return;
    };
    let node = t.wait_docker_node();
    let attrs = &node["Attributes"];
    assert_eq!(attrs["driver.docker"], "1", "{attrs}");
    let (_, version) = docker(&["version", "--format", "{{.Server.Version}}"]);
    assert_eq!(attrs["driver.docker.version"], version.as_str());
    assert!(
        attrs["driver.docker.runtimes"]
            .as_str()
            .is_some_and(|r| r.contains("runc")),
        "{attrs}"
    );
    let info = &node["Drivers"]["docker"];
    assert_eq!(info["Detected"], true);
    assert_eq!(info["HealthDescription"], "Healthy");
    assert_eq!(info["Attributes"]["driver.docker"], "true");
}

#[test]
fn docker_task_output_env_and_shared_dirs() {
    let Some(t) = DockerAgent::start() else {
        return;
    };
    let script = "echo hello-from-docker; env | sort; echo err-line >&2; \
                  echo from-task > /alloc/data/from-task; echo local > /local/l; \
                  echo secret > /secrets/s; test -f /alloc/data/from-host && echo host-file-seen; \
                  cat /etc/hostname >/dev/null; echo done";
    let job_id = format!("out-{}", &t.token[..8]);
    t.register(job(
        &job_id,
        "batch",
        docker_task("app", t.config(script)),
        json!({}),
    ));
    let alloc_id = t.alloc_id(&job_id);
    let a = t.wait_client_status(&alloc_id, "complete");
    let types = event_types(&a, "app");
    assert!(
        types.starts_with(&["Received".into(), "Task Setup".into(), "Started".into()]),
        "{types:?}"
    );
    let term = first_event(&a, "app", "Terminated");
    assert_eq!(term["ExitCode"], 0, "{term}");
    assert_eq!(term["Details"]["oom_killed"], "false");

    let out = read(&t.log_file(&alloc_id, "app", "stdout"));
    assert!(out.starts_with("hello-from-docker\n"), "{out}");
    assert!(out.ends_with("done\n"), "{out}");
    for line in [
        format!("NOMAD_ALLOC_ID={alloc_id}"),
        "NOMAD_ALLOC_DIR=/alloc".to_string(),
        "NOMAD_TASK_DIR=/local".to_string(),
        "NOMAD_SECRETS_DIR=/secrets".to_string(),
        "NOMAD_TASK_NAME=app".to_string(),
        "NOMAD_GROUP_NAME=g".to_string(),
        format!("NOMAD_JOB_ID={job_id}"),
        "NOMAD_MEMORY_LIMIT=64".to_string(),
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line} in\n{out}");
    }
    // The agent's own environment is not inherited by a docker task.
    assert!(!out.contains("CARGO_"), "{out}");
    assert_eq!(read(&t.log_file(&alloc_id, "app", "stderr")), "err-line\n");
    let dir = t.alloc_dir(&alloc_id);
    assert_eq!(read(&dir.join("alloc/data/from-task")), "from-task\n");
    assert_eq!(read(&dir.join("app/local/l")), "local\n");
    assert_eq!(read(&dir.join("app/secrets/s")), "secret\n");
    // The container is removed once the task is done with.
    wait_for(WAIT, "the finished task's container removed", || {
        t.alloc_containers(&alloc_id).is_empty().then_some(())
    });
}

#[test]
fn docker_group_port_reachable_on_the_host() {
    let Some(t) = DockerAgent::start() else {
        return;
    };
    let mut cfg = t.config(
        "echo port-ok > /local/index.html; echo \"port=$NOMAD_PORT_http host=$NOMAD_HOST_PORT_http\"; \
         exec httpd -f -p 8080 -h /local",
    );
    cfg["ports"] = json!(["http"]);
    let job_id = format!("web-{}", &t.token[..8]);
    t.register(job(
        &job_id,
        "service",
        docker_task("web", cfg),
        json!({"Networks": [{"DynamicPorts": [{"Label": "http", "To": 8080}]}]}),
    ));
    let alloc_id = t.alloc_id(&job_id);
    let a = t.wait_task_state(&alloc_id, "web", "running");
    let port = &a["AllocatedResources"]["Shared"]["Ports"][0];
    assert_eq!(port["Label"], "http", "{a}");
    assert_eq!(port["To"], 8080);
    let host_port = port["Value"].as_u64().expect("allocated port") as u16;
    let host_ip = port["HostIP"].as_str().unwrap_or("127.0.0.1").to_string();
    let body = wait_for(WAIT, "httpd answering on the allocated port", || {
        let mut s = std::net::TcpStream::connect((host_ip.as_str(), host_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        buf.contains("port-ok").then_some(buf)
    });
    assert!(
        body.starts_with("HTTP/1.1 200") || body.starts_with("HTTP/1.0 200"),
        "{body}"
    );

    // Nomad's container name and labels.
    let ids = t.alloc_containers(&alloc_id);
    assert_eq!(ids.len(), 1, "{ids:?}");
    let (_, name) = docker(&["inspect", "-f", "{{.Name}}", &ids[0]]);
    assert_eq!(name, format!("/web-{alloc_id}"));
    let (_, labels) = docker(&["inspect", "-f", "{{json .Config.Labels}}", &ids[0]]);
    let labels: BTreeMap<String, String> = serde_json::from_str(&labels).expect("labels");
    assert_eq!(labels[ALLOC_LABEL], alloc_id);
    let out = read(&t.log_file(&alloc_id, "web", "stdout"));
    // Nomad's variables: the port inside the task and the one allocated on the host.
    assert!(
        out.contains(&format!("port=8080 host={host_port}")),
        "{out}"
    );

    // Stopping the job stops the task and removes its container.
    let r = t.http.delete(&t.agent.url(&format!("/v1/job/{job_id}")));
    assert_eq!(r.status, 200, "{}", r.body);
    t.wait_task_state(&alloc_id, "web", "dead");
    wait_for(WAIT, "the stopped task's container removed", || {
        t.alloc_containers(&alloc_id).is_empty().then_some(())
    });
}

#[test]
fn docker_memory_limit_and_oom_reported() {
    let Some(t) = DockerAgent::start() else {
        return;
    };
    // 100 MB into a shell variable: far past the 32 MiB limit, with no swap allowed.
    let script = "echo start; x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo ${#x}";
    let mut task = docker_task("hog", t.config(script));
    task["Resources"]["MemoryMB"] = json!(32);
    let job_id = format!("oom-{}", &t.token[..8]);
    t.register(job(&job_id, "batch", task, json!({})));
    let alloc_id = t.alloc_id(&job_id);
    let a = t.wait_client_status(&alloc_id, "failed");
    let term = first_event(&a, "hog", "Terminated");
    assert_eq!(term["ExitCode"], 137, "{term}");
    assert_eq!(term["Details"]["oom_killed"], "true", "{term}");
    assert_eq!(term["Details"]["exit_code"], "137", "{term}");
    let types = event_types(&a, "hog");
    assert_eq!(types.last().map(String::as_str), Some("Not Restarting"));
    assert_eq!(a["TaskStates"]["hog"]["Failed"], true);
    assert_eq!(a["TaskStates"]["hog"]["State"], "dead");
}

#[test]
fn docker_stop_escalates_to_sigkill_after_kill_timeout() {
    let Some(t) = DockerAgent::start() else {
        return;
    };
    // sh as PID 1 ignoring SIGTERM: only SIGKILL ends it.
    let script = "trap '' TERM; echo ready; while true; do sleep 0.1; done";
    let mut task = docker_task("stubborn", t.config(script));
    task["KillTimeout"] = json!(2_000_000_000_i64);
    let job_id = format!("kill-{}", &t.token[..8]);
    t.register(job(&job_id, "service", task, json!({})));
    let alloc_id = t.alloc_id(&job_id);
    t.wait_task_state(&alloc_id, "stubborn", "running");
    let stdout = t.log_file(&alloc_id, "stubborn", "stdout");
    wait_for(WAIT, "the task ready", || {
        read(&stdout).contains("ready").then_some(())
    });
    let r = t.http.delete(&t.agent.url(&format!("/v1/job/{job_id}")));
    assert_eq!(r.status, 200, "{}", r.body);
    let a = t.wait_task_state(&alloc_id, "stubborn", "dead");
    let types = event_types(&a, "stubborn");
    let tail: Vec<&str> = types
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["Killing", "Terminated", "Killed"], "{types:?}");
    let killing = first_event(&a, "stubborn", "Killing");
    assert_eq!(killing["KillTimeout"], 2_000_000_000_i64, "{killing}");
    let term = first_event(&a, "stubborn", "Terminated");
    assert_eq!(term["ExitCode"], 137, "SIGKILLed: {term}");
    // The engine waited the kill timeout before SIGKILL (event times are Unix nanoseconds).
    let killed = first_event(&a, "stubborn", "Killed");
    let waited = killed["Time"].as_i64().unwrap_or(0) - killing["Time"].as_i64().unwrap_or(0);
    assert!(
        (1_900_000_000..30_000_000_000).contains(&waited),
        "Killing → Killed took {waited} ns"
    );
    wait_for(WAIT, "the killed task's container removed", || {
        t.alloc_containers(&alloc_id).is_empty().then_some(())
    });
}

#[test]
fn docker_default_kill_signal_is_sigterm() {
    let Some(t) = DockerAgent::start() else {
        return;
    };
    let script = "trap 'echo got-term; exit 0' TERM; trap 'echo got-int; exit 0' INT; \
                  echo ready; while true; do sleep 0.1; done";
    let mut task = docker_task("polite", t.config(script));
    task["KillTimeout"] = json!(20_000_000_000_i64);
    let job_id = format!("term-{}", &t.token[..8]);
    t.register(job(&job_id, "service", task, json!({})));
    let alloc_id = t.alloc_id(&job_id);
    t.wait_task_state(&alloc_id, "polite", "running");
    let stdout = t.log_file(&alloc_id, "polite", "stdout");
    wait_for(WAIT, "the task ready", || {
        read(&stdout).contains("ready").then_some(())
    });
    let r = t.http.delete(&t.agent.url(&format!("/v1/job/{job_id}")));
    assert_eq!(r.status, 200, "{}", r.body);
    let a = t.wait_task_state(&alloc_id, "polite", "dead");
    let term = first_event(&a, "polite", "Terminated");
    assert_eq!(term["ExitCode"], 0, "exited from its TERM trap: {term}");
    assert_eq!(read(&stdout), "ready\ngot-term\n");
}

#[test]
fn docker_signal_through_the_agent_reaches_the_container_process() {
    let Some(t) = DockerAgent::start() else {
        return;
    };
    let script = "trap 'echo got-usr1' USR1; echo ready; while true; do sleep 0.1; done";
    let task = docker_task("sig", t.config(script));
    let job_id = format!("sig-{}", &t.token[..8]);
    t.register(job(&job_id, "service", task, json!({})));
    let alloc_id = t.alloc_id(&job_id);
    t.wait_task_state(&alloc_id, "sig", "running");
    let stdout = t.log_file(&alloc_id, "sig", "stdout");
    wait_for(WAIT, "the task ready", || {
        read(&stdout).contains("ready").then_some(())
    });
    let r = t.http.post(
        &t.agent
            .url(&format!("/v1/client/allocation/{alloc_id}/signal")),
        &json!({"Signal": "SIGUSR1", "Task": "sig"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(WAIT, "the trap to run", || {
        read(&stdout).contains("got-usr1").then_some(())
    });
    // Task events reach the server with the next status sync.
    wait_for(WAIT, "a Signaling event", || {
        let a = t.alloc(&alloc_id);
        event_types(&a, "sig")
            .iter()
            .any(|e| e == "Signaling")
            .then_some(())
    });
}

#[test]
fn docker_missing_image_is_a_driver_failure_under_the_restart_policy() {
    let Some(t) = DockerAgent::start() else {
        return;
    };
    let mut cfg = t.config("true");
    cfg["image"] = json!(MISSING_IMAGE);
    let job_id = format!("pull-{}", &t.token[..8]);
    t.register(job(
        &job_id,
        "batch",
        docker_task("app", cfg),
        json!({"RestartPolicy": {"Attempts": 1, "Interval": 3_600_000_000_000_i64, "Delay": 500_000_000_i64, "Mode": "fail"}}),
    ));
    let alloc_id = t.alloc_id(&job_id);
    let a = t.wait_client_status(&alloc_id, "failed");
    let types = event_types(&a, "app");
    assert_eq!(
        types,
        [
            "Received",
            "Task Setup",
            "Driver",
            "Driver Failure",
            "Restarting",
            "Driver",
            "Driver Failure",
            "Not Restarting"
        ],
        "{types:?}"
    );
    let evs = events(&a, "app");
    let download = &evs[2];
    assert_eq!(
        download["DriverMessage"],
        format!("Downloading image {MISSING_IMAGE}")
    );
    assert_eq!(download["DisplayMessage"], download["DriverMessage"]);
    assert_eq!(download["Details"]["image"], MISSING_IMAGE);
    let failure = &evs[3];
    let err = failure["DriverError"].as_str().unwrap_or_default();
    assert!(
        err.starts_with(&format!("Failed to pull `{MISSING_IMAGE}`: ")),
        "{failure}"
    );
    // The engine's own words about the unreachable registry.
    assert!(err.contains("127.0.0.1:5999"), "{failure}");
    assert_eq!(failure["Details"]["driver_error"], err);
    assert_eq!(failure["DisplayMessage"], err);
    assert_eq!(failure["FailsTask"], false, "{failure}");
    let last = &evs[7];
    assert_eq!(last["FailsTask"], true, "{last}");
    assert!(
        last["RestartReason"]
            .as_str()
            .is_some_and(|r| r.starts_with("Exceeded allowed attempts 1")),
        "{last}"
    );
    assert_eq!(a["TaskStates"]["app"]["Failed"], true);
    assert!(t.alloc_containers(&alloc_id).is_empty());
}

/// Asserts `text` is exactly `<prefix>1` … `<prefix>count`, one per line.
fn assert_numbered(text: &str, prefix: &str, count: usize) {
    let lines: Vec<&str> = text.lines().collect();
    let expected: Vec<String> = (1..=count).map(|i| format!("{prefix}{i}")).collect();
    if lines != expected {
        let missing: Vec<&String> = expected
            .iter()
            .filter(|e| !lines.contains(&e.as_str()))
            .collect();
        let dup = lines.len() as i64 - (count as i64 - missing.len() as i64);
        panic!(
            "{} lines, {} missing (first {:?}), {dup} extra/duplicated",
            lines.len(),
            missing.len(),
            missing.first()
        );
    }
}

#[test]
fn docker_agent_kill9_reattaches_and_log_is_exact() {
    let Some(mut t) = DockerAgent::start() else {
        return;
    };
    const LINES: usize = 300;
    let script = format!("for i in $(seq 1 {LINES}); do echo line-$i; sleep 0.02; done");
    let job_id = format!("crash-{}", &t.token[..8]);
    t.register(job(
        &job_id,
        "batch",
        docker_task("counter", t.config(&script)),
        json!({}),
    ));
    let alloc_id = t.alloc_id(&job_id);
    t.wait_task_state(&alloc_id, "counter", "running");
    let stdout = t.log_file(&alloc_id, "counter", "stdout");
    wait_for(WAIT, "some output", || {
        (read(&stdout).lines().count() >= 20).then_some(())
    });
    let before = t.alloc_containers(&alloc_id);
    assert_eq!(before.len(), 1, "{before:?}");
    t.agent.kill9();
    let (_, running) = docker(&["inspect", "-f", "{{.State.Running}}", &before[0]]);
    assert_eq!(running, "true", "the container outlives the agent");
    std::thread::sleep(Duration::from_secs(1));
    t.agent.restart();
    let a = t.wait_client_status(&alloc_id, "complete");
    assert!(t.alloc_containers(&alloc_id).len() <= 1);
    let started = event_types(&a, "counter")
        .iter()
        .filter(|e| *e == "Started")
        .count();
    assert_eq!(
        started,
        1,
        "reattached, not restarted: {:?}",
        event_types(&a, "counter")
    );
    assert_numbered(&read(&stdout), "line-", LINES);
}

#[test]
fn docker_dangling_container_of_unknown_alloc_removed() {
    let Some(mut t) = DockerAgent::start() else {
        return;
    };
    t.wait_docker_node();
    // A container that looks like one of this agent's (alloc label, /alloc from its alloc
    // root) for an allocation nobody knows, and one from another agent's directory.
    let alloc_root = t.agent.data_dir.path().join("data").join("alloc");
    let other_root = t.agent.data_dir.path().join("elsewhere");
    let mut ids = Vec::new();
    for root in [&alloc_root, &other_root] {
        let alloc = uuid::Uuid::new_v4().to_string();
        let dir = root.join(&alloc).join("alloc");
        std::fs::create_dir_all(&dir).expect("alloc dir");
        let (ok, id) = docker(&[
            "run",
            "-d",
            "--name",
            &format!("orphan-{alloc}"),
            "--label",
            &format!("{ALLOC_LABEL}={alloc}"),
            "--label",
            &format!("{TEST_LABEL}={}", t.token),
            "-v",
            &format!("{}:/alloc", dir.display()),
            &image(),
            "sleep",
            "300",
        ]);
        assert!(ok, "docker run: {id}");
        ids.push(id);
    }
    // Older than the creation grace (10 s), then a new agent process sweeps on start.
    std::thread::sleep(Duration::from_secs(11));
    t.agent.restart();
    wait_for(WAIT, "the dangling container removed", || {
        (!docker(&["inspect", &ids[0]]).0).then_some(())
    });
    assert!(
        docker(&["inspect", &ids[1]]).0,
        "another agent's container is left alone"
    );
}

/// A unix-socket proxy to the real engine that can be stopped and started, standing in for an
/// engine that goes away and comes back.
struct EngineProxy {
    path: PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EngineProxy {
    fn start(path: &std::path::Path) -> EngineProxy {
        use std::os::unix::net::{UnixListener, UnixStream};
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).expect("bind proxy");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            for inbound in listener.incoming() {
                if stop2.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let Ok(inbound) = inbound else { continue };
                let Ok(outbound) = UnixStream::connect("/var/run/docker.sock") else {
                    continue;
                };
                let pipe = |mut from: UnixStream, mut to: UnixStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                };
                if let (Ok(i2), Ok(o2)) = (inbound.try_clone(), outbound.try_clone()) {
                    pipe(inbound, outbound);
                    pipe(o2, i2);
                }
            }
        });
        EngineProxy {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so it sees the flag, then remove the socket: new connections fail.
        let _ = std::os::unix::net::UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Driver health follows the engine without an agent restart (re-fingerprinted every 30 s).
#[test]
fn docker_health_follows_the_engine() {
    if skip() {
        return;
    }
    let dir = TempDir::new("engine-proxy");
    let sock = dir.path().join("engine.sock");
    let proxy = EngineProxy::start(&sock);
    let plugin = docker_plugin(&format!("    endpoint = \"unix://{}\"\n", sock.display()));
    let Some(t) = DockerAgent::start_with(&plugin) else {
        return;
    };
    let node = t.wait_docker_node();
    let node_url = t.agent.url(&format!(
        "/v1/node/{}",
        node["ID"].as_str().unwrap_or_default()
    ));
    let docker_health = || t.http.get(&node_url).json()["Drivers"]["docker"].clone();
    drop(proxy);
    let d = wait_for(Duration::from_secs(75), "docker unhealthy", || {
        let d = docker_health();
        (d["Healthy"] == false).then_some(d)
    });
    assert_eq!(d["Detected"], true, "{d}");
    assert_eq!(d["HealthDescription"], "Failed to connect to docker daemon");
    let _proxy = EngineProxy::start(&sock);
    let d = wait_for(Duration::from_secs(75), "docker healthy again", || {
        let d = docker_health();
        (d["Healthy"] == true).then_some(d)
    });
    assert_eq!(d["HealthDescription"], "Healthy");
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Job register → docker task running, p50 over 20 jobs through the agent, beside a plain
/// `docker run -d` of the same image in the same run. Prints figures; asserts no timing.
/// `cargo test --release --test docker_e2e -- --ignored docker_register_to_running_benchmark --nocapture`
#[test]
#[ignore = "benchmark: prints figures"]
fn docker_register_to_running_benchmark() {
    const RUNS: usize = 20;
    let Some(t) = DockerAgent::start() else {
        return;
    };
    t.wait_docker_node();
    let mut ours = Vec::new();
    let mut in_client = Vec::new();
    for i in 0..RUNS {
        let job_id = format!("bench-{}-{i}", &t.token[..8]);
        let job = job(
            &job_id,
            "service",
            docker_task("b", t.config("trap 'exit 0' TERM; sleep 300 & wait")),
            json!({}),
        );
        let url = t.agent.url(&format!("/v1/job/{job_id}/allocations"));
        let started = Instant::now();
        t.register(job);
        wait_for(WAIT, "the benchmark task running", || {
            let list = t.http.get(&url).json();
            let running = list.as_array()?.first()?["TaskStates"]["b"]["State"] == "running";
            running.then_some(())
        });
        ours.push(started.elapsed());
        let alloc_id = t.alloc_id(&job_id);
        let a = t.alloc(&alloc_id);
        let time = |kind: &str| first_event(&a, "b", kind)["Time"].as_i64().unwrap_or(0);
        let nanos = u64::try_from(time("Started") - time("Received")).unwrap_or(0);
        in_client.push(Duration::from_nanos(nanos));
        let r = t.http.delete(&t.agent.url(&format!("/v1/job/{job_id}")));
        assert_eq!(r.status, 200, "{}", r.body);
        // One at a time, like the `docker run` loop below: the stop is not measured.
        wait_for(WAIT, "the benchmark container removed", || {
            t.alloc_containers(&alloc_id).is_empty().then_some(())
        });
    }
    let mut cli = Vec::new();
    for i in 0..RUNS {
        let name = format!("yurt-bench-cli-{}-{i}", t.token);
        let label = format!("{TEST_LABEL}={}", t.token);
        let started = Instant::now();
        let (ok, out) = docker(&[
            "run",
            "-d",
            "--label",
            &label,
            "--name",
            &name,
            &image(),
            "sleep",
            "300",
        ]);
        cli.push(started.elapsed());
        let _ = docker(&["rm", "-f", &name]);
        assert!(ok, "docker run -d failed: {out}");
    }
    println!(
        "docker: job register -> task running (as the API shows it) p50 over {RUNS} jobs: \
         yurt agent {:?} (of which task Received -> Started in the client {:?}); \
         `docker run -d` {:?}",
        p50(ours),
        p50(in_client),
        p50(cli)
    );
}
