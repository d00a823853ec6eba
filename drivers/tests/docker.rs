//! The docker driver against a real local Docker engine.
//!
//! These tests FAIL when no engine is reachable: CI must not pass without exercising the
//! driver. Set `YURT_SKIP_DOCKER_TESTS=1` to skip them explicitly on a machine without Docker.
//! The image comes from `YURT_TEST_DOCKER_IMAGE` (default `yurt-test/busybox:1`, built by
//! `tests/run-all.sh` from the host's busybox; no registry is needed).

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::AsyncWriteExt;
use yurt_drivers::docker::{
    Checkpoint, DockerDriver, LABEL_ALLOC_ID, container_name, position_path,
};
use yurt_drivers::{
    DriverError, HealthState, LogSink, PortMapping, TaskConfig, TaskDriver, TaskResources,
};

const TEST_TIMEOUT: Duration = Duration::from_secs(120);

fn skip() -> bool {
    if std::env::var("YURT_SKIP_DOCKER_TESTS").as_deref() == Ok("1") {
        eprintln!("YURT_SKIP_DOCKER_TESTS=1: docker engine test skipped");
        return true;
    }
    false
}

fn image() -> String {
    std::env::var("YURT_TEST_DOCKER_IMAGE").unwrap_or_else(|_| "yurt-test/busybox:1".to_string())
}

/// Plugin config for tests: never garbage-collect the shared test image.
fn plugin() -> serde_json::Value {
    json!({"gc": {"image": false}})
}

fn driver() -> DockerDriver {
    DockerDriver::new(&plugin(), None).expect("driver")
}

/// Runs a test body with a time bound, after checking the engine is there (or skipping).
fn run<F: Future<Output = ()>>(body: impl FnOnce() -> F) {
    if skip() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let fp = driver().fingerprint().await;
        assert_eq!(
            fp.health,
            HealthState::Healthy,
            "no Docker engine reachable at unix:///var/run/docker.sock ({}); start dockerd \
             (tests/run-all.sh does) or set YURT_SKIP_DOCKER_TESTS=1 to skip explicitly",
            fp.health_description
        );
        tokio::time::timeout(TEST_TIMEOUT, body())
            .await
            .expect("test timed out");
    });
}

fn uuid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() as u64;
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (nanos >> 32) as u32,
        (nanos >> 16) as u16,
        (pid & 0xfff),
        (n & 0xfff),
        nanos & 0xffff_ffff_ffff
    )
}

/// A task's directories in a temp dir, and a guard that removes its container at the end.
struct Fixture {
    _dir: tempfile::TempDir,
    cfg: TaskConfig,
}

impl Fixture {
    fn new(name: &str, config: serde_json::Value) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let alloc_dir = dir.path().join("alloc-dir");
        let task_dir = alloc_dir.join(name);
        for d in [
            alloc_dir.join("alloc/logs"),
            alloc_dir.join("alloc/data"),
            task_dir.join("local"),
            task_dir.join("secrets"),
        ] {
            std::fs::create_dir_all(&d).expect("mkdir");
        }
        let alloc_id = uuid();
        let mut config = config;
        config["image"] = json!(image());
        let cfg = TaskConfig {
            id: format!("{alloc_id}/{name}/{}", &uuid()[..8]),
            name: name.to_string(),
            alloc_id: alloc_id.clone(),
            job_name: "test-job".to_string(),
            group_name: "test-group".to_string(),
            namespace: "default".to_string(),
            env: BTreeMap::from([
                ("NOMAD_ALLOC_DIR".to_string(), "/alloc".to_string()),
                ("NOMAD_TASK_DIR".to_string(), "/local".to_string()),
                ("NOMAD_SECRETS_DIR".to_string(), "/secrets".to_string()),
                ("YURT_GREETING".to_string(), "hello from env".to_string()),
            ]),
            user: String::new(),
            resources: TaskResources {
                cpu_mhz: 100,
                memory_mb: 64,
                memory_max_mb: 0,
                pids_limit: 0,
            },
            alloc_dir: alloc_dir.clone(),
            task_dir,
            logs: LogSink {
                dir: alloc_dir.join("alloc/logs"),
                prefix: name.to_string(),
                max_files: 10,
                max_file_size_mb: 10,
            },
            ports: Vec::new(),
            driver_config: config,
        };
        Fixture { _dir: dir, cfg }
    }

    fn stdout(&self) -> PathBuf {
        self.cfg
            .logs
            .dir
            .join(format!("{}.stdout.0", self.cfg.name))
    }

    fn stderr(&self) -> PathBuf {
        self.cfg
            .logs
            .dir
            .join(format!("{}.stderr.0", self.cfg.name))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Runs on panic too: no test leaves a container behind.
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &container_name(&self.cfg)])
            .output();
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

async fn wait_for_text(path: &Path, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = read(path);
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} did not appear in {} within {within:?}; it holds {text:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn docker_cli(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

#[test]
fn docker_fingerprint_reports_engine_attributes() {
    run(|| async {
        let fp = driver().fingerprint().await;
        assert_eq!(
            fp.attributes.get("driver.docker").map(String::as_str),
            Some("true")
        );
        for key in [
            "driver.docker.version",
            "driver.docker.os_type",
            "driver.docker.runtimes",
            "driver.docker.bridge_ip",
        ] {
            assert!(fp.attributes.contains_key(key), "missing {key}: {fp:?}");
        }
        assert!(
            !fp.attributes
                .contains_key("driver.docker.privileged.enabled")
        );
        let privileged = DockerDriver::new(
            &json!({"allow_privileged": true, "volumes": {"enabled": true}}),
            None,
        )
        .unwrap();
        let fp = privileged.fingerprint().await;
        assert_eq!(fp.attributes["driver.docker.privileged.enabled"], "true");
        assert_eq!(fp.attributes["driver.docker.volumes.enabled"], "true");
    });
}

/// A unix-socket proxy to the real engine that the test can start and stop, standing in for
/// an engine that comes and goes.
struct EngineProxy {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl EngineProxy {
    fn start(path: &Path) -> Self {
        let listener = tokio::net::UnixListener::bind(path).expect("bind proxy");
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::UnixStream::connect("/var/run/docker.sock").await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        let _ = outbound.shutdown().await;
                    }
                });
            }
        });
        EngineProxy {
            path: path.to_path_buf(),
            task,
        }
    }

    fn stop(self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

#[test]
fn docker_fingerprint_follows_engine_coming_and_going() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("engine.sock");
        let endpoint = format!("unix://{}", sock.display());
        let driver = DockerDriver::new(&json!({"endpoint": endpoint}), None).unwrap();

        let fp = driver.fingerprint().await;
        assert_eq!(fp.health, HealthState::Undetected, "{fp:?}");
        assert!(fp.attributes.is_empty());

        let proxy = EngineProxy::start(&sock);
        let fp = driver.fingerprint().await;
        assert_eq!(fp.health, HealthState::Healthy, "{fp:?}");
        assert_eq!(fp.attributes["driver.docker"], "true");

        proxy.stop();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let fp = driver.fingerprint().await;
        assert_eq!(fp.health, HealthState::Unhealthy, "{fp:?}");
        assert_eq!(fp.health_description, "Failed to connect to docker daemon");

        let proxy = EngineProxy::start(&sock);
        let fp = driver.fingerprint().await;
        assert_eq!(fp.health, HealthState::Healthy, "{fp:?}");
        proxy.stop();
    });
}

#[test]
fn docker_output_env_and_shared_dirs() {
    run(|| async {
        let script = "echo out-line; echo err-line >&2; echo \"env=$YURT_GREETING\"; \
                      echo alloc > /alloc/data/from-task; echo local > /local/from-task; \
                      echo secret > /secrets/from-task; cat /local/from-host";
        let fx = Fixture::new("shared", json!({"command": "sh", "args": ["-c", script]}));
        std::fs::write(fx.cfg.task_dir.join("local/from-host"), "host-file\n").unwrap();
        let d = driver();
        let handle = d.start_task(&fx.cfg).await.expect("start");
        assert_eq!(handle.driver, "docker");
        let exit = d.wait_task(&fx.cfg.id).await.expect("wait");
        assert!(exit.successful(), "{exit:?}");

        let out = read(&fx.stdout());
        assert!(out.contains("out-line\n"), "{out:?}");
        assert!(out.contains("env=hello from env\n"), "{out:?}");
        assert!(out.contains("host-file\n"), "{out:?}");
        assert_eq!(read(&fx.stderr()), "err-line\n");
        let alloc = &fx.cfg.alloc_dir;
        assert_eq!(read(&alloc.join("alloc/data/from-task")), "alloc\n");
        assert_eq!(read(&fx.cfg.task_dir.join("local/from-task")), "local\n");
        assert_eq!(read(&fx.cfg.task_dir.join("secrets/from-task")), "secret\n");

        // Labels and name follow Nomad.
        let (ok, labels) = docker_cli(&[
            "inspect",
            "-f",
            "{{json .Config.Labels}}",
            &container_name(&fx.cfg),
        ]);
        assert!(ok);
        let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
        assert_eq!(labels[LABEL_ALLOC_ID], fx.cfg.alloc_id.as_str());
        assert_eq!(labels["com.hashicorp.nomad.task_name"], "shared");
        assert_eq!(labels["com.hashicorp.nomad.job_name"], "test-job");

        d.destroy_task(&fx.cfg.id, false).await.expect("destroy");
        let (exists, _) = docker_cli(&["inspect", &container_name(&fx.cfg)]);
        assert!(!exists, "container should be removed by destroy");
        assert!(matches!(
            d.wait_task(&fx.cfg.id).await,
            Err(DriverError::TaskNotFound(_))
        ));
    });
}

#[test]
fn docker_exit_code_is_reported() {
    run(|| async {
        let fx = Fixture::new("exit3", json!({"command": "sh", "args": ["-c", "exit 3"]}));
        let d = driver();
        d.start_task(&fx.cfg).await.expect("start");
        let exit = d.wait_task(&fx.cfg.id).await.expect("wait");
        assert_eq!(exit.exit_code, 3);
        assert_eq!(exit.signal, 0);
        assert!(!exit.oom_killed && !exit.successful());
        // Waiting again after the exit gives the same result.
        assert_eq!(d.wait_task(&fx.cfg.id).await.expect("wait again"), exit);
        d.destroy_task(&fx.cfg.id, false).await.expect("destroy");
    });
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn docker_published_port_reachable_from_host() {
    run(|| async {
        let host_port = free_port();
        let mut fx = Fixture::new(
            "web",
            json!({"command": "httpd", "args": ["-f", "-p", "8080", "-h", "/local"], "ports": ["http"]}),
        );
        std::fs::write(fx.cfg.task_dir.join("local/index.html"), "served by yurt\n").unwrap();
        fx.cfg.ports = vec![PortMapping {
            label: "http".to_string(),
            host_ip: "127.0.0.1".to_string(),
            value: host_port,
            to: 8080,
        }];
        let d = driver();
        d.start_task(&fx.cfg).await.expect("start");
        let deadline = Instant::now() + Duration::from_secs(10);
        let body = loop {
            if let Ok(mut conn) = tokio::net::TcpStream::connect(("127.0.0.1", host_port)).await {
                use tokio::io::AsyncReadExt;
                let _ = conn
                    .write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
                    .await;
                let mut buf = String::new();
                let _ = conn.read_to_string(&mut buf).await;
                if buf.contains("served by yurt") {
                    break buf;
                }
            }
            assert!(Instant::now() < deadline, "port {host_port} never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(body.starts_with("HTTP/1."), "{body}");
        d.stop_task(&fx.cfg.id, Duration::from_secs(5), "")
            .await
            .expect("stop");
        d.destroy_task(&fx.cfg.id, false).await.expect("destroy");
    });
}

#[test]
fn docker_memory_limit_oom_killed() {
    run(|| async {
        // 100 MB into a shell variable: far past the 32 MiB limit, with no swap allowed.
        let script = "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo ${#x}";
        let mut fx = Fixture::new("oom", json!({"command": "sh", "args": ["-c", script]}));
        fx.cfg.resources.memory_mb = 32;
        let d = driver();
        d.start_task(&fx.cfg).await.expect("start");
        let exit = d.wait_task(&fx.cfg.id).await.expect("wait");
        assert!(exit.oom_killed, "{exit:?}");
        assert_eq!(exit.exit_code, 137, "{exit:?}");
        let (_, mem) = docker_cli(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}}",
            &container_name(&fx.cfg),
        ]);
        assert_eq!(mem, (32 * 1024 * 1024).to_string());
        d.destroy_task(&fx.cfg.id, false).await.expect("destroy");
    });
}

#[test]
fn docker_stop_escalates_to_sigkill_after_timeout() {
    run(|| async {
        let script = "trap '' TERM; echo ready; while true; do sleep 0.1; done";
        for signal in ["", "SIGTERM"] {
            let fx = Fixture::new("stubborn", json!({"command": "sh", "args": ["-c", script]}));
            let d = driver();
            d.start_task(&fx.cfg).await.expect("start");
            wait_for_text(&fx.stdout(), "ready", Duration::from_secs(10)).await;
            let started = Instant::now();
            d.stop_task(&fx.cfg.id, Duration::from_secs(2), signal)
                .await
                .expect("stop");
            let exit = d.wait_task(&fx.cfg.id).await.expect("wait");
            let took = started.elapsed();
            assert_eq!(exit.exit_code, 137, "signal {signal:?}: {exit:?}");
            assert!(
                took >= Duration::from_millis(1800) && took < Duration::from_secs(10),
                "signal {signal:?}: SIGKILL after {took:?}"
            );
            d.destroy_task(&fx.cfg.id, false).await.expect("destroy");
        }
    });
}

#[test]
fn docker_graceful_stop_is_quick() {
    run(|| async {
        let script = "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done";
        let fx = Fixture::new("polite", json!({"command": "sh", "args": ["-c", script]}));
        let d = driver();
        d.start_task(&fx.cfg).await.expect("start");
        wait_for_text(&fx.stdout(), "ready", Duration::from_secs(10)).await;
        let started = Instant::now();
        d.stop_task(&fx.cfg.id, Duration::from_secs(10), "")
            .await
            .expect("stop");
        let exit = d.wait_task(&fx.cfg.id).await.expect("wait");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(exit.exit_code, 0, "{exit:?}");
        assert!(read(&fx.stdout()).contains("bye\n"));
        d.destroy_task(&fx.cfg.id, false).await.expect("destroy");
    });
}

#[test]
fn docker_missing_image_fails_with_engine_message() {
    run(|| async {
        let mut fx = Fixture::new("nopull", json!({}));
        fx.cfg.driver_config["image"] = json!("127.0.0.1:5999/nope:1");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let d = DockerDriver::new(&plugin(), Some(tx)).unwrap();
        let err = d.start_task(&fx.cfg).await.expect_err("pull must fail");
        let DriverError::Failed(msg) = &err else {
            panic!("want Failed, got {err:?}");
        };
        println!("missing image: {msg}");
        assert!(
            msg.starts_with("Failed to pull `127.0.0.1:5999/nope:1`: "),
            "{msg}"
        );
        assert!(
            msg.len() > "Failed to pull `127.0.0.1:5999/nope:1`: ".len() + 5,
            "{msg}"
        );
        let event = rx.try_recv().expect("a Downloading image event");
        assert_eq!(event.task_id, fx.cfg.id);
        assert_eq!(event.message, "Downloading image 127.0.0.1:5999/nope:1");
        assert_eq!(event.annotations["image"], "127.0.0.1:5999/nope:1");
        assert!(matches!(
            d.wait_task(&fx.cfg.id).await,
            Err(DriverError::TaskNotFound(_))
        ));

        // Concurrent starts of the same missing image share one pull and both fail with it.
        let mut a = Fixture::new("nopull-a", json!({}));
        let mut b = Fixture::new("nopull-b", json!({}));
        a.cfg.driver_config["image"] = json!("127.0.0.1:5999/nope:2");
        b.cfg.driver_config["image"] = json!("127.0.0.1:5999/nope:2");
        let (ra, rb) = tokio::join!(d.start_task(&a.cfg), d.start_task(&b.cfg));
        let (ea, eb) = (ra.expect_err("a fails"), rb.expect_err("b fails"));
        assert_eq!(ea.to_string(), eb.to_string());
        let mut notified: Vec<String> = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            notified.push(ev.task_id);
        }
        assert!(
            notified.contains(&a.cfg.id) && notified.contains(&b.cfg.id),
            "{notified:?}"
        );
    });
}

/// A throw-away image with its own ID (GC removes by ID, which must not hit the shared one).
fn private_image() -> String {
    let tag = format!("yurt-test/gc-probe:{}", &uuid()[..8]);
    let source = format!("yurt-gc-src-{}", uuid());
    let (ok, _) = docker_cli(&["create", "--name", &source, &image(), "true"]);
    assert!(ok, "docker create");
    let label = format!("LABEL yurt.gc.probe={tag}");
    let (ok, _) = docker_cli(&["commit", "--change", &label, &source, &tag]);
    let _ = docker_cli(&["rm", "-f", &source]);
    assert!(ok, "docker commit");
    tag
}

/// Removes a test image at the end, even on failure.
struct ImageGuard(String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

#[test]
fn docker_unused_image_is_removed_after_delay() {
    run(|| async {
        let tag = private_image();
        let _cleanup = ImageGuard(tag.clone());
        let d =
            DockerDriver::new(&json!({"gc": {"image": true, "image_delay": "3s"}}), None).unwrap();
        let mut one = Fixture::new("gc1", json!({"command": "sh", "args": ["-c", "sleep 300"]}));
        let mut two = Fixture::new("gc2", json!({"command": "sh", "args": ["-c", "sleep 300"]}));
        one.cfg.driver_config["image"] = json!(tag);
        two.cfg.driver_config["image"] = json!(tag);
        d.start_task(&one.cfg).await.expect("start one");
        d.start_task(&two.cfg).await.expect("start two");

        d.destroy_task(&one.cfg.id, true)
            .await
            .expect("destroy one");
        // Longer than the delay: a removal wrongly scheduled by the first release would
        // have happened.
        tokio::time::sleep(Duration::from_millis(4000)).await;
        assert!(
            docker_cli(&["image", "inspect", &tag]).0,
            "still used by the second task"
        );

        d.destroy_task(&two.cfg.id, true)
            .await
            .expect("destroy two");
        // The delay is 3 s, not 1 s, so that a `docker` CLI slowed by a loaded machine still
        // looks within it.
        assert!(
            docker_cli(&["image", "inspect", &tag]).0,
            "kept during the delay"
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while docker_cli(&["image", "inspect", &tag]).0 {
            assert!(
                Instant::now() < deadline,
                "unused image {tag} was never removed"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            docker_cli(&["image", "inspect", &image()]).0,
            "the shared image stays"
        );
    });
}

#[test]
fn docker_invalid_config_is_rejected_by_name() {
    run(|| async {
        let d = driver();
        let err = d
            .validate_config(&json!({"image": "x", "bogus_option": 1}))
            .unwrap_err();
        assert!(matches!(err, DriverError::InvalidConfig(ref m) if m.contains("bogus_option")));
        let fx = Fixture::new("badcfg", json!({"privileged": true}));
        assert!(matches!(
            d.start_task(&fx.cfg).await,
            Err(DriverError::InvalidConfig(_))
        ));
    });
}

/// A writer of numbered lines on both streams, slow enough to straddle an agent restart.
const NUMBERED: &str = "i=0; while [ $i -lt 4000 ]; do echo $i; echo e$i >&2; i=$((i+1)); \
                        if [ $((i % 100)) = 0 ]; then sleep 0.05; fi; done";

fn assert_numbered(text: &str, prefix: &str, count: usize) {
    let lines: Vec<&str> = text.lines().collect();
    let expect: Vec<String> = (0..count).map(|i| format!("{prefix}{i}")).collect();
    if lines != expect {
        let first_bad = lines
            .iter()
            .zip(&expect)
            .position(|(a, b)| *a != b.as_str())
            .unwrap_or(lines.len().min(expect.len()));
        panic!(
            "{prefix:?} lines: got {} want {count}; first difference at line {first_bad}: {:?}",
            lines.len(),
            &lines[first_bad.saturating_sub(2)..(first_bad + 3).min(lines.len())]
        );
    }
}

#[test]
fn docker_recover_after_agent_crash_keeps_logs_exact() {
    run(|| async {
        let fx = Fixture::new(
            "numbers",
            json!({"command": "sh", "args": ["-c", NUMBERED]}),
        );
        let first = driver();
        let handle = first.start_task(&fx.cfg).await.expect("start");
        wait_for_text(&fx.stdout(), "\n500\n", Duration::from_secs(20)).await;
        // Simulated agent crash: the driver and its log stream vanish mid-flight.
        drop(first);
        tokio::time::sleep(Duration::from_millis(700)).await;
        let (_, running) = docker_cli(&[
            "inspect",
            "-f",
            "{{.State.Running}}",
            &container_name(&fx.cfg),
        ]);
        assert_eq!(running, "true", "the container must outlive the agent");

        // The checkpoint lags what reached the files; recovery cuts back to it and refetches.
        let cp = Checkpoint::load(&position_path(&fx.cfg.logs)).expect("a saved log position");
        println!(
            "log position at the crash: stdout {} bytes saved, {} bytes in the file",
            cp.stdout.len,
            read(&fx.stdout()).len()
        );
        let second = driver();
        second.recover_task(&handle).await.expect("recover");
        // Recovering a tracked task is a no-op.
        second.recover_task(&handle).await.expect("recover again");
        let exit = second.wait_task(&fx.cfg.id).await.expect("wait");
        assert!(exit.successful(), "{exit:?}");
        assert_numbered(&read(&fx.stdout()), "", 4000);
        assert_numbered(&read(&fx.stderr()), "e", 4000);
        second
            .destroy_task(&fx.cfg.id, false)
            .await
            .expect("destroy");
    });
}

#[test]
fn docker_recover_twice_in_a_row_and_after_exit() {
    run(|| async {
        // Crash twice while it runs, then once more after it exited on its own with code 3.
        let script = format!("{NUMBERED}; exit 3");
        let fx = Fixture::new("twice", json!({"command": "sh", "args": ["-c", script]}));
        let d = driver();
        let handle = d.start_task(&fx.cfg).await.expect("start");
        wait_for_text(&fx.stdout(), "\n300\n", Duration::from_secs(20)).await;
        drop(d);
        let d = driver();
        d.recover_task(&handle).await.expect("recover 1");
        wait_for_text(&fx.stdout(), "\n1500\n", Duration::from_secs(20)).await;
        drop(d);
        // Wait for the container to finish while no agent is watching.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, running) = docker_cli(&[
                "inspect",
                "-f",
                "{{.State.Running}}",
                &container_name(&fx.cfg),
            ]);
            if running == "false" {
                break;
            }
            assert!(Instant::now() < deadline, "container never finished");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let d = driver();
        d.recover_task(&handle).await.expect("recover 2");
        let exit = d.wait_task(&fx.cfg.id).await.expect("wait");
        assert_eq!(exit.exit_code, 3, "{exit:?}");
        assert_numbered(&read(&fx.stdout()), "", 4000);
        assert_numbered(&read(&fx.stderr()), "e", 4000);
        d.destroy_task(&fx.cfg.id, false).await.expect("destroy");
    });
}

#[test]
fn docker_signal_reaches_the_process() {
    run(|| async {
        let script = "trap 'echo got-usr1' USR1; echo ready; while true; do sleep 0.1; done";
        let fx = Fixture::new("sig", json!({"command": "sh", "args": ["-c", script]}));
        let d = driver();
        d.start_task(&fx.cfg).await.expect("start");
        wait_for_text(&fx.stdout(), "ready", Duration::from_secs(10)).await;
        d.signal_task(&fx.cfg.id, "SIGUSR1").await.expect("signal");
        wait_for_text(&fx.stdout(), "got-usr1", Duration::from_secs(10)).await;
        d.signal_task(&fx.cfg.id, "usr1")
            .await
            .expect_err("bare names are not signals");
        let err = d.signal_task(&fx.cfg.id, "SIGBOGUS").await.unwrap_err();
        assert!(matches!(err, DriverError::InvalidSignal(_)), "{err:?}");
        d.signal_task(&fx.cfg.id, "sigusr1")
            .await
            .expect("case-insensitive");
        assert!(matches!(
            d.signal_task("nope", "SIGUSR1").await,
            Err(DriverError::TaskNotFound(_))
        ));
        d.destroy_task(&fx.cfg.id, true).await.expect("destroy");
    });
}

#[test]
fn docker_stats_and_destroy_rules() {
    run(|| async {
        let fx = Fixture::new(
            "stats",
            json!({"command": "sh", "args": ["-c", "while true; do i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; sleep 0.05; done"]}),
        );
        let d = driver();
        d.start_task(&fx.cfg).await.expect("start");
        let first = d.task_stats(&fx.cfg.id).await.expect("stats");
        assert!(first.memory.usage > 0, "{first:?}");
        assert!(!first.memory.measured.is_empty());
        assert_eq!(
            first.cpu.measured,
            vec!["Throttled Periods", "Throttled Time", "Percent"]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let second = d.task_stats(&fx.cfg.id).await.expect("stats");
        assert!(second.cpu.percent > 0.0, "{second:?}");
        assert!(second.timestamp > first.timestamp);

        let err = d.destroy_task(&fx.cfg.id, false).await.unwrap_err();
        assert!(err.to_string().contains("StopTask"), "{err}");
        d.destroy_task(&fx.cfg.id, true)
            .await
            .expect("force destroy");
        assert!(matches!(
            d.task_stats(&fx.cfg.id).await,
            Err(DriverError::TaskNotFound(_))
        ));
        let (exists, _) = docker_cli(&["inspect", &container_name(&fx.cfg)]);
        assert!(!exists);
    });
}

/// Alloc IDs of every labelled container except `ours`: other tests' containers to keep.
fn other_allocs(ours: &str) -> HashSet<String> {
    let label = format!("{{{{.Label \"{LABEL_ALLOC_ID}\"}}}}");
    let filter = format!("label={LABEL_ALLOC_ID}");
    let (_, out) = docker_cli(&["ps", "-a", "--filter", &filter, "--format", &label]);
    out.lines()
        .filter(|a| *a != ours)
        .map(str::to_string)
        .collect()
}

fn container_id(name: &str) -> String {
    docker_cli(&["inspect", "-f", "{{.Id}}", name]).1
}

#[test]
fn docker_leftover_container_is_replaced_and_dangling_removed() {
    run(|| async {
        let fx = Fixture::new(
            "leftover",
            json!({"command": "sh", "args": ["-c", "sleep 300"]}),
        );
        let name = container_name(&fx.cfg);
        let d = driver();
        d.start_task(&fx.cfg).await.expect("start");
        let first_id = container_id(&name);
        drop(d);
        // A restart of the task gets a new ID but the same container name.
        let mut again = fx.cfg.clone();
        again.id = format!("{}/{}/restart1", fx.cfg.alloc_id, fx.cfg.name);
        let d = driver();
        d.start_task(&again).await.expect("start over a leftover");
        let second_id = container_id(&name);
        assert_ne!(first_id, second_id);
        assert!(
            !docker_cli(&["inspect", &first_id]).0,
            "the leftover is removed"
        );

        // Other tests run in parallel: their containers are kept explicitly.
        let others = other_allocs(&fx.cfg.alloc_id);
        let removed = d
            .remove_dangling_older_than(&others, Duration::ZERO)
            .await
            .expect("dangling");
        assert!(
            !removed.contains(&second_id),
            "a tracked container is not dangling"
        );
        drop(d);

        let d = driver();
        let mut keep = other_allocs(&fx.cfg.alloc_id);
        keep.insert(fx.cfg.alloc_id.clone());
        let removed = d
            .remove_dangling_older_than(&keep, Duration::ZERO)
            .await
            .expect("dangling");
        assert!(
            !removed.contains(&second_id),
            "a kept alloc's container stays"
        );
        assert!(docker_cli(&["inspect", &second_id]).0);

        // Old enough and not kept: removed. Containers other tests create meanwhile are
        // younger than the grace.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let others = other_allocs(&fx.cfg.alloc_id);
        let removed = d
            .remove_dangling_older_than(&others, Duration::from_secs(2))
            .await
            .expect("dangling");
        assert!(removed.contains(&second_id), "{removed:?}");
        assert!(
            !docker_cli(&["inspect", &second_id]).0,
            "the dangling container is gone"
        );
    });
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn docker_start_latency_benchmark() {
    run(|| async {
        const RUNS: usize = 20;
        let d = driver();
        let mut ours = Vec::new();
        for i in 0..RUNS {
            let fx = Fixture::new(
                &format!("bench{i}"),
                json!({"command": "sh", "args": ["-c", "sleep 300"]}),
            );
            let started = Instant::now();
            d.start_task(&fx.cfg).await.expect("start");
            ours.push(started.elapsed());
            d.destroy_task(&fx.cfg.id, true).await.expect("destroy");
        }
        let mut cli = Vec::new();
        for i in 0..RUNS {
            let name = format!("yurt-bench-cli-{}-{i}", uuid());
            let started = Instant::now();
            let (ok, _) = docker_cli(&["run", "-d", "--name", &name, &image(), "sleep", "300"]);
            cli.push(started.elapsed());
            let _ = docker_cli(&["rm", "-f", &name]);
            assert!(ok, "docker run -d failed");
        }
        println!(
            "docker start latency p50 over {RUNS} runs: yurt start_task {:?}, docker run -d {:?}",
            p50(ours),
            p50(cli)
        );
    });
}

/// Collects an exec session's output until its exit: (stdout, stderr, exit, closes seen first).
async fn drain_exec(
    mut s: yurt_drivers::exec_session::ExecSession,
) -> (String, String, yurt_drivers::ExitResult, usize) {
    use yurt_drivers::exec_session::ExecOutput;
    let (mut out, mut err, mut closes) = (Vec::new(), Vec::new(), 0);
    while let Some(o) = s.output.recv().await {
        match o {
            ExecOutput::Stdout(b) => out.extend_from_slice(&b),
            ExecOutput::Stderr(b) => err.extend_from_slice(&b),
            ExecOutput::StdoutClosed | ExecOutput::StderrClosed => closes += 1,
            ExecOutput::Exited(r) => {
                return (
                    String::from_utf8_lossy(&out).into(),
                    String::from_utf8_lossy(&err).into(),
                    r,
                    closes,
                );
            }
        }
    }
    panic!("exec session ended without an exit");
}

#[test]
fn docker_exec_non_tty_tty_and_stdin() {
    use yurt_drivers::exec_session::{ExecInput, ExecRequest, TtySize};
    run(|| async {
        let fx = Fixture::new("exec", json!({"command": "sleep", "args": ["1000"]}));
        let d = driver();
        d.start_task(&fx.cfg).await.expect("start");
        let req = |cmd: &[&str], tty: bool| ExecRequest {
            command: cmd.iter().map(|s| s.to_string()).collect(),
            tty,
            ..ExecRequest::default()
        };

        let s = d
            .exec_task(
                &fx.cfg.id,
                req(&["sh", "-c", "echo out; echo err >&2; exit 3"], false),
            )
            .await
            .expect("exec");
        let (out, err, exit, closes) = drain_exec(s).await;
        assert_eq!(
            (out.as_str(), err.as_str(), exit.exit_code, closes),
            ("out\n", "err\n", 3, 2)
        );

        // The container's env is the exec's env.
        let s = d
            .exec_task(&fx.cfg.id, req(&["sh", "-c", "echo $YURT_GREETING"], false))
            .await
            .expect("exec env");
        assert_eq!(drain_exec(s).await.0, "hello from env\n");

        let s = d
            .exec_task(&fx.cfg.id, req(&["cat"], false))
            .await
            .expect("exec cat");
        s.input
            .send(ExecInput::Stdin(bytes::Bytes::from_static(b"via stdin\n")))
            .await
            .unwrap();
        s.input.send(ExecInput::CloseStdin).await.unwrap();
        let (out, _, exit, _) = drain_exec(s).await;
        assert_eq!((out.as_str(), exit.exit_code), ("via stdin\n", 0));

        // The engine can only resize an exec after it has started, so the command waits a
        // moment before reading its size (Nomad's docker exec has the same window).
        let mut r = req(
            &["sh", "-c", "sleep 0.5; stty size; test -t 0 && echo tty"],
            true,
        );
        r.tty_size = Some(TtySize {
            height: 21,
            width: 77,
        });
        let s = d.exec_task(&fx.cfg.id, r).await.expect("exec tty");
        let (out, _, exit, _) = drain_exec(s).await;
        assert_eq!((out.as_str(), exit.exit_code), ("21 77\r\ntty\r\n", 0));

        d.stop_task(&fx.cfg.id, Duration::from_secs(1), "SIGKILL")
            .await
            .expect("stop");
        d.wait_task(&fx.cfg.id).await.expect("wait");
        assert!(matches!(
            d.exec_task(&fx.cfg.id, req(&["true"], false)).await,
            Err(DriverError::TaskNotRunning)
        ));
        d.destroy_task(&fx.cfg.id, true).await.expect("destroy");
    });
}
