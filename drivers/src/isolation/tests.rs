//! Isolation tests. The `real_*` tests need root: they build a real chroot under the system
//! temp dir (bind mounts in this process's mount namespace) and start isolated tasks. Guards
//! tear the mounts down and only then delete the directories.

use super::chroot::mounts_under;
use super::*;
use crate::cgroups::{CgroupLimits, CgroupManager, DEFAULT_PARENT, TaskCgroup};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// ---- pure -------------------------------------------------------------------------------

#[test]
fn capability_policy_matches_nomad() {
    let defaults = CapSet::nomad_default();
    assert_eq!(defaults.names().len(), 13);
    assert!(defaults.names().contains(&"SYS_CHROOT"));
    assert!(!defaults.names().contains(&"NET_RAW"));
    let allow: Vec<String> = caps::NOMAD_EXEC_DEFAULT_CAPS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let none: Vec<String> = vec![];
    assert_eq!(
        task_capabilities(&allow, &none, &none).expect("caps"),
        defaults
    );

    let set =
        task_capabilities(&allow, &none, &["cap_chown".to_string(), "Kill".into()]).expect("drop");
    assert!(!set.names().contains(&"CHOWN") && !set.names().contains(&"KILL"));
    assert_eq!(set.names().len(), 11);

    let err = task_capabilities(&allow, &["net_raw".to_string()], &none).expect_err("not allowed");
    assert!(matches!(err, IsolationError::CapabilityNotAllowed(ref n) if n == "NET_RAW"));

    let allow_all = vec!["all".to_string()];
    let set = task_capabilities(
        &allow_all,
        &["CAP_NET_RAW".to_string()],
        &["all".to_string()],
    )
    .expect("all");
    assert_eq!(set.names(), ["NET_RAW"]);

    assert!(matches!(
        caps::parse_cap("CAP_BOGUS"),
        Err(IsolationError::InvalidCapability(_))
    ));
}

#[test]
fn namespace_modes_parse() {
    assert_eq!(
        NamespaceMode::parse("", NamespaceMode::Host).expect("default"),
        NamespaceMode::Host
    );
    assert_eq!(
        NamespaceMode::parse("private", NamespaceMode::Host).expect("private"),
        NamespaceMode::Private
    );
    assert!(NamespaceMode::parse("container", NamespaceMode::Private).is_err());
}

#[test]
fn resolves_nobody_and_root() {
    let u = resolve_user("").expect("nobody");
    assert_eq!(u.name, "nobody");
    assert_eq!(u.uid, 65534);
    assert!(u.groups.contains(&u.gid));
    assert_eq!(resolve_user("root").expect("root").uid, 0);
    assert!(matches!(
        resolve_user("no-such-user-yurt"),
        Err(IsolationError::UnknownUser(_))
    ));
}

#[test]
fn chroot_env_default_and_unsafe_destinations() {
    let env = default_chroot_env();
    assert_eq!(env.len(), 9);
    assert_eq!(env[Path::new("/usr")], PathBuf::from("/usr"));
    let tmp = Scratch::new("unsafe");
    let mut spec = ChrootSpec::new(tmp.task_dir(), None);
    spec.chroot_env = [(PathBuf::from("/etc"), PathBuf::from("/../escape"))].into();
    let err = build_chroot(&spec).expect_err("..");
    assert!(matches!(err, IsolationError::UnsafePath { .. }), "{err}");
    // Refuses top-level and root "task dirs" outright.
    assert!(matches!(
        teardown(Path::new("/usr")),
        Err(IsolationError::UnsafePath { .. })
    ));
    assert!(matches!(
        teardown(Path::new("/")),
        Err(IsolationError::UnsafePath { .. })
    ));
    // A task dir that does not exist has nothing to tear down.
    teardown(&tmp.0.join("nope")).expect("missing dir is fine");
}

// ---- real ---------------------------------------------------------------------------------

/// `<tmp>/yurt-iso-<pid>-<tag>/{alloc,task}`; tears mounts down before deleting anything.
struct Scratch(PathBuf);
impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("yurt-iso-{}-{tag}", std::process::id()));
        if p.exists() {
            let _ = teardown(&p.join("task"));
            assert!(mounts_under(&p).expect("mounts").is_empty());
            let _ = std::fs::remove_dir_all(&p);
        }
        std::fs::create_dir_all(p.join("alloc")).expect("mkdir alloc");
        std::fs::create_dir_all(p.join("task")).expect("mkdir task");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p.join("alloc"), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        Scratch(p)
    }
    fn task_dir(&self) -> PathBuf {
        self.0.join("task")
    }
    fn alloc_dir(&self) -> PathBuf {
        self.0.join("alloc")
    }
    fn build(&self) -> ChrootSpec {
        require_root();
        let spec = ChrootSpec::new(self.task_dir(), Some(self.alloc_dir()));
        build_chroot(&spec).expect("build chroot");
        spec
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = teardown(&self.task_dir());
        // Never recurse into a directory that still has host mounts below it.
        match mounts_under(&self.0) {
            Ok(m) if m.is_empty() => {
                let _ = std::fs::remove_dir_all(&self.0);
            }
            other => eprintln!("NOT removing {}: mounts left {other:?}", self.0.display()),
        }
    }
}

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "isolation tests need root"
    );
}

/// Waits for the shim with a deadline; SIGKILLs it (and so the task) on timeout.
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
            panic!("isolated task {pid} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `sh -c script` isolated with defaults (+ tweak), returns (status, stdout+stderr).
fn run_sh(
    scratch: &Scratch,
    script: &str,
    tweak: impl FnOnce(&mut IsolatedSpec<'_>),
) -> (WaitStatus, String) {
    let out_path = scratch.0.join(format!("out-{}", rand_suffix()));
    let out = std::fs::File::create(&out_path).expect("create out");
    let mut spec = IsolatedSpec::new(scratch.task_dir(), "/bin/sh");
    spec.args = vec!["sh".into(), "-c".into(), script.into()];
    spec.env = vec![("PATH".into(), "/usr/bin:/bin:/usr/sbin:/sbin".into())];
    spec.hostname = Some("yurt-task".into());
    spec.stdout = Some(out.as_fd());
    spec.stderr = Some(out.as_fd());
    tweak(&mut spec);
    let child = spawn_isolated(&spec).expect("spawn_isolated");
    let st = wait_bounded(child.pid, Duration::from_secs(20));
    drop(out);
    let text = std::fs::read_to_string(&out_path).expect("read out");
    (st, text)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn real_task_sees_only_chroot_as_pid1_nobody() {
    let s = Scratch::new("view");
    s.build();
    let (st, out) = run_sh(
        &s,
        "echo root=$(ls -A / | tr '\\n' ' '); echo pid=$$; echo uid=$(id -u) gid=$(id -g); \
         echo host=$(hostname); echo procs=$(ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '); \
         echo caps=$(grep CapEff /proc/self/status | tr -d '\\t'); \
         echo bnd=$(grep CapBnd /proc/self/status | tr -d '\\t')",
        |_| {},
    );
    assert_eq!(st, WaitStatus::Exited(st.pid().expect("pid"), 0), "{out}");
    let line = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k}= in {out}"))
            .trim()
            .to_string()
    };
    let mut seen: Vec<String> = line("root").split_whitespace().map(String::from).collect();
    seen.sort();
    let mut expected: Vec<String> = std::fs::read_dir(s.task_dir())
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    expected.sort();
    assert_eq!(seen, expected, "the task's / is exactly the task dir");
    for host_only in ["work", "root", "home", "var", "opt"] {
        assert!(
            !seen.iter().any(|e| e == host_only),
            "{host_only} leaked: {seen:?}"
        );
    }
    for want in [
        "alloc", "bin", "dev", "etc", "local", "proc", "secrets", "tmp", "usr",
    ] {
        assert!(seen.iter().any(|e| e == want), "missing /{want}: {seen:?}");
    }
    assert_eq!(line("pid"), "1");
    assert_eq!(line("uid"), "65534 gid=65534");
    assert_eq!(line("host"), "yurt-task");
    // sh (1) plus the few short-lived children of the pipeline: no host process is visible.
    let procs: Vec<u32> = line("procs")
        .split_whitespace()
        .map(|p| p.parse().expect("pid"))
        .collect();
    assert!(
        procs.contains(&1) && procs.iter().all(|p| *p < 20),
        "{procs:?}"
    );
    let want = format!("{:016x}", CapSet::nomad_default().0);
    assert_eq!(line("caps"), format!("CapEff:{want}"));
    assert_eq!(line("bnd"), format!("CapBnd:{want}"));
}

#[test]
fn real_task_filesystem_permissions() {
    let s = Scratch::new("fs");
    s.build();
    let (st, out) = run_sh(
        &s,
        "touch /usr/yurt-probe 2>/dev/null && echo usr-writable; \
         touch /etc/yurt-probe 2>/dev/null && echo etc-writable; \
         echo l > /local/out && echo local-ok; echo a > /alloc/out && echo alloc-ok; \
         echo s > /secrets/s && echo secrets-ok; echo t > /tmp/t && echo tmp-ok; \
         echo x > /dev/null && head -c 4 /dev/urandom | wc -c",
        |_| {},
    );
    assert!(matches!(st, WaitStatus::Exited(_, 0)), "{st:?} {out}");
    assert!(
        !out.contains("usr-writable") && !out.contains("etc-writable"),
        "{out}"
    );
    for ok in ["local-ok", "alloc-ok", "secrets-ok", "tmp-ok"] {
        assert!(out.contains(ok), "{ok} missing: {out}");
    }
    assert!(
        out.lines().any(|l| l.trim() == "4"),
        "/dev/urandom unusable: {out}"
    );
    assert!(!Path::new("/usr/yurt-probe").exists());
    assert_eq!(
        std::fs::read_to_string(s.task_dir().join("local/out")).expect("local"),
        "l\n"
    );
    assert_eq!(
        std::fs::read_to_string(s.alloc_dir().join("out")).expect("alloc"),
        "a\n"
    );
}

#[test]
fn real_exit_status_and_signal_forwarding() {
    let s = Scratch::new("sig");
    s.build();
    let (st, _) = run_sh(&s, "exit 7", |_| {});
    assert!(matches!(st, WaitStatus::Exited(_, 7)), "{st:?}");

    // SIGTERM to the shim reaches the task (PID 1 with a handler).
    let mut spec = IsolatedSpec::new(s.task_dir(), "/bin/sh");
    spec.args = vec![
        "sh".into(),
        "-c".into(),
        "trap 'exit 42' TERM; touch /local/ready; while :; do sleep 0.05; done".into(),
    ];
    let child = spawn_isolated(&spec).expect("spawn");
    let ready = s.task_dir().join("local/ready");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ready.exists(), "task never got ready");
    kill(child.pid, Signal::SIGTERM).expect("kill");
    let st = wait_bounded(child.pid, Duration::from_secs(10));
    assert!(matches!(st, WaitStatus::Exited(_, 42)), "{st:?}");

    // A task killed by a signal (from the host: PID 1 ignores even SIGKILL from inside its
    // own namespace): the shim dies by the same signal.
    let mut spec = IsolatedSpec::new(s.task_dir(), "/bin/sleep");
    spec.args = vec!["sleep".into(), "300".into()];
    let child = spawn_isolated(&spec).expect("spawn");
    kill(child.task_pid, Signal::SIGKILL).expect("kill task");
    let st = wait_bounded(child.pid, Duration::from_secs(10));
    assert!(
        matches!(st, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
        "{st:?}"
    );

    // SIGKILL to the shim takes the whole PID namespace with it.
    let mut spec = IsolatedSpec::new(s.task_dir(), "/bin/sh");
    spec.args = vec!["sh".into(), "-c".into(), "sleep 300 & sleep 300".into()];
    let child = spawn_isolated(&spec).expect("spawn");
    kill(child.pid, Signal::SIGKILL).expect("kill shim");
    let st = wait_bounded(child.pid, Duration::from_secs(10));
    assert!(
        matches!(st, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
        "{st:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{}", child.task_pid)).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !Path::new(&format!("/proc/{}", child.task_pid)).exists(),
        "task survived its shim"
    );
}

#[test]
fn real_setup_errors_are_reported() {
    let s = Scratch::new("err");
    s.build();
    let mut spec = IsolatedSpec::new(s.task_dir(), "/no/such/binary");
    let err = spawn_isolated(&spec).expect_err("missing binary");
    assert!(
        matches!(
            err,
            IsolationError::ChildSetup {
                stage: "execve",
                source: nix::errno::Errno::ENOENT
            }
        ),
        "{err}"
    );
    spec.program = PathBuf::from("/bin/true");
    spec.work_dir = PathBuf::from("/nope");
    let err = spawn_isolated(&spec).expect_err("bad work_dir");
    assert!(
        matches!(
            err,
            IsolationError::ChildSetup {
                stage: "chdir work_dir",
                ..
            }
        ),
        "{err}"
    );
    spec.work_dir = PathBuf::from("/local");
    spec.cgroup_procs = vec![s.0.join("not-a-cgroup/cgroup.procs")];
    let err = spawn_isolated(&spec).expect_err("bad cgroup");
    assert!(matches!(err, IsolationError::Cgroup { .. }), "{err}");
}

#[test]
fn real_host_pid_mode_and_root_caps() {
    let s = Scratch::new("host");
    s.build();
    let (st, out) = run_sh(&s, "echo pid=$$; echo uid=$(id -u)", |spec| {
        spec.pid_mode = NamespaceMode::Host;
        spec.user = "root".into();
        spec.capabilities = CapSet::default();
    });
    assert!(matches!(st, WaitStatus::Exited(_, 0)), "{st:?} {out}");
    assert!(!out.contains("pid=1\n"), "{out}");
    assert!(out.contains("uid=0"), "{out}");
    // root with an empty capability set cannot write a read-only-bound /usr nor remount it.
    let (st, out) = run_sh(
        &s,
        "mount -o remount,rw /usr 2>/dev/null && echo remounted; cat /proc/self/status | grep CapEff",
        |spec| {
            spec.user = "root".into();
            spec.capabilities = CapSet::default();
        },
    );
    assert!(matches!(st, WaitStatus::Exited(_, 0)), "{st:?} {out}");
    assert!(!out.contains("remounted"), "{out}");
    assert!(out.contains("0000000000000000"), "{out}");
}

#[test]
fn real_task_placed_in_cgroup_and_killed_with_it() {
    let s = Scratch::new("cg");
    s.build();
    let mgr = CgroupManager::detect(&format!("{DEFAULT_PARENT}-test-{}-iso", std::process::id()))
        .expect("cgroups");
    let cg = TaskCgroup::create(&mgr, "a1.iso", &CgroupLimits::default()).expect("create");
    struct CgDrop<'a>(&'a TaskCgroup, &'a CgroupManager);
    impl Drop for CgDrop<'_> {
        fn drop(&mut self) {
            let _ = self
                .0
                .kill_all_timeout(Signal::SIGKILL, Duration::from_secs(5));
            let _ = self.0.destroy();
            let _ = self.1.remove_parent();
        }
    }
    let _g = CgDrop(&cg, &mgr);
    let mut spec = IsolatedSpec::new(s.task_dir(), "/bin/sh");
    spec.args = vec![
        "sh".into(),
        "-c".into(),
        "sleep 300 & setsid sleep 300 & sleep 300".into(),
    ];
    spec.cgroup_procs = cg.procs_files();
    let child = spawn_isolated(&spec).expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut pids = cg.pids().expect("pids");
    while pids.len() < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        pids = cg.pids().expect("pids");
    }
    assert!(
        pids.contains(&child.task_pid),
        "{pids:?} lacks {}",
        child.task_pid
    );
    assert!(
        !pids.contains(&child.pid),
        "the shim must stay outside the task cgroup"
    );
    assert_eq!(pids.len(), 4, "{pids:?}");
    cg.kill_all(Signal::SIGKILL).expect("kill_all");
    assert!(cg.is_empty().expect("empty"));
    let st = wait_bounded(child.pid, Duration::from_secs(10));
    assert!(
        matches!(st, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
        "{st:?}"
    );
}

#[test]
fn real_build_is_idempotent_and_teardown_leaves_nothing() {
    let s = Scratch::new("td");
    s.build();
    let root = std::fs::canonicalize(s.task_dir()).expect("canon");
    let n = mounts_under(&root).expect("mounts").len();
    assert!(n >= 7, "expected binds + tmpfs mounts, got {n}");
    // Building again mounts nothing new.
    s.build();
    assert_eq!(mounts_under(&root).expect("mounts").len(), n);
    // Lib32 does not exist on this host: skipped, not created.
    if !Path::new("/lib32").exists() {
        assert!(!root.join("lib32").exists());
    }
    // /bin is a symlink on usr-merged hosts: recreated, not bound.
    if std::fs::symlink_metadata("/bin")
        .expect("lstat")
        .file_type()
        .is_symlink()
    {
        assert!(
            std::fs::symlink_metadata(root.join("bin"))
                .expect("lstat")
                .file_type()
                .is_symlink()
        );
    }

    // A symlink to a host path inside the task dir is never followed by teardown.
    std::os::unix::fs::symlink("/usr", root.join("local/escape")).expect("symlink");
    // A symlinked "task dir" pointing at the real one is refused outright.
    let link = s.0.join("task-link");
    std::os::unix::fs::symlink(&root, &link).expect("symlink");
    assert!(matches!(
        teardown(&link),
        Err(IsolationError::UnsafePath { .. })
    ));
    assert_eq!(mounts_under(&root).expect("mounts").len(), n);

    let host_mounts_before = stable_host_mounts();
    teardown(&s.task_dir()).expect("teardown");
    assert!(mounts_under(&root).expect("mounts").is_empty());
    let mi = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mi.contains(root.to_str().expect("utf8")),
        "leftover mounts:\n{mi}"
    );
    let host_mounts_after = stable_host_mounts();
    let lost: Vec<_> = host_mounts_before
        .iter()
        .filter(|(mp, n)| host_mounts_after.get(*mp).copied().unwrap_or(0) < **n)
        .collect();
    assert!(lost.is_empty(), "teardown unmounted host mounts: {lost:?}");
    teardown(&s.task_dir()).expect("teardown is idempotent");
}

/// The host's own mount points (how many mounts are stacked on each): those a teardown escaping its task dir could take away.
/// Mounts that come and go with other work on the machine are left out — every test's scratch
/// dir (tests here and in other crates mount concurrently under theirs), containers and their
/// network namespaces — so a concurrent test or container cannot fail this check.
fn stable_host_mounts() -> std::collections::BTreeMap<PathBuf, usize> {
    let volatile = [
        std::env::temp_dir(),
        PathBuf::from("/var/lib/docker"),
        PathBuf::from("/var/lib/containerd"),
        PathBuf::from("/run"),
    ];
    let mi = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    mi.lines()
        .filter_map(crate::cgroups::parse_mountinfo_line)
        .map(|(mp, _, _)| mp)
        .filter(|mp| !volatile.iter().any(|v| mp.starts_with(v)))
        .fold(Default::default(), |mut stacked, mp| {
            *stacked.entry(mp).or_insert(0) += 1;
            stacked
        })
}

#[test]
fn real_task_dies_with_spawning_thread_when_asked() {
    let s = Scratch::new("pdeath");
    s.build();
    let root = s.task_dir();
    // Spawned from a short-lived thread: when it exits, the shim gets SIGKILL (PDEATHSIG).
    let child = std::thread::spawn(move || {
        let mut spec = IsolatedSpec::new(root, "/bin/sleep");
        spec.args = vec!["sleep".into(), "300".into()];
        spawn_isolated(&spec).expect("spawn")
    })
    .join()
    .expect("thread");
    let st = wait_bounded(child.pid, Duration::from_secs(10));
    assert!(
        matches!(st, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
        "{st:?}"
    );
    let gone = |p: Pid| !Path::new(&format!("/proc/{p}")).exists();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone(child.task_pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone(child.task_pid), "task outlived its shim");

    // With die_with_parent = false the task keeps running after the thread is gone.
    let root = s.task_dir();
    let child = std::thread::spawn(move || {
        let mut spec = IsolatedSpec::new(root, "/bin/sleep");
        spec.args = vec!["sleep".into(), "300".into()];
        spec.die_with_parent = false;
        spawn_isolated(&spec).expect("spawn")
    })
    .join()
    .expect("thread");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        waitpid(child.pid, Some(WaitPidFlag::WNOHANG)).expect("waitpid"),
        WaitStatus::StillAlive
    );
    kill(child.task_pid, Signal::SIGKILL).expect("kill task");
    let st = wait_bounded(child.pid, Duration::from_secs(10));
    assert!(
        matches!(st, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
        "{st:?}"
    );
}
