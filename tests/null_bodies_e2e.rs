//! Request bodies with `null` for every optional field are accepted as if the field were
//! absent (Nomad's clients send `null` for whatever they leave unset), and a signal name no
//! driver knows is a 400 rather than a quietly delivered SIGINT.

#![recursion_limit = "256"]

mod common;

use std::time::Duration;

use common::{Agent, AgentOpts, Http, run_job_and_wait, shell_job, wait_for};
use serde_json::{Value, json};

/// A job whose every optional member, at each level, is `null`.
fn job_with_nulls(id: &str) -> Value {
    json!({
        "ID": id, "Name": id, "Type": "service", "Datacenters": ["dc1"],
        "Namespace": null, "Region": null, "Priority": null, "AllAtOnce": null,
        "Constraints": null, "Affinities": null, "Spreads": null, "Update": null,
        "Periodic": null, "ParameterizedJob": null, "Meta": null, "Multiregion": null,
        "ConsulToken": null, "VaultToken": null, "NodePool": null, "Payload": null,
        "TaskGroups": [{
            "Name": "g", "Count": null, "Constraints": null, "Affinities": null,
            "Spreads": null, "Networks": null, "Services": null, "Volumes": null,
            "RestartPolicy": null, "ReschedulePolicy": null, "EphemeralDisk": null,
            "Update": null, "Migrate": null, "Meta": null, "Scaling": null,
            "Tasks": [{
                "Name": "t", "Driver": "raw_exec", "User": null,
                "Config": {"command": "/bin/sh",
                           "args": ["-c", "trap 'echo got-usr1' USR1; while :; do sleep 0.1; done"]},
                "Env": null, "Meta": null, "Services": null, "Constraints": null,
                "Affinities": null, "Templates": null, "Artifacts": null, "Vault": null,
                "Resources": {"CPU": 100, "MemoryMB": 64, "Networks": null, "Devices": null},
                "RestartPolicy": null, "LogConfig": null, "Lifecycle": null,
                "KillTimeout": null, "KillSignal": null, "ShutdownDelay": null,
                "DispatchPayload": null, "Leader": null, "VolumeMounts": null,
            }],
        }],
    })
}

fn running_alloc(http: &Http, agent: &Agent, job: &str) -> String {
    wait_for(Duration::from_secs(60), "allocation running", || {
        let allocs = http
            .get(&agent.url(&format!("/v1/job/{job}/allocations")))
            .json();
        allocs.as_array()?.iter().find_map(|a| {
            let running = a["TaskStates"]["t"]["State"] == "running";
            running
                .then(|| a["ID"].as_str().map(str::to_string))
                .flatten()
        })
    })
}

#[test]
fn null_members_are_absent_in_every_job_and_client_body() {
    let agent = Agent::start(AgentOpts::dev());
    let http = Http::default();

    let r = http.put(
        &agent.url("/v1/jobs"),
        &json!({"Job": job_with_nulls("nulls"), "EnforceIndex": null, "JobModifyIndex": null,
                "PolicyOverride": null, "PreserveCounts": null, "EvalPriority": null}),
    );
    assert_eq!(r.status, 200, "register: {}", r.body);
    let job = http.get(&agent.url("/v1/job/nulls")).json();
    assert_eq!(
        job["TaskGroups"][0]["Count"], 1,
        "null Count is the default"
    );
    assert_eq!(job["Priority"], 50, "null Priority is the default");
    let alloc = running_alloc(&http, &agent, "nulls");

    let r = http.post(
        &agent.url(&format!("/v1/client/allocation/{alloc}/signal")),
        &json!({"Task": null, "Signal": "SIGUSR1"}),
    );
    assert_eq!(r.status, 200, "signal with a null task: {}", r.body);
    // The signal reached the task (every task, as Task is absent): its trap printed.
    let logs = format!("/v1/client/fs/logs/{alloc}?task=t&type=stdout&plain=true");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = http.get(&agent.url(&logs)).body;
        if out.contains("got-usr1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "USR1 not handled; stdout: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let writes: Vec<(&str, String, Value)> = vec![
        (
            "plan",
            "/v1/job/nulls/plan".into(),
            json!({"Job": job_with_nulls("nulls"), "Diff": null, "PolicyOverride": null}),
        ),
        (
            "scale",
            "/v1/job/nulls/scale".into(),
            json!({"Target": {"Group": "g"}, "Count": null, "Message": null, "Error": null,
                   "Meta": null, "PolicyOverride": null}),
        ),
        (
            "evaluate",
            "/v1/job/nulls/evaluate".into(),
            json!({"JobID": "nulls", "EvalOptions": null}),
        ),
        (
            "stable",
            "/v1/job/nulls/stable".into(),
            json!({"JobID": "nulls", "JobVersion": 0, "Stable": null}),
        ),
        (
            "parse",
            "/v1/jobs/parse".into(),
            json!({"JobHCL": "job \"p\" {\n group \"g\" {\n task \"t\" {\n driver = \"raw_exec\"\n config { command = \"/bin/true\" }\n }\n }\n}\n",
                   "Canonicalize": null, "Variables": null, "HCLv1": null}),
        ),
        (
            "validate",
            "/v1/validate/job".into(),
            json!({"Job": job_with_nulls("nulls")}),
        ),
        (
            "namespace",
            "/v1/namespace/teams".into(),
            json!({"Name": "teams", "Description": null, "Meta": null, "Quota": null,
                   "Capabilities": null, "NodePoolConfiguration": null}),
        ),
        (
            "restart with null members",
            format!("/v1/client/allocation/{alloc}/restart"),
            json!({"TaskName": null, "AllTasks": null}),
        ),
    ];
    for (what, path, body) in &writes {
        let r = http.post(&agent.url(path), body);
        assert_eq!(r.status, 200, "{what}: {}", r.body);
    }
    // The restart kept what the task had written.
    assert!(http.get(&agent.url(&logs)).body.contains("got-usr1"));
    let r = http.post(
        &agent.url(&format!("/v1/allocation/{alloc}/stop")),
        &json!({"NoShutdownDelay": null}),
    );
    assert_eq!(r.status, 200, "alloc stop: {}", r.body);
}

#[test]
fn an_unknown_signal_name_is_a_400_and_nothing_is_signalled() {
    let agent = Agent::start(AgentOpts::dev());
    let http = Http::default();
    let job = shell_job(
        "sig",
        &[("t", "trap 'echo got-int' INT; while :; do sleep 0.1; done")],
    );
    let alloc = run_job_and_wait(&http, &agent.url(""), &job);
    for body in [
        json!({"Task": "t", "Signal": "BOGUS"}),
        json!({"Signal": "SIGBOGUS"}),
    ] {
        let r = http.post(
            &agent.url(&format!("/v1/client/allocation/{alloc}/signal")),
            &body,
        );
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.body.contains("invalid signal"), "{}", r.body);
    }
    // A known name still works, and the refused ones did not become SIGINT.
    let r = http.post(
        &agent.url(&format!("/v1/client/allocation/{alloc}/signal")),
        &json!({"Task": "t", "Signal": "SIGCONT"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    std::thread::sleep(Duration::from_millis(500));
    let logs = http.get(&agent.url(&format!(
        "/v1/client/fs/logs/{alloc}?task=t&type=stdout&plain=true&origin=start"
    )));
    assert!(!logs.body.contains("got-int"), "{}", logs.body);
}

#[test]
fn acl_bodies_take_null_members() {
    let agent = Agent::start(AgentOpts {
        extra_args: vec!["-acl-enabled".into()],
        ..AgentOpts::dev()
    });
    let http = Http::default();
    let r = http.post(
        &agent.url("/v1/acl/bootstrap"),
        &json!({"BootstrapSecret": null}),
    );
    assert_eq!(r.status, 200, "bootstrap: {}", r.body);
    let secret = r.json()["SecretID"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let auth = Http::with_token(&secret);
    let steps: Vec<(&str, &str, Value)> = vec![
        (
            "policy",
            "/v1/acl/policy/readers",
            json!({"Name": "readers", "Description": null, "JobACL": null,
                   "Rules": "namespace \"default\" { policy = \"read\" }"}),
        ),
        (
            "role",
            "/v1/acl/role",
            json!({"Name": "r", "Description": null, "Policies": [{"Name": "readers"}]}),
        ),
        (
            "token",
            "/v1/acl/token",
            json!({"Name": null, "Type": "client", "Policies": ["readers"], "Roles": null,
                   "Global": null, "ExpirationTTL": null, "ExpirationTime": null}),
        ),
    ];
    for (what, path, body) in &steps {
        let r = auth.post(&agent.url(path), body);
        assert_eq!(r.status, 200, "{what}: {}", r.body);
    }
}
