//! End-to-end tests of task templates: real `yurt` agents render a task's templates from its
//! environment and Nomad variables before it starts, merge `env = true` templates into its
//! environment, and re-render when a variable changes, signalling or restarting the task
//! exactly once per change.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const SEC: i64 = 1_000_000_000;

fn job(id: &str, script: &str, templates: Value) -> Value {
    json!({
        "ID": id,
        "Name": id,
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "g",
            "Count": 1,
            "RestartPolicy": {"Attempts": 0, "Interval": 600 * SEC, "Delay": SEC, "Mode": "fail"},
            "ReschedulePolicy": {"Attempts": 0, "Unlimited": false},
            "Tasks": [{
                "Name": "t",
                "Driver": "raw_exec",
                "Config": {"command": "/bin/sh", "args": ["-c", script]},
                "Templates": templates,
                "Resources": {"CPU": 100, "MemoryMB": 64},
                "KillTimeout": SEC,
            }],
        }],
    })
}

fn put_var(http: &Http, agent: &Agent, path: &str, items: Value) {
    let r = http.put(
        &agent.url(&format!("/v1/var/{path}")),
        &json!({"Items": items}),
    );
    assert_eq!(r.status, 200, "writing {path}: {}", r.body);
}

fn alloc_of(http: &Http, agent: &Agent, job: &str) -> Option<Value> {
    let allocs = http
        .get(&agent.url(&format!("/v1/job/{job}/allocations")))
        .json();
    let id = allocs.as_array()?.first()?["ID"].as_str()?.to_string();
    Some(http.get(&agent.url(&format!("/v1/allocation/{id}"))).json())
}

fn events(alloc: &Value) -> Vec<(String, String)> {
    alloc["TaskStates"]["t"]["Events"]
        .as_array()
        .map(|evs| {
            evs.iter()
                .map(|e| {
                    (
                        e["Type"].as_str().unwrap_or_default().to_string(),
                        e["DisplayMessage"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn count(evs: &[(String, String)], kind: &str, msg: &str) -> usize {
    evs.iter().filter(|(t, m)| t == kind && m == msg).count()
}

fn stdout(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("alloc/logs/t.stdout.0")).unwrap_or_default()
}

#[test]
fn a_variable_change_re_renders_and_signals_the_task_once() {
    let mut dirs = DirGuard::default();
    let agent = dirs.start(AgentOpts::dev());
    let http = Http::default();
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=tmplsig".into()]);
    put_var(
        &http,
        &agent,
        "nomad/jobs/tmplsig",
        json!({"greeting": "one", "user": "ann"}),
    );
    // The task prints its file and its env once, then once more on every SIGHUP.
    let script = r#"
        show() { echo "file: $(cat "$NOMAD_TASK_DIR/app.conf")"; }
        trap 'echo hup >> "$NOMAD_TASK_DIR/hups"; show' HUP
        show; echo "env: APP_USER=$APP_USER"
        while true; do sleep 0.1; done"#;
    let templates = json!([
        {"EmbeddedTmpl": "greeting={{ with nomadVar \"nomad/jobs/tmplsig\" }}{{ .greeting }}{{ end }} alloc={{ env \"NOMAD_ALLOC_ID\" }}",
         "DestPath": "local/app.conf", "ChangeMode": "signal", "ChangeSignal": "SIGHUP",
         "Perms": "0600", "Splay": 0},
        {"EmbeddedTmpl": "{{ with nomadVar \"nomad/jobs/tmplsig\" }}APP_USER={{ .user }}{{ end }}\n",
         "DestPath": "secrets/app.env", "Envvars": true, "ChangeMode": "noop"},
    ]);
    let alloc_id = run_job_and_wait(&http, &agent.url(""), &job("tmplsig", script, templates));
    let dir = alloc_dir(&agent, &alloc_id);
    let conf = dir.join("t/local/app.conf");
    assert_eq!(
        std::fs::read_to_string(&conf).expect("rendered before start"),
        format!("greeting=one alloc={alloc_id}")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&conf).expect("conf").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let out = wait_for(Duration::from_secs(30), "the task's first output", || {
        let s = stdout(&dir);
        s.contains("env: ").then_some(s)
    });
    assert!(
        out.contains(&format!("file: greeting=one alloc={alloc_id}")),
        "{out}"
    );
    assert!(out.contains("env: APP_USER=ann"), "{out}");

    put_var(
        &http,
        &agent,
        "nomad/jobs/tmplsig",
        json!({"greeting": "two", "user": "ann"}),
    );
    wait_for(Duration::from_secs(30), "the file re-rendered", || {
        std::fs::read_to_string(&conf)
            .ok()
            .filter(|s| s.starts_with("greeting=two"))
    });
    let hups = dir.join("t/local/hups");
    wait_for(Duration::from_secs(30), "the task signalled", || {
        std::fs::read_to_string(&hups)
            .ok()
            .filter(|s| !s.is_empty())
    });
    let out = wait_for(
        Duration::from_secs(30),
        "the task printing the new file",
        || {
            let s = stdout(&dir);
            s.contains("file: greeting=two").then_some(s)
        },
    );
    assert!(out.contains("file: greeting=two"), "{out}");
    // Settled: one change, one signal; the env template's output did not change, so its
    // noop mode was not even considered.
    // Events reach the server in the client's next status batch.
    let alloc = wait_for(Duration::from_secs(30), "the Signaling event", || {
        let a = alloc_of(&http, &agent, "tmplsig")?;
        (count(&events(&a), "Signaling", "Template re-rendered") > 0).then_some(a)
    });
    assert_eq!(std::fs::read_to_string(&hups).expect("hups"), "hup\n");
    let evs = events(&alloc);
    assert_eq!(
        count(&evs, "Signaling", "Template re-rendered"),
        1,
        "{evs:?}"
    );
    assert_eq!(alloc["TaskStates"]["t"]["State"], "running", "{evs:?}");
    assert_eq!(alloc["TaskStates"]["t"]["Restarts"], 0, "{evs:?}");
}

#[test]
fn a_restart_template_restarts_the_task_once_with_its_new_env_through_a_remote_server() {
    let mut dirs = DirGuard::default();
    let server = dirs.start(AgentOpts::server());
    // A separate client reaches the server over the RPC port, as on a real cluster.
    let _client = dirs.start(AgentOpts::client(vec![server.rpc_addr()], "tmpl-client"));
    let http = Http::default();
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=tmplrst".into()]);
    wait_for(Duration::from_secs(30), "the client node ready", || {
        let nodes = http.get(&server.url("/v1/nodes")).json();
        nodes
            .as_array()?
            .iter()
            .any(|n| n["Status"] == "ready")
            .then_some(())
    });
    put_var(
        &http,
        &server,
        "nomad/jobs/tmplrst/g/t",
        json!({"user": "ann"}),
    );
    let script = r#"echo "env: APP_USER=$APP_USER"; exec sleep 1000"#;
    let templates = json!([
        {"EmbeddedTmpl": "APP_USER={{ with nomadVar \"nomad/jobs/tmplrst/g/t\" }}{{ .user | toUpper }}{{ end }}\n",
         "DestPath": "secrets/app.env", "Envvars": true, "ChangeMode": "restart", "Splay": 0},
    ]);
    run_job_and_wait(&http, &server.url(""), &job("tmplrst", script, templates));

    put_var(
        &http,
        &server,
        "nomad/jobs/tmplrst/g/t",
        json!({"user": "bob"}),
    );
    let alloc = wait_for(Duration::from_secs(60), "the task restarted", || {
        let a = alloc_of(&http, &server, "tmplrst")?;
        let st = &a["TaskStates"]["t"];
        (st["Restarts"] == 1 && st["State"] == "running").then_some(a)
    });
    std::thread::sleep(Duration::from_millis(500));
    let alloc = alloc_of(&http, &server, "tmplrst").unwrap_or(alloc);
    let evs = events(&alloc);
    assert_eq!(
        count(
            &evs,
            "Restart Signaled",
            "Template with change_mode restart re-rendered"
        ),
        1,
        "{evs:?}"
    );
    assert_eq!(alloc["TaskStates"]["t"]["Restarts"], 1, "{evs:?}");
    // The client's data dir is not the server's: read the task's output over the API.
    let id = alloc["ID"].as_str().expect("alloc ID");
    let out = wait_for(Duration::from_secs(30), "the new instance's output", || {
        let r = http.get(&server.url(&format!(
            "/v1/client/fs/logs/{id}?task=t&type=stdout&plain=true&origin=start"
        )));
        (r.status == 200 && r.body.contains("APP_USER=BOB")).then_some(r.body)
    });
    assert!(out.contains("env: APP_USER=ANN"), "{out}");
    assert!(out.contains("env: APP_USER=BOB"), "{out}");
}

#[test]
fn a_missing_variable_holds_the_start_and_bad_destinations_fail_the_task() {
    let mut dirs = DirGuard::default();
    let agent = dirs.start(AgentOpts::dev());
    let http = Http::default();
    let _guard = ProcGuard(vec![
        "NOMAD_JOB_ID=tmplwait".into(),
        "NOMAD_JOB_ID=tmplbad".into(),
    ]);
    let templates = json!([
        {"EmbeddedTmpl": "[[ with nomadVar \"nomad/jobs/tmplwait\" ]][[ .k ]][[ end ]] {{ kept }}",
         "LeftDelim": "[[", "RightDelim": "]]", "DestPath": "local/out", "ChangeMode": "noop"},
    ]);
    let r = http.put(
        &agent.url("/v1/jobs"),
        &json!({"Job": job("tmplwait", "exec sleep 1000", templates)}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let alloc = wait_for(Duration::from_secs(30), "the Missing event", || {
        let a = alloc_of(&http, &agent, "tmplwait")?;
        events(&a)
            .iter()
            .any(|(t, m)| {
                t == "Template"
                    && m == "Missing: nomad.var.block(nomad/jobs/tmplwait@default.global)"
            })
            .then_some(a)
    });
    assert_eq!(alloc["TaskStates"]["t"]["State"], "pending");
    assert!(!events(&alloc).iter().any(|(t, _)| t == "Started"));

    put_var(&http, &agent, "nomad/jobs/tmplwait", json!({"k": "v"}));
    let alloc_id = wait_for(Duration::from_secs(30), "the task started", || {
        let a = alloc_of(&http, &agent, "tmplwait")?;
        (a["TaskStates"]["t"]["State"] == "running")
            .then(|| a["ID"].as_str().map(str::to_string))?
    });
    assert_eq!(
        std::fs::read_to_string(alloc_dir(&agent, &alloc_id).join("t/local/out")).expect("out"),
        "v {{ kept }}"
    );

    let templates =
        json!([{"EmbeddedTmpl": "x", "DestPath": "../../../escaped", "ChangeMode": "noop"}]);
    let r = http.put(
        &agent.url("/v1/jobs"),
        &json!({"Job": job("tmplbad", "exec sleep 1000", templates)}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let alloc = wait_for(Duration::from_secs(30), "the task failed", || {
        let a = alloc_of(&http, &agent, "tmplbad")?;
        (a["TaskStates"]["t"]["State"] == "dead").then_some(a)
    });
    assert_eq!(alloc["TaskStates"]["t"]["Failed"], true);
    let evs = events(&alloc);
    assert!(
        evs.iter().any(|(t, m)| t == "Killing"
            && m == "Template failed: template destination path escapes alloc directory"),
        "{evs:?}"
    );
    assert!(!evs.iter().any(|(t, _)| t == "Started"), "{evs:?}");
}

#[test]
fn with_acls_a_task_reads_its_own_paths_and_what_its_jobs_policy_grants() {
    let mut dirs = DirGuard::default();
    let mut opts = AgentOpts::dev();
    opts.extra_hcl.push_str("acl {\n  enabled = true\n}\n");
    let agent = dirs.start(opts);
    let r = Http::default().post(&agent.url("/v1/acl/bootstrap"), &json!({}));
    assert_eq!(r.status, 200, "bootstrap: {}", r.body);
    let token = r.json()["SecretID"].as_str().expect("SecretID").to_string();
    let http = Http::with_token(&token);
    let _guard = ProcGuard(vec![
        "NOMAD_JOB_ID=tmplacl".into(),
        "NOMAD_JOB_ID=tmpldeny".into(),
    ]);
    put_var(&http, &agent, "nomad/jobs/tmplacl", json!({"a": "own"}));
    put_var(&http, &agent, "app/shared", json!({"b": "granted"}));
    let rules = "namespace \"default\" {\n  variables {\n    path \"app/shared\" {\n      capabilities = [\"read\"]\n    }\n  }\n}\n";
    let r = http.post(
        &agent.url("/v1/acl/policy/tmplacl-vars"),
        &json!({"Name": "tmplacl-vars", "Rules": rules,
                "JobACL": {"Namespace": "default", "JobID": "tmplacl"}}),
    );
    assert_eq!(r.status, 200, "policy: {}", r.body);
    let both = "{{ with nomadVar \"nomad/jobs/tmplacl\" }}{{ .a }}{{ end }} {{ with nomadVar \"app/shared\" }}{{ .b }}{{ end }}";
    let templates = json!([{"EmbeddedTmpl": both, "DestPath": "local/out", "ChangeMode": "noop"}]);
    let alloc_id = run_job_and_wait(
        &http,
        &agent.url(""),
        &job("tmplacl", "exec sleep 1000", templates.clone()),
    );
    assert_eq!(
        std::fs::read_to_string(alloc_dir(&agent, &alloc_id).join("t/local/out")).expect("out"),
        "own granted"
    );

    // Another job has no policy attached: the shared variable is not its to read.
    let templates = json!([{"EmbeddedTmpl": "{{ with nomadVar \"app/shared\" }}{{ .b }}{{ end }}",
                            "DestPath": "local/out", "ChangeMode": "noop"}]);
    let r = http.put(
        &agent.url("/v1/jobs"),
        &json!({"Job": job("tmpldeny", "exec sleep 1000", templates)}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let alloc = wait_for(Duration::from_secs(30), "the task failed", || {
        let a = alloc_of(&http, &agent, "tmpldeny")?;
        (a["TaskStates"]["t"]["State"] == "dead").then_some(a)
    });
    let evs = events(&alloc);
    assert!(
        evs.iter().any(|(t, m)| t == "Killing"
            && m == "Template failed: nomadVar \"app/shared\": Permission denied"),
        "{evs:?}"
    );
    assert!(!evs.iter().any(|(t, _)| t == "Started"), "{evs:?}");
}

#[test]
fn script_change_mode_runs_in_the_task_and_once_templates_never_re_render() {
    let mut dirs = DirGuard::default();
    let agent = dirs.start(AgentOpts::dev());
    let http = Http::default();
    let _guard = ProcGuard(vec![
        "NOMAD_JOB_ID=tmplscript".into(),
        "NOMAD_JOB_ID=tmplonce".into(),
    ]);
    put_var(&http, &agent, "nomad/jobs/tmplscript", json!({"v": "1"}));
    put_var(&http, &agent, "nomad/jobs/tmplonce", json!({"v": "1"}));
    let templates = json!([{
        "EmbeddedTmpl": "v={{ with nomadVar \"nomad/jobs/tmplscript\" }}{{ .v }}{{ end }}",
        "DestPath": "local/conf", "ChangeMode": "script", "Splay": 0,
        "ChangeScript": {"Command": "/bin/sh",
                         "Args": ["-c", "cat ${NOMAD_TASK_DIR}/conf >> ${NOMAD_TASK_DIR}/script.log"],
                         "Timeout": 10 * SEC, "FailOnError": true},
    }]);
    let script_alloc = run_job_and_wait(
        &http,
        &agent.url(""),
        &job("tmplscript", "exec sleep 1000", templates),
    );
    let templates = json!([{
        "EmbeddedTmpl": "v={{ with nomadVar \"nomad/jobs/tmplonce\" }}{{ .v }}{{ end }}",
        "DestPath": "local/conf", "ChangeMode": "restart", "Once": true, "Splay": 0,
    }]);
    let once_alloc = run_job_and_wait(
        &http,
        &agent.url(""),
        &job("tmplonce", "exec sleep 1000", templates),
    );
    put_var(&http, &agent, "nomad/jobs/tmplscript", json!({"v": "2"}));
    put_var(&http, &agent, "nomad/jobs/tmplonce", json!({"v": "2"}));

    let log = alloc_dir(&agent, &script_alloc).join("t/local/script.log");
    wait_for(
        Duration::from_secs(30),
        "the change script's output",
        || std::fs::read_to_string(&log).ok().filter(|s| s == "v=2"),
    );
    let alloc = wait_for(Duration::from_secs(30), "the script's event", || {
        let a = alloc_of(&http, &agent, "tmplscript")?;
        events(&a)
            .iter()
            .any(|(t, m)| {
                t == "Task hook message"
                    && m.starts_with("Template successfully ran script /bin/sh")
            })
            .then_some(a)
    });
    assert_eq!(alloc["TaskStates"]["t"]["State"], "running");
    assert_eq!(alloc["TaskStates"]["t"]["Restarts"], 0);

    // The once template was rendered for the start and is left alone since.
    std::thread::sleep(Duration::from_millis(500));
    let conf = alloc_dir(&agent, &once_alloc).join("t/local/conf");
    assert_eq!(std::fs::read_to_string(&conf).expect("conf"), "v=1");
    let alloc = alloc_of(&http, &agent, "tmplonce").expect("alloc");
    assert_eq!(alloc["TaskStates"]["t"]["Restarts"], 0);
    assert_eq!(alloc["TaskStates"]["t"]["State"], "running");
}
