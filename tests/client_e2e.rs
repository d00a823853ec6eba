//! End-to-end tests of the client: real `yurt` agents (server + client in one process) that
//! fingerprint this machine, run raw_exec tasks as real processes and report them over the
//! HTTP API, checked the way a user's tools would check them (plus `/proc` and the alloc dir).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const SEC: i64 = 1_000_000_000;

fn register(http: &Http, agent: &Agent, job: Value) -> Value {
    let r = http.put(&agent.url("/v1/jobs"), &json!({ "Job": job }));
    assert_eq!(r.status, 200, "register: {}", r.body);
    r.json()
}

fn allocs_of(http: &Http, agent: &Agent, job: &str) -> Vec<Value> {
    let r = http.get(&agent.url(&format!("/v1/job/{job}/allocations")));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().cloned().unwrap_or_default()
}

fn alloc(http: &Http, agent: &Agent, id: &str) -> Value {
    let r = http.get(&agent.url(&format!("/v1/allocation/{id}")));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// Waits for `n` allocations of `job` whose ClientStatus is `status`.
fn wait_status(
    http: &Http,
    agent: &Agent,
    job: &str,
    n: usize,
    status: &str,
    timeout: Duration,
) -> Vec<Value> {
    wait_for(timeout, &format!("{n} {status} allocs of {job}"), || {
        let a: Vec<Value> = allocs_of(http, agent, job)
            .into_iter()
            .filter(|a| a["ClientStatus"] == status)
            .collect();
        (a.len() == n).then_some(a)
    })
}

fn event_types(state: &Value) -> Vec<String> {
    state["Events"]
        .as_array()
        .map(|evs| {
            evs.iter()
                .map(|e| e["Type"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A dev-style agent (server + client in one process) with node meta `x = "xval"`.
fn dev_agent(dirs: &mut DirGuard) -> Agent {
    let mut opts = AgentOpts::dev();
    opts.extra_hcl = "client {\n  meta {\n    x = \"xval\"\n  }\n}\n".into();
    dirs.start(opts)
}

fn wait_node_ready(http: &Http, agent: &Agent) -> Value {
    wait_for(Duration::from_secs(20), "a ready node", || {
        let nodes = http.get(&agent.url("/v1/nodes")).json();
        nodes
            .as_array()
            .and_then(|l| l.iter().find(|n| n["Status"] == "ready").cloned())
    })
}

fn raw_exec_job(id: &str, typ: &str, script: &str) -> Value {
    json!({
        "ID": id,
        "Name": id,
        "Type": typ,
        "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "g",
            "Count": 1,
            "ReschedulePolicy": {"Attempts": 0, "Unlimited": false},
            "Tasks": [{
                "Name": "t",
                "Driver": "raw_exec",
                "Config": {"command": "/bin/sh", "args": ["-c", script]},
                "Resources": {"CPU": 100, "MemoryMB": 64},
            }],
        }],
    })
}

#[test]
fn node_fingerprint_registration_and_stable_id() {
    let mut dirs = DirGuard::default();
    let mut agent = dev_agent(&mut dirs);
    let http = Http::default();
    let stub = wait_node_ready(&http, &agent);
    let id = stub["ID"].as_str().unwrap().to_string();
    assert_eq!(
        http.get(&agent.url("/v1/nodes"))
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let node = http.get(&agent.url(&format!("/v1/node/{id}"))).json();
    assert_eq!(node["Status"], "ready");
    assert_eq!(node["Datacenter"], "dc1");
    let attrs = node["Attributes"].as_object().expect("Attributes");
    for key in [
        "cpu.arch",
        "cpu.numcores",
        "cpu.frequency",
        "cpu.totalcompute",
        "cpu.modelname",
        "memory.totalbytes",
        "kernel.name",
        "kernel.version",
        "kernel.arch",
        "os.name",
        "os.version",
        "os.signals",
        "unique.hostname",
        "unique.network.ip-address",
        "unique.storage.volume",
        "unique.storage.bytestotal",
        "unique.storage.bytesfree",
        "os.cgroups.version",
        "nomad.version",
        "nomad.advertise.address",
        "driver.raw_exec",
    ] {
        let v = attrs.get(key).and_then(Value::as_str);
        assert!(
            v.is_some_and(|v| !v.is_empty()),
            "attribute {key} missing or empty: {v:?}"
        );
    }
    assert_eq!(attrs["driver.raw_exec"], "1");
    assert_eq!(attrs["kernel.name"], "linux");
    assert!(attrs["os.signals"].as_str().unwrap().contains("SIGINT"));
    let num = |k: &str| -> i64 {
        attrs[k]
            .as_str()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("{k} is not a number: {}", attrs[k]))
    };
    assert!(num("cpu.numcores") >= 1);
    assert!(num("cpu.totalcompute") >= num("cpu.frequency"));
    assert!(num("memory.totalbytes") > 64 << 20);
    assert!(num("unique.storage.bytestotal") >= num("unique.storage.bytesfree"));
    assert_eq!(
        attrs["nomad.advertise.address"],
        format!("127.0.0.1:{}", agent.http_port)
    );
    // Not -dev: the client fingerprints the default-route interface (or loopback without one).
    let ip = attrs["unique.network.ip-address"].as_str().unwrap();
    assert!(ip.parse::<std::net::IpAddr>().is_ok(), "{ip}");

    let raw = &node["Drivers"]["raw_exec"];
    assert_eq!(raw["Detected"], true, "{raw}");
    assert_eq!(raw["Healthy"], true, "{raw}");

    let res = &node["NodeResources"];
    let cpu = res["Cpu"]["CpuShares"].as_i64().unwrap();
    assert_eq!(cpu, num("cpu.totalcompute"), "{res}");
    assert_eq!(
        res["Memory"]["MemoryMB"].as_i64().unwrap(),
        num("memory.totalbytes") >> 20
    );
    assert!(res["Disk"]["DiskMB"].as_i64().unwrap() > 0, "{res}");
    assert!(
        res["Networks"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["IP"] == ip)),
        "{res}"
    );

    // The node keeps its identity across an agent restart.
    agent.restart();
    let again = wait_node_ready(&http, &agent);
    assert_eq!(again["ID"], id.as_str());
    assert_eq!(
        http.get(&agent.url("/v1/nodes"))
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn raw_exec_disabled_is_not_detected_and_not_placed() {
    let mut opts = AgentOpts::dev();
    opts.extra_hcl = "plugin \"raw_exec\" {\n  config {\n    enabled = false\n  }\n}\n".into();
    let mut dirs = DirGuard::default();
    let agent = dirs.start(opts);
    let http = Http::default();
    let stub = wait_node_ready(&http, &agent);
    let node = http
        .get(&agent.url(&format!("/v1/node/{}", stub["ID"].as_str().unwrap())))
        .json();
    assert!(
        node["Attributes"].get("driver.raw_exec").is_none(),
        "{}",
        node["Attributes"]
    );
    let raw = &node["Drivers"]["raw_exec"];
    assert_ne!(raw["Detected"], true, "{raw}");
    assert_ne!(raw["Healthy"], true, "{raw}");

    let resp = register(
        &http,
        &agent,
        raw_exec_job("nodriver", "service", "sleep 1"),
    );
    let eval_id = resp["EvalID"].as_str().unwrap().to_string();
    let eval = wait_for(Duration::from_secs(10), "eval complete", || {
        let e = http
            .get(&agent.url(&format!("/v1/evaluation/{eval_id}")))
            .json();
        (e["Status"] == "complete").then_some(e)
    });
    let failed = &eval["FailedTGAllocs"]["g"];
    assert!(failed.is_object(), "no FailedTGAllocs for g: {eval}");
    assert_eq!(
        failed["ConstraintFiltered"]["missing drivers"], 1,
        "the metric names the missing driver: {failed}"
    );
    assert!(allocs_of(&http, &agent, "nodriver").is_empty());
}

#[test]
fn service_count_three_env_interpolation_and_alloc_dir() {
    let mut dirs = DirGuard::default();
    let agent = dev_agent(&mut dirs);
    let http = Http::default();
    let node = wait_node_ready(&http, &agent);
    let node_id = node["ID"].as_str().unwrap().to_string();
    let node_ip = http.get(&agent.url(&format!("/v1/node/{node_id}"))).json()["Attributes"]
        ["unique.network.ip-address"]
        .as_str()
        .unwrap()
        .to_string();
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=envjob".into()]);

    let script = "env; echo \"INTERP=${attr.kernel.name}|${node.unique.id}|${meta.x}|${NOMAD_TASK_NAME}|\"'${nope}'; exec sleep 1000";
    let job = json!({
        "ID": "envjob",
        "Name": "envjob",
        "Type": "service",
        "Datacenters": ["dc1"],
        "Meta": {"jobkey": "jv"},
        "TaskGroups": [{
            "Name": "grp",
            "Count": 3,
            "Meta": {"grpkey": "gv"},
            "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
            "Tasks": [{
                "Name": "envtask",
                "Driver": "raw_exec",
                "Meta": {"taskkey": "tv"},
                "Config": {"command": "/bin/sh", "args": ["-c", script]},
                "Resources": {"CPU": 100, "MemoryMB": 64},
            }],
        }],
    });
    register(&http, &agent, job);
    let allocs = wait_status(
        &http,
        &agent,
        "envjob",
        3,
        "running",
        Duration::from_secs(20),
    );

    let mut indexes = HashSet::new();
    let mut pids = HashSet::new();
    for a in &allocs {
        let id = a["ID"].as_str().unwrap();
        let full = alloc(&http, &agent, id);
        let name = full["Name"].as_str().unwrap().to_string();
        let dir = alloc_dir(&agent, id);
        // The tree Nomad builds.
        for sub in [
            "alloc/data",
            "alloc/logs",
            "alloc/tmp",
            "envtask/local",
            "envtask/secrets",
            "envtask/private",
            "envtask/tmp",
        ] {
            assert!(
                dir.join(sub).is_dir(),
                "{} missing",
                dir.join(sub).display()
            );
        }
        // A real process per allocation, carrying the allocation's environment.
        let live = wait_for(Duration::from_secs(10), "task process", || {
            let p: Vec<i32> = pids_matching(&format!("NOMAD_ALLOC_ID={id}"))
                .into_iter()
                .filter(|p| proc_cmdline(*p).starts_with("sleep 1000"))
                .collect();
            (!p.is_empty()).then_some(p)
        });
        pids.extend(live);

        let out_path = dir.join("alloc/logs/envtask.stdout.0");
        let out = wait_for(Duration::from_secs(10), "task output", || {
            let s = std::fs::read_to_string(&out_path).ok()?;
            s.contains("INTERP=").then_some(s)
        });
        let env: BTreeMap<String, String> = out
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = |k: &str| {
            env.get(k)
                .cloned()
                .unwrap_or_else(|| panic!("{k} not in task env:\n{out}"))
        };
        let index: usize = get("NOMAD_ALLOC_INDEX").parse().unwrap();
        assert_eq!(name, format!("envjob.grp[{index}]"));
        indexes.insert(index);
        assert_eq!(get("NOMAD_ALLOC_ID"), id);
        assert_eq!(get("NOMAD_SHORT_ALLOC_ID"), &id[..8]);
        assert_eq!(get("NOMAD_ALLOC_NAME"), name);
        assert_eq!(get("NOMAD_TASK_NAME"), "envtask");
        assert_eq!(get("NOMAD_GROUP_NAME"), "grp");
        assert_eq!(get("NOMAD_JOB_ID"), "envjob");
        assert_eq!(get("NOMAD_JOB_NAME"), "envjob");
        assert_eq!(get("NOMAD_DC"), "dc1");
        assert_eq!(get("NOMAD_REGION"), "global");
        assert_eq!(get("NOMAD_NAMESPACE"), "default");
        assert_eq!(get("NOMAD_CPU_LIMIT"), "100");
        assert_eq!(get("NOMAD_MEMORY_LIMIT"), "64");
        assert_eq!(
            get("NOMAD_ALLOC_DIR"),
            dir.join("alloc").display().to_string()
        );
        assert_eq!(
            get("NOMAD_TASK_DIR"),
            dir.join("envtask/local").display().to_string()
        );
        assert_eq!(
            get("NOMAD_SECRETS_DIR"),
            dir.join("envtask/secrets").display().to_string()
        );
        for (k, v) in [("jobkey", "jv"), ("grpkey", "gv"), ("taskkey", "tv")] {
            assert_eq!(get(&format!("NOMAD_META_{k}")), v);
            assert_eq!(get(&format!("NOMAD_META_{}", k.to_uppercase())), v);
        }
        // The group's dynamic port, as the scheduler allocated it.
        let ports = full["AllocatedResources"]["Shared"]["Ports"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let port = ports
            .iter()
            .find(|p| p["Label"] == "http")
            .unwrap_or_else(|| panic!("no http port allocated: {}", full["AllocatedResources"]));
        let value = port["Value"].as_i64().unwrap();
        assert!((20000..=32000).contains(&value), "{port}");
        assert_eq!(get("NOMAD_PORT_http"), value.to_string());
        assert_eq!(get("NOMAD_HOST_PORT_http"), value.to_string());
        assert_eq!(get("NOMAD_ADDR_http"), format!("{node_ip}:{value}"));
        // Node values interpolated in args; an unknown reference stays literal.
        assert!(
            out.contains(&format!("INTERP=linux|{node_id}|xval|envtask|${{nope}}")),
            "{out}"
        );
    }
    assert_eq!(indexes, HashSet::from([0, 1, 2]));
    assert_eq!(pids.len(), 3, "{pids:?}");
}

#[test]
fn batch_job_completes_with_nomad_events() {
    let mut dirs = DirGuard::default();
    let agent = dev_agent(&mut dirs);
    let http = Http::default();
    wait_node_ready(&http, &agent);
    register(
        &http,
        &agent,
        raw_exec_job("okbatch", "batch", "echo hello"),
    );
    let a = wait_status(
        &http,
        &agent,
        "okbatch",
        1,
        "complete",
        Duration::from_secs(20),
    );
    let full = alloc(&http, &agent, a[0]["ID"].as_str().unwrap());
    let st = &full["TaskStates"]["t"];
    assert_eq!(st["State"], "dead", "{st}");
    assert_eq!(st["Failed"], false);
    assert_eq!(
        event_types(st),
        ["Received", "Task Setup", "Started", "Terminated"],
        "{st}"
    );
    let term = &st["Events"][3];
    assert_eq!(term["ExitCode"], 0);
    assert_eq!(term["Details"]["exit_code"], "0", "{term}");
    assert_eq!(st["Events"][1]["Message"], "Building Task Directory");
    assert!(
        st["StartedAt"]
            .as_str()
            .is_some_and(|s| !s.starts_with("0001"))
    );
    assert!(
        st["FinishedAt"]
            .as_str()
            .is_some_and(|s| !s.starts_with("0001"))
    );
    // The output is on disk by the time the allocation is reported complete.
    let logs = alloc_dir(&agent, a[0]["ID"].as_str().unwrap()).join("alloc/logs");
    let out = std::fs::read_to_string(logs.join("t.stdout.0")).unwrap_or_else(|e| {
        let ls: Vec<_> = std::fs::read_dir(&logs)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        panic!("t.stdout.0: {e}; {} holds {ls:?}", logs.display())
    });
    assert_eq!(out, "hello\n");
}

#[test]
fn failing_batch_task_restarts_per_policy_then_fails() {
    let mut dirs = DirGuard::default();
    let agent = dev_agent(&mut dirs);
    let http = Http::default();
    wait_node_ready(&http, &agent);
    let mut job = raw_exec_job("failbatch", "batch", "exit 1");
    job["TaskGroups"][0]["RestartPolicy"] =
        json!({"Attempts": 2, "Interval": 3600 * SEC, "Delay": SEC, "Mode": "fail"});
    register(&http, &agent, job);
    let a = wait_status(
        &http,
        &agent,
        "failbatch",
        1,
        "failed",
        Duration::from_secs(30),
    );
    let full = alloc(&http, &agent, a[0]["ID"].as_str().unwrap());
    let st = &full["TaskStates"]["t"];
    assert_eq!(st["State"], "dead", "{st}");
    assert_eq!(st["Failed"], true, "{st}");
    assert_eq!(st["Restarts"], 2, "{st}");
    let events = st["Events"].as_array().unwrap();
    let restarting: Vec<&Value> = events
        .iter()
        .filter(|e| e["Type"] == "Restarting")
        .collect();
    assert_eq!(restarting.len(), 2, "{st}");
    for r in &restarting {
        let d = r["StartDelay"].as_i64().unwrap();
        assert!((SEC..SEC + SEC / 4).contains(&d), "StartDelay {d}: {r}");
        assert_eq!(r["Details"]["start_delay"], d.to_string(), "{r}");
        assert_eq!(r["Details"]["restart_reason"], "Restart within policy");
    }
    // The restarts really waited for their delay.
    let started: Vec<i64> = events
        .iter()
        .filter(|e| e["Type"] == "Started")
        .map(|e| e["Time"].as_i64().unwrap())
        .collect();
    assert!(started.len() >= 2, "{st}");
    for w in started.windows(2) {
        assert!(w[1] - w[0] >= SEC, "restarted too soon: {started:?}");
    }
    let last = events.last().unwrap();
    assert_eq!(last["Type"], "Not Restarting", "{st}");
    assert_eq!(last["Details"]["fails_task"], "true", "{last}");
    assert!(
        last["Details"]["restart_reason"]
            .as_str()
            .unwrap()
            .starts_with("Exceeded allowed attempts 2 in interval"),
        "{last}"
    );
    assert_eq!(full["ClientStatus"], "failed");
}

#[test]
fn task_ignoring_sigint_is_killed_after_kill_timeout() {
    let mut dirs = DirGuard::default();
    let agent = dev_agent(&mut dirs);
    let http = Http::default();
    wait_node_ready(&http, &agent);
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=stubborn".into()]);
    let mut job = raw_exec_job(
        "stubborn",
        "service",
        "trap '' INT; touch \"$NOMAD_TASK_DIR/trapped\"; while true; do sleep 0.1; done",
    );
    job["TaskGroups"][0]["Tasks"][0]["KillTimeout"] = json!(2 * SEC);
    register(&http, &agent, job);
    let a = wait_status(
        &http,
        &agent,
        "stubborn",
        1,
        "running",
        Duration::from_secs(20),
    );
    let id = a[0]["ID"].as_str().unwrap().to_string();
    // The shell must have installed its trap before it is asked to stop; it says so with a
    // file, which is waited for (a fixed pause is too short on a loaded machine).
    let trapped = alloc_dir(&agent, &id).join("t/local/trapped");
    wait_for(
        Duration::from_secs(20),
        "the task's INT trap installed",
        || trapped.exists().then_some(()),
    );

    let t0 = Instant::now();
    let r = http.delete(&agent.url("/v1/job/stubborn"));
    assert_eq!(r.status, 200, "{}", r.body);
    let st = wait_for(Duration::from_secs(20), "task killed", || {
        let st = alloc(&http, &agent, &id)["TaskStates"]["t"].clone();
        (st["State"] == "dead" && event_types(&st).contains(&"Killed".to_string())).then_some(st)
    });
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2),
        "killed after {elapsed:?}"
    );
    let types = event_types(&st);
    assert!(
        types.ends_with(&["Killing".into(), "Terminated".into(), "Killed".into()]),
        "{types:?}"
    );
    let events = st["Events"].as_array().unwrap();
    let n = events.len();
    let killing = &events[n - 3];
    assert_eq!(killing["Details"]["kill_timeout"], "2s", "{killing}");
    assert_eq!(killing["KillTimeout"], 2 * SEC);
    let waited = events[n - 2]["Time"].as_i64().unwrap() - killing["Time"].as_i64().unwrap();
    assert!(waited >= 2 * SEC, "SIGKILL came {waited} ns after Killing");
    // Killed by SIGKILL, which is not a task failure.
    assert_eq!(events[n - 2]["Details"]["signal"], "9", "{}", events[n - 2]);
    assert_eq!(st["Failed"], false);
    assert!(
        pids_matching(&format!("NOMAD_ALLOC_ID={id}")).is_empty(),
        "task processes left after the kill"
    );
}

#[test]
fn stopping_a_job_leaves_no_process_of_the_task_tree() {
    let mut dirs = DirGuard::default();
    let agent = dev_agent(&mut dirs);
    let http = Http::default();
    wait_node_ready(&http, &agent);
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=forker".into()]);
    let job = raw_exec_job(
        "forker",
        "service",
        "sleep 1000 & sleep 1000 & setsid sleep 1000 & wait",
    );
    register(&http, &agent, job);
    let a = wait_status(
        &http,
        &agent,
        "forker",
        1,
        "running",
        Duration::from_secs(20),
    );
    let id = a[0]["ID"].as_str().unwrap().to_string();
    let needle = format!("NOMAD_ALLOC_ID={id}");
    // The shell and its three sleeps.
    wait_for(Duration::from_secs(10), "the task's process tree", || {
        let sleeps = pids_matching(&needle)
            .into_iter()
            .filter(|p| proc_cmdline(*p) == "sleep 1000")
            .count();
        (sleeps == 3).then_some(())
    });

    let r = http.delete(&agent.url("/v1/job/forker"));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(Duration::from_secs(20), "task dead", || {
        let st = alloc(&http, &agent, &id)["TaskStates"]["t"].clone();
        (st["State"] == "dead").then_some(())
    });
    // Give a sweep a moment, then nothing of the tree may remain.
    let left = wait_for(Duration::from_secs(5), "no process left", || {
        let p = pids_matching(&needle);
        p.is_empty().then_some(p)
    });
    assert!(left.is_empty());
}

#[test]
fn log_rotation_keeps_the_tail_under_a_fast_writer() {
    let mut dirs = DirGuard::default();
    let agent = dev_agent(&mut dirs);
    let http = Http::default();
    wait_node_ready(&http, &agent);
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=rotator".into()]);
    let mut job = raw_exec_job("rotator", "service", "seq 1 3000000; exec sleep 1000");
    job["TaskGroups"][0]["Tasks"][0]["LogConfig"] = json!({"MaxFiles": 2, "MaxFileSizeMB": 1});
    register(&http, &agent, job);
    let a = wait_status(
        &http,
        &agent,
        "rotator",
        1,
        "running",
        Duration::from_secs(20),
    );
    let id = a[0]["ID"].as_str().unwrap().to_string();
    let logs = alloc_dir(&agent, &id).join("alloc/logs");

    // (index, content) of every stdout file, in index order.
    let read = || -> Vec<(u64, Vec<u8>)> {
        let mut files: Vec<(u64, Vec<u8>)> = std::fs::read_dir(&logs)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().to_string();
                        let n = name.strip_prefix("t.stdout.")?.parse().ok()?;
                        Some((n, std::fs::read(e.path()).ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort_by_key(|f| f.0);
        files
    };
    let files = wait_for(Duration::from_secs(60), "all output written", || {
        let f = read();
        let done = f.last().is_some_and(|(_, b)| b.ends_with(b"\n3000000\n"));
        (done && f.len() <= 2).then_some(f)
    });
    // Several rotations happened (the output is ~20 MiB) and only two files are kept.
    assert!(
        files[0].0 >= 10,
        "indexes {:?}",
        files.iter().map(|f| f.0).collect::<Vec<_>>()
    );
    assert_eq!(files.len(), 2);
    assert_eq!(files[1].0, files[0].0 + 1);
    for (_, b) in &files {
        assert!(b.len() <= 1 << 20, "file over 1 MiB: {}", b.len());
    }
    let all: Vec<u8> = files.iter().flat_map(|f| f.1.clone()).collect();
    let text = String::from_utf8(all).unwrap();
    let nums: Vec<u64> = text
        .lines()
        .map(|l| {
            l.parse()
                .unwrap_or_else(|_| panic!("not a whole line: {l:?}"))
        })
        .collect();
    assert_eq!(*nums.last().unwrap(), 3_000_000);
    for w in nums.windows(2) {
        assert_eq!(w[1], w[0] + 1, "gap in the kept tail");
    }
    assert!(text.len() > 1 << 20, "kept only {} bytes", text.len());
}
