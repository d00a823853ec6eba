//! `yurt agent` and its signals, as systemd and an operator send them: SIGHUP re-reads the
//! config files (the log level changes in place, renewed TLS certificates reach new
//! connections; settings a running agent cannot change are named in the log; a broken file
//! leaves the running config alone), SIGTERM/SIGINT stop the
//! agent with exit status 0, its HTTP listener closed, while its tasks keep running for the
//! next agent to reattach.

mod common;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use common::pki::TestCa;
use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const LIMIT: Duration = Duration::from_secs(60);

fn config_path(agent: &Agent) -> PathBuf {
    agent.data_dir.path().join("agent.hcl")
}

/// Rewrites the agent's config file with `edit` applied.
fn edit_config(agent: &Agent, edit: impl FnOnce(String) -> String) {
    let path = config_path(agent);
    let text = std::fs::read_to_string(&path).expect("read agent config");
    std::fs::write(&path, edit(text)).expect("write agent config");
}

fn signal(agent: &Agent, sig: Signal) {
    kill(Pid::from_raw(agent.pid() as i32), sig).expect("signal the agent");
}

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

/// Waits until the agent's log has `n` lines containing `needle`.
fn wait_log(agent: &Agent, needle: &str, n: usize) {
    let deadline = Instant::now() + LIMIT;
    while count(&agent.log(), needle) < n {
        assert!(
            Instant::now() < deadline,
            "no {n}x {needle:?} in the agent log after {LIMIT:?}:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn agent_self(agent: &Agent) -> serde_json::Value {
    let r = Http::default().get(&agent.url("/v1/agent/self"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// Waits for the agent process to exit and returns its status.
fn wait_exit(agent: &mut Agent) -> ExitStatus {
    let mut child = agent.child.take().expect("agent running");
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the agent") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("agent did not exit after the signal; log:\n{}", agent.log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

#[test]
fn sighup_reloads_the_log_level_and_names_what_needs_a_restart() {
    let agent = Agent::start(AgentOpts::server());
    let reloads = "reloading configuration";
    assert_eq!(count(&agent.log(), reloads), 0);
    assert_eq!(agent_self(&agent)["config"]["LogLevel"], "DEBUG");

    // DEBUG -> WARN, plus a region change a running agent cannot apply.
    edit_config(&agent, |t| {
        t.replace("log_level = \"DEBUG\"", "log_level = \"warn\"") + "region = \"elsewhere\"\n"
    });
    signal(&agent, Signal::SIGHUP);
    wait_for(LIMIT, "LogLevel WARN", || {
        (agent_self(&agent)["config"]["LogLevel"] == "WARN").then_some(())
    });
    wait_log(
        &agent,
        "region changed, which a running agent cannot apply",
        1,
    );
    let me = agent_self(&agent);
    assert_eq!(me["config"]["Region"], "global", "region is not applied");
    // Logged at INFO before the switch, while DEBUG was still in force.
    assert_eq!(count(&agent.log(), reloads), 1);

    // WARN -> DEBUG: this reload's INFO line is filtered out (WARN was in force when it
    // was logged); the line announcing the new level comes after the switch.
    edit_config(&agent, |t| {
        t.replace("log_level = \"warn\"", "log_level = \"DEBUG\"")
    });
    signal(&agent, Signal::SIGHUP);
    wait_for(LIMIT, "LogLevel DEBUG", || {
        (agent_self(&agent)["config"]["LogLevel"] == "DEBUG").then_some(())
    });
    wait_log(&agent, "log level changed", 1);
    wait_log(
        &agent,
        "region changed, which a running agent cannot apply",
        2,
    );
    assert_eq!(count(&agent.log(), reloads), 1, "{}", agent.log());

    // Back to the region it runs with: nothing left to report; INFO shows again.
    edit_config(&agent, |t| t.replace("region = \"elsewhere\"\n", ""));
    signal(&agent, Signal::SIGHUP);
    wait_log(&agent, "configuration reloaded, nothing changed", 1);
    assert_eq!(count(&agent.log(), reloads), 2);

    // A file that no longer validates changes nothing, and the agent keeps serving.
    edit_config(&agent, |t| {
        t.replace("log_level = \"DEBUG\"", "log_level = \"LOUD\"")
    });
    signal(&agent, Signal::SIGHUP);
    wait_log(&agent, "configuration reload failed", 1);
    assert!(
        agent.log().contains("Invalid log level: LOUD"),
        "{}",
        agent.log()
    );
    assert_eq!(agent_self(&agent)["config"]["LogLevel"], "DEBUG");
}

#[test]
fn sigterm_stops_the_agent_cleanly_and_its_tasks_keep_running() {
    let mut agent = Agent::start(AgentOpts::dev());
    let http = Http::default();
    let script = "echo $$ > $NOMAD_TASK_DIR/pid; while true; do sleep 0.2; done";
    let alloc = run_job_and_wait(&http, &agent.url(""), &shell_job("stays", &[("t", script)]));
    let _guard = ProcGuard(vec![alloc.clone()]);
    let pid_file = alloc_dir(&agent, &alloc).join("t/local/pid");
    let pid: i32 = wait_for(LIMIT, "task pid file", || {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    });
    let supervisors = supervisors_under(agent.data_dir.path());
    assert_eq!(supervisors.len(), 1, "one supervisor: {supervisors:?}");

    let events = http
        .get(&agent.url(&format!("/v1/allocation/{alloc}")))
        .json()["TaskStates"]["t"]["Events"]
        .to_string();
    signal(&agent, Signal::SIGTERM);
    let status = wait_exit(&mut agent);
    assert_eq!(status.code(), Some(0), "log:\n{}", agent.log());
    let log = agent.log();
    assert!(log.contains("caught SIGTERM, shutting down"), "{log}");
    assert!(log.contains("yurt agent stopped"), "{log}");
    assert!(
        TcpStream::connect(("127.0.0.1", agent.http_port)).is_err(),
        "HTTP listener closed"
    );
    assert!(
        alive(pid),
        "task {pid} kept running; pid file now {:?}, processes {:?}, events before {events}; log:\n{}",
        std::fs::read_to_string(&pid_file),
        processes_under(agent.data_dir.path()),
        agent.log()
    );
    for s in &supervisors {
        assert!(alive(*s), "supervisor {s} kept running");
    }

    // What the next agent restores from: the task's record still holds its handle.
    let record_path = agent
        .data_dir
        .path()
        .join("data/client/state")
        .join(&alloc)
        .join("task-t.json");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record_path).expect("task record"))
            .expect("task record JSON");
    assert!(
        record["handle"].is_object() && record["state"]["State"] == "running",
        "task record after SIGTERM: {record}\nlog:\n{}",
        agent.log()
    );

    // The next agent reattaches: same process, still running, started once.
    agent.restart();
    wait_log(&agent, "reattached to task", 1);
    wait_for(LIMIT, "allocation running again", || {
        let a = http
            .get(&agent.url(&format!("/v1/allocation/{alloc}")))
            .json();
        (a["TaskStates"]["t"]["State"] == "running").then_some(())
    });
    let a = http
        .get(&agent.url(&format!("/v1/allocation/{alloc}")))
        .json();
    let started = a["TaskStates"]["t"]["Events"]
        .as_array()
        .map(|evs| evs.iter().filter(|e| e["Type"] == "Started").count())
        .unwrap_or(0);
    assert_eq!(started, 1, "not restarted: {a}");
    assert!(alive(pid), "task {pid} still running after reattach");
    let pid_now: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(
        pid_now,
        pid,
        "processes: {:?}; log:\n{}",
        processes_under(agent.data_dir.path())
            .into_iter()
            .map(|p| (p, cmdline(p)))
            .collect::<Vec<_>>(),
        agent.log()
    );
    assert_eq!(supervisors_under(agent.data_dir.path()), supervisors);
}

#[test]
fn sigint_with_leave_on_interrupt_leaves_gracefully() {
    let mut opts = AgentOpts::server();
    opts.extra_hcl = "leave_on_interrupt = true\n".into();
    let mut agent = Agent::start(opts);
    signal(&agent, Signal::SIGINT);
    let status = wait_exit(&mut agent);
    assert_eq!(status.code(), Some(0), "log:\n{}", agent.log());
    let log = agent.log();
    assert!(log.contains("caught SIGINT, leaving gracefully"), "{log}");
    assert!(log.contains("yurt agent stopped"), "{log}");
}

/// A client that trusts only the CA in `ca_file`, checking the agent's name, with no pooled
/// connection (every request makes a fresh handshake).
fn trusting(ca_file: &std::path::Path) -> reqwest::blocking::Client {
    use yurt::tls::{ClientTls, ServerCheck, client_config, load_roots};
    let config = client_config(&ClientTls {
        roots: Some(load_roots("ca", ca_file).expect("CA file")),
        identity: None,
        check: ServerCheck::Hostname,
    })
    .expect("client TLS config");
    http_builder(Some(&config))
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

fn answers(client: &reqwest::blocking::Client, agent: &Agent) -> bool {
    client
        .get(agent.url("/v1/agent/health"))
        .send()
        .is_ok_and(|r| r.status().is_success())
}

#[test]
fn sighup_serves_renewed_tls_certificates_on_new_connections() {
    let pki = TempDir::new("tls-reload");
    let dir = pki.path();
    let (old_ca, new_ca) = (TestCa::new("old CA"), TestCa::new("new CA"));
    let old_trust = old_ca.write_ca(dir, "old-ca");
    let new_trust = new_ca.write_ca(dir, "new-ca");
    // The agent's files keep their paths; a renewal rewrites them in place.
    let ca_file = old_ca.write_ca(dir, "ca");
    let cert = old_ca.issue(dir, "agent", &["server.global.nomad", "localhost"]);
    let mut opts = AgentOpts::server();
    opts.extra_hcl = format!(
        "tls {{\n  http = true\n  ca_file = {:?}\n  cert_file = {:?}\n  key_file = {:?}\n}}\n",
        ca_file.display().to_string(),
        cert.cert.display().to_string(),
        cert.key.display().to_string()
    );
    let old_client = trusting(&old_trust);
    opts.tls = Some(TlsProbe {
        http: true,
        rpc: false,
        client: yurt::tls::client_config(&yurt::tls::ClientTls {
            roots: Some(yurt::tls::load_roots("ca", &old_trust).expect("CA file")),
            identity: None,
            check: yurt::tls::ServerCheck::Hostname,
        })
        .expect("probe TLS config"),
    });
    let agent = Agent::start(opts);
    let new_client = trusting(&new_trust);
    assert!(answers(&old_client, &agent));
    assert!(
        !answers(&new_client, &agent),
        "not yet the new CA's certificate"
    );

    new_ca.write_ca(dir, "ca");
    new_ca.issue(dir, "agent", &["server.global.nomad", "localhost"]);
    signal(&agent, Signal::SIGHUP);
    wait_for(LIMIT, "the renewed certificate served", || {
        answers(&new_client, &agent).then_some(())
    });
    assert!(!answers(&old_client, &agent), "the old certificate is gone");
    wait_log(&agent, "TLS certificates reloaded", 1);

    // A renewal that went wrong (no key in the key file) keeps the working certificate.
    std::fs::write(&cert.key, "not a key\n").expect("break the key file");
    signal(&agent, Signal::SIGHUP);
    wait_log(&agent, "TLS reload failed", 1);
    assert!(answers(&new_client, &agent));
}
