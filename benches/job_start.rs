//! Job start latency (issue 3): job register → raw_exec task running, over 100 jobs on one
//! agent running server and client in one process, then the agent's RSS with the 100 tasks
//! (`sleep`) still running. Budgets (DESIGN.md, issue 18): p50 ≤ 20 ms; agent RSS ≤ 20 MiB idle
//! and ≤ 30 MiB with the 100 tasks, read from `/proc/<pid>/smaps_rollup`.
//!
//! "Running" is measured two ways for every job:
//! - `status`: from sending `PUT /v1/jobs` until a blocking query on `/v1/allocation/<id>`
//!   returns `ClientStatus == "running"` (what `nomad job run` waits for): scheduling, the
//!   client's alloc fetch, task dir + supervisor + exec, and the status update to the server;
//! - `output`: from the same instant until the task's first output line was written to
//!   `alloc/logs/t.stdout.0` (the log file's mtime), i.e. the process really ran.
//!
//! With the 100 tasks running it also reads, from outside, the memory of every task's
//! supervisor process (`Private_Clean + Private_Dirty` from `/proc/<pid>/smaps_rollup`,
//! averaged; budget ≤ 1 MiB) and the agent's VmRSS (budget ≤ 30 MiB).
//!
//! Each `status` sample is also split where the client sees it: the PUT's answer (job and
//! evaluation durable), the allocation listed by the job's blocking query (scheduled, plan
//! durable), and `running` seen (client fetch, task start, status update durable).
//!
//! Run with `cargo bench --bench job_start` (release build, starts real `yurt` processes; the
//! supervisors are the `yurt-supervisor` built beside it). `YURT_BENCH_SUPERVISOR=reexec`
//! runs a copy of the agent binary alone in a directory instead, so every supervisor is the
//! agent re-executed (`yurt supervise <spec>`: the fallback, and what builds before
//! `yurt-supervisor` ran).
//! For a per-step breakdown inside the agent, run it with
//! `RUST_LOG=info,yurt::latency=debug JOB_START_KEEP_LOG=<file>`: the agent's log is copied
//! to `<file>` at the end.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use serde_json::{Value, json};

const JOBS: usize = 100;

fn job(id: &str) -> Value {
    json!({
        "ID": id,
        "Name": id,
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "g",
            "Count": 1,
            // Small enough that 100 fit on any data dir, tmpfs included.
            "EphemeralDisk": {"SizeMB": 20},
            "Tasks": [{
                "Name": "t",
                "Driver": "raw_exec",
                "Config": {"command": "/bin/sh", "args": ["-c", "echo up; exec sleep 1000"]},
                "Resources": {"CPU": 20, "MemoryMB": 16},
                "LogConfig": {"MaxFiles": 2, "MaxFileSizeMB": 1},
            }],
        }],
    })
}

/// Budget for register → running (DESIGN.md).
const BUDGET_P50_MS: f64 = 20.0;

/// The first allocation of `job`, waiting with blocking queries.
fn first_alloc(http: &Http, agent: &Agent, job: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut index = 0;
    loop {
        assert!(Instant::now() < deadline, "no allocation for {job}");
        let r = http.get(&agent.url(&format!("/v1/job/{job}/allocations?index={index}&wait=10s")));
        assert_eq!(r.status, 200, "{}", r.body);
        if let Some(id) = r.json()[0]["ID"].as_str() {
            return id.to_string();
        }
        index = r.index();
    }
}

/// Waits, with blocking queries, until the allocation's ClientStatus is `running`.
fn wait_running(http: &Http, agent: &Agent, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut index = 0;
    loop {
        assert!(Instant::now() < deadline, "allocation {id} not running");
        let r = http.get(&agent.url(&format!("/v1/allocation/{id}?index={index}&wait=10s")));
        assert_eq!(r.status, 200, "{}", r.body);
        let a = r.json();
        match a["ClientStatus"].as_str() {
            Some("running") => return,
            Some("pending") => {}
            other => panic!("allocation {id} went {other:?}: {a}"),
        }
        index = r.index();
    }
}

/// Agent memory budgets (DESIGN.md, issue 18): RSS idle and with 100 running tasks.
const IDLE_BUDGET_MIB: f64 = 20.0;
const LOADED_BUDGET_MIB: f64 = 30.0;

/// The agent's memory as `/proc/<pid>/smaps_rollup` reports it, in KiB.
#[derive(Debug, Default, Clone, Copy)]
struct Memory {
    rss: u64,
    private_dirty: u64,
    anonymous: u64,
}

fn memory(pid: u32) -> Memory {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss: field("Rss"),
        private_dirty: field("Private_Dirty"),
        anonymous: field("Anonymous"),
    }
}

fn print_memory(what: &str, m: Memory, budget_mib: f64) {
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "job_start rss: agent (server+client) {what}: Rss {:.1} MiB (budget {budget_mib:.0} MiB{}), \
         Private_Dirty {:.1} MiB, Anonymous {:.1} MiB",
        mib(m.rss),
        if mib(m.rss) <= budget_mib {
            ", met"
        } else {
            ", MISSED"
        },
        mib(m.private_dirty),
        mib(m.anonymous),
    );
}

/// `(Private_Clean, Private_Dirty)` of a process in KiB, from smaps_rollup.
fn private_kib(pid: i32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((field("Private_Clean:")?, field("Private_Dirty:")?))
}

/// Average private memory of the agent's task supervisors, printed beside the budget.
fn report_supervisors(agent: &Agent) {
    let pids = supervisors_under(agent.data_dir.path());
    let forms: std::collections::BTreeSet<String> = pids
        .iter()
        .map(|p| {
            let args = cmdline(*p);
            let exe = Path::new(args.first().map_or("?", String::as_str))
                .file_name()
                .map_or_else(|| "?".into(), |n| n.to_string_lossy().into_owned());
            if args.len() == 3 {
                format!("{exe} {}", args[1])
            } else {
                exe
            }
        })
        .collect();
    let samples: Vec<(u64, u64, u64)> = pids
        .iter()
        .filter_map(|p| {
            let (clean, dirty) = private_kib(*p)?;
            Some((clean, dirty, memory(*p as u32).rss))
        })
        .collect();
    let n = samples.len().max(1) as u64;
    let avg = |f: fn(&(u64, u64, u64)) -> u64| samples.iter().map(f).sum::<u64>() / n;
    let (clean, dirty, rss) = (avg(|s| s.0), avg(|s| s.1), avg(|s| s.2));
    let max = samples.iter().map(|s| s.0 + s.1).max().unwrap_or(0);
    println!(
        "job_start supervisors: {} processes ({}), avg Private_Clean+Private_Dirty {} KiB \
         (clean {clean}, dirty {dirty}; max {max}), avg Rss {rss} KiB; budget <= 1024 KiB \
         [/proc/<pid>/smaps_rollup]",
        samples.len(),
        forms.into_iter().collect::<Vec<_>>().join(", "),
        clean + dirty,
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, mut d: Vec<Duration>, budget_p50_ms: Option<f64>) {
    d.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p50 = ms(percentile(&d, 0.5));
    let budget = match budget_p50_ms {
        Some(b) if p50 <= b => format!(" (budget p50 <= {b:.0} ms: met)"),
        Some(b) => format!(" (budget p50 <= {b:.0} ms: MISSED)"),
        None => String::new(),
    };
    println!(
        "job_start {what}: n={} p50 {p50:.1} ms, p90 {:.1} ms, p99 {:.1} ms, min {:.1} ms, max {:.1} ms{budget}",
        d.len(),
        ms(percentile(&d, 0.9)),
        ms(percentile(&d, 0.99)),
        ms(d[0]),
        ms(d[d.len() - 1]),
    );
}

fn main() {
    // Generous totals so 100 small tasks always fit whatever this machine has.
    let mut opts = AgentOpts::dev();
    opts.extra_hcl =
        "client {\n  cpu_total_compute = 100000\n  memory_total_mb = 100000\n}\n".into();
    // The harness logs at DEBUG; a user's agent logs at INFO.
    opts.extra_args = vec!["-log-level".into(), "INFO".into()];
    let mut dirs = DirGuard::default();
    let reexec = std::env::var("YURT_BENCH_SUPERVISOR").is_ok_and(|v| v == "reexec");
    // Declared before the agent, so the copy is removed after the agent stopped.
    let old_build = reexec.then(|| TempDir::new("reexec-build"));
    let agent = match &old_build {
        Some(dir) => {
            let exe = dir.path().join("yurt");
            std::fs::copy(env!("CARGO_BIN_EXE_yurt"), &exe).expect("copy the agent binary");
            let agent = Agent::start_exe(opts, exe);
            dirs.0.push(agent.data_dir.path().to_path_buf());
            agent
        }
        None => dirs.start(opts),
    };
    let http = Http::default();
    wait_for(Duration::from_secs(30), "node ready", || {
        let n = http.get(&agent.url("/v1/nodes")).json();
        (n[0]["Status"] == "ready").then_some(())
    });
    let mut guard = ProcGuard(Vec::new());
    // The binary's pages settle (the first requests fault in code) before the idle reading.
    std::thread::sleep(Duration::from_secs(2));
    let idle = memory(agent.pid());
    let mut halfway = Memory::default();

    let mut status = Vec::new();
    let mut put = Vec::new();
    let mut listed = Vec::new();
    let mut to_running = Vec::new();
    let mut output = Vec::new();
    for i in 0..JOBS {
        let id = format!("lat-{i:03}");
        let wall0 = SystemTime::now();
        let t0 = Instant::now();
        let r = http.put(&agent.url("/v1/jobs"), &json!({"Job": job(&id)}));
        assert_eq!(r.status, 200, "{}", r.body);
        let t_put = t0.elapsed();
        let alloc = first_alloc(&http, &agent, &id);
        let t_listed = t0.elapsed();
        wait_running(&http, &agent, &alloc);
        let t_running = t0.elapsed();
        status.push(t_running);
        put.push(t_put);
        listed.push(t_listed - t_put);
        to_running.push(t_running - t_listed);
        guard.0.push(alloc.clone());
        let log = alloc_dir(&agent, &alloc).join("alloc/logs/t.stdout.0");
        let written = wait_for(Duration::from_secs(10), "first output", || {
            let m = std::fs::metadata(&log).ok()?;
            (m.len() > 0).then(|| m.modified().ok())?
        });
        output.push(written.duration_since(wall0).unwrap_or_default());
        if i + 1 == JOBS / 2 {
            halfway = memory(agent.pid());
        }
    }
    report(
        "register -> ClientStatus running (blocking query)",
        status,
        Some(BUDGET_P50_MS),
    );
    report("  PUT /v1/jobs answered", put, None);
    report("  answered -> allocation listed", listed, None);
    report("  listed -> running seen", to_running, None);
    report("register -> first task output (log mtime)", output, None);

    // Let the last status updates and log flushes settle before reading memory.
    std::thread::sleep(Duration::from_secs(2));
    let running = guard
        .0
        .iter()
        .filter(|id| !pids_matching(&format!("NOMAD_ALLOC_ID={id}")).is_empty())
        .count();
    let loaded = memory(agent.pid());
    print_memory("idle", idle, IDLE_BUDGET_MIB);
    print_memory(
        &format!("with {running} running sleep tasks"),
        loaded,
        LOADED_BUDGET_MIB,
    );
    // Growth per task over the second half, where start-up effects are gone.
    let per_task = loaded.anonymous.saturating_sub(halfway.anonymous) as f64 / (JOBS / 2) as f64;
    println!("job_start rss: anonymous memory per running task (tasks 51-100): {per_task:.0} KiB");
    report_supervisors(&agent);
    // With RUST_LOG=info,yurt::latency=debug the log holds the per-step timings.
    if let Ok(to) = std::env::var("JOB_START_KEEP_LOG") {
        std::fs::write(&to, agent.log()).expect("copying the agent log");
        println!("job_start agent log copied to {to}");
    }
    drop(agent);
    drop(guard);
    drop(dirs);
}
