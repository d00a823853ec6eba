//! exec (and raw_exec cgroup) behaviour through real supervisors, as root: isolation facts,
//! OOM, pids limit, whole-tree stop, stats, recovery and mount cleanup. A test that cannot get
//! root or cgroups fails loudly rather than passing silently.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Env, alive};
use serde_json::json;
use yurt_drivers::cgroups::TaskCgroup;
use yurt_drivers::exec::ExecDriver;
use yurt_drivers::rawexec::RawExecState;
use yurt_drivers::supervisor_client::detect_cgroups;
use yurt_drivers::{DriverError, HealthState, TaskConfig, TaskDriver};

/// Every test body runs under this bound.
const BOUND: Duration = Duration::from_secs(90);

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the exec tests need root (namespaces, mounts, cgroups)"
    );
    tokio::time::timeout(BOUND, f)
        .await
        .expect("test exceeded its time bound")
}

/// The task's cgroup, reopened by name as an agent would after a restart.
fn cgroup_of(st: &RawExecState) -> TaskCgroup {
    let m = detect_cgroups(None).expect("cgroups usable");
    TaskCgroup::reattach(&m, st.cgroup.as_deref().expect("task has a cgroup")).expect("reattach")
}

/// Mount points strictly below `dir`, read straight from /proc/self/mountinfo.
fn mounts_below(dir: &Path) -> Vec<String> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let prefix = format!("{}/", dir.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|mp| mp.starts_with(&prefix))
        .collect()
}

/// Polls `f` until true or 10 s pass.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_task_is_isolated_and_mounts_go_with_destroy() {
    bounded(async {
        let env = Env::new("iso");
        let d = env.exec_driver();
        let fp = d.fingerprint().await;
        assert_eq!(fp.health, HealthState::Healthy, "{fp:?}");
        assert_eq!(
            fp.attributes.get("driver.exec").map(String::as_str),
            Some("true")
        );
        let script = "echo uid=$(id -u); echo pid=$$; echo dir=$NOMAD_TASK_DIR; \
             echo root=$(ls -a / | tr '\\n' ' '); \
             echo procs=$(ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '); \
             touch /usr/yurt-probe 2>/dev/null && echo usr-writable; \
             touch /etc/yurt-probe 2>/dev/null && echo etc-writable; \
             echo local > /local/out && echo alloc > /alloc/out && echo wrote";
        let cfg = env.exec_task("iso", script);
        let h = d.start_task(&cfg).await.unwrap();
        let st = env.track(&h);
        let r = d.wait_task(&cfg.id).await.unwrap();
        let out = env.log_string("iso", "stdout");
        assert_eq!(
            (r.exit_code, r.signal, r.oom_killed),
            (0, 0, false),
            "{out}"
        );
        assert!(out.contains("uid=65534\n"), "not nobody: {out}");
        assert!(out.contains("pid=1\n"), "not PID 1: {out}");
        assert!(out.contains("dir=/local\n"), "{out}");
        let root_line = out.lines().find_map(|l| l.strip_prefix("root=")).unwrap();
        let allowed = [
            ".", "..", "alloc", "bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "local",
            "private", "proc", "run", "sbin", "secrets", "sys", "tmp", "usr",
        ];
        for e in root_line.split_whitespace() {
            assert!(
                allowed.contains(&e),
                "unexpected {e:?} in the task's /: {root_line}"
            );
        }
        for e in [
            "alloc", "local", "usr", "etc", "proc", "dev", "tmp", "secrets",
        ] {
            assert!(
                root_line.split_whitespace().any(|x| x == e),
                "{e} missing: {root_line}"
            );
        }
        let procs: Vec<u32> = out
            .lines()
            .find_map(|l| l.strip_prefix("procs="))
            .unwrap()
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        // A fresh PID namespace: the shell (1) and its few helpers, no host process.
        assert!(
            procs.contains(&1) && procs.iter().all(|&p| p < 50),
            "{procs:?}"
        );
        assert!(!out.contains("writable"), "host dirs writable: {out}");
        assert!(out.contains("wrote"), "{out}");
        assert_eq!(
            std::fs::read_to_string(cfg.task_dir.join("local/out")).unwrap(),
            "local\n"
        );
        assert_eq!(
            std::fs::read_to_string(env.root.join("alloc/alloc/out")).unwrap(),
            "alloc\n"
        );
        assert!(
            !mounts_below(&cfg.task_dir).is_empty(),
            "chroot not mounted"
        );
        d.destroy_task(&cfg.id, false).await.unwrap();
        let left = mounts_below(&cfg.task_dir);
        assert!(left.is_empty(), "mounts left after destroy: {left:?}");
        assert!(!Path::new("/usr/yurt-probe").exists());
        let m = detect_cgroups(None).unwrap();
        assert!(
            TaskCgroup::reattach(&m, st.cgroup.as_deref().unwrap()).is_err(),
            "cgroup left after destroy"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_memory_limit_oom_is_reported() {
    bounded(async {
        let env = Env::new("oom");
        let d = env.exec_driver();
        let mut cfg = env.exec_task("hog", "");
        cfg.driver_config = json!({"command": "tail", "args": ["/dev/zero"]});
        cfg.resources.memory_mb = 32;
        let h = d.start_task(&cfg).await.unwrap();
        env.track(&h);
        let r = d.wait_task(&cfg.id).await.unwrap();
        assert!(r.oom_killed, "not reported as OOM-killed: {r:?}");
        assert_eq!(r.signal, libc::SIGKILL, "{r:?}");
        d.destroy_task(&cfg.id, false).await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_exec_memory_limit_oom_is_reported() {
    bounded(async {
        let env = Env::new("rawoom");
        let d = env.driver();
        let mut cfg = env.task("hog", json!({"command": "tail", "args": ["/dev/zero"]}));
        cfg.resources.memory_mb = 32;
        let h = d.start_task(&cfg).await.unwrap();
        env.track(&h);
        let r = d.wait_task(&cfg.id).await.unwrap();
        assert!(r.oom_killed, "not reported as OOM-killed: {r:?}");
        d.destroy_task(&cfg.id, false).await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_fork_bomb_is_held_by_the_pids_limit() {
    bounded(async {
        let env = Env::new("bomb");
        let d = env.exec_driver();
        const LIMIT: u64 = 40;
        // PID 1 keeps a child to wait on and starts, in a subshell, a loop that forks without
        // end; the classic `f | f &` bomb can burn out between samples, this one keeps
        // pressing against the limit until it is stopped.
        let mut cfg = env.exec_task(
            "bomb",
            "trap '' INT; sleep 1000 & s=$!; (while true; do sleep 100 & done) 2>/dev/null & \
             echo ready; wait $s",
        );
        cfg.resources.pids_limit = LIMIT;
        let h = d.start_task(&cfg).await.unwrap();
        let st = env.track(&h);
        env.wait_for_log("bomb", "stdout", "ready");
        let cg = cgroup_of(&st);
        let mut peak = 0;
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until {
            peak = peak.max(cg.pids().unwrap().len() as u64);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(peak > 2, "the bomb never went off ({peak} pids)");
        assert!(peak <= LIMIT, "{peak} pids exceed the limit {LIMIT}");
        d.stop_task(&cfg.id, Duration::from_millis(200), "")
            .await
            .unwrap();
        let r = d.wait_task(&cfg.id).await.unwrap();
        assert_eq!(r.signal, libc::SIGKILL, "{r:?}");
        assert!(cg.pids().unwrap().is_empty(), "processes survived the stop");
        d.destroy_task(&cfg.id, false).await.unwrap();
    })
    .await
}

/// Starts a task that leaves `sleep &` and a `setsid sleep` behind, stops it and checks that
/// nothing of it is left.
async fn stop_kills_the_whole_tree(env: &Env, d: &dyn TaskDriver, cfg: TaskConfig) {
    let h = d.start_task(&cfg).await.unwrap();
    let st = env.track(&h);
    env.wait_for_log(&cfg.name, "stdout", "ready");
    let cg = cgroup_of(&st);
    let mut pids = Vec::new();
    eventually("the tree to start", || {
        pids = cg.pids().unwrap();
        pids.len() >= 4
    })
    .await;
    d.stop_task(&cfg.id, Duration::from_millis(300), "")
        .await
        .unwrap();
    let r = d.wait_task(&cfg.id).await.unwrap();
    assert_eq!(r.signal, libc::SIGKILL, "{r:?}");
    let left: Vec<_> = pids.iter().filter(|p| alive(p.as_raw() as u32)).collect();
    assert!(left.is_empty(), "processes survived the stop: {left:?}");
    assert!(cg.pids().unwrap().is_empty());
    d.destroy_task(&cfg.id, false).await.unwrap();
}

const TREE: &str = "trap '' INT; sleep 1000 & setsid sleep 1000 & echo ready; \
                    while :; do sleep 0.05; done";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_stop_kills_the_whole_tree() {
    bounded(async {
        let env = Env::new("exectree");
        let d = env.exec_driver();
        let cfg = env.exec_task("tree", TREE);
        stop_kills_the_whole_tree(&env, &d, cfg).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_exec_stop_kills_the_whole_tree() {
    bounded(async {
        let env = Env::new("rawtree");
        let d = env.driver();
        assert!(
            d.cgroups().is_some(),
            "raw_exec runs without cgroups as root"
        );
        let cfg = env.sh("tree", TREE);
        stop_kills_the_whole_tree(&env, &d, cfg).await;
    })
    .await
}

/// Two samples of a CPU-bound task: memory and CPU are measured and non-zero.
async fn busy_stats(env: &Env, d: &dyn TaskDriver, cfg: TaskConfig) {
    let h = d.start_task(&cfg).await.unwrap();
    env.track(&h);
    env.wait_for_log(&cfg.name, "stdout", "ready");
    let first = d.task_stats(&cfg.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = d.task_stats(&cfg.id).await.unwrap();
    assert!(first.memory.usage > 0 && s.memory.usage > 0, "{first:?}");
    assert!(s.memory.rss > 1 << 20, "{s:?}");
    assert!(
        s.cpu.percent > 1.0,
        "busy task shows {} % CPU",
        s.cpu.percent
    );
    assert!(s.cpu.user_mode + s.cpu.system_mode > 0.0, "{s:?}");
    for m in ["RSS", "Cache", "Usage"] {
        assert!(
            s.memory.measured.iter().any(|x| x == m),
            "{m} not measured: {s:?}"
        );
    }
    for m in ["System Mode", "User Mode", "Percent"] {
        assert!(
            s.cpu.measured.iter().any(|x| x == m),
            "{m} not measured: {s:?}"
        );
    }
    d.destroy_task(&cfg.id, true).await.unwrap();
}

/// Holds 4 MB of anonymous memory in a shell variable and spins.
const BUSY: &str = "x=$(head -c 4000000 /dev/zero | tr '\\0' a); echo ready; while :; do :; done";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_stats_of_a_busy_task() {
    bounded(async {
        let env = Env::new("execstats");
        let d = env.exec_driver();
        busy_stats(&env, &d, env.exec_task("busy", BUSY)).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_exec_stats_of_a_busy_task() {
    bounded(async {
        let env = Env::new("rawstats");
        let d = env.driver();
        busy_stats(&env, &d, env.sh("busy", BUSY)).await;
    })
    .await
}

/// A shell holding 16 MB in a variable from before it says ready, then idle.
const HOLDS_16MB: &str =
    "x=$(head -c 16000000 /dev/zero | tr '\\0' a); echo ready; while :; do sleep 1; done";

/// A task's memory is charged to its own cgroup from its first instruction, and a stats read
/// right after it started (no waiting for the kernel's periodic memcg flush) shows it: RSS and
/// usage both cover what the task allocated. A task that joined its cgroup after faulting its
/// pages in would show a usage below that; reading RSS from memory.stat alone would show 0
/// here for up to 2 s.
async fn memory_is_charged_from_the_start(env: &Env, d: &dyn TaskDriver, cfg: TaskConfig) {
    const HELD: u64 = 16_000_000;
    let h = d.start_task(&cfg).await.unwrap();
    let st = env.track(&h);
    env.wait_for_log(&cfg.name, "stdout", "ready");
    let s = d.task_stats(&cfg.id).await.unwrap();
    assert!(s.memory.rss >= HELD, "rss below what the task holds: {s:?}");
    assert!(
        s.memory.usage >= HELD,
        "usage misses the task's pages: {s:?}"
    );
    // The usage is the task cgroup's own page counter, read directly.
    let cg = cgroup_of(&st);
    let direct = cg.stats().unwrap();
    assert!(direct.memory.usage >= HELD, "{direct:?}");
    d.destroy_task(&cfg.id, true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_memory_is_charged_from_the_start() {
    bounded(async {
        let env = Env::new("execcharge");
        let d = env.exec_driver();
        memory_is_charged_from_the_start(&env, &d, env.exec_task("holds", HOLDS_16MB)).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_exec_memory_is_charged_from_the_start() {
    bounded(async {
        let env = Env::new("rawcharge");
        let d = env.driver();
        memory_is_charged_from_the_start(&env, &d, env.sh("holds", HOLDS_16MB)).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_recover_after_dropping_the_driver() {
    bounded(async {
        let env = Env::new("execrecover");
        let d = env.exec_driver();
        let cfg = env.exec_task("sleeper", "echo ready; exec sleep 1000");
        let h = d.start_task(&cfg).await.unwrap();
        let st = env.track(&h);
        env.wait_for_log("sleeper", "stdout", "ready");
        drop(d);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(alive(st.task_pid), "task died with the driver");

        let d2: ExecDriver = env.exec_driver();
        d2.recover_task(&h).await.unwrap();
        d2.recover_task(&h).await.unwrap(); // tracked: a no-op
        assert!(alive(st.task_pid));
        // The cgroup came back by name: the same task is in it.
        let pids = cgroup_of(&st).pids().unwrap();
        assert!(
            pids.iter().any(|p| p.as_raw() as u32 == st.task_pid),
            "task pid {} not in {pids:?}",
            st.task_pid
        );
        assert!(d2.task_stats(&cfg.id).await.unwrap().memory.usage > 0);
        // alloc exec enters the recovered task as its launch spec says, that spec checked
        // against the task's cgroup and chroot.
        let (out, r) = alloc_exec(&d2, &cfg.id, "id -u; echo $NOMAD_TASK_DIR; ls /.yurt").await;
        assert_eq!(out, "65534\n/local\n", "{r:?}");
        assert_ne!(r.exit_code, 0, "the task's / holds no control files");
        d2.stop_task(&cfg.id, Duration::from_millis(200), "SIGTERM")
            .await
            .unwrap();
        let r = d2.wait_task(&cfg.id).await.unwrap();
        assert!(r.signal != 0, "{r:?}");
        assert!(!alive(st.task_pid));
        d2.destroy_task(&cfg.id, false).await.unwrap();
        assert!(mounts_below(&cfg.task_dir).is_empty());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_refusals_release_what_they_took() {
    bounded(async {
        let env = Env::new("execbad");
        let no_cg = ExecDriver::new(Default::default(), env.supervisor(), None);
        let fp = no_cg.fingerprint().await;
        assert_eq!(fp.health, HealthState::Undetected);
        assert_eq!(
            fp.health_description,
            "Failed to discover cgroup mount point"
        );
        assert!(matches!(
            no_cg.start_task(&env.exec_task("x", "true")).await,
            Err(DriverError::Unavailable(_))
        ));

        let d = env.exec_driver();
        let mut cfg = env.exec_task("caps", "true");
        cfg.driver_config = json!({"command": "true", "cap_add": ["NET_RAW"]});
        let err = d.start_task(&cfg).await.unwrap_err().to_string();
        assert!(err.contains("NET_RAW"), "{err}");
        let mut cfg = env.exec_task("missing", "true");
        cfg.driver_config = json!({"command": "no-such-binary-yurt"});
        assert!(d.start_task(&cfg).await.is_err());
        // Failed starts leave no mount and no cgroup behind.
        assert!(mounts_below(&cfg.task_dir).is_empty());
        let m = detect_cgroups(None).unwrap();
        let name = yurt_drivers::cgroups::task_cgroup_name(&cfg.alloc_id, &cfg.name);
        assert!(TaskCgroup::reattach(&m, &name).is_err());

        // Capabilities: the default set has no NET_RAW; cap_drop removes one.
        let mut cfg = env.exec_task("capcheck", "");
        cfg.driver_config = json!({
            "command": "/bin/sh",
            "args": ["-c", "grep CapEff /proc/self/status"],
            "cap_drop": ["chown"],
            "work_dir": "/local",
        });
        let h = d.start_task(&cfg).await.unwrap();
        env.track(&h);
        assert_eq!(d.wait_task(&cfg.id).await.unwrap().exit_code, 0);
        let out = env.log_string("capcheck", "stdout");
        let hex = out.split_whitespace().nth(1).unwrap();
        let eff = u64::from_str_radix(hex, 16).unwrap();
        assert_eq!(eff & (1 << 13), 0, "NET_RAW present: {out}");
        assert_eq!(eff & 1, 0, "CHOWN not dropped: {out}");
        assert_ne!(eff & (1 << 5), 0, "KILL missing: {out}");
        d.destroy_task(&cfg.id, false).await.unwrap();
    })
    .await
}

/// Runs `script` in the task through `alloc exec`; (stdout, exit).
async fn alloc_exec(
    d: &dyn TaskDriver,
    task_id: &str,
    script: &str,
) -> (String, yurt_drivers::ExitResult) {
    use yurt_drivers::exec_session::{ExecOutput, ExecRequest};
    let req = ExecRequest {
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        ..ExecRequest::default()
    };
    let mut s = d.exec_task(task_id, req).await.expect("alloc exec starts");
    let mut out = Vec::new();
    while let Some(o) = s.output.recv().await {
        match o {
            ExecOutput::Stdout(b) => out.extend_from_slice(&b),
            ExecOutput::Exited(r) => return (String::from_utf8_lossy(&out).into(), r),
            _ => {}
        }
    }
    panic!("exec session ended without an exit");
}
