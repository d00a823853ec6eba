//! The filesystem holding a client's alloc dirs fills up under a task that keeps writing:
//! the task and the agent keep running, the task's output is dropped rather than blocking
//! it, its supervisor does not spin, a `Disk full` task event says so, and once space
//! returns the logs grow and rotate again. Needs root (it mounts a small tmpfs).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::tmpfs::Tmpfs;
use common::*;
use serde_json::{Value, json};

fn logs_dir(tmpfs: &Tmpfs, alloc_id: &str) -> PathBuf {
    tmpfs.path().join("alloc").join(alloc_id).join("alloc/logs")
}

/// (total bytes, highest index) of the task's stdout files.
fn stdout_logs(dir: &Path) -> (u64, u64) {
    let mut total = 0;
    let mut highest = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(idx) = name
            .strip_prefix("writer.stdout.")
            .and_then(|i| i.parse::<u64>().ok())
        {
            total += e.metadata().map(|m| m.len()).unwrap_or(0);
            highest = highest.max(idx);
        }
    }
    (total, highest)
}

fn events(http: &Http, agent: &Agent, alloc_id: &str) -> Vec<Value> {
    http.get(&agent.url(&format!("/v1/allocation/{alloc_id}")))
        .json()["TaskStates"]["writer"]["Events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn has_event(http: &Http, agent: &Agent, alloc_id: &str, needle: &str) -> bool {
    events(http, agent, alloc_id).iter().any(|e| {
        e["Type"] == "Driver"
            && e["DriverMessage"]
                .as_str()
                .is_some_and(|m| m.contains(needle))
    })
}

/// User + system CPU ticks a process has used.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // Fields after the command: state is 0, utime 11, stime 12.
    let at = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    at(11) + at(12)
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[test]
fn full_alloc_dir_drops_logs_keeps_task_and_recovers() {
    let tmpfs = Tmpfs::mount("8m");
    let alloc_root = tmpfs.path().join("alloc");
    let agent = Agent::start(AgentOpts {
        server: false,
        client: false,
        extra_hcl: format!(
            "server {{\n  enabled = true\n  heartbeat_grace = \"1s\"\n  min_heartbeat_ttl = \"1s\"\n}}\nclient {{\n  enabled = true\n  alloc_dir = {:?}\n}}\nplugin \"raw_exec\" {{\n  config {{\n    enabled = true\n  }}\n}}\n",
            alloc_root.display().to_string()
        ),
        ..AgentOpts::server()
    });
    let http = Http::default();
    // ~100 KB/s of whole 1000-byte lines; three 1 MB files at most, well inside the 8 MB.
    let script = "line=$(head -c 1000 /dev/zero | tr '\\0' x); while true; do echo \"$line\"; sleep 0.01; done";
    let job = json!({
        "ID": "writer", "Name": "writer", "Type": "service", "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "g", "Count": 1,
            "Tasks": [{
                "Name": "writer", "Driver": "raw_exec",
                "Config": {"command": "/bin/sh", "args": ["-c", script]},
                "Resources": {"CPU": 100, "MemoryMB": 64},
                "LogConfig": {"MaxFiles": 3, "MaxFileSizeMB": 1},
            }],
        }],
    });
    let alloc_id = run_job_and_wait(&http, &agent.url(""), &job);
    let task_pid = wait_for(Duration::from_secs(30), "task process", || {
        pids_matching(&format!("NOMAD_ALLOC_ID={alloc_id}"))
            .into_iter()
            .find(|p| proc_cmdline(*p).starts_with("/bin/sh"))
    });
    // The task's parent is its supervisor, which drains its output.
    let supervisor = parent_pid(task_pid).expect("task's parent");
    assert!(
        is_supervisor(&cmdline(supervisor)),
        "the task's parent should be its supervisor: {:?}",
        cmdline(supervisor)
    );
    let logs = logs_dir(&tmpfs, &alloc_id);
    wait_for(Duration::from_secs(30), "logs written", || {
        (stdout_logs(&logs).0 > 0).then_some(())
    });

    let filler = tmpfs.fill();
    wait_for(Duration::from_secs(60), "a Disk full task event", || {
        has_event(&http, &agent, &alloc_id, "Disk full").then_some(())
    });

    // Full: the logs cannot grow (by more than a purge of an old file could free), while
    // the task, its supervisor and the agent run on.
    let (before, _) = stdout_logs(&logs);
    let ticks_before = cpu_ticks(supervisor);
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let (after, _) = stdout_logs(&logs);
    let ticks = cpu_ticks(supervisor) - ticks_before;
    let elapsed = window.elapsed();
    assert!(
        after <= before + 64 * 1024,
        "logs grew from {before} to {after} bytes on a full disk"
    );
    assert!(alive(task_pid), "the task keeps running on a full disk");
    assert!(alive(supervisor), "the supervisor keeps running");
    assert_eq!(http.get(&agent.url("/v1/agent/health")).status, 200);
    // A supervisor spinning on failed writes would burn a whole core; draining a task
    // that writes every 10 ms costs a small fraction of one.
    let clk_tck = 100.0;
    let cpu_share = ticks as f64 / clk_tck / elapsed.as_secs_f64();
    assert!(
        cpu_share < 0.5,
        "supervisor used {cpu_share:.2} of a core while the disk was full"
    );

    std::fs::remove_file(&filler).expect("remove filler");
    wait_for(Duration::from_secs(60), "logs-resumed event", || {
        has_event(&http, &agent, &alloc_id, "written to its logs again").then_some(())
    });
    let (resumed_total, resumed_index) = stdout_logs(&logs);
    // Rotation resumes: a file past the one in use when space returned is opened.
    wait_for(Duration::from_secs(120), "log rotation resumes", || {
        (stdout_logs(&logs).1 > resumed_index).then_some(())
    });
    assert!(stdout_logs(&logs).0 > 0 && resumed_total > 0);
    assert!(alive(task_pid), "same task process throughout");
    let alloc = http
        .get(&agent.url(&format!("/v1/allocation/{alloc_id}")))
        .json();
    assert_eq!(alloc["ClientStatus"], "running");
    assert_eq!(alloc["TaskStates"]["writer"]["Restarts"], 0);
    drop(agent);
}
