//! `enter` against a real task from `spawn_isolated` (needs root, like the other `real_*`
//! isolation tests).

use super::*;
use crate::cgroups::{CgroupLimits, CgroupManager, DEFAULT_PARENT, TaskCgroup};
use crate::isolation::chroot::mounts_under;
use crate::isolation::{ChrootSpec, IsolatedSpec, build_chroot, spawn_isolated, teardown};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// A chroot under the temp dir, torn down (mounts first) on drop.
struct Scratch(PathBuf);
impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("yurt-enter-{}-{tag}", std::process::id()));
        let _ = teardown(&p.join("task"));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("alloc")).expect("mkdir alloc");
        std::fs::create_dir_all(p.join("task")).expect("mkdir task");
        build_chroot(&ChrootSpec::new(p.join("task"), Some(p.join("alloc")))).expect("chroot");
        Scratch(p)
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = teardown(&self.0.join("task"));
        if mounts_under(&self.0).is_ok_and(|m| m.is_empty()) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn wait_bounded(pid: Pid, limit: Duration) -> WaitStatus {
    let deadline = Instant::now() + limit;
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(st) => return st,
            Err(e) => panic!("waitpid {pid}: {e}"),
        }
        if Instant::now() > deadline {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            panic!("{pid} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn real_enter_joins_namespaces_root_cgroup_and_user() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "isolation tests need root"
    );
    let s = Scratch::new("ns");
    let mgr = CgroupManager::detect(&format!(
        "{DEFAULT_PARENT}-test-{}-enter",
        std::process::id()
    ))
    .expect("cgroups");
    let cg = TaskCgroup::create(&mgr, "a1.enter", &CgroupLimits::default()).expect("cgroup");
    std::fs::write(s.0.join("task/local/marker"), "inside\n").expect("marker");

    // sleep itself, not a shell that execs it: spawn_isolated returns after the task's first
    // execve, and a command entering before a second one would see PID 1 still named sh.
    let mut task = IsolatedSpec::new(s.0.join("task"), "/bin/sleep");
    task.args = vec!["sleep".into(), "300".into()];
    task.hostname = Some("yurt-enter".into());
    task.cgroup_procs = cg.procs_files();
    task.die_with_parent = false;
    let child = spawn_isolated(&task).expect("spawn task");

    let out_path = s.0.join("out");
    let out = std::fs::File::create(&out_path).expect("out");
    let null = std::fs::File::open("/dev/null").expect("null");
    let spec = EnterSpec {
        task_pid: child.task_pid,
        argv: vec![
            "sh".into(),
            "-c".into(),
            "echo pid1=$(cat /proc/1/comm); echo host=$(hostname); echo uid=$(id -u); \
             echo pwd=$(pwd); echo marker=$(cat marker); echo me=$$; \
             echo cg=$(cat /proc/self/cgroup); exit 4"
                .into(),
        ],
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        work_dir: "/local".into(),
        user: String::new(),
        capabilities: CapSet::nomad_default(),
        cgroup_procs: cg.procs_files(),
        stdin: null.as_fd(),
        stdout: out.as_fd(),
        stderr: out.as_fd(),
        tty: false,
    };
    let task_cgroup =
        std::fs::read_to_string(format!("/proc/{}/cgroup", child.task_pid)).expect("task cgroup");
    let entered = enter(&spec).expect("enter");
    let st = wait_bounded(entered.pid, Duration::from_secs(20));
    let text = std::fs::read_to_string(&out_path).expect("read out");
    let _ = kill(child.pid, Signal::SIGKILL);
    let _ = wait_bounded(child.pid, Duration::from_secs(10));
    let _ = cg.kill_all(Signal::SIGKILL);
    let _ = cg.destroy();
    let _ = mgr.remove_parent();

    assert_eq!(st, WaitStatus::Exited(entered.pid, 4), "{text}");
    let line = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k}= in {text}"))
            .to_string()
    };
    assert_eq!(line("pid1"), "sleep", "sees the task's PID namespace");
    assert_eq!(line("host"), "yurt-enter", "in the task's UTS namespace");
    assert_eq!(line("uid"), "65534", "as the task user (nobody)");
    assert_eq!(line("pwd"), "/local");
    assert_eq!(line("marker"), "inside", "inside the task root");
    let me: i32 = line("me").parse().expect("pid");
    assert!(me > 1 && me < 100, "a namespace pid, not a host pid: {me}");
    assert_eq!(
        line("cg"),
        task_cgroup.trim().replace('\n', " "),
        "in the task's cgroup"
    );

    // A missing program is reported with its stage.
    let spec = EnterSpec {
        task_pid: Pid::from_raw(std::process::id() as i32),
        argv: vec!["/no/such/program".into()],
        cgroup_procs: Vec::new(),
        work_dir: "/".into(),
        ..spec
    };
    let err = enter(&spec).expect_err("missing program");
    assert!(err.to_string().contains("execve"), "{err}");
}

#[test]
fn real_isolated_exec_session_pipes_and_tty() {
    use crate::exec::alloc_exec::{IsolatedTarget, start};
    use crate::exec_session::{ExecInput, ExecOutput, ExecRequest};
    assert!(
        nix::unistd::geteuid().is_root(),
        "isolation tests need root"
    );
    let s = Scratch::new("session");
    // sleep itself, not a shell that execs it: spawn_isolated returns after the task's first
    // execve, and a command entering before a second one would see PID 1 still named sh.
    let mut task = IsolatedSpec::new(s.0.join("task"), "/bin/sleep");
    task.args = vec!["sleep".into(), "300".into()];
    task.die_with_parent = false;
    let child = spawn_isolated(&task).expect("spawn task");
    let target = IsolatedTarget {
        task_pid: child.task_pid,
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        work_dir: "/".into(),
        user: String::new(),
        capabilities: CapSet::nomad_default(),
        cgroup_procs: Vec::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let run = |cmd: &str, tty: bool, stdin: &'static [u8]| {
        let req = ExecRequest {
            command: vec!["sh".into(), "-c".into(), cmd.into()],
            tty,
            ..ExecRequest::default()
        };
        rt.block_on(async {
            let mut session = start(&target, &req, None).expect("start");
            if !stdin.is_empty() {
                let input = session.input.clone();
                input
                    .send(ExecInput::Stdin(stdin.into()))
                    .await
                    .expect("stdin");
                input.send(ExecInput::CloseStdin).await.expect("close");
            }
            let mut out = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                match tokio::time::timeout_at(deadline, session.output.recv()).await {
                    Ok(Some(ExecOutput::Stdout(b))) => out.extend_from_slice(&b),
                    Ok(Some(ExecOutput::Exited(r))) => {
                        return (String::from_utf8_lossy(&out).to_string(), r.exit_code);
                    }
                    Ok(Some(_)) => {}
                    other => panic!("session ended badly: {other:?}"),
                }
            }
        })
    };
    let piped = run("echo pid1=$(cat /proc/1/comm); exit 2", false, b"");
    let tty = run("test -t 0 && echo tty", true, b"");
    // Closing stdin reaches the command as EOF: nothing else (the shim included) may hold
    // the pipe's write end.
    let cat = run("cat; echo eof", false, b"to cat\n");
    let _ = kill(child.pid, Signal::SIGKILL);
    let _ = wait_bounded(child.pid, Duration::from_secs(10));
    assert_eq!(piped, ("pid1=sleep\n".to_string(), 2));
    assert_eq!(tty, ("tty\r\n".to_string(), 0));
    assert_eq!(cat, ("to cat\neof\n".to_string(), 0));
}
