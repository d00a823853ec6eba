//! Figures for the supervisor and raw_exec (printed, never asserted):
//! - start latency: `start_task` → task running (the supervisor reports after the task's exec),
//!   p50/p99 over 100 starts each of `sleep 1000` and `true`;
//! - log throughput: one task writing zeros at full speed through the supervisor into the
//!   rotator, against `dd` writing the same amount straight to the disk (O_DIRECT: the "raw
//!   disk write" of the budget) and into the page cache of a file in the same directory;
//! - the supervisor's private memory with a task running.
//!
//! `cargo bench -p yurt-drivers --bench supervisor`. By default the supervisor is the
//! `yurt-supervisor-test` binary; set `YURT_SUPERVISOR_EXE` to measure a shipped one:
//! `target/release/yurt-supervisor` (`<exe> <spec>`) or `target/release/yurt` (re-executed as
//! `<exe> supervise <spec>`, the fallback). The figure that counts against the budget is
//! measured with 100 tasks under a real agent: `benches/job_start.rs`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Env;
use serde_json::json;
use yurt_drivers::TaskDriver;
use yurt_drivers::rawexec::{RawExecDriver, RawExecPluginConfig};
use yurt_drivers::supervisor::proctree;
use yurt_drivers::supervisor_client::{SUPERVISE_ARG, SUPERVISOR_EXE};

fn driver(env: &Env) -> (RawExecDriver, String) {
    let mut sv = env.supervisor();
    let mut label = "yurt-supervisor-test".to_string();
    if let Some(exe) = std::env::var_os("YURT_SUPERVISOR_EXE") {
        label = PathBuf::from(&exe).display().to_string();
        let exe = PathBuf::from(exe);
        sv.args_prefix = if exe.ends_with(SUPERVISOR_EXE) {
            Vec::new()
        } else {
            vec![SUPERVISE_ARG.into()]
        };
        sv.exe = exe;
    }
    let plugin = RawExecPluginConfig {
        enabled: true,
        ..Default::default()
    };
    (RawExecDriver::new(plugin, sv), label)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn start_latency(env: &Env, d: &RawExecDriver, name: &str, cmd: &str, args: &[&str]) {
    let mut times = Vec::with_capacity(100);
    for i in 0..100 {
        let cfg = env.task(&format!("{name}{i}"), json!({"command": cmd, "args": args}));
        let t0 = Instant::now();
        let h = d.start_task(&cfg).await.expect("start");
        times.push(t0.elapsed());
        env.track(&h);
        d.stop_task(&cfg.id, Duration::ZERO, "SIGKILL")
            .await
            .expect("stop");
        d.destroy_task(&cfg.id, true).await.expect("destroy");
    }
    times.sort();
    println!(
        "start_task → running, {cmd} {}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (n=100)",
        args.join(" "),
        pct(&times, 0.5).as_secs_f64() * 1e3,
        pct(&times, 0.99).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
}

/// Bytes per throughput run.
const RUN_MIB: u64 = 1024;

async fn through_supervisor(env: &Env, d: &RawExecDriver, run: u32) -> Duration {
    let mut cfg = env.task(
        &format!("firehose{run}"),
        json!({"command": "dd", "args": ["if=/dev/zero", "bs=64k", format!("count={}", RUN_MIB * 16), "status=none"]}),
    );
    cfg.logs.max_file_size_mb = 100;
    cfg.logs.max_files = 3;
    let t0 = Instant::now();
    let h = d.start_task(&cfg).await.expect("start");
    env.track(&h);
    let r = d.wait_task(&cfg.id).await.expect("wait");
    let took = t0.elapsed();
    assert_eq!(r.exit_code, 0);
    d.destroy_task(&cfg.id, false).await.expect("destroy");
    took
}

/// `dd` writing `RUN_MIB` of zeros to a file in the logs dir with the given block and flags;
/// the time it took.
fn timed_dd(env: &Env, name: &str, args: &[&str]) -> Duration {
    let raw_path = env.logs_dir().join(name);
    let t0 = Instant::now();
    let st = std::process::Command::new("dd")
        .args([
            "if=/dev/zero",
            &format!("of={}", raw_path.display()),
            "status=none",
        ])
        .args(args)
        .status()
        .expect("dd");
    let took = t0.elapsed();
    assert!(st.success());
    let _ = std::fs::remove_file(&raw_path);
    took
}

/// `dd` into the page cache of one file, 64 KiB blocks (what the task itself writes).
fn raw_dd(env: &Env) -> Duration {
    timed_dd(
        env,
        "raw-dd",
        &["bs=64k", &format!("count={}", RUN_MIB * 16)],
    )
}

/// What the disk itself sustains: `dd` with O_DIRECT (no page cache), 1 MiB blocks.
fn raw_disk(env: &Env) -> Duration {
    timed_dd(
        env,
        "raw-direct",
        &["bs=1M", &format!("count={RUN_MIB}"), "oflag=direct"],
    )
}

/// The rotator's file pattern without the task, pipe or supervisor: 64 KiB writes into
/// 100 MiB files, keeping the newest 3.
fn raw_pattern(env: &Env) -> Duration {
    use std::io::Write;
    let buf = vec![0u8; 64 * 1024];
    let path = |i: u64| env.logs_dir().join(format!("raw-pattern.{i}"));
    let t0 = Instant::now();
    let per_file = 100 * 16;
    let mut f = None;
    for n in 0..RUN_MIB * 16 {
        if n % per_file == 0 {
            let i = n / per_file;
            f = Some(std::fs::File::create(path(i)).expect("create"));
            if i >= 3 {
                let _ = std::fs::remove_file(path(i - 3));
            }
        }
        if let Some(f) = f.as_mut() {
            f.write_all(&buf).expect("write");
        }
    }
    let took = t0.elapsed();
    for i in 0..=RUN_MIB * 16 / per_file {
        let _ = std::fs::remove_file(path(i));
    }
    took
}

fn sync() {
    let _ = std::process::Command::new("sync").status();
}

async fn throughput(env: &Env, d: &RawExecDriver) {
    // Best of three each, alternating, with a sync before every run, so neither side pays
    // alone for writeback or for first-touch page-cache allocation.
    let (mut sup, mut raw, mut pattern) = (Duration::MAX, Duration::MAX, Duration::MAX);
    let mut disk = Duration::MAX;
    for run in 0..3 {
        sync();
        disk = disk.min(raw_disk(env));
        sync();
        raw = raw.min(raw_dd(env));
        sync();
        pattern = pattern.min(raw_pattern(env));
        sync();
        sup = sup.min(through_supervisor(env, d, run).await);
    }
    let mb = RUN_MIB as f64;
    let rate = |d: Duration| mb / d.as_secs_f64();
    println!(
        "log throughput, {RUN_MIB} MiB, best of 3: task→pipe→supervisor→rotator {:.0} MiB/s; \
         raw disk write (dd O_DIRECT) {:.0} MiB/s ({:.0}%); \
         raw dd into one file (page cache) {:.0} MiB/s ({:.0}%); \
         raw writes in the rotator's file pattern {:.0} MiB/s ({:.0}%)",
        rate(sup),
        rate(disk),
        disk.as_secs_f64() / sup.as_secs_f64() * 100.0,
        rate(raw),
        raw.as_secs_f64() / sup.as_secs_f64() * 100.0,
        rate(pattern),
        pattern.as_secs_f64() / sup.as_secs_f64() * 100.0
    );
}

async fn memory(env: &Env, d: &RawExecDriver) {
    let report = |pid: u32, when: &str| {
        let (clean, dirty) = proctree::private_memory_split(pid).expect("smaps_rollup");
        let rss = proctree::sample(pid).expect("stat").rss_bytes;
        println!(
            "supervisor private memory {when}: Private_Clean+Private_Dirty = {} KiB \
             (clean {} KiB, dirty {} KiB), RSS {} KiB; budget <= 1024 KiB  \
             [/proc/{pid}/smaps_rollup]",
            (clean + dirty) / 1024,
            clean / 1024,
            dirty / 1024,
            rss / 1024
        );
    };
    let mut ids = Vec::new();
    let mut pids = Vec::new();
    for i in 0..2 {
        let name = format!("idle{i}");
        let cfg = env.task(
            &name,
            json!({"command": "/bin/sh", "args": ["-c", "seq 1 200000; echo done; exec sleep 1000"]}),
        );
        let h = d.start_task(&cfg).await.expect("start");
        let st = env.track(&h);
        env.wait_for_log(&name, "stdout", "done");
        ids.push(cfg.id);
        pids.push(st.supervisor_pid);
        report(
            pids[0],
            if i == 0 {
                "(the only process running this binary)"
            } else {
                "(a second supervisor shares the code)"
            },
        );
    }
    for id in ids {
        d.destroy_task(&id, true).await.expect("destroy");
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let env = Env::new("bench");
        let (d, label) = driver(&env);
        println!("supervisor binary: {label}");
        memory(&env, &d).await;
        start_latency(&env, &d, "sleep", "sleep", &["1000"]).await;
        start_latency(&env, &d, "true", "true", &[]).await;
        throughput(&env, &d).await;
    });
}
