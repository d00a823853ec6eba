//! Disk trouble under the server's data dir, seen from outside (HTTP status codes, a restart
//! and a read back), so it holds whatever the write path underneath: a full disk refuses
//! writes with a 5xx naming the cause while reads go on, loses nothing acknowledged, and
//! takes writes again by itself once space returns; a torn or corrupt state file stops the
//! server at start with an error naming the file instead of an empty cluster.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::tmpfs::Tmpfs;
use common::*;
use serde_json::json;

fn register(http: &Http, agent: &Agent, id: &str) -> Resp {
    http.put(&agent.url("/v1/jobs"), &json!({"Job": service_job(id, 1)}))
}

fn job_ids(http: &Http, agent: &Agent) -> Vec<String> {
    let mut ids: Vec<String> = http
        .get(&agent.url("/v1/jobs"))
        .json()
        .as_array()
        .expect("job list")
        .iter()
        .filter_map(|j| j["ID"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

#[test]
fn full_data_dir_refuses_writes_keeps_reads_and_recovers() {
    let tmpfs = Tmpfs::mount("32m");
    let data_dir = tmpfs.path().join("data");
    let mut agent = Agent::start(AgentOpts {
        extra_args: vec!["-data-dir".into(), data_dir.display().to_string()],
        ..AgentOpts::server()
    });
    let http = Http::default();
    let r = register(&http, &agent, "before");
    assert_eq!(r.status, 200, "{}", r.body);

    let filler = tmpfs.fill();
    // Every write is refused, cleanly and with the cause; none is half applied.
    for i in 0..3 {
        let r = register(&http, &agent, &format!("during-{i}"));
        assert!(
            r.status == 500 || r.status == 503,
            "a write on a full disk answered {}: {}",
            r.status,
            r.body
        );
        assert!(
            r.body.contains("No space left on device") || r.body.contains("disk full"),
            "the error should name the cause: {:?}",
            r.body
        );
    }
    // Reads go on.
    let r = http.get(&agent.url("/v1/job/before"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(job_ids(&http, &agent), vec!["before".to_string()]);
    assert_eq!(http.get(&agent.url("/v1/agent/health")).status, 200);

    std::fs::remove_file(&filler).expect("remove filler");
    // Writes resume by themselves: no restart, no operator action.
    wait_for(
        Duration::from_secs(30),
        "a write after space returned",
        || {
            let r = register(&http, &agent, "after");
            (r.status == 200).then_some(())
        },
    );
    assert_eq!(
        job_ids(&http, &agent),
        vec!["after".to_string(), "before".to_string()]
    );

    // Nothing acknowledged was lost, nothing refused appears, after a restart.
    agent.restart();
    assert_eq!(
        job_ids(&http, &agent),
        vec!["after".to_string(), "before".to_string()]
    );
    let job = http.get(&agent.url("/v1/job/before")).json();
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["Config"]["command"],
        "/bin/sleep"
    );
}

/// The largest file under the server's state directory (the state database, or the Raft
/// log), leaving out the keyring.
fn largest_state_file(server_dir: &Path) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut stack = vec![server_dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                if p.file_name().is_some_and(|n| n != "keystore") {
                    stack.push(p);
                }
            } else if m.is_file() && best.as_ref().is_none_or(|(len, _)| m.len() > *len) {
                best = Some((m.len(), p));
            }
        }
    }
    best.expect("a state file").1
}

/// Starts the agent of `agent`'s config by hand (the harness panics on an early exit) and
/// returns its exit status and output if it exits within the timeout.
fn start_expecting_exit(agent: &Agent) -> (Option<i32>, String) {
    let log = agent.data_dir.path().join("restart.log");
    let out = std::fs::File::create(&log).expect("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_yurt"))
        .arg("agent")
        .arg("-config")
        .arg(agent.data_dir.path().join("agent.hcl"))
        .stdout(Stdio::from(out.try_clone().expect("clone")))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut code = None;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            code = Some(status.code().unwrap_or(-1));
            break;
        }
        // Serving means it took the damaged state as good: that is the failure.
        if Http::default()
            .client
            .get(agent.url("/v1/agent/health"))
            .timeout(Duration::from_millis(500))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Still running (or serving): stop it. Harmless once it has exited.
    let _ = child.kill();
    let _ = child.wait();
    (code, std::fs::read_to_string(&log).unwrap_or_default())
}

fn damaged_state_refuses_to_start(damage: impl Fn(&Path)) {
    let mut agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    for id in ["one", "two", "three"] {
        let r = register(&http, &agent, id);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    agent.kill9();
    let file = largest_state_file(&agent.data_dir.path().join("data/server"));
    damage(&file);
    let (code, output) = start_expecting_exit(&agent);
    let code = code.unwrap_or_else(|| {
        panic!(
            "the agent started on a damaged {} instead of refusing; output:\n{output}",
            file.display()
        )
    });
    assert_ne!(code, 0, "output:\n{output}");
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .expect("file name");
    assert!(
        output.contains(name),
        "the error should name {}; output:\n{output}",
        file.display()
    );
}

#[test]
fn torn_state_file_refuses_to_start_naming_it() {
    damaged_state_refuses_to_start(|file| {
        let len = std::fs::metadata(file).expect("stat").len();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(file)
            .expect("open");
        f.set_len(len / 2).expect("truncate");
    });
}

#[test]
fn corrupt_state_file_refuses_to_start_naming_it() {
    damaged_state_refuses_to_start(|file| {
        let mut bytes = std::fs::read(file).expect("read");
        // Scribble over the whole file but its length: header, tables and records alike.
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31).wrapping_add(7);
        }
        std::fs::write(file, bytes).expect("write");
    });
}
