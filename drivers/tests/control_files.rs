//! A supervised task's control files (launch spec, exit record, supervisor log) are out of the
//! task's reach: a task cannot change what `alloc exec` runs, cannot make root write through
//! a link it planted, cannot pass an old run's exit off as its own; and a launch that never
//! reports leaves no process behind. Real supervisors (`yurt-supervisor-test`), as root.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Env, alive};
use serde_json::json;
use yurt_drivers::exec_session::{ExecOutput, ExecRequest, ExecSession};
use yurt_drivers::rawexec::RawExecState;
use yurt_drivers::supervisor::paths::legacy_state_dir;
use yurt_drivers::supervisor::{ExitRecord, LaunchSpec, exit_record};
use yurt_drivers::supervisor_client::spec_file::{TaskCommand, prepare};
use yurt_drivers::supervisor_client::{HANDLE_VERSION, SupervisorCommand};
use yurt_drivers::{ExitResult, TaskConfig, TaskDriver, TaskHandle};

const BOUND: Duration = Duration::from_secs(60);
const NOBODY: u32 = 65534;

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(BOUND, f)
        .await
        .expect("test exceeded its time bound")
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `script` in the task through `alloc exec`; (stdout, exit).
async fn alloc_exec(d: &dyn TaskDriver, task_id: &str, script: &str) -> (String, ExitResult) {
    let req = ExecRequest {
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        ..ExecRequest::default()
    };
    let s = d.exec_task(task_id, req).await.expect("alloc exec starts");
    drain(s).await
}

async fn drain(mut s: ExecSession) -> (String, ExitResult) {
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

/// A root-owned 0600 file holding `keep`, as a target for planted links.
fn victim(env: &Env, name: &str) -> PathBuf {
    let p = env.root.join(name);
    std::fs::write(&p, b"keep").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// A raw_exec task as the agent sets it up for a task user: the task dir (0777) owned by
/// `nobody`, the task running as `nobody`, `MARK=original` in its environment.
fn nobody_task(env: &Env, name: &str, script: &str) -> TaskConfig {
    let mut cfg = env.sh(name, script);
    cfg.user = "nobody".into();
    cfg.env.insert("MARK".into(), "original".into());
    std::fs::set_permissions(&cfg.task_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    nix::unistd::chown(
        &cfg.task_dir,
        Some(nix::unistd::Uid::from_raw(NOBODY)),
        Some(nix::unistd::Gid::from_raw(NOBODY)),
    )
    .unwrap();
    // The temp root is root's 0700 by default: the task user must reach its own dirs.
    for d in [&env.root, &env.root.join("alloc")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    cfg
}

/// What a task running as `nobody` plants where builds before the agent-owned state dir kept
/// its control files: a spec of its own (root user, another environment) and links from the
/// exit record, its temp file and the supervisor log to files only root may write.
fn plant_script(legacy: &Path, forged_spec: &str, victims: &[PathBuf; 3]) -> String {
    let d = legacy.display();
    format!(
        "mv {top} {top}.taken 2>/dev/null; mkdir -p {d} && \
         printf '%s' '{forged_spec}' > {d}/spec.json && \
         ln -sf {v0} {d}/exit.json && ln -sf {v1} {d}/exit.json.tmp && \
         ln -sf {v2} {d}/supervisor.log && echo planted",
        top = legacy.parent().unwrap().display(),
        v0 = victims[0].display(),
        v1 = victims[1].display(),
        v2 = victims[2].display(),
    )
}

fn forged_spec_of(real: &LaunchSpec) -> String {
    let mut forged = real.clone();
    forged.user = String::new();
    forged.env.insert("MARK".into(), "forged".into());
    serde_json::to_string(&forged).unwrap()
}

fn assert_kept(victims: &[PathBuf]) {
    for v in victims {
        assert_eq!(
            std::fs::read(v).unwrap(),
            b"keep",
            "{} written through",
            v.display()
        );
        assert!(!std::fs::symlink_metadata(v).unwrap().is_symlink());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_cannot_change_what_alloc_exec_runs_nor_make_root_write_through_links() {
    if !is_root() {
        eprintln!("skipped: needs root (tasks run as nobody)");
        return;
    }
    bounded(async {
        let env = Env::new("plant");
        let d = env.driver();
        let victims = [
            victim(&env, "v-exit"),
            victim(&env, "v-tmp"),
            victim(&env, "v-log"),
        ];
        let cfg = nobody_task(&env, "web", "echo up; exec sleep 1000");
        let h = d.start_task(&cfg).await.unwrap();
        let st = env.track(&h);
        env.wait_for_log("web", "stdout", "up");

        // The control files are the agent's, private, and nowhere in the task's tree.
        for p in [&st.spec_path, &st.exit_record_path] {
            assert!(p.starts_with(env.root.join("sv")), "{}", p.display());
            assert!(!p.starts_with(&cfg.alloc_dir), "{}", p.display());
        }
        let dir = st.spec_path.parent().unwrap();
        let meta = std::fs::metadata(dir).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o700));
        let meta = std::fs::metadata(&st.spec_path).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600));
        assert!(!cfg.task_dir.join(".yurt").exists());

        // As the task's user: the control dir cannot even be listed, and everything the
        // task can plant at the old place changes nothing.
        let real = LaunchSpec::load(&st.spec_path).unwrap();
        let legacy = legacy_state_dir(&cfg.task_dir, &cfg.id);
        let attack = format!(
            "ls {dir} >/dev/null 2>&1 && echo REACHED; {plant}",
            dir = dir.display(),
            plant = plant_script(&legacy, &forged_spec_of(&real), &victims)
        );
        let (out, r) = alloc_exec(&d, &cfg.id, &attack).await;
        assert_eq!((out.trim(), r.exit_code), ("planted", 0), "{r:?}");
        assert!(std::fs::symlink_metadata(legacy.join("exit.json")).is_ok());

        let (out, _) = alloc_exec(&d, &cfg.id, "echo \"$MARK $(id -u)\"").await;
        assert_eq!(out, format!("original {NOBODY}\n"));

        // The task ends (its exit record and the supervisor log are written), and a restart
        // under the same task ID writes its files anew: nothing went through the links.
        d.stop_task(&cfg.id, Duration::from_secs(5), "SIGKILL")
            .await
            .unwrap();
        let r = d.wait_task(&cfg.id).await.unwrap();
        assert_eq!(r.signal, libc::SIGKILL, "{r:?}");
        d.destroy_task(&cfg.id, false).await.unwrap();
        assert!(!dir.exists(), "a destroyed task's control dir is removed");
        let h = d.start_task(&cfg).await.unwrap();
        env.track(&h);
        let (out, _) = alloc_exec(&d, &cfg.id, "echo \"$MARK $(id -u)\"").await;
        assert_eq!(out, format!("original {NOBODY}\n"));
        d.stop_task(&cfg.id, Duration::from_secs(5), "SIGKILL")
            .await
            .unwrap();
        d.wait_task(&cfg.id).await.unwrap();
        d.destroy_task(&cfg.id, false).await.unwrap();
        assert_kept(&victims);
    })
    .await
}

/// Starts the supervisor of `cfg` the way builds before the agent-owned state dir did: its
/// control files in `<task_dir>/.yurt/<hash>/`. Returns the handle such a build persisted.
fn start_legacy(env: &Env, cfg: &TaskConfig, sv: &SupervisorCommand) -> TaskHandle {
    let cmd = TaskCommand {
        command: "/bin/sh".into(),
        args: vec!["-c".into(), "echo up; exec sleep 1000".into()],
        env: cfg.env.clone(),
        cwd: cfg.task_dir.clone(),
        user: cfg.user.clone(),
        oom_score_adj: None,
        isolation: None,
    };
    let p = prepare(cfg, sv, cmd, None).unwrap();
    let legacy = legacy_state_dir(&cfg.task_dir, &cfg.id);
    std::fs::create_dir_all(&legacy).unwrap();
    std::fs::set_permissions(&legacy, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut spec = p.spec.clone();
    spec.exit_record_path = legacy.join("exit.json");
    let spec_path = legacy.join("spec.json");
    spec.store(&spec_path).unwrap();
    std::fs::remove_dir_all(p.spec_path.parent().unwrap()).unwrap();
    let ready = sv
        .launch(
            &spec_path,
            &legacy.join("supervisor.log"),
            Duration::from_secs(10),
        )
        .unwrap();
    let state = RawExecState {
        socket_path: spec.socket_path.clone(),
        supervisor_pid: ready.supervisor_pid,
        task_pid: ready.task_pid,
        spec_path,
        exit_record_path: spec.exit_record_path.clone(),
        started_at_ms: ready.started_at_ms,
        cgroup: None,
        chroot: None,
    };
    let h = TaskHandle {
        version: HANDLE_VERSION,
        driver: "raw_exec".into(),
        task_id: cfg.id.clone(),
        state: serde_json::to_value(&state).unwrap(),
    };
    env.track(&h);
    env.wait_for_log(&cfg.name, "stdout", "up");
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_of_an_older_build_is_reattached_where_its_files_are_and_cannot_forge_them() {
    if !is_root() {
        eprintln!("skipped: needs root (tasks run as nobody)");
        return;
    }
    bounded(async {
        let env = Env::new("legacy");
        let cfg = nobody_task(&env, "old", "unused");
        let h = start_legacy(&env, &cfg, &env.supervisor());
        let st: RawExecState = serde_json::from_value(h.state.clone()).unwrap();

        // The new agent reattaches through the paths the handle stores, and alloc exec reads
        // the spec the older build wrote.
        let d = env.driver();
        d.recover_task(&h).await.unwrap();
        let (out, _) = alloc_exec(&d, &cfg.id, "echo \"$MARK $(id -u)\"").await;
        assert_eq!(out, format!("original {NOBODY}\n"));

        // The task (owner of its task dir) replaces the old control dir with its own: a spec
        // of its own making is refused, and the supervisor's exit record replaces the planted
        // links instead of writing through them.
        let victims = [
            victim(&env, "v-exit"),
            victim(&env, "v-tmp"),
            victim(&env, "v-log"),
        ];
        let real = LaunchSpec::load(&st.spec_path).unwrap();
        let legacy = legacy_state_dir(&cfg.task_dir, &cfg.id);
        let attack = plant_script(&legacy, &forged_spec_of(&real), &victims);
        let (out, r) = alloc_exec(&d, &cfg.id, &attack).await;
        assert_eq!((out.trim(), r.exit_code), ("planted", 0), "{r:?}");
        assert_eq!(std::fs::metadata(&st.spec_path).unwrap().uid(), NOBODY);
        let err = d
            .exec_task(
                &cfg.id,
                ExecRequest {
                    command: vec!["/bin/true".into()],
                    ..ExecRequest::default()
                },
            )
            .await
            .expect_err("a spec the task wrote is not used");
        assert!(err.to_string().contains("owned by uid 65534"), "{err}");

        d.stop_task(&cfg.id, Duration::from_secs(5), "SIGTERM")
            .await
            .unwrap();
        let r = d.wait_task(&cfg.id).await.unwrap();
        assert_eq!(r.signal, libc::SIGTERM, "{r:?}");
        assert_kept(&victims);
        let rec = exit_record::read(&st.exit_record_path).unwrap().unwrap();
        assert_eq!(rec.task_pid, st.task_pid);
        d.destroy_task(&cfg.id, false).await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_record_of_an_earlier_run_is_never_this_runs_exit() {
    bounded(async {
        let env = Env::new("stale");
        let d = env.driver();
        let mut cfg = env.sh("again", "exit 7");
        let h = d.start_task(&cfg).await.unwrap();
        let first = env.track(&h);
        assert_eq!(d.wait_task(&cfg.id).await.unwrap().exit_code, 7);
        let stale: ExitRecord = exit_record::read(&first.exit_record_path)
            .unwrap()
            .expect("the first run's record");
        d.destroy_task(&cfg.id, false).await.unwrap();

        // Left in place when the same task ID starts again: removed before the start.
        let path = first.exit_record_path.clone();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        exit_record::write_durable(&path, &stale).unwrap();
        cfg.driver_config = json!({"command": "/bin/sh", "args": ["-c", "exec sleep 1000"]});
        let h = d.start_task(&cfg).await.unwrap();
        let second = env.track(&h);
        assert_eq!(second.exit_record_path, path);
        assert!(!path.exists(), "the stale record survived the start");

        // Even when one turns up while the run goes on, it is not taken for this run's exit:
        // with its supervisor killed the exit is unknown, not the old run's 7.
        exit_record::write_durable(&path, &stale).unwrap();
        unsafe { libc::kill(second.supervisor_pid as i32, libc::SIGKILL) };
        let r = d.wait_task(&cfg.id).await.unwrap();
        assert_ne!(r.exit_code, 7, "{r:?}");
        assert!(
            r.err
                .as_deref()
                .is_some_and(|e| e.contains("without recording")),
            "{r:?}"
        );
        let d2 = env.driver();
        let err = d2.recover_task(&h).await.unwrap_err().to_string();
        assert!(err.contains("no exit record"), "{err}");
        unsafe { libc::kill(-(second.task_pid as i32), libc::SIGKILL) };
    })
    .await
}

/// Processes whose command line names `spec` (supervisors of it, in either form).
fn running_for(spec: &Path) -> Vec<u32> {
    let needle = spec.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == needle) && alive(*pid))
        })
        .collect()
}

#[test]
fn a_launch_that_never_reports_leaves_no_process() {
    let env = Env::new("timeout");
    // A supervisor whose ready line never reaches the launcher (it goes to /dev/null) while
    // the launcher's pipe stays open: the supervisor runs, and so does its task.
    let wrapper = env.root.join("lost-ready-line");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n{} \"$@\" >/dev/null\nexec sleep 30\n",
            env!("CARGO_BIN_EXE_yurt-supervisor-test")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut sv = env.supervisor();
    sv.exe = wrapper;
    let cfg = env.sh("slow", "unused");
    let pid_file = env.root.join("task.pid");
    let cmd = TaskCommand {
        command: "/bin/sh".into(),
        args: vec![
            "-c".into(),
            format!("echo $$ > {}; exec sleep 1000", pid_file.display()),
        ],
        env: cfg.env.clone(),
        cwd: cfg.task_dir.clone(),
        user: String::new(),
        oom_score_adj: None,
        isolation: None,
    };
    let p = prepare(&cfg, &sv, cmd, None).unwrap();
    let started = Instant::now();
    let err = sv
        .launch(&p.spec_path, &p.log_path, Duration::from_secs(2))
        .expect_err("no ready line");
    assert!(err.to_string().contains("no ready line"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "launcher hung");

    let task: u32 = std::fs::read_to_string(&pid_file)
        .expect("the task had started")
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while (alive(task) || !running_for(&p.spec_path).is_empty()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(task), "task {task} still runs");
    let left = running_for(&p.spec_path);
    assert!(left.is_empty(), "still running for the spec: {left:?}");
}

/// PIDs of live processes whose environment holds `marker` (`NAME=value`).
fn with_env(marker: &str) -> Vec<u32> {
    let needle = marker.as_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|v| v == needle))
                && alive(*pid)
        })
        .collect()
}

#[test]
fn a_supervisor_whose_ready_line_nobody_reads_kills_its_task_and_exits() {
    let env = Env::new("deaf");
    let sv = env.supervisor();
    let mut cfg = env.sh("deaf", "unused");
    let marker = format!("YURT_DEAF={}", env.root.display());
    let (k, v) = marker.split_once('=').unwrap();
    cfg.env.insert(k.into(), v.into());
    let cmd = TaskCommand {
        command: "/bin/sleep".into(),
        args: vec!["1000".into()],
        env: cfg.env.clone(),
        cwd: cfg.task_dir.clone(),
        user: String::new(),
        oom_score_adj: None,
        isolation: None,
    };
    let p = prepare(&cfg, &sv, cmd, None).unwrap();
    // The launcher is gone before the supervisor reports (it gave up, or the agent died):
    // the read end of the ready pipe is closed.
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    let log = std::fs::File::create(&p.log_path).unwrap();
    let status = std::process::Command::new(&sv.exe)
        .arg(&p.spec_path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(w))
        .stderr(log)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the first process exits at once: {status}"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let logged = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .contains("reporting the started task")
    };
    while !(logged(&p.log_path)
        && running_for(&p.spec_path).is_empty()
        && with_env(&marker).is_empty())
    {
        assert!(
            Instant::now() < deadline,
            "left running: supervisor {:?}, task {:?}; log {:?}",
            running_for(&p.spec_path),
            with_env(&marker),
            std::fs::read_to_string(&p.log_path)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
