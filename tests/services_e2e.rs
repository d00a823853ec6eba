//! End-to-end tests of native service discovery (`provider = "nomad"`) and the client's
//! health checks: a raw_exec task serving HTTP on its dynamic port is registered with the
//! real host port, found through every services endpoint, removed when the job stops; an
//! HTTP check goes critical when the task's server stops answering and `check_restart`
//! restarts the task.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// A tiny HTTP server on `$NOMAD_IP_http:$NOMAD_PORT_http` (the address the service is
/// registered with): `/health` answers 200 while
/// `$NOMAD_TASK_DIR/healthy` exists and hangs once it is gone (a server that stopped
/// answering); any other path answers 200 with the task's run marker.
const SERVER: &str = r#"
import http.server, os, time
ok = os.path.join(os.environ["NOMAD_TASK_DIR"], "healthy")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health" and not os.path.exists(ok):
            time.sleep(3600)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello from the task")
    def log_message(self, *a):
        pass
http.server.HTTPServer((os.environ["NOMAD_IP_http"], int(os.environ["NOMAD_PORT_http"])), H).serve_forever()
"#;

fn job(id: &str, checks: Value) -> Value {
    job_with(id, checks, true)
}

/// [`job`]; without `healthy_at_start` the task never creates its health marker, so its
/// `/health` never answers.
fn job_with(id: &str, checks: Value, healthy_at_start: bool) -> Value {
    let marker = if healthy_at_start {
        "touch \"$NOMAD_TASK_DIR/healthy\"; "
    } else {
        ""
    };
    let script = format!("{marker}exec python3 -c '{}'", SERVER.replace('\'', "\""));
    json!({
        "ID": id,
        "Name": id,
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "front",
            "Count": 1,
            "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
            "RestartPolicy": {"Attempts": 0, "Interval": 600_000_000_000i64,
                              "Delay": 1_000_000_000i64, "Mode": "fail"},
            "Services": [{
                "Name": format!("{id}-web"),
                "PortLabel": "http",
                "Provider": "nomad",
                "Tags": ["edge", "v1"],
                "Checks": checks,
            }],
            "Tasks": [{
                "Name": "server",
                "Driver": "raw_exec",
                "Config": {"command": "/bin/sh", "args": ["-c", script]},
                "Resources": {"CPU": 100, "MemoryMB": 64},
                "KillTimeout": 1_000_000_000i64,
                "Services": [{"Name": format!("{id}-task"), "PortLabel": "http",
                              "Provider": "nomad"}],
            }],
        }],
    })
}

fn host_port(http: &Http, base: &str, alloc: &str) -> i64 {
    let a = http.get(&format!("{base}/v1/allocation/{alloc}")).json();
    a["AllocatedResources"]["Shared"]["Ports"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["Label"] == "http"))
        .and_then(|p| p["Value"].as_i64())
        .expect("allocated http port")
}

fn instances(http: &Http, url: &str) -> Vec<Value> {
    let r = http.get(url);
    assert_eq!(r.status, 200, "{url}: {}", r.body);
    r.json().as_array().cloned().expect("a list")
}

#[test]
fn services_are_registered_with_the_host_port_and_removed_on_stop() {
    let mut dirs = DirGuard::default();
    let agent = dirs.start(AgentOpts::dev());
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=svcjob".into()]);
    let http = Http::default();
    let base = agent.url("");
    let base = base.trim_end_matches('/');

    let alloc = run_job_and_wait(&http, base, &job("svcjob", json!(null)));
    let port = host_port(&http, base, &alloc);

    let svc_url = format!("{base}/v1/service/svcjob-web");
    let regs = wait_for(Duration::from_secs(30), "group service registered", || {
        let regs = instances(&http, &svc_url);
        (!regs.is_empty()).then_some(regs)
    });
    assert_eq!(regs.len(), 1, "{regs:?}");
    let reg = &regs[0];
    assert_eq!(reg["ServiceName"], "svcjob-web");
    assert_eq!(reg["Namespace"], "default");
    assert_eq!(reg["JobID"], "svcjob");
    assert_eq!(reg["AllocID"], alloc.as_str());
    assert_eq!(reg["Datacenter"], "dc1");
    assert_eq!(reg["Tags"], json!(["edge", "v1"]));
    assert_eq!(reg["Port"], port, "the real host port");
    assert_eq!(
        reg["ID"],
        format!("_nomad-task-{alloc}-front-svcjob-web-http").as_str()
    );
    let node_id = http.get(&format!("{base}/v1/allocation/{alloc}")).json()["NodeID"].clone();
    assert_eq!(reg["NodeID"], node_id);
    assert!(reg["CreateIndex"].as_u64().unwrap() > 0);
    // What is registered really serves there (once the task's server has bound it).
    let url = format!("http://{}:{port}/", reg["Address"].as_str().unwrap());
    let served = wait_for(Duration::from_secs(30), "the task serving", || {
        http.client.get(&url).send().ok()?.text().ok()
    });
    assert_eq!(served, "hello from the task");

    // The task service registers under its task.
    let task_regs = wait_for(Duration::from_secs(30), "task service", || {
        let r = instances(&http, &format!("{base}/v1/service/svcjob-task"));
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(
        task_regs[0]["ID"],
        format!("_nomad-task-{alloc}-server-svcjob-task-http").as_str()
    );

    // The listing: per namespace, each name with its tags.
    let list = http.get(&format!("{base}/v1/services")).json();
    let default = list
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["Namespace"] == "default")
        .expect("default namespace listed");
    let web = default["Services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["ServiceName"] == "svcjob-web")
        .expect("svcjob-web listed");
    assert_eq!(web["Tags"], json!(["edge", "v1"]));
    assert_eq!(
        instances(&http, &format!("{base}/v1/services?namespace=nope")),
        Vec::<Value>::new()
    );

    // Filters: tags, choose.
    assert_eq!(instances(&http, &format!("{svc_url}?tag=edge")).len(), 1);
    assert_eq!(
        instances(&http, &format!("{svc_url}?tag=edge&tag=v1")).len(),
        1
    );
    assert!(instances(&http, &format!("{svc_url}?tag=other")).is_empty());
    assert_eq!(instances(&http, &format!("{svc_url}?choose=1|me")).len(), 1);
    let bad = http.get(&format!("{svc_url}?choose=one"));
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("<number>|<key>"), "{}", bad.body);
    assert!(instances(&http, &format!("{base}/v1/service/nothing-here")).is_empty());

    // By job and by allocation; unknown ones are 404s.
    assert_eq!(
        instances(&http, &format!("{base}/v1/job/svcjob/services")).len(),
        2
    );
    assert_eq!(
        instances(&http, &format!("{base}/v1/allocation/{alloc}/services")).len(),
        2
    );
    assert_eq!(
        http.get(&format!("{base}/v1/job/nope/services")).status,
        404
    );
    let unknown = "00000000-0000-0000-0000-000000000000";
    assert_eq!(
        http.get(&format!("{base}/v1/allocation/{unknown}/services"))
            .status,
        404
    );
    let r = http.delete(&format!("{base}/v1/service/svcjob-web/not-an-id"));
    assert_eq!(r.status, 404, "{}", r.body);

    // A blocking read wakes when the job stops and its registrations go.
    let index = http.get(&svc_url).index();
    let waiter = {
        let url = format!("{svc_url}?index={index}&wait=60s");
        std::thread::spawn(move || {
            let r = Http::default().get(&url);
            (r.status, r.index(), r.json())
        })
    };
    let r = http.delete(&format!("{base}/v1/job/svcjob"));
    assert_eq!(r.status, 200, "{}", r.body);
    let (status, woke_at, _) = waiter.join().expect("blocking read");
    assert_eq!(status, 200);
    assert!(woke_at > index, "woke at {woke_at}, asked past {index}");
    wait_for(Duration::from_secs(30), "services deregistered", || {
        let gone = instances(&http, &svc_url).is_empty()
            && instances(&http, &format!("{base}/v1/service/svcjob-task")).is_empty();
        gone.then_some(())
    });
    assert!(instances(&http, &format!("{base}/v1/job/svcjob/services")).is_empty());
}

#[test]
fn delete_removes_one_instance() {
    let mut dirs = DirGuard::default();
    let agent = dirs.start(AgentOpts::dev());
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=deljob".into()]);
    let http = Http::default();
    let base = agent.url("");
    let base = base.trim_end_matches('/');
    run_job_and_wait(&http, base, &job("deljob", json!(null)));
    let url = format!("{base}/v1/service/deljob-web");
    let regs = wait_for(Duration::from_secs(30), "registered", || {
        let r = instances(&http, &url);
        (!r.is_empty()).then_some(r)
    });
    let id = regs[0]["ID"].as_str().unwrap();
    let r = http.delete(&format!("{url}/{id}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.index() > 0);
    assert!(instances(&http, &url).is_empty());

    // The `Service` topic carried both: replayed from the broker's buffer.
    let (status, body) = read_stream_until(
        &format!("{base}/v1/event/stream?topic=Service&index=0"),
        Duration::from_secs(30),
        |b| String::from_utf8_lossy(b).contains("ServiceDeregistration"),
    );
    assert_eq!(status, 200);
    let events: Vec<Value> = String::from_utf8_lossy(&body)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|f| f["Events"].as_array().cloned())
        .flatten()
        .filter(|e| e["Key"] == id)
        .collect();
    let types: Vec<&str> = events.iter().filter_map(|e| e["Type"].as_str()).collect();
    assert_eq!(types.first(), Some(&"ServiceRegistration"), "{types:?}");
    assert_eq!(types.last(), Some(&"ServiceDeregistration"), "{types:?}");
    assert!(events.iter().all(|e| e["Topic"] == "Service"));
    assert_eq!(events[0]["Payload"]["Service"]["ServiceName"], "deljob-web");
    assert_eq!(events[0]["FilterKeys"], json!(["deljob", "deljob-web"]));
    let r = http.delete(&format!("{base}/v1/job/deljob?purge=true"));
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn an_http_check_goes_critical_and_check_restart_restarts_the_task() {
    let mut dirs = DirGuard::default();
    let agent = dirs.start(AgentOpts::dev());
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=chkjob".into()]);
    let http = Http::default();
    let base = agent.url("");
    let base = base.trim_end_matches('/');
    let checks = json!([{
        "Name": "alive",
        "Type": "http",
        "Path": "/health",
        "Interval": 1_000_000_000i64,
        "Timeout": 1_000_000_000i64,
        "TaskName": "server",
        // The grace covers the interpreter's start on a loaded machine: a check counted
        // before the restarted server listens would restart it again.
        "CheckRestart": {"Limit": 2, "Grace": 5_000_000_000i64},
    }, {
        "Name": "port-open",
        "Type": "tcp",
        "Interval": 1_000_000_000i64,
        "Timeout": 1_000_000_000i64,
    }]);
    let alloc = run_job_and_wait(&http, base, &job("chkjob", checks));

    let checks_url = format!("{base}/v1/client/allocation/{alloc}/checks");
    let passing = wait_for(Duration::from_secs(30), "checks passing", || {
        let r = http.get(&checks_url);
        assert_eq!(r.status, 200, "{}", r.body);
        let all = r.json();
        let map = all.as_object()?.clone();
        (map.len() == 2 && map.values().all(|c| c["Status"] == "success")).then_some(map)
    });
    let alive = passing
        .values()
        .find(|c| c["Check"] == "alive")
        .expect("the http check");
    assert_eq!(alive["Service"], "chkjob-web");
    assert_eq!(alive["Group"], "front");
    assert_eq!(alive["Task"], "server");
    assert_eq!(alive["Mode"], "healthiness");
    assert_eq!(alive["StatusCode"], 200);
    assert_eq!(alive["Output"], "nomad: http ok");
    let tcp = passing
        .values()
        .find(|c| c["Check"] == "port-open")
        .unwrap();
    assert_eq!(tcp["Output"], "nomad: tcp ok");
    // The server API answers the same, from the client that runs the allocation.
    let via_server = http.get(&format!("{base}/v1/allocation/{alloc}/checks"));
    assert_eq!(via_server.status, 200, "{}", via_server.body);
    assert_eq!(via_server.json().as_object().map(|m| m.len()), Some(2));
    let unknown = "00000000-0000-0000-0000-000000000000";
    assert_eq!(
        http.get(&format!("{base}/v1/client/allocation/{unknown}/checks"))
            .status,
        404
    );

    // The server stops answering its health path: the check goes critical, and after two
    // failures in a row check_restart restarts the task.
    let healthy = alloc_dir(&agent, &alloc).join("server/local/healthy");
    std::fs::remove_file(&healthy).expect("remove the health marker");
    let restarted = wait_for(Duration::from_secs(60), "check_restart restart", || {
        let a = http.get(&format!("{base}/v1/allocation/{alloc}")).json();
        let events = a["TaskStates"]["server"]["Events"].as_array()?.clone();
        events
            .iter()
            .find(|e| e["Type"] == "Restart Signaled")
            .cloned()
    });
    assert_eq!(
        restarted["Details"]["restart_reason"],
        "healthcheck: check \"alive\" unhealthy"
    );
    // The restarted task recreates its marker, so the check passes again and the task
    // keeps running.
    wait_for(
        Duration::from_secs(60),
        "check passing after the restart",
        || {
            let all = http.get(&checks_url).json();
            let ok = all
                .as_object()?
                .values()
                .any(|c| c["Check"] == "alive" && c["Status"] == "success");
            (ok && healthy.exists()).then_some(())
        },
    );
    let a = http.get(&format!("{base}/v1/allocation/{alloc}")).json();
    assert_eq!(a["TaskStates"]["server"]["State"], "running");
    let r = http.delete(&format!("{base}/v1/job/chkjob?purge=true"));
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Nomad refuses what its own checks do not do (script and grpc checks, Consul's pass/fail
/// thresholds, sub-second intervals) when the job is registered.
#[test]
fn checks_nomad_does_not_run_are_refused_at_registration() {
    let mut dirs = DirGuard::default();
    let agent = dirs.start(AgentOpts::server());
    let http = Http::default();
    let base = agent.url("");
    let base = base.trim_end_matches('/');
    for (check, want) in [
        (
            json!({"Name": "s", "Type": "script", "Command": "/bin/true",
                   "Interval": 1_000_000_000i64, "Timeout": 1_000_000_000i64}),
            "invalid check type (\"script\"), must be one of tcp, http",
        ),
        (
            json!({"Name": "g", "Type": "grpc",
                   "Interval": 1_000_000_000i64, "Timeout": 1_000_000_000i64}),
            "invalid check type (\"grpc\"), must be one of tcp, http",
        ),
        (
            json!({"Name": "t", "Type": "tcp", "Interval": 1_000_000_000i64,
                   "Timeout": 1_000_000_000i64, "SuccessBeforePassing": 2}),
            "success_before_passing may only be set for Consul service checks",
        ),
        (
            json!({"Name": "f", "Type": "tcp", "Interval": 200_000_000i64,
                   "Timeout": 1_000_000_000i64}),
            "interval (200ms) cannot be lower than 1s",
        ),
    ] {
        let r = http.put(
            &format!("{base}/v1/jobs"),
            &json!({"Job": job("refused", json!([check]))}),
        );
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body.contains(want), "{want:?} not in {:?}", r.body);
        assert!(r.body.contains("service[0] \"refused-web\""), "{}", r.body);
    }
}

/// The check goes critical without a check_restart: the failure shows in the results.
#[test]
fn a_failing_check_reports_failure_with_the_response() {
    let mut dirs = DirGuard::default();
    let agent = dirs.start(AgentOpts::dev());
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=failjob".into()]);
    let http = Http::default();
    let base = agent.url("");
    let base = base.trim_end_matches('/');
    let checks = json!([{
        "Name": "alive",
        "Type": "http",
        "Path": "/health",
        "Interval": 1_000_000_000i64,
        "Timeout": 1_000_000_000i64,
    }]);
    let alloc = run_job_and_wait(&http, base, &job("failjob", checks));
    let url = format!("{base}/v1/allocation/{alloc}/checks");
    wait_for(Duration::from_secs(30), "check passing", || {
        let all = http.get(&url).json();
        all.as_object()?
            .values()
            .any(|c| c["Status"] == "success")
            .then_some(())
    });
    std::fs::remove_file(alloc_dir(&agent, &alloc).join("server/local/healthy")).unwrap();
    let failed = wait_for(Duration::from_secs(30), "check critical", || {
        let all = http.get(&url).json();
        all.as_object()?
            .values()
            .find(|c| c["Status"] == "failure")
            .cloned()
    });
    assert!(
        failed["Output"].as_str().unwrap().starts_with("nomad: "),
        "{failed}"
    );
    // Without check_restart nothing restarts the task.
    let a = http.get(&format!("{base}/v1/allocation/{alloc}")).json();
    let events = a["TaskStates"]["server"]["Events"].as_array().unwrap();
    assert!(!events.iter().any(|e| e["Type"] == "Restart Signaled"));
    let r = http.delete(&format!("{base}/v1/job/failjob?purge=true"));
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Across machines: a client agent registers through the server's RPC port, the server
/// answers for the services, and asks the client for the check results.
#[test]
fn a_separate_client_agent_registers_and_reports_checks_through_the_server() {
    let mut dirs = DirGuard::default();
    let server = dirs.start(AgentOpts::server());
    let client = dirs.start(AgentOpts::client(vec![server.rpc_addr()], "svc-client"));
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=remotejob".into()]);
    let http = Http::default();
    let sbase = server.url("");
    let sbase = sbase.trim_end_matches('/');
    wait_for(Duration::from_secs(30), "client node ready", || {
        let nodes = http.get(&format!("{sbase}/v1/nodes")).json();
        nodes
            .as_array()
            .filter(|n| n.iter().any(|n| n["Status"] == "ready"))
            .map(|_| ())
    });
    let checks = json!([{"Name": "port-open", "Type": "tcp",
                         "Interval": 1_000_000_000i64, "Timeout": 1_000_000_000i64}]);
    let alloc = run_job_and_wait(&http, sbase, &job("remotejob", checks));
    let port = host_port(&http, sbase, &alloc);
    let regs = wait_for(Duration::from_secs(30), "registered through RPC", || {
        let r = instances(&http, &format!("{sbase}/v1/service/remotejob-web"));
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(regs[0]["Port"], port);
    let node = http.get(&format!("{sbase}/v1/allocation/{alloc}")).json()["NodeID"].clone();
    assert_eq!(regs[0]["NodeID"], node);
    // The client agent answers the same as the server.
    let via_client = http.get(&client.url("/v1/service/remotejob-web"));
    assert_eq!(via_client.status, 200, "{}", via_client.body);
    let results = wait_for(
        Duration::from_secs(30),
        "check result via the server",
        || {
            let r = http.get(&format!("{sbase}/v1/allocation/{alloc}/checks"));
            assert_eq!(r.status, 200, "{}", r.body);
            let all = r.json();
            let ok = all
                .as_object()?
                .values()
                .any(|c| c["Check"] == "port-open" && c["Status"] == "success");
            ok.then_some(all)
        },
    );
    assert_eq!(results.as_object().map(|m| m.len()), Some(1));
    let r = http.delete(&format!("{sbase}/v1/job/remotejob"));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(Duration::from_secs(30), "deregistered", || {
        instances(&http, &format!("{sbase}/v1/service/remotejob-web"))
            .is_empty()
            .then_some(())
    });
}

/// `HealthCheck = "checks"`: an allocation of a deployment is healthy once its service checks
/// pass, and unhealthy when they never do before the healthy deadline.
#[test]
fn deployment_health_follows_the_checks() {
    let mut dirs = DirGuard::default();
    let agent = dirs.start(AgentOpts::dev());
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=depjob".into()]);
    let http = Http::default();
    let base = agent.url("");
    let base = base.trim_end_matches('/');
    let checks = json!([{"Name": "alive", "Type": "http", "Path": "/health",
                         "Interval": 1_000_000_000i64, "Timeout": 1_000_000_000i64}]);
    let with_update = |healthy: bool, tag: &str| {
        let mut j = job_with("depjob", checks.clone(), healthy);
        j["TaskGroups"][0]["Update"] = json!({
            "MaxParallel": 1,
            "HealthCheck": "checks",
            "MinHealthyTime": 1_000_000_000i64,
            "HealthyDeadline": 8_000_000_000i64,
            "ProgressDeadline": 20_000_000_000i64,
        });
        j["TaskGroups"][0]["Tasks"][0]["Env"] = json!({"TAG": tag});
        j
    };
    let deployment = |version: i64, status: &'static str| {
        wait_for(Duration::from_secs(60), status, || {
            http.get(&format!("{base}/v1/job/depjob/deployments"))
                .json()
                .as_array()?
                .iter()
                .find(|d| d["JobVersion"] == version && d["Status"] == status)
                .cloned()
        })
    };
    let r = http.put(
        &format!("{base}/v1/jobs"),
        &json!({"Job": with_update(true, "v0")}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let ok = deployment(0, "successful");
    assert_eq!(ok["TaskGroups"]["front"]["HealthyAllocs"], 1, "{ok}");

    // Version 1's server never answers its health path: its allocation is judged
    // unhealthy and the deployment fails, though the task itself runs fine.
    let r = http.put(
        &format!("{base}/v1/jobs"),
        &json!({"Job": with_update(false, "v1")}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let failed = deployment(1, "failed");
    assert_eq!(
        failed["TaskGroups"]["front"]["UnhealthyAllocs"], 1,
        "{failed}"
    );
    let allocs = http
        .get(&format!("{base}/v1/job/depjob/allocations"))
        .json();
    let v1 = allocs
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["JobVersion"] == 1)
        .expect("the version 1 allocation");
    assert_eq!(v1["DeploymentStatus"]["Healthy"], false);
    assert_eq!(v1["TaskStates"]["server"]["State"], "running");
    let r = http.delete(&format!("{base}/v1/job/depjob?purge=true"));
    assert_eq!(r.status, 200, "{}", r.body);
}

/// An agent killed and restarted keeps the registrations of the tasks it reattaches to: the
/// restarted client's sync finds them as they were and moves no index.
#[test]
fn registrations_survive_an_agent_restart_unchanged() {
    let mut dirs = DirGuard::default();
    let mut agent = dirs.start(AgentOpts::dev());
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=keepjob".into()]);
    let http = Http::default();
    let base = agent.url("");
    let base = base.trim_end_matches('/').to_string();
    let alloc = run_job_and_wait(&http, &base, &job("keepjob", json!(null)));
    let url = format!("{base}/v1/service/keepjob-web");
    let before = wait_for(Duration::from_secs(30), "registered", || {
        let r = instances(&http, &url);
        (!r.is_empty()).then_some(r)
    });
    agent.restart();
    // The reattached task keeps running and keeps its registration as it was.
    wait_for(Duration::from_secs(30), "client back", || {
        let a = http.get(&format!("{base}/v1/allocation/{alloc}"));
        (a.status == 200 && a.json()["TaskStates"]["server"]["State"] == "running").then_some(())
    });
    let after = instances(&http, &url);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["ID"], before[0]["ID"]);
    assert_eq!(after[0]["Port"], before[0]["Port"]);
    assert_eq!(after[0]["ModifyIndex"], before[0]["ModifyIndex"]);
    let r = http.delete(&format!("{base}/v1/job/keepjob?purge=true"));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(Duration::from_secs(30), "deregistered", || {
        instances(&http, &url).is_empty().then_some(())
    });
}
