//! raw_exec through real supervisor processes (the `yurt-supervisor-test` binary).

mod common;

use std::time::{Duration, Instant};

use common::{Env, alive, concat_logs, log_indexes};
use serde_json::json;
use yurt_drivers::rawexec::RawExecPluginConfig;
use yurt_drivers::supervisor::proctree;
use yurt_drivers::{DriverError, HealthState, TaskDriver};

/// Every test body runs under this bound.
const BOUND: Duration = Duration::from_secs(60);

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(BOUND, f)
        .await
        .expect("test exceeded its time bound")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_and_output_land_in_logs() {
    bounded(async {
        let env = Env::new("exit");
        let d = env.driver();
        let cfg = env.sh("web", "echo hi; echo err >&2; exit 3");
        let h = d.start_task(&cfg).await.unwrap();
        env.track(&h);
        // Concurrent waiters see the same single result.
        let (a, b) = tokio::join!(d.wait_task(&cfg.id), d.wait_task(&cfg.id));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a, b);
        assert_eq!((a.exit_code, a.signal, a.oom_killed), (3, 0, false));
        assert!(a.err.is_none());
        assert_eq!(
            std::fs::read(env.logs_dir().join("web.stdout.0")).unwrap(),
            b"hi\n"
        );
        assert_eq!(
            std::fs::read(env.logs_dir().join("web.stderr.0")).unwrap(),
            b"err\n"
        );
        // Waiting again after the exit still works; signalling a dead task does not.
        assert_eq!(d.wait_task(&cfg.id).await.unwrap().exit_code, 3);
        assert!(matches!(
            d.signal_task(&cfg.id, "SIGHUP").await,
            Err(DriverError::TaskNotRunning)
        ));
        d.destroy_task(&cfg.id, false).await.unwrap();
        assert!(matches!(
            d.wait_task(&cfg.id).await,
            Err(DriverError::TaskNotFound(_))
        ));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn death_by_signal_is_reported() {
    bounded(async {
        let env = Env::new("sig");
        let d = env.driver();
        let cfg = env.sh("killed", "kill -TERM $$");
        let h = d.start_task(&cfg).await.unwrap();
        env.track(&h);
        let r = d.wait_task(&cfg.id).await.unwrap();
        assert_eq!((r.exit_code, r.signal), (143, libc::SIGTERM));
        d.destroy_task(&cfg.id, false).await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_escalates_to_sigkill_and_leaves_no_process() {
    bounded(async {
        let env = Env::new("stop");
        let d = env.driver();
        // Ignores SIGINT; leaves background children in its group and one in its own session.
        let cfg = env.sh(
            "stubborn",
            "trap '' INT; sleep 1000 & sleep 1000 & setsid sleep 1000 & echo ready; \
             while :; do sleep 0.05; done",
        );
        let h = d.start_task(&cfg).await.unwrap();
        let st = env.track(&h);
        env.wait_for_log("stubborn", "stdout", "ready");
        let mut tree = proctree::descendants(st.supervisor_pid);
        let deadline = Instant::now() + Duration::from_secs(5);
        while tree.len() < 4 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tree = proctree::descendants(st.supervisor_pid);
        }
        assert!(
            tree.len() >= 4,
            "expected the shell and three sleeps: {tree:?}"
        );
        let t0 = Instant::now();
        d.stop_task(&cfg.id, Duration::from_millis(500), "")
            .await
            .unwrap();
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(450),
            "stopped too early: {took:?}"
        );
        let r = d.wait_task(&cfg.id).await.unwrap();
        assert_eq!((r.exit_code, r.signal), (137, libc::SIGKILL));
        let left: Vec<u32> = tree.iter().copied().filter(|&p| alive(p)).collect();
        assert!(left.is_empty(), "processes survived the stop: {left:?}");
        assert!(
            alive(st.supervisor_pid),
            "the supervisor stays until shutdown"
        );
        d.destroy_task(&cfg.id, false).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(st.supervisor_pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            !alive(st.supervisor_pid),
            "supervisor did not exit after shutdown"
        );
        assert!(!st.socket_path.exists(), "socket left behind");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_uses_the_given_signal() {
    bounded(async {
        let env = Env::new("graceful");
        let d = env.driver();
        let cfg = env.sh(
            "polite",
            "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.05; done",
        );
        let h = d.start_task(&cfg).await.unwrap();
        env.track(&h);
        env.wait_for_log("polite", "stdout", "ready");
        let t0 = Instant::now();
        d.stop_task(&cfg.id, Duration::from_secs(20), "SIGTERM")
            .await
            .unwrap();
        assert!(t0.elapsed() < Duration::from_secs(5));
        let r = d.wait_task(&cfg.id).await.unwrap();
        assert_eq!((r.exit_code, r.signal), (0, 0));
        assert!(env.log_string("polite", "stdout").contains("bye"));
        d.destroy_task(&cfg.id, false).await.unwrap();
    })
    .await
}

/// The task starts with default signal dispositions whatever the supervisor ignores (SIGHUP)
/// or inherited (a test run as a background job has SIGINT and SIGQUIT ignored): a stop with
/// SIGHUP ends it by SIGHUP, not by the SIGKILL escalation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_starts_with_no_signal_ignored() {
    bounded(async {
        let env = Env::new("sigdfl");
        let d = env.driver();
        let cfg = env.sh("plain", "echo ready; exec sleep 1000");
        let h = d.start_task(&cfg).await.unwrap();
        let st = env.track(&h);
        env.wait_for_log("plain", "stdout", "ready");
        let status = std::fs::read_to_string(format!("/proc/{}/status", st.task_pid)).unwrap();
        let ignored = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .unwrap();
        // Standard signals only: the C library reserves 32 and 33 and sets them up itself.
        assert_eq!(
            ignored & 0x7fff_ffff,
            0,
            "task ignores signals: {ignored:#x}"
        );
        let t0 = Instant::now();
        d.stop_task(&cfg.id, Duration::from_secs(10), "SIGHUP")
            .await
            .unwrap();
        let r = d.wait_task(&cfg.id).await.unwrap();
        assert_eq!(r.signal, libc::SIGHUP);
        assert!(t0.elapsed() < Duration::from_secs(5));
        d.destroy_task(&cfg.id, false).await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_task_reaches_a_trap() {
    bounded(async {
        let env = Env::new("usr1");
        let d = env.driver();
        let cfg = env.sh(
            "trapper",
            "trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.05; done",
        );
        let h = d.start_task(&cfg).await.unwrap();
        env.track(&h);
        env.wait_for_log("trapper", "stdout", "ready");
        d.signal_task(&cfg.id, "SIGUSR1").await.unwrap();
        env.wait_for_log("trapper", "stdout", "got-usr1");
        assert!(matches!(
            d.signal_task(&cfg.id, "SIGBOGUS").await,
            Err(DriverError::InvalidSignal(_))
        ));
        assert!(matches!(
            d.signal_task(&cfg.id, "sigusr1").await,
            Err(DriverError::InvalidSignal(_))
        ));
        let stats = d.task_stats(&cfg.id).await.unwrap();
        assert!(stats.memory.rss > 0);
        // From the task cgroup as root (RSS, Cache, Usage, ...), from /proc otherwise (RSS).
        assert!(
            stats.memory.measured.iter().any(|m| m == "RSS"),
            "{stats:?}"
        );
        assert!(matches!(
            d.destroy_task(&cfg.id, false).await,
            Err(DriverError::Failed(_))
        ));
        d.destroy_task(&cfg.id, true).await.unwrap();
        assert!(matches!(
            d.signal_task(&cfg.id, "SIGUSR1").await,
            Err(DriverError::TaskNotFound(_))
        ));
    })
    .await
}

/// Checks that `data` is exactly "1\n2\n...N\n" for some N ≥ `at_least`; returns N.
fn assert_numbered(data: &[u8], at_least: u64) -> u64 {
    let text = std::str::from_utf8(data).expect("utf8 log");
    assert!(text.ends_with('\n'), "log ends mid-line");
    let mut expected = 1u64;
    for line in text.lines() {
        let n: u64 = line
            .parse()
            .unwrap_or_else(|_| panic!("bad line {line:?} where {expected} was due"));
        assert_eq!(n, expected, "lost or duplicated output");
        expected += 1;
    }
    let last = expected - 1;
    assert!(last >= at_least, "only {last} lines");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reattach_after_agent_crash_loses_no_byte() {
    bounded(async {
        let env = Env::new("reattach");
        let d = env.driver();
        let mut cfg = env.sh("counter", "i=0; while :; do i=$((i+1)); echo $i; done");
        // Small files so the writer also rotates while no agent is attached.
        cfg.logs.max_file_size_mb = 1;
        cfg.logs.max_files = 1000;
        let h = d.start_task(&cfg).await.unwrap();
        let st = env.track(&h);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The agent "crashes": the driver vanishes without stopping anything.
        drop(d);
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Stay detached until the writer has rotated on its own: how fast the shell fills
        // 1 MiB depends on the machine's load, not on a fixed sleep.
        let detached = Instant::now();
        while log_indexes(&env.logs_dir(), "counter.stdout").len() < 2 {
            assert!(
                detached.elapsed() < Duration::from_secs(30),
                "no rotation while detached"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(alive(st.task_pid), "task died with the driver");

        let d2 = env.driver();
        d2.recover_task(&h).await.unwrap();
        d2.recover_task(&h).await.unwrap(); // tracked: a no-op
        assert!(alive(st.task_pid));
        let stats = d2.task_stats(&cfg.id).await.unwrap();
        assert!(stats.memory.rss > 0);
        tokio::time::sleep(Duration::from_millis(300)).await;
        d2.stop_task(&cfg.id, Duration::from_secs(5), "SIGINT")
            .await
            .unwrap();
        let r = d2.wait_task(&cfg.id).await.unwrap();
        assert_eq!(r.signal, libc::SIGINT);
        d2.destroy_task(&cfg.id, false).await.unwrap();
        let files = log_indexes(&env.logs_dir(), "counter.stdout");
        let n = assert_numbered(&env.log("counter", "stdout"), 1000);
        println!(
            "reattach: {n} lines over {} files, none lost or repeated",
            files.len()
        );
        assert!(files.len() > 1, "expected rotation during the test");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_while_detached_is_recovered() {
    bounded(async {
        let env = Env::new("detached");
        // (a) The supervisor lingers after the exit: recover through its socket.
        let d = env.driver();
        let cfg = env.sh("short", "sleep 0.2; exit 7");
        let h = d.start_task(&cfg).await.unwrap();
        let st = env.track(&h);
        let task = identity(st.task_pid);
        drop(d);
        // The task exits while no driver is attached (waited for: how long the shell takes
        // to get through its 0.2 s depends on the machine's load).
        wait_gone(task).await;
        let d2 = env.driver();
        d2.recover_task(&h).await.unwrap();
        assert_eq!(d2.wait_task(&cfg.id).await.unwrap().exit_code, 7);
        drop(d2);

        // (b) The supervisor is gone too: the durable exit record answers.
        unsafe { libc::kill(st.supervisor_pid as i32, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(st.supervisor_pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let d3 = env.driver();
        d3.recover_task(&h).await.unwrap();
        let r = d3.wait_task(&cfg.id).await.unwrap();
        assert_eq!((r.exit_code, r.signal, r.err), (7, 0, None));
        d3.destroy_task(&cfg.id, false).await.unwrap();

        // (c) Supervisor killed while the task ran: no record, recovery fails.
        let d4 = env.driver();
        let cfg = env.sh("orphan", "sleep 1000");
        let h = d4.start_task(&cfg).await.unwrap();
        let st = env.track(&h);
        let task = identity(st.task_pid);
        drop(d4);
        unsafe { libc::kill(st.supervisor_pid as i32, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(st.supervisor_pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let d5 = env.driver();
        let err = d5.recover_task(&h).await.unwrap_err().to_string();
        assert!(err.contains("failed to recover"), "{err}");
        // The task runner starts a new instance next: the orphan must not run beside it.
        wait_gone(task).await;

        // (d) A hung supervisor (stopped) with its task running: the same, and the
        // supervisor itself is killed.
        let d6 = env.driver();
        let cfg = env.sh("hung", "sleep 1000");
        let h = d6.start_task(&cfg).await.unwrap();
        let st = env.track(&h);
        let (task, supervisor) = (identity(st.task_pid), identity(st.supervisor_pid));
        drop(d6);
        unsafe { libc::kill(st.supervisor_pid as i32, libc::SIGSTOP) };
        let d7 = env.driver();
        let err = d7.recover_task(&h).await.unwrap_err().to_string();
        assert!(err.contains("failed to recover"), "{err}");
        wait_gone(task).await;
        wait_gone(supervisor).await;
    })
    .await
}

/// A process identity that survives PID reuse: its PID and start time (clock ticks).
fn identity(pid: u32) -> (u32, Option<u64>) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command; starttime is field 22 overall.
    let start = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(19)?.parse().ok());
    (pid, start)
}

/// Waits (bounded) until the process `who` (from [`identity`]) no longer runs; a PID reused
/// by another process counts as gone (the machine's pid_max is small).
async fn wait_gone(who: (u32, Option<u64>)) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(who.0) && identity(who.0).1 == who.1 {
        if Instant::now() >= deadline {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", who.0));
            let cmd = std::fs::read(format!("/proc/{}/cmdline", who.0)).unwrap_or_default();
            panic!(
                "pid {} still runs: {stat:?} {:?}",
                who.0,
                String::from_utf8_lossy(&cmd)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_exact_tail_under_fast_writer() {
    bounded(async {
        let env = Env::new("rotate");
        let d = env.driver();
        let mut cfg = env.task("fast", json!({"command": "seq", "args": ["1", "2000000"]}));
        cfg.logs.max_file_size_mb = 1;
        cfg.logs.max_files = 2;
        let h = d.start_task(&cfg).await.unwrap();
        env.track(&h);
        let r = d.wait_task(&cfg.id).await.unwrap();
        assert_eq!(r.exit_code, 0);
        d.destroy_task(&cfg.id, false).await.unwrap();
        let idx = log_indexes(&env.logs_dir(), "fast.stdout");
        assert!(idx.len() <= 2, "more than MaxFiles remain: {idx:?}");
        let kept = concat_logs(&env.logs_dir(), "fast.stdout");
        let mut all = Vec::with_capacity(15 << 20);
        for i in 1..=2_000_000u32 {
            all.extend_from_slice(format!("{i}\n").as_bytes());
        }
        assert!(kept.len() > 1 << 20, "kept only {} bytes", kept.len());
        assert!(all.ends_with(&kept), "kept files are not the exact tail");
        for i in idx {
            let len = std::fs::metadata(env.logs_dir().join(format!("fast.stdout.{i}")))
                .unwrap()
                .len();
            assert!(len <= 1 << 20, "file {i} is {len} bytes");
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_private_memory_is_small() {
    bounded(async {
        let env = Env::new("mem");
        let d = env.driver();
        // Output first, so the read buffer and rotators have been exercised.
        let cfg = env.sh(
            "idle",
            "seq 1 200000; seq 1 1000 >&2; echo done; exec sleep 1000",
        );
        let h = d.start_task(&cfg).await.unwrap();
        let st = env.track(&h);
        env.wait_for_log("idle", "stdout", "done");
        let (clean, dirty) = proctree::private_memory_split(st.supervisor_pid).unwrap();
        let private = clean + dirty;
        let rss = proctree::sample(st.supervisor_pid).unwrap().rss_bytes;
        println!(
            "supervisor pid {}: private {} KiB (clean {} + dirty {}), RSS {} KiB",
            st.supervisor_pid,
            private / 1024,
            clean / 1024,
            dirty / 1024,
            rss / 1024
        );
        assert!(
            private < 4 << 20,
            "supervisor private memory {private} bytes"
        );
        d.destroy_task(&cfg.id, true).await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_driver_and_bad_configs() {
    bounded(async {
        let env = Env::new("disabled");
        let off = env.driver_with(RawExecPluginConfig::default());
        let fp = off.fingerprint().await;
        assert_eq!(fp.health, HealthState::Undetected);
        assert_eq!(fp.health_description, "disabled");
        assert!(fp.attributes.is_empty());
        let cfg = env.sh("x", "true");
        assert!(matches!(
            off.start_task(&cfg).await,
            Err(DriverError::Unavailable(_))
        ));

        let on = env.driver();
        let fp = on.fingerprint().await;
        assert_eq!(fp.health, HealthState::Healthy);
        assert_eq!(fp.health_description, "Healthy");
        assert_eq!(fp.attributes.get("driver.raw_exec").map(String::as_str), Some("true"));
        let bad = env.task("bad", json!({"command": "true", "colour": "red"}));
        match on.start_task(&bad).await {
            Err(DriverError::InvalidConfig(m)) => assert!(m.contains("colour"), "{m}"),
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
        let missing = env.task("missing", json!({"command": "no-such-binary-yurt"}));
        assert!(on.start_task(&missing).await.is_err());
        let cfg = env.sh("dup", "sleep 1000");
        let h = on.start_task(&cfg).await.unwrap();
        env.track(&h);
        assert!(on.start_task(&cfg).await.is_err(), "duplicate ID accepted");
        on.destroy_task(&cfg.id, true).await.unwrap();
        // Env, user and work_dir reach the task.
        let mut cfg = env.task(
            "envy",
            json!({"command": "/bin/sh", "args": ["-c", "echo $FOO $USER $(pwd) $(id -u)"], "work_dir": "/tmp"}),
        );
        cfg.env.insert("FOO".into(), "bar".into());
        cfg.user = "nobody".into();
        let h = on.start_task(&cfg).await.unwrap();
        env.track(&h);
        assert_eq!(on.wait_task(&cfg.id).await.unwrap().exit_code, 0);
        let out = env.log_string("envy", "stdout");
        assert!(out.starts_with("bar nobody /tmp 65534"), "{out:?}");
        on.destroy_task(&cfg.id, false).await.unwrap();
    })
    .await
}
