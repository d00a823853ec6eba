//! Shared helpers for the raw_exec/supervisor tests and benches: temp dirs, task configs,
//! log readers and a cleanup guard that kills anything a failed test left running.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use yurt_drivers::exec::{ExecDriver, ExecPluginConfig};
use yurt_drivers::rawexec::{RawExecDriver, RawExecPluginConfig, RawExecState};
use yurt_drivers::supervisor_client::SupervisorCommand;
use yurt_drivers::{LogSink, TaskConfig, TaskHandle, TaskResources};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A temp root with an alloc dir, a socket dir and a supervisor state dir; kills recorded processes on drop.
pub struct Env {
    pub root: PathBuf,
    /// Unique per Env: task cgroups are named `<alloc_id>.<task>` machine-wide.
    pub alloc_id: String,
    pids: Mutex<Vec<(u32, u32)>>,
    /// Cgroups and chroots of tracked tasks, released on drop even if the test failed.
    leftovers: Mutex<Vec<(Option<String>, Option<PathBuf>)>>,
}

impl Env {
    pub fn new(name: &str) -> Env {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("yurt-t-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("alloc/alloc/logs")).unwrap();
        Env {
            root,
            alloc_id: format!("alloc-{}-{n}-{name}", std::process::id()),
            pids: Mutex::new(Vec::new()),
            leftovers: Mutex::new(Vec::new()),
        }
    }

    pub fn supervisor(&self) -> SupervisorCommand {
        SupervisorCommand {
            exe: PathBuf::from(env!("CARGO_BIN_EXE_yurt-supervisor-test")),
            args_prefix: vec![],
            socket_dir: self.root.join("s"),
            state_dir: self.root.join("sv"),
        }
    }

    pub fn driver(&self) -> RawExecDriver {
        self.driver_with(RawExecPluginConfig {
            enabled: true,
            ..Default::default()
        })
    }

    pub fn driver_with(&self, plugin: RawExecPluginConfig) -> RawExecDriver {
        RawExecDriver::new(plugin, self.supervisor())
    }

    /// An exec driver with the default plugin config and the agent's cgroups.
    pub fn exec_driver(&self) -> ExecDriver {
        self.exec_driver_with(ExecPluginConfig::default())
    }

    pub fn exec_driver_with(&self, plugin: ExecPluginConfig) -> ExecDriver {
        ExecDriver::new(
            plugin,
            self.supervisor(),
            yurt_drivers::supervisor_client::detect_cgroups(None),
        )
    }

    /// A task config for the exec driver: dirs as the agent makes them (world-writable
    /// `local/` and shared `alloc/`), Nomad's in-chroot dir variables.
    pub fn exec_task(&self, name: &str, script: &str) -> TaskConfig {
        use std::os::unix::fs::PermissionsExt;
        let mut cfg = self.sh(name, script);
        for d in [cfg.task_dir.join("local"), self.root.join("alloc/alloc")] {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        std::fs::set_permissions(&cfg.task_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        cfg.env.insert("NOMAD_TASK_DIR".into(), "/local".into());
        cfg
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("alloc/alloc/logs")
    }

    /// A task config running `sh -c script`.
    pub fn sh(&self, name: &str, script: &str) -> TaskConfig {
        self.task(name, json!({"command": "/bin/sh", "args": ["-c", script]}))
    }

    pub fn task(&self, name: &str, config: serde_json::Value) -> TaskConfig {
        let task_dir = self.root.join("alloc").join(name);
        std::fs::create_dir_all(task_dir.join("local")).unwrap();
        TaskConfig {
            id: format!(
                "{}/{name}/{:08x}",
                self.alloc_id,
                SEQ.fetch_add(1, Ordering::Relaxed)
            ),
            name: name.into(),
            alloc_id: self.alloc_id.clone(),
            job_name: "job".into(),
            group_name: "group".into(),
            namespace: "default".into(),
            env: BTreeMap::from([("PATH".to_string(), "/usr/bin:/bin".to_string())]),
            user: String::new(),
            resources: TaskResources::default(),
            alloc_dir: self.root.join("alloc"),
            task_dir,
            logs: LogSink {
                dir: self.logs_dir(),
                prefix: name.into(),
                max_files: 10,
                max_file_size_mb: 10,
            },
            ports: vec![],
            driver_config: config,
        }
    }

    /// Remembers a started task so a failing test still kills it.
    pub fn track(&self, handle: &TaskHandle) -> RawExecState {
        let st: RawExecState = serde_json::from_value(handle.state.clone()).unwrap();
        self.pids
            .lock()
            .unwrap()
            .push((st.supervisor_pid, st.task_pid));
        self.leftovers
            .lock()
            .unwrap()
            .push((st.cgroup.clone(), st.chroot.clone()));
        st
    }

    /// Concatenation of `<name>.<stream>.<n>` in index order.
    pub fn log(&self, name: &str, stream: &str) -> Vec<u8> {
        concat_logs(&self.logs_dir(), &format!("{name}.{stream}"))
    }

    pub fn log_string(&self, name: &str, stream: &str) -> String {
        String::from_utf8_lossy(&self.log(name, stream)).into_owned()
    }

    /// Polls until the stream contains `needle` (≤ 10 s).
    pub fn wait_for_log(&self, name: &str, stream: &str, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log_string(name, stream).contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{needle:?} never appeared in {name}.{stream}: {:?}",
                self.log_string(name, stream)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for &(sv, task) in self.pids.lock().unwrap().iter() {
            unsafe {
                libc::kill(-(task as i32), libc::SIGKILL);
                libc::kill(task as i32, libc::SIGKILL);
                libc::kill(sv as i32, libc::SIGKILL);
            }
        }
        let manager = yurt_drivers::supervisor_client::detect_cgroups(None);
        for (cgroup, chroot) in self.leftovers.lock().unwrap().iter() {
            let cg = cgroup
                .as_ref()
                .zip(manager.as_ref())
                .and_then(|(name, m)| yurt_drivers::cgroups::TaskCgroup::reattach(m, name).ok());
            let _ =
                yurt_drivers::supervisor_client::cleanup::release(cg.as_ref(), chroot.as_deref());
        }
        // Never delete through a mount that is still there (read-only host binds).
        if let Ok(left) = yurt_drivers::isolation::mounts_under(&self.root)
            && !left.is_empty()
        {
            eprintln!(
                "mounts left under {}: {left:?}; not deleting it",
                self.root.display()
            );
            return;
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

pub fn log_indexes(dir: &Path, base: &str) -> Vec<u64> {
    let mut idx = yurt_drivers::logrotate::existing_indexes(dir, base).unwrap();
    idx.sort_unstable();
    idx
}

pub fn concat_logs(dir: &Path, base: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for i in log_indexes(dir, base) {
        out.extend(std::fs::read(dir.join(format!("{base}.{i}"))).unwrap_or_default());
    }
    out
}

/// Whether a pid is alive and not a zombie.
pub fn alive(pid: u32) -> bool {
    yurt_drivers::supervisor::proctree::is_alive(pid)
}
