//! Tasks survive an agent kill -9 + restart: the client restores its state from disk and
//! reattaches to the running raw_exec and exec tasks (same PIDs, no new `Started`, no restart), a task
//! that exited while the agent was down reports its real exit code, and no log byte is lost
//! or duplicated across the downtime.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{Value, json};

const LOOPS: usize = 20;
const LIMIT: Duration = Duration::from_secs(60);

/// Writes its PID, then numbered lines every 10 ms, forever.
const LOOP_SCRIPT: &str =
    "echo $$ > $NOMAD_TASK_DIR/pid; i=0; while true; do echo $i; i=$((i+1)); sleep 0.01; done";

/// Half the looping tasks run under raw_exec, half isolated under exec.
fn loop_job() -> Value {
    let group = |name: &str, driver: &str| {
        json!({
            "Name": name,
            "Count": LOOPS / 2,
            "Tasks": [{
                "Name": "loop",
                "Driver": driver,
                "Config": {"command": "/bin/sh", "args": ["-c", LOOP_SCRIPT]},
                "Resources": {"CPU": 20, "MemoryMB": 16},
            }],
        })
    };
    json!({
        "ID": "loops",
        "Name": "loops",
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [group("g", "raw_exec"), group("x", "exec")],
    })
}

/// The host PID of a task as the client persisted it in its task handle: an exec task is
/// PID 1 of its own namespace and cannot report its host PID itself.
fn handle_pid(agent: &Agent, id: &str, task: &str) -> Option<i32> {
    let path = agent
        .data_dir
        .path()
        .join("data/client/state")
        .join(id)
        .join(format!("task-{task}.json"));
    let record: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    record["handle"]["state"]["task_pid"]
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
}

/// Writes its PID, then exits with code 7 once the test creates `local/exit` (while the
/// agent is down): a trigger, not a timer, so a slow machine cannot make it exit too early.
const EXIT7_SCRIPT: &str = "echo $$ > $NOMAD_TASK_DIR/pid; \
     while [ ! -e $NOMAD_TASK_DIR/exit ]; do sleep 0.05; done; exit 7";

fn exit7_job() -> Value {
    json!({
        "ID": "exit7",
        "Name": "exit7",
        "Type": "batch",
        "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "g",
            "Count": 1,
            "RestartPolicy": {"Attempts": 0, "Interval": 86_400_000_000_000i64, "Delay": 1_000_000_000, "Mode": "fail"},
            "ReschedulePolicy": {"Attempts": 0, "Unlimited": false},
            "Tasks": [{
                "Name": "exit7",
                "Driver": "raw_exec",
                "Config": {"command": "/bin/sh", "args": ["-c", EXIT7_SCRIPT]},
                "Resources": {"CPU": 20, "MemoryMB": 16},
            }],
        }],
    })
}

fn register(http: &Http, agent: &Agent, job: Value) {
    let r = http.put(&agent.url("/v1/jobs"), &json!({ "Job": job }));
    assert_eq!(r.status, 200, "register: {}", r.body);
}

fn alloc_ids(http: &Http, agent: &Agent, job: &str) -> Vec<String> {
    let r = http.get(&agent.url(&format!("/v1/job/{job}/allocations")));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a["ID"].as_str().map(str::to_string))
        .collect()
}

fn alloc(http: &Http, agent: &Agent, id: &str) -> Value {
    let r = http.get(&agent.url(&format!("/v1/allocation/{id}")));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn task_state<'a>(alloc: &'a Value, task: &str) -> &'a Value {
    &alloc["TaskStates"][task]
}

fn events_of<'a>(alloc: &'a Value, task: &str) -> Vec<&'a Value> {
    task_state(alloc, task)["Events"]
        .as_array()
        .map(|v| v.iter().collect())
        .unwrap_or_default()
}

fn count_events(alloc: &Value, task: &str, ty: &str) -> usize {
    events_of(alloc, task)
        .iter()
        .filter(|e| e["Type"] == ty)
        .count()
}

fn alloc_dir(agent: &Agent, id: &str) -> PathBuf {
    agent.data_dir.path().join("data/alloc").join(id)
}

fn read_pid(agent: &Agent, id: &str, task: &str) -> Option<i32> {
    std::fs::read_to_string(alloc_dir(agent, id).join(task).join("local/pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat): with
/// the PID it identifies one process, even if the PID were reused.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = stat.rsplit_once(')')?.1;
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

fn unix_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// `<task>.stdout.<n>` files of an allocation, concatenated in index order.
fn stdout_log(dir: &Path, task: &str) -> Vec<u8> {
    let logs = dir.join("alloc/logs");
    let prefix = format!("{task}.stdout.");
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(&logs)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let n = name.strip_prefix(&prefix)?.parse().ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .flat_map(|(_, p)| std::fs::read(p).unwrap_or_default())
        .collect()
}

/// The number on the last complete line of a log that is still being written, if any.
fn last_complete_line(log: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(log);
    let complete = &text[..text.rfind('\n')?];
    complete.rsplit('\n').next()?.parse().ok()
}

/// The last complete line of every loop task's stdout, in the order of `loops`.
fn progress(agent: &Agent, loops: &[String]) -> Vec<Option<u64>> {
    loops
        .iter()
        .map(|id| last_complete_line(&stdout_log(&alloc_dir(agent, id), "loop")))
        .collect()
}

/// Waits until every loop task's stdout has a complete line past `mark`: output the task
/// wrote after that point reached its log. Waiting for it (not a fixed sleep) keeps the
/// test independent of how fast a loaded machine runs the loops.
fn wait_past(agent: &Agent, loops: &[String], mark: &[Option<u64>], what: &str) -> Vec<u64> {
    wait_for(LIMIT, what, || {
        let now = progress(agent, loops);
        now.iter()
            .zip(mark)
            .all(|(now, mark)| now.is_some() && *now > *mark)
            .then(|| now.into_iter().flatten().collect())
    })
}

/// Checks the log holds `0\n1\n...last\n` exactly and returns `last`.
fn check_sequence(alloc_id: &str, log: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(log);
    assert!(text.ends_with('\n'), "{alloc_id}: log ends mid-line");
    let mut expected = 0u64;
    for line in text.lines() {
        let n: u64 = line
            .parse()
            .unwrap_or_else(|_| panic!("{alloc_id}: bad line {line:?} after {expected}"));
        assert_eq!(
            n, expected,
            "{alloc_id}: line {n} where {expected} was due (lost or duplicated output)"
        );
        expected += 1;
    }
    assert!(expected > 0, "{alloc_id}: empty log");
    expected - 1
}

#[test]
fn tasks_survive_agent_kill9_and_restart() {
    let mut agent = Agent::start(AgentOpts::dev());
    let http = Http::default();

    register(&http, &agent, loop_job());
    let loops = wait_for(
        LIMIT,
        "20 loop allocations (raw_exec and exec) running",
        || {
            let ids = alloc_ids(&http, &agent, "loops");
            (ids.len() == LOOPS
                && ids.iter().all(|id| {
                    alloc(&http, &agent, id)["ClientStatus"] == "running"
                        && handle_pid(&agent, id, "loop").is_some()
                }))
            .then_some(ids)
        },
    );
    register(&http, &agent, exit7_job());
    let exit7 = wait_for(LIMIT, "exit7 running", || {
        let ids = alloc_ids(&http, &agent, "exit7");
        let id = ids.first()?.clone();
        (task_state(&alloc(&http, &agent, &id), "exit7")["State"] == "running"
            && read_pid(&agent, &id, "exit7").is_some())
        .then_some(id)
    });
    let pids: Vec<(i32, u64)> = loops
        .iter()
        .map(|id| {
            let pid = handle_pid(&agent, id, "loop").unwrap();
            (pid, start_time(pid).expect("loop task alive"))
        })
        .collect();
    let exit7_pid = read_pid(&agent, &exit7, "exit7").unwrap();
    assert!(start_time(exit7_pid).is_some(), "exit7 still running");
    let agent_pid = agent.pid();

    agent.kill9();
    let killed_at = Instant::now();
    let at_kill = progress(&agent, &loops);
    // The exit7 task exits while no agent runs: the agent is restarted only once it is
    // gone, however slowly a loaded machine gets there.
    let trigger = alloc_dir(&agent, &exit7).join("exit7/local/exit");
    std::fs::write(&trigger, b"").expect("create the exit7 trigger");
    wait_for(LIMIT, "exit7 to end during the downtime", || {
        start_time(exit7_pid).is_none().then_some(())
    });
    // The supervisors keep writing the logs while no agent runs.
    let at_restart = wait_past(
        &agent,
        &loops,
        &at_kill,
        "every loop task's output written during the downtime in its log",
    );
    for (pid, started) in &pids {
        assert_eq!(
            start_time(*pid),
            Some(*started),
            "task {pid} survived kill -9"
        );
    }
    let restart_ns = unix_nanos();
    agent.restart();
    assert_ne!(agent.pid(), agent_pid);
    let ready_after = killed_at.elapsed();

    // The exit that happened during the downtime is reported with its real code.
    let done = wait_for(LIMIT, "exit7 reported failed with exit code 7", || {
        let a = alloc(&http, &agent, &exit7);
        (a["ClientStatus"] == "failed").then_some(a)
    });
    let terminated: Vec<&Value> = events_of(&done, "exit7")
        .into_iter()
        .filter(|e| e["Type"] == "Terminated")
        .collect();
    assert_eq!(terminated.len(), 1, "{:#}", done["TaskStates"]);
    assert_eq!(terminated[0]["ExitCode"], 7);
    assert_eq!(terminated[0]["Details"]["exit_code"], "7");
    assert!(
        terminated[0]["Time"].as_i64().unwrap_or(0) >= restart_ns,
        "Terminated is emitted by the restarted agent"
    );
    assert_eq!(count_events(&done, "exit7", "Started"), 1);
    assert_eq!(task_state(&done, "exit7")["State"], "dead");

    // Give a wrongly restarted task time to show up, then check every loop task.
    std::thread::sleep(Duration::from_secs(2));
    for (id, (pid, started)) in loops.iter().zip(&pids) {
        let a = alloc(&http, &agent, id);
        let st = task_state(&a, "loop");
        assert_eq!(a["ClientStatus"], "running", "{id}: {:#}", a["TaskStates"]);
        assert_eq!(st["State"], "running", "{id}");
        assert_eq!(st["Restarts"], 0, "{id}");
        assert_eq!(st["Failed"], false, "{id}");
        assert_eq!(count_events(&a, "loop", "Started"), 1, "{id}: {st:#}");
        assert_eq!(
            handle_pid(&agent, id, "loop"),
            Some(*pid),
            "{id}: same task handle"
        );
        assert_eq!(start_time(*pid), Some(*started), "{id}: same process");
    }

    let at_restart: Vec<Option<u64>> = at_restart.into_iter().map(Some).collect();
    let before_stop = wait_past(
        &agent,
        &loops,
        &at_restart,
        "every loop task's output written after the restart in its log",
    );

    let r = http.delete(&agent.url("/v1/job/loops"));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(LIMIT, "loop allocations complete", || {
        loops
            .iter()
            .all(|id| alloc(&http, &agent, id)["ClientStatus"] == "complete")
            .then_some(())
    });
    let (mut lines, mut bytes, mut min_last) = (0u64, 0usize, u64::MAX);
    for ((id, (pid, _)), seen) in loops.iter().zip(&pids).zip(&before_stop) {
        assert!(start_time(*pid).is_none(), "{id}: task stopped");
        let log = stdout_log(&alloc_dir(&agent, id), "loop");
        let last = check_sequence(id, &log);
        // Every line seen in the log before the stop, including those written during the
        // downtime and after the reattach, is still there, in sequence.
        assert!(
            last >= *seen,
            "{id}: log ends at {last}, line {seen} was seen"
        );
        lines += last + 1;
        bytes += log.len();
        min_last = min_last.min(last);
    }
    eprintln!(
        "restore_e2e: {LOOPS} tasks reattached after kill -9 ({:.1}s until the agent answered); \
         {lines} lines / {bytes} bytes of stdout checked (shortest log 0..={min_last}): \
         0 lost, 0 duplicated",
        ready_after.as_secs_f64()
    );
}

/// Supervisors an older build started run as `<yurt> supervise <spec>` (before
/// `yurt-supervisor` existed, every build re-executed the agent binary). The new agent
/// reattaches to them after a kill -9 of the old one: same task processes, same supervisors,
/// no new `Started`, output continuous; it stops them through the same socket protocol; and
/// what it starts itself runs under `yurt-supervisor`.
#[test]
fn reattaches_supervisors_an_older_build_started() {
    // The older build: the agent binary alone in a directory, so it falls back to
    // re-executing itself, exactly as older builds always did.
    let old_build = TempDir::new("old-build");
    let old_exe = old_build.path().join("yurt");
    std::fs::copy(env!("CARGO_BIN_EXE_yurt"), &old_exe).expect("copy the agent binary");
    let mut agent = Agent::start_exe(AgentOpts::dev(), old_exe.clone());
    let http = Http::default();
    let mut job = loop_job();
    job["TaskGroups"][0]["Count"] = json!(2);
    job["TaskGroups"][1]["Count"] = json!(1);
    register(&http, &agent, job);
    let loops = wait_for(LIMIT, "3 loop allocations running", || {
        let ids = alloc_ids(&http, &agent, "loops");
        (ids.len() == 3
            && ids.iter().all(|id| {
                alloc(&http, &agent, id)["ClientStatus"] == "running"
                    && handle_pid(&agent, id, "loop").is_some()
            }))
        .then_some(ids)
    });
    let old_supervisors = supervisors_under(agent.data_dir.path());
    assert_eq!(old_supervisors.len(), 3, "{old_supervisors:?}");
    for pid in &old_supervisors {
        let args = cmdline(*pid);
        assert_eq!(
            args[..2],
            [old_exe.display().to_string(), "supervise".into()]
        );
    }
    assert!(
        agent
            .log()
            .contains("task supervisor executable not found beside the agent"),
        "the fallback is announced:\n{}",
        agent.log()
    );
    let pids: Vec<(i32, u64)> = loops
        .iter()
        .map(|id| {
            let pid = handle_pid(&agent, id, "loop").unwrap();
            (pid, start_time(pid).expect("loop task alive"))
        })
        .collect();
    let supervisors: Vec<(i32, u64)> = old_supervisors
        .iter()
        .map(|p| (*p, start_time(*p).expect("supervisor alive")))
        .collect();

    // The upgrade: kill -9 the old agent, start the new build on the same data dir.
    agent.kill9();
    std::thread::sleep(Duration::from_secs(1));
    agent.exe = PathBuf::from(env!("CARGO_BIN_EXE_yurt"));
    agent.restart();
    let at_upgrade = progress(&agent, &loops);
    std::thread::sleep(Duration::from_secs(2));
    for (id, (pid, started)) in loops.iter().zip(&pids) {
        let a = alloc(&http, &agent, id);
        let st = task_state(&a, "loop");
        assert_eq!(a["ClientStatus"], "running", "{id}: {:#}", a["TaskStates"]);
        assert_eq!(count_events(&a, "loop", "Started"), 1, "{id}: {st:#}");
        assert_eq!(st["Restarts"], 0, "{id}");
        assert_eq!(start_time(*pid), Some(*started), "{id}: same task process");
    }
    for (pid, started) in &supervisors {
        assert_eq!(
            start_time(*pid),
            Some(*started),
            "old supervisor {pid} kept"
        );
    }
    assert!(
        !agent.log().contains("failed to restore task"),
        "{}",
        agent.log()
    );

    // New tasks run under the small executable beside the new agent.
    let mut fresh = loop_job();
    fresh["ID"] = json!("fresh");
    fresh["Name"] = json!("fresh");
    fresh["TaskGroups"] = json!([fresh["TaskGroups"][0].clone()]);
    fresh["TaskGroups"][0]["Count"] = json!(1);
    register(&http, &agent, fresh);
    wait_for(LIMIT, "fresh allocation running", || {
        let ids = alloc_ids(&http, &agent, "fresh");
        (ids.len() == 1 && alloc(&http, &agent, &ids[0])["ClientStatus"] == "running").then_some(())
    });
    let new_supervisors: Vec<Vec<String>> = supervisors_under(agent.data_dir.path())
        .into_iter()
        .filter(|p| !old_supervisors.contains(p))
        .map(cmdline)
        .collect();
    let small = Path::new(env!("CARGO_BIN_EXE_yurt")).with_file_name("yurt-supervisor");
    assert_eq!(new_supervisors.len(), 1, "{new_supervisors:?}");
    assert_eq!(new_supervisors[0][0], small.display().to_string());
    // Its control files are the agent's, under the client state dir, not in the task's tree.
    let spec = Path::new(new_supervisors[0].last().expect("spec argument"));
    let control = agent.data_dir.path().join("data/client/supervisors");
    assert!(spec.starts_with(&control), "{}", spec.display());
    let fresh_id = &alloc_ids(&http, &agent, "fresh")[0];
    assert!(!alloc_dir(&agent, fresh_id).join("loop/.yurt").exists());
    assert!(alloc_dir(&agent, fresh_id).join("loop/local").exists());

    // The tasks' output goes on past the upgrade (waited for, so a slow machine cannot
    // stop them before they wrote a line under the new agent).
    let after_upgrade = wait_past(
        &agent,
        &loops,
        &at_upgrade,
        "every loop task's output written after the upgrade in its log",
    );

    // Stopping goes through the old supervisors' sockets: tasks and supervisors end.
    let r = http.delete(&agent.url("/v1/job/loops"));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(LIMIT, "loop allocations complete", || {
        loops
            .iter()
            .all(|id| alloc(&http, &agent, id)["ClientStatus"] == "complete")
            .then_some(())
    });
    wait_for(LIMIT, "old supervisors exited", || {
        supervisors
            .iter()
            .all(|(pid, started)| start_time(*pid) != Some(*started))
            .then_some(())
    });
    for ((id, (pid, _)), seen) in loops.iter().zip(&pids).zip(after_upgrade) {
        assert!(start_time(*pid).is_none(), "{id}: task stopped");
        // Whole and in order, with every line seen after the upgrade still there.
        let last = check_sequence(id, &stdout_log(&alloc_dir(&agent, id), "loop"));
        assert!(
            last >= seen,
            "{id}: log ends at {last}, line {seen} was seen after the upgrade"
        );
    }
    let r = http.delete(&agent.url("/v1/job/fresh"));
    assert_eq!(r.status, 200, "{}", r.body);
}

/// `VmRSS` of a process in KiB.
fn vm_rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Private (not shared with other processes) resident memory in KiB, from smaps_rollup.
fn private_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Some(field("Private_Clean:") + field("Private_Dirty:"))
}

/// Measurement for docs/benchmarks.md, not a check: the agent's RSS with 100 running
/// raw_exec `sleep` allocations, before and after a kill -9 + restore. Run on a release build:
/// `cargo test --release --test restore_e2e -- --ignored --nocapture agent_rss`.
#[test]
#[ignore]
fn agent_rss_with_100_sleep_tasks() {
    const N: usize = 100;
    let mut agent = Agent::start(AgentOpts::dev());
    let http = Http::default();
    let mut job = loop_job();
    job["ID"] = json!("sleepers");
    job["Name"] = json!("sleepers");
    job["TaskGroups"][0]["Count"] = json!(N);
    job["TaskGroups"][0]["Tasks"][0]["Config"] =
        json!({"command": "/bin/sleep", "args": ["100000"]});
    job["TaskGroups"][0]["Tasks"][0]["Resources"] = json!({"CPU": 10, "MemoryMB": 10});
    register(&http, &agent, job);
    let running = || {
        let ids = alloc_ids(&http, &agent, "sleepers");
        (ids.len() == N
            && ids
                .iter()
                .all(|id| alloc(&http, &agent, id)["ClientStatus"] == "running"))
        .then_some(())
    };
    wait_for(Duration::from_secs(300), "100 sleepers running", running);
    std::thread::sleep(Duration::from_secs(5));
    let before = vm_rss_kib(agent.pid()).unwrap_or(0);
    let supervisors = supervisors_under(agent.data_dir.path())
        .into_iter()
        .filter_map(|pid| Some((vm_rss_kib(pid as u32)?, private_kib(pid as u32)?)))
        .collect::<Vec<_>>();
    let agent_private = private_kib(agent.pid()).unwrap_or(0);
    agent.restart();
    wait_for(Duration::from_secs(300), "100 sleepers restored", || {
        let ids = alloc_ids(&http, &agent, "sleepers");
        ids.iter()
            .all(|id| {
                let a = alloc(&http, &agent, id);
                a["ClientStatus"] == "running" && count_events(&a, "loop", "Started") == 1
            })
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(5));
    let after = vm_rss_kib(agent.pid()).unwrap_or(0);
    let n = supervisors.len().max(1) as u64;
    let sv_rss = supervisors.iter().map(|s| s.0).sum::<u64>() / n;
    let sv_private = supervisors.iter().map(|s| s.1).sum::<u64>() / n;
    eprintln!(
        "agent_rss: {N} running raw_exec sleep allocations: agent VmRSS {before} KiB \
         (private {agent_private} KiB) before, {after} KiB after kill -9 + restore; \
         {} supervisors, avg VmRSS {sv_rss} KiB, avg private {sv_private} KiB",
        supervisors.len()
    );
    let r = http.delete(&agent.url("/v1/job/sleepers"));
    assert_eq!(r.status, 200, "{}", r.body);
}
