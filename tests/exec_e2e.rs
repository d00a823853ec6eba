//! End to end: a real `yurt agent` (dev mode, as root) runs an `exec` job submitted over HTTP;
//! the task's output shows the isolation, and stopping the job leaves no process, no cgroup
//! and no chroot mount behind.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use yurt_drivers::cgroups::{TaskCgroup, task_cgroup_name};
use yurt_drivers::supervisor_client::detect_cgroups;

const TASK: &str = "iso";

/// On drop (test passed or not): kills what the agent started (supervisors mention the data
/// dir on their command line; tasks are in their cgroups), removes the task cgroups and
/// unmounts everything under the data dir, so the agent's own cleanup can delete it safely.
struct Cleanup {
    data_dir: PathBuf,
    agent_pid: u32,
    allocs: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let needle = self.data_dir.to_string_lossy().into_owned();
        for pid in pids_mentioning(&needle) {
            if pid != self.agent_pid && pid != std::process::id() {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
        if let Some(m) = detect_cgroups(None) {
            for a in &self.allocs {
                if let Ok(cg) = TaskCgroup::reattach(&m, &task_cgroup_name(a, TASK)) {
                    let _ = cg.kill_all(nix::sys::signal::Signal::SIGKILL);
                    let _ = cg.destroy();
                }
            }
        }
        let _ = yurt_drivers::isolation::teardown(&self.data_dir);
    }
}

/// Processes whose command line contains `needle`.
fn pids_mentioning(needle: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Mount points below `dir` in this (the host's) mount namespace.
fn mounts_below(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|mp| mp.starts_with(&prefix))
        .collect()
}

fn exec_job(id: &str) -> Value {
    json!({
        "ID": id,
        "Name": id,
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "g",
            "Count": 1,
            "Tasks": [{
                "Name": TASK,
                "Driver": "exec",
                "Config": {
                    "command": "/bin/sh",
                    "args": ["-c", "echo uid=$(id -u); echo pid=$$; echo dir=$NOMAD_TASK_DIR; \
                                    echo root=$(ls / | tr '\\n' ' '); \
                                    sleep 1000 & setsid sleep 1000 & echo ready; wait"],
                },
                "Resources": {"CPU": 100, "MemoryMB": 64},
            }],
        }],
    })
}

#[test]
fn exec_job_runs_isolated_and_stop_leaves_nothing() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the exec driver needs root; run this test as root"
    );
    let mut opts = AgentOpts::dev();
    opts.extra_hcl =
        "plugin \"exec\" {\n  config {\n    default_pid_mode = \"private\"\n  }\n}\n".into();
    let agent = Agent::start(opts);
    let data_dir = std::fs::canonicalize(agent.data_dir.path().join("data")).unwrap();
    let mut cleanup = Cleanup {
        data_dir: data_dir.clone(),
        agent_pid: agent.pid(),
        allocs: vec![],
    };
    let http = Http::default();

    // The node offers a healthy exec driver.
    wait_for(
        Duration::from_secs(20),
        "a node with a healthy exec driver",
        || {
            let nodes = http.get(&agent.url("/v1/nodes")).json();
            let id = nodes.as_array()?.first()?["ID"].as_str()?.to_string();
            let node = http.get(&agent.url(&format!("/v1/node/{id}"))).json();
            (node["Drivers"]["exec"]["Healthy"] == true).then_some(())
        },
    );

    let r = http.put(
        &agent.url("/v1/jobs"),
        &json!({"Job": exec_job("isolated")}),
    );
    assert_eq!(r.status, 200, "register: {}", r.body);
    let alloc_id = wait_for(Duration::from_secs(30), "the exec alloc to run", || {
        let allocs = http.get(&agent.url("/v1/job/isolated/allocations")).json();
        let a = allocs.as_array()?.first()?.clone();
        let id = a["ID"].as_str()?.to_string();
        if !cleanup.allocs.contains(&id) {
            cleanup.allocs.push(id.clone());
        }
        (a["ClientStatus"] == "running").then_some(id)
    });

    let alloc_dir = data_dir.join("alloc").join(&alloc_id);
    let stdout = alloc_dir.join(format!("alloc/logs/{TASK}.stdout.0"));
    let out = wait_for(
        Duration::from_secs(15),
        "the task's facts in its log",
        || {
            let s = std::fs::read_to_string(&stdout).ok()?;
            s.contains("ready").then_some(s)
        },
    );
    assert!(
        out.contains("uid=65534\n"),
        "not nobody: {out}\n{}",
        agent.log()
    );
    assert!(out.contains("pid=1\n"), "not PID 1: {out}");
    assert!(
        out.contains("dir=/local\n"),
        "NOMAD_TASK_DIR is not in-chroot: {out}"
    );
    let root = out
        .lines()
        .find_map(|l| l.strip_prefix("root="))
        .unwrap_or("");
    for e in ["alloc", "local", "secrets", "usr"] {
        assert!(
            root.split_whitespace().any(|x| x == e),
            "{e} missing from /: {out}"
        );
    }
    for e in ["home", "root", "work", "data"] {
        assert!(
            !root.split_whitespace().any(|x| x == e),
            "host {e} visible: {out}"
        );
    }

    let m = detect_cgroups(None).expect("cgroups usable as root");
    let cg = TaskCgroup::reattach(&m, &task_cgroup_name(&alloc_id, TASK)).expect("task cgroup");
    let pids = cg.pids().unwrap();
    assert!(
        pids.len() >= 3,
        "expected the shell and two sleeps: {pids:?}"
    );
    let task_dir = alloc_dir.join(TASK);
    assert!(!mounts_below(&task_dir).is_empty(), "chroot not mounted");

    let r = http.delete(&agent.url("/v1/job/isolated"));
    assert_eq!(r.status, 200, "stop: {}", r.body);
    wait_for(
        Duration::from_secs(30),
        "the task's processes to be gone",
        || {
            pids.iter()
                .all(|p| !yurt_drivers::supervisor::proctree::is_alive(p.as_raw() as u32))
                .then_some(())
        },
    );
    // The agent's own secrets/private tmpfs stay until the alloc is garbage-collected.
    let agent_mounts =
        [task_dir.join("secrets"), task_dir.join("private")].map(|p| p.display().to_string());
    wait_for(
        Duration::from_secs(30),
        "the chroot mounts to be gone",
        || {
            mounts_below(&task_dir)
                .iter()
                .all(|m| agent_mounts.contains(m))
                .then_some(())
        },
    );
    wait_for(
        Duration::from_secs(30),
        "supervisor and cgroup to be gone",
        || {
            let gone = TaskCgroup::reattach(&m, &task_cgroup_name(&alloc_id, TASK)).is_err();
            (gone && pids_mentioning(&alloc_id).is_empty()).then_some(())
        },
    );
    drop(cleanup);
}
