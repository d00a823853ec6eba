//! End-to-end tests of the per-allocation client endpoints (signal, restart, stats, fs,
//! logs, exec) and alloc stop, against real agents running real raw_exec, exec and docker
//! tasks — on a dev agent and through a server agent whose allocations run on a separate
//! client agent.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::ws::{self, collect, connect, exec_url, read_until, send, stdin};
use common::*;
use serde_json::{Value, json};

/// Traps SIGUSR1, writes a secret, then prints a marker unique to this run of the process (a
/// PID would not do: exec and docker tasks are PID 1 of their namespace every time), idles.
/// The marker comes last: once it is in the log the trap is installed, so a test that waits
/// for it cannot signal a shell that would still die of SIGUSR1's default action.
const TRAP: &str = "trap 'echo got USR1' USR1; \
                    echo s3cret > \"$NOMAD_SECRETS_DIR/token\"; \
                    echo run=$(cat /proc/sys/kernel/random/uuid); \
                    while true; do sleep 0.1; done";

fn task_events(http: &Http, base: &str, alloc: &str, task: &str) -> Vec<Value> {
    let a = http.get(&format!("{base}/v1/allocation/{alloc}")).json();
    a["TaskStates"][task]["Events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn has_event(events: &[Value], ty: &str) -> bool {
    events.iter().any(|e| e["Type"] == ty)
}

fn plain_logs(http: &Http, base: &str, alloc: &str, task: &str) -> String {
    let r = http.get(&format!(
        "{base}/v1/client/fs/logs/{alloc}?task={task}&type=stdout&plain=true"
    ));
    assert_eq!(r.status, 200, "logs: {}", r.body);
    r.body
}

/// Signal, restart and their errors, asked of `api` while the alloc runs where it runs;
/// events are read from `server`.
fn check_signal_and_restart(http: &Http, api: &str, server: &str, alloc: &str) {
    // Signal: methods, unknown alloc, bad body, unknown and named task.
    let sig = format!("{api}/v1/client/allocation/{alloc}/signal");
    assert_eq!(http.get(&sig).status, 405);
    let unknown = "00000000-0000-0000-0000-000000000000";
    let r = http.post(
        &format!("{api}/v1/client/allocation/{unknown}/signal"),
        &json!({"Signal": "SIGUSR1"}),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.body, format!("Unknown allocation \"{unknown}\""));
    let r = http.post_raw(&sig, b"{not json".to_vec());
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.starts_with("Failed to decode body"), "{}", r.body);
    let r = http.post(&sig, &json!({"Signal": "SIGUSR1", "Task": "nope"}));
    assert_eq!((r.status, r.body.as_str()), (500, "Task not found"));

    wait_for(Duration::from_secs(30), "the task's trap installed", || {
        (!run_lines(&plain_logs(http, api, alloc, "trap")).is_empty()).then_some(())
    });
    let r = http.put(&sig, &json!({"Signal": "SIGUSR1", "Task": "trap"}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["Index"], 0);
    wait_for(Duration::from_secs(10), "trap output", || {
        plain_logs(http, api, alloc, "trap")
            .contains("got USR1")
            .then_some(())
    });
    wait_for(Duration::from_secs(10), "Signaling event", || {
        task_events(http, server, alloc, "trap")
            .iter()
            .find(|e| e["Type"] == "Signaling")
            .map(|e| assert_eq!(e["Details"]["signal"], "SIGUSR1"))
    });

    // Restart: errors first, then a real one.
    let rst = format!("{api}/v1/client/allocation/{alloc}/restart");
    let r = http.put(&rst, &json!({"TaskName": "trap", "AllTasks": true}));
    assert_eq!(r.status, 500);
    assert_eq!(r.body, "task name cannot be set when restarting all tasks");
    let r = http.put(&rst, &json!({"TaskName": "nope"}));
    assert_eq!(r.status, 500);
    assert_eq!(r.body, "Could not find task runner for task: nope");

    let r = http.put(&rst, &json!({"TaskName": "trap"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let runs = wait_for(Duration::from_secs(30), "second run line", || {
        let runs = run_lines(&plain_logs(http, api, alloc, "trap"));
        (runs.len() >= 2).then_some(runs)
    });
    assert_ne!(runs[0], runs[1], "restart must start a new process");
    let events = wait_for(Duration::from_secs(10), "restart events", || {
        let ev = task_events(http, server, alloc, "trap");
        (has_event(&ev, "Restart Signaled") && has_event(&ev, "Restarting")).then_some(ev)
    });
    let types: Vec<&str> = events.iter().filter_map(|e| e["Type"].as_str()).collect();
    let sig_at = types.iter().position(|t| *t == "Restart Signaled").unwrap();
    let rst_at = types.iter().rposition(|t| *t == "Restarting").unwrap();
    assert!(sig_at < rst_at, "{types:?}");
    assert_eq!(events[rst_at]["StartDelay"], 0);
    // Attempts 0 + mode fail: a consumed attempt would have failed the task.
    assert!(!has_event(&events, "Not Restarting"), "{types:?}");
    wait_for(Duration::from_secs(10), "running again", || {
        let a = http.get(&format!("{server}/v1/allocation/{alloc}")).json();
        (a["TaskStates"]["trap"]["State"] == "running").then_some(())
    });

    // Restart of all running tasks. It completes asynchronously: the checks that follow
    // compare log reads with each other, so the new run must have started (and printed its
    // line) first — on a loaded machine it otherwise lands between two of those reads.
    let r = http.post(&rst, &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let runs = wait_for(Duration::from_secs(30), "third run line", || {
        let runs = run_lines(&plain_logs(http, api, alloc, "trap"));
        (runs.len() >= 3).then_some(runs)
    });
    assert_ne!(
        runs[1], runs[2],
        "restarting all tasks starts a new process"
    );
    wait_for(
        Duration::from_secs(10),
        "running again after restarting all",
        || {
            let a = http.get(&format!("{server}/v1/allocation/{alloc}")).json();
            (a["TaskStates"]["trap"]["State"] == "running").then_some(())
        },
    );
}

/// The `run=<marker>` lines of a task's output, one per process that ran.
fn run_lines(logs: &str) -> Vec<String> {
    logs.lines()
        .filter_map(|l| l.strip_prefix("run="))
        .map(str::to_string)
        .collect()
}

fn check_stats(http: &Http, api: &str, alloc: &str) {
    // The task may still be coming back from the restart of all running tasks.
    let s = wait_for(Duration::from_secs(10), "task measured", || {
        let r = http.get(&format!("{api}/v1/client/allocation/{alloc}/stats"));
        assert_eq!(r.status, 200, "{}", r.body);
        let s = r.json();
        s["Tasks"].get("trap").is_some().then_some(s)
    });
    assert!(s["Timestamp"].as_i64().is_some_and(|t| t > 0), "{s}");
    let task = &s["Tasks"]["trap"];
    assert!(
        task["ResourceUsage"]["MemoryStats"]["RSS"]
            .as_u64()
            .is_some_and(|r| r > 0),
        "{s}"
    );
    assert!(task["ResourceUsage"]["CpuStats"].is_object());
    assert!(s["ResourceUsage"]["MemoryStats"]["RSS"].as_u64().unwrap() > 0);
    let r = http.get(&format!(
        "{api}/v1/client/allocation/{alloc}/stats?task=nope"
    ));
    assert_eq!(r.json()["Tasks"], json!({}));
}

fn check_fs(http: &Http, api: &str, alloc: &str) {
    let fs = |op: &str, q: &str| http.get(&format!("{api}/v1/client/fs/{op}/{alloc}?{q}"));
    let ls = fs("ls", "path=/").json();
    let names: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["Name"].as_str())
        .collect();
    assert!(
        names.contains(&"alloc") && names.contains(&"trap"),
        "{names:?}"
    );
    let alloc_dir = ls
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Name"] == "alloc")
        .unwrap();
    assert_eq!(alloc_dir["IsDir"], true);
    assert_eq!(alloc_dir["FileMode"], "drwxrwxrwx");

    // Secrets can be listed but not read.
    let r = fs("ls", "path=trap/secrets");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("token"), "{}", r.body);
    for op in ["cat", "stream"] {
        let r = fs(op, "path=trap/secrets/token&follow=false");
        assert_eq!(r.status, 500, "{op}: {}", r.body);
        assert_eq!(r.body, "Reading secret file prohibited: trap/secrets/token");
    }
    let r = fs("readat", "path=/trap/secrets/token&offset=0");
    assert!(
        r.body.starts_with("Reading secret file prohibited"),
        "{}",
        r.body
    );

    // Escapes, lexical and through a symlink.
    for q in ["path=../../../etc/passwd", "path=alloc/../../x"] {
        let r = fs("cat", q);
        assert_eq!(r.status, 400, "{q}: {}", r.body);
        assert_eq!(r.body, "Path escapes the alloc directory");
    }
    let r = fs("ls", "path=/..");
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "Path escapes the alloc directory")
    );

    let log = "path=alloc/logs/trap.stdout.0";
    let st = fs("stat", log).json();
    assert_eq!(st["Name"], "trap.stdout.0");
    assert_eq!(st["IsDir"], false);
    assert_eq!(st["ContentType"], "text/plain; charset=utf-8");
    let cat = fs("cat", log);
    assert_eq!(cat.status, 200);
    assert!(cat.body.starts_with("run="), "{}", cat.body);
    let r = fs("readat", &format!("{log}&offset=1&limit=3"));
    assert_eq!(r.body, "un=");
    let r = fs("readat", log);
    assert_eq!(r.status, 500);
    assert!(r.body.starts_with("error parsing offset"), "{}", r.body);
    assert_eq!(fs("stat", "").status, 400);
    assert_eq!(fs("ls", "path=missing").status, 404);
    let r = fs("cat", "path=alloc");
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "file \"alloc\" is a directory")
    );

    // A non-following stream of the log ends with the file's data in frames.
    let r = fs("stream", &format!("{log}&follow=false"));
    assert_eq!(r.status, 200);
    let frames = parse_frames(r.body.as_bytes());
    assert_eq!(frames_data(&frames), cat.body.as_bytes());
    assert_eq!(frames[0]["File"], "alloc/logs/trap.stdout.0");
    assert_eq!(fs("stream", &format!("{log}&origin=middle")).status, 400);

    // Logs errors.
    let logs = |q: &str| http.get(&format!("{api}/v1/client/fs/logs/{alloc}?{q}"));
    let r = logs("task=nope&type=stdout");
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "unknown task name \"nope\"")
    );
    assert_eq!(logs("type=stdout").body, "must provide task name");
    assert_eq!(logs("task=trap").status, 400);
    let r = logs("task=trap&type=stdout");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(frames_data(&parse_frames(r.body.as_bytes())).starts_with(b"run="));
    let unknown = "00000000-0000-0000-0000-000000000000";
    let r = http.get(&format!("{api}/v1/client/fs/ls/{unknown}"));
    assert_eq!(
        (r.status, r.body.clone()),
        (404, format!("Unknown allocation \"{unknown}\""))
    );
}

/// Exec into the `trap` task: stdout, stderr and exit code 3 without a TTY, stdin through
/// `cat`, an interactive shell with a TTY that follows a resize, and then each of `probes`
/// (a shell command and what its output must contain) to show where the command ran.
fn check_exec(api: &str, alloc: &str, probes: &[(&str, &str)]) {
    ws::rt().block_on(async {
        let url = exec_url(
            api,
            alloc,
            "trap",
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            "",
        );
        let o = collect(&mut connect(&url).await).await;
        assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n", "{o:?}");
        assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n", "{o:?}");
        assert_eq!(o.exit_code(), Some(3), "{o:?}");
        assert_eq!(o.close.as_ref().map(|c| c.0), Some(1000), "{o:?}");

        let mut s = connect(&exec_url(api, alloc, "trap", &["cat"], "")).await;
        send(&mut s, json!({})).await;
        stdin(&mut s, "through cat\n").await;
        send(&mut s, json!({"stdin": {"close": true}})).await;
        let o = collect(&mut s).await;
        assert_eq!(String::from_utf8_lossy(&o.stdout), "through cat\n", "{o:?}");
        assert_eq!(o.exit_code(), Some(0), "{o:?}");

        let mut s = connect(&exec_url(api, alloc, "trap", &["/bin/sh"], "&tty=true")).await;
        let mut acc = Vec::new();
        stdin(&mut s, "echo $((6*7))\n").await;
        read_until(&mut s, &mut acc, "42").await;
        send(&mut s, json!({"tty_size": {"height": 33, "width": 111}})).await;
        stdin(&mut s, "stty size\n").await;
        read_until(&mut s, &mut acc, "33 111").await;
        stdin(&mut s, "exit 4\n").await;
        let o = collect(&mut s).await;
        assert_eq!(o.exit_code(), Some(4), "{o:?}");

        for (probe, want) in probes {
            let url = exec_url(api, alloc, "trap", &["sh", "-c", probe], "");
            let o = collect(&mut connect(&url).await).await;
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(out.contains(want), "{probe}: want {want:?}, got {o:?}");
        }
    });
}

/// Stops the allocation and checks the replacement's links.
fn check_stop(http: &Http, api: &str, alloc: &str) {
    let r = http.get(&format!("{api}/v1/allocation/{alloc}/stop"));
    assert_eq!(r.status, 405);
    let r = http.post(&format!("{api}/v1/allocation/{alloc}/stop"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert!(
        body["EvalID"].as_str().is_some_and(|e| e.len() == 36),
        "{body}"
    );
    assert!(body["Index"].as_u64().unwrap() > 0);
    let next = wait_for(Duration::from_secs(20), "replacement", || {
        let a = http.get(&format!("{api}/v1/allocation/{alloc}")).json();
        a["NextAllocation"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(str::to_string)
    });
    let new = http.get(&format!("{api}/v1/allocation/{next}")).json();
    assert_eq!(new["PreviousAllocation"], alloc);
    let old = http.get(&format!("{api}/v1/allocation/{alloc}")).json();
    assert_eq!(old["DesiredStatus"], "stop");
    let r = http.post(
        &format!("{api}/v1/allocation/00000000-0000-0000-0000-000000000000/stop"),
        &json!({}),
    );
    assert_eq!(r.status, 404);
}

#[test]
fn lifecycle_fs_stats_and_stop_on_a_dev_agent() {
    let agent = Agent::start(AgentOpts::dev());
    let http = Http::default();
    let base = agent.url("");
    let job = shell_job("lifecycle", &[("trap", TRAP)]);
    let alloc = run_job_and_wait(&http, &base, &job);
    check_signal_and_restart(&http, &base, &base, &alloc);
    check_stats(&http, &base, &alloc);
    check_fs(&http, &base, &alloc);
    let host = http.get(&agent.url("/v1/client/stats")).json();
    assert!(host["Memory"]["Total"].as_u64().unwrap() > 0, "{host}");
    assert!(!host["CPU"].as_array().unwrap().is_empty());
    assert!(host["Uptime"].as_u64().unwrap() > 0);
    check_stop(&http, &base, &alloc);
}

#[test]
fn every_endpoint_works_through_the_server_agent() {
    let server = Agent::start(AgentOpts::server());
    let client = Agent::start(AgentOpts::client(vec![server.rpc_addr()], "c1"));
    let http = Http::default();
    let sbase = server.url("");
    wait_for(Duration::from_secs(20), "client node ready", || {
        let nodes = http.get(&server.url("/v1/nodes")).json();
        nodes
            .as_array()
            .filter(|n| n.iter().any(|n| n["Status"] == "ready"))
            .map(|_| ())
    });
    let job = shell_job("forwarded", &[("trap", TRAP)]);
    let alloc = run_job_and_wait(&http, &sbase, &job);
    check_signal_and_restart(&http, &sbase, &sbase, &alloc);
    check_stats(&http, &sbase, &alloc);
    check_fs(&http, &sbase, &alloc);

    // A following log stream through the server stays live: the signal's output arrives.
    let url = format!(
        "{sbase}/v1/client/fs/logs/{alloc}?task=trap&type=stdout&follow=true&origin=end&offset=0"
    );
    let signal_url = format!("{sbase}/v1/client/allocation/{alloc}/signal");
    // The stream starts at the end of the log once it is set up, which takes an unknown
    // time on a loaded machine: the signal is repeated until the stream has seen its output,
    // so one sent before the stream was live cannot make the test fail.
    let seen = Arc::new(AtomicBool::new(false));
    let sender = std::thread::spawn({
        let seen = Arc::clone(&seen);
        move || {
            let http = Http::default();
            let mut statuses = Vec::new();
            while !seen.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(500));
                let r = http.post(&signal_url, &json!({"Signal": "SIGUSR1", "Task": "trap"}));
                statuses.push(r.status);
            }
            statuses
        }
    });
    let (status, body) = read_stream_until(&url, Duration::from_secs(30), |b| {
        frames_data(&parse_frames(b))
            .windows(8)
            .any(|w| w == b"got USR1")
    });
    seen.store(true, Ordering::Release);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&frames_data(&parse_frames(&body))).contains("got USR1"));
    let statuses = sender.join().unwrap();
    assert!(
        !statuses.is_empty() && statuses.iter().all(|s| *s == 200),
        "{statuses:?}"
    );

    // Node-level stats for the client's node, asked of the server.
    let node_id = http.get(&format!("{sbase}/v1/allocation/{alloc}")).json()["NodeID"]
        .as_str()
        .unwrap()
        .to_string();
    let host = http.get(&format!("{sbase}/v1/client/stats?node_id={node_id}"));
    assert_eq!(host.status, 200, "{}", host.body);
    assert!(host.json()["Memory"]["Total"].as_u64().unwrap() > 0);

    // The client-only agent serves the public API by asking the server.
    let jobs = http.get(&client.url("/v1/jobs"));
    assert_eq!(jobs.status, 200, "{}", jobs.body);
    assert_eq!(jobs.json()[0]["ID"], "forwarded");
    check_stop(&http, &client.url(""), &alloc);
}

#[test]
fn logs_follow_rotation_and_tail_across_files() {
    let agent = Agent::start(AgentOpts::dev());
    let http = Http::default();
    let base = agent.url("");
    // ~100 KiB every 50 ms up to 1.5 MiB, then idle: .0 fills and rotates into .1 live.
    let writer = "i=0; while [ $i -lt 15 ]; do head -c 102400 /dev/zero | tr '\\0' \"$((i % 10))\"; \
                  echo; i=$((i+1)); sleep 0.05; done; while true; do sleep 1; done";
    let job = shell_job("rotate", &[("w", writer)]);
    let alloc = run_job_and_wait(&http, &base, &job);

    let url = format!("{base}/v1/client/fs/logs/{alloc}?task=w&type=stdout&follow=true");
    let (status, body) = read_stream_until(&url, Duration::from_secs(20), |b| {
        frames_data(&parse_frames(b)).len() >= 15 * 102_401
    });
    assert_eq!(status, 200);
    let frames = parse_frames(&body);
    let files: Vec<&str> = frames.iter().filter_map(|f| f["File"].as_str()).collect();
    let first_one = files.iter().position(|f| *f == "alloc/logs/w.stdout.1");
    assert!(first_one.is_some(), "never followed into .1: {files:?}");
    assert!(
        files[..first_one.unwrap()]
            .iter()
            .all(|f| *f == "alloc/logs/w.stdout.0")
    );
    let all = frames_data(&frames);
    assert_eq!(all.len(), 15 * 102_401);

    // origin=end&offset=N: the last N bytes, across the file boundary.
    let sizes: Vec<u64> = http
        .get(&format!("{base}/v1/client/fs/ls/{alloc}?path=alloc/logs"))
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["Name"].as_str().unwrap().starts_with("w.stdout."))
        .map(|e| e["Size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    let n = sizes[1] + 1000;
    let r = http.get(&format!(
        "{base}/v1/client/fs/logs/{alloc}?task=w&type=stdout&origin=end&offset={n}&plain=true"
    ));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(r.body.len() as u64, n);
    assert_eq!(r.body.as_bytes(), &all[all.len() - n as usize..]);
    // Non-following logs end at EOF.
    let r = http.get(&format!(
        "{base}/v1/client/fs/logs/{alloc}?task=w&type=stdout&plain=true"
    ));
    assert_eq!(r.body.len(), all.len());
}

#[test]
fn restart_all_tasks_reruns_finished_prestart_tasks() {
    let agent = Agent::start(AgentOpts::dev());
    let http = Http::default();
    let base = agent.url("");
    let mut job = shell_job(
        "prestart",
        &[
            ("init", "echo init-ran"),
            ("main", "echo main-$$; while true; do sleep 0.1; done"),
        ],
    );
    job["TaskGroups"][0]["Tasks"][0]["Lifecycle"] = json!({"Hook": "prestart", "Sidecar": false});
    let r = http.put(&agent.url("/v1/jobs"), &json!({"Job": job}));
    assert_eq!(r.status, 200, "{}", r.body);
    let alloc = wait_for(Duration::from_secs(30), "main running", || {
        let allocs = http.get(&agent.url("/v1/job/prestart/allocations")).json();
        allocs.as_array()?.iter().find_map(|a| {
            (a["TaskStates"]["main"]["State"] == "running"
                && a["TaskStates"]["init"]["State"] == "dead")
                .then(|| a["ID"].as_str().unwrap().to_string())
        })
    });
    let r = http.put(
        &format!("{base}/v1/client/allocation/{alloc}/restart"),
        &json!({"AllTasks": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(
        Duration::from_secs(15),
        "init ran twice, main restarted",
        || {
            let init = plain_logs(&http, &base, &alloc, "init");
            let main = plain_logs(&http, &base, &alloc, "main");
            (init.matches("init-ran").count() == 2 && main.matches("main-").count() == 2)
                .then_some(())
        },
    );
    // Task events reach the server within about a second.
    wait_for(Duration::from_secs(5), "init's Restart Signaled", || {
        has_event(
            &task_events(&http, &base, &alloc, "init"),
            "Restart Signaled",
        )
        .then_some(())
    });
}

/// The `TRAP` job with its task run by `driver` (`exec` or `docker`) instead of raw_exec.
fn trap_job(id: &str, driver: &str, container_label: &str) -> Value {
    let mut job = shell_job(id, &[("trap", TRAP)]);
    let task = &mut job["TaskGroups"][0]["Tasks"][0];
    task["Driver"] = json!(driver);
    if driver == "docker" {
        let image = std::env::var("YURT_TEST_DOCKER_IMAGE")
            .unwrap_or_else(|_| "yurt-test/busybox:1".to_string());
        task["Config"] = json!({
            "image": image,
            "command": "sh",
            "args": ["-c", TRAP],
            "labels": {"yurt.e2e": container_label},
        });
    }
    job
}

/// Removes the containers carrying this test's label when dropped (declare it before the
/// agents: a client agent that stops leaves its tasks running, as Nomad's does).
struct ContainerGuard(String);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let filter = format!("label=yurt.e2e={}", self.0);
        let Ok(out) = std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output()
        else {
            return;
        };
        let ids = String::from_utf8_lossy(&out.stdout).to_string();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f"])
                .args(&ids)
                .output();
        }
    }
}

#[test]
fn exec_driver_task_every_endpoint_on_a_dev_agent() {
    let agent = Agent::start(AgentOpts::dev());
    let http = Http::default();
    let base = agent.url("");
    let alloc = run_job_and_wait(&http, &base, &trap_job("exec-endpoints", "exec", ""));
    check_signal_and_restart(&http, &base, &base, &alloc);
    check_stats(&http, &base, &alloc);
    check_fs(&http, &base, &alloc);
    // The command runs as the task user, inside the task's chroot, PID namespace and cgroup.
    let cgroup = format!("{alloc}.trap");
    check_exec(
        &base,
        &alloc,
        &[
            ("id -u", "65534"),
            (
                "test -d /alloc && test -d /secrets && echo chrooted",
                "chrooted",
            ),
            ("cat /proc/self/cgroup", &cgroup),
            ("cat /proc/1/cmdline | tr '\\0' ' '", "got USR1"),
        ],
    );
    check_stop(&http, &base, &alloc);
}

#[test]
fn docker_task_every_endpoint_through_the_server_on_a_second_client() {
    if std::env::var("YURT_SKIP_DOCKER_TESTS").as_deref() == Ok("1") {
        eprintln!("YURT_SKIP_DOCKER_TESTS=1: docker end-to-end test skipped");
        return;
    }
    let label = uuid::Uuid::new_v4().simple().to_string();
    let _containers = ContainerGuard(label.clone());
    let server = Agent::start(AgentOpts::server());
    let mut opts = AgentOpts::client(vec![server.rpc_addr()], "docker-client");
    opts.extra_hcl =
        "plugin \"docker\" {\n  config {\n    gc {\n      image = false\n    }\n  }\n}\n".into();
    let _client = Agent::start(opts);
    let http = Http::default();
    let sbase = server.url("");
    wait_for(
        Duration::from_secs(60),
        "a node with a healthy docker driver",
        || {
            let nodes = http.get(&server.url("/v1/nodes")).json();
            nodes
                .as_array()?
                .iter()
                .any(|n| n["Status"] == "ready" && n["Drivers"]["docker"]["Healthy"] == true)
                .then_some(())
        },
    );
    let alloc = run_job_and_wait(
        &http,
        &sbase,
        &trap_job("docker-endpoints", "docker", &label),
    );
    check_signal_and_restart(&http, &sbase, &sbase, &alloc);
    check_stats(&http, &sbase, &alloc);
    check_fs(&http, &sbase, &alloc);
    check_exec(
        &sbase,
        &alloc,
        &[
            ("test -f /.dockerenv && echo in-container", "in-container"),
            ("echo $NOMAD_ALLOC_ID", &alloc),
            ("cat /proc/1/cmdline | tr '\\0' ' '", "got USR1"),
        ],
    );
    check_stop(&http, &sbase, &alloc);
}
