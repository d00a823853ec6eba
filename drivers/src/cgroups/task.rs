//! A task's cgroup: created with its limits or reopened by name, joined before exec, killed as
//! a whole, measured, removed.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::backend::TaskBackend;
use super::error::{CgroupError, Result};
use super::fs::{collect_pids, remove_tree, validate_name, write_file};
use super::limits::CgroupLimits;
use super::manager::{CgroupManager, CgroupVersion};
use super::process_memory;
use super::stats::CpuTracker;
use crate::driver::TaskResourceUsage;

/// Default bound for [`TaskCgroup::kill_all`].
pub const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the task cgroup name Nomad uses: `<alloc_id>.<task>`.
pub fn task_cgroup_name(alloc_id: &str, task: &str) -> String {
    format!("{alloc_id}.{task}")
}

/// A task's cgroup: limits, membership, kill, stats and removal.
#[derive(Debug)]
pub struct TaskCgroup {
    name: String,
    backend: Box<dyn TaskBackend>,
    cpu: CpuTracker,
}

impl TaskCgroup {
    /// Creates (or reuses) the task cgroup `name` under the manager's parent and writes `limits`.
    /// A limit whose controller is not available fails with [`CgroupError::ControllerUnavailable`].
    pub fn create(
        manager: &CgroupManager,
        name: &str,
        limits: &CgroupLimits,
    ) -> Result<TaskCgroup> {
        validate_name(name)?;
        manager.init()?;
        let backend = manager
            .hierarchy
            .create_task(manager.parent(), name, limits)?;
        Ok(TaskCgroup::from_backend(manager, name, backend))
    }

    /// Reopens an existing task cgroup after an agent restart (no limits are rewritten).
    pub fn reattach(manager: &CgroupManager, name: &str) -> Result<TaskCgroup> {
        validate_name(name)?;
        let backend = manager.hierarchy.open_task(manager.parent(), name)?;
        Ok(TaskCgroup::from_backend(manager, name, backend))
    }

    fn from_backend(
        manager: &CgroupManager,
        name: &str,
        backend: Box<dyn TaskBackend>,
    ) -> TaskCgroup {
        TaskCgroup {
            name: name.to_string(),
            backend,
            cpu: CpuTracker::new(manager.compute),
        }
    }

    /// The task cgroup name (`<alloc_id>.<task>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cgroup version of this task cgroup.
    pub fn version(&self) -> CgroupVersion {
        self.backend.version()
    }

    /// The task cgroup directories (one per v1 hierarchy, one on v2).
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.backend.dirs()
    }

    /// The `cgroup.procs` files a launcher writes a child's pid into before it execs.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs()
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    /// Moves process `pid` (and, since it is `cgroup.procs`, all its threads) into the cgroup.
    pub fn add_pid(&self, pid: Pid) -> Result<()> {
        let value = pid.as_raw().to_string();
        for f in self.procs_files() {
            write_file(&f, &value)?;
        }
        Ok(())
    }

    /// Prepares an async-signal-safe joiner for use between fork and exec (`pre_exec`).
    pub fn joiner(&self) -> Result<CgroupJoiner> {
        let files = self
            .procs_files()
            .into_iter()
            .map(|p| {
                CString::new(p.as_os_str().as_bytes()).map_err(|_| CgroupError::Parse {
                    path: p.clone(),
                    detail: "path contains NUL".into(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CgroupJoiner { files })
    }

    /// All pids in the task cgroup tree (nested cgroups included), deduplicated and sorted.
    pub fn pids(&self) -> Result<Vec<Pid>> {
        let mut set = BTreeSet::new();
        for d in self.dirs() {
            collect_pids(&d, &mut set)?;
        }
        Ok(set.into_iter().map(Pid::from_raw).collect())
    }

    /// Whether no process is left in the task cgroup tree.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.pids()?.is_empty())
    }

    /// Kills every process in the tree with `signal`, bounded by [`DEFAULT_KILL_TIMEOUT`].
    pub fn kill_all(&self, signal: Signal) -> Result<()> {
        self.kill_all_timeout(signal, DEFAULT_KILL_TIMEOUT)
    }

    /// Freeze → signal every pid → thaw, repeated until the cgroup is empty or `timeout` passes.
    ///
    /// SIGKILL is re-sent every round (and on v2 `cgroup.kill` is used when present); any other
    /// signal is sent once to each pid ever seen, so a task handling SIGTERM is not spammed.
    /// Returns [`CgroupError::Timeout`] if processes are still present at the deadline.
    pub fn kill_all_timeout(&self, signal: Signal, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let mut signalled: BTreeSet<Pid> = BTreeSet::new();
        let mut pause = Duration::from_millis(5);
        loop {
            let pids = self.pids()?;
            if pids.is_empty() {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(CgroupError::Timeout {
                    cgroup: self.name.clone(),
                    remaining: pids.len(),
                    waited: start.elapsed(),
                });
            }
            let used_kill_file = signal == Signal::SIGKILL && self.backend.kill_all_at_once()?;
            if !used_kill_file {
                // Freezing makes the pid list stable: nothing can fork between list and kill.
                // Without a freezer (or if it fails) we still signal, just racily.
                let frozen = self.backend.set_frozen(true);
                let result = self.signal_pids(signal, &mut signalled);
                // Always try to thaw: a failed freeze may still have left the cgroup FREEZING.
                let thawed = self.backend.set_frozen(false);
                result?;
                if frozen.is_ok() {
                    thawed?;
                }
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    fn signal_pids(&self, signal: Signal, signalled: &mut BTreeSet<Pid>) -> Result<()> {
        for pid in self.pids()? {
            if signal != Signal::SIGKILL && !signalled.insert(pid) {
                continue;
            }
            match nix::sys::signal::kill(pid, signal) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(source) => {
                    return Err(CgroupError::Signal {
                        signal,
                        pid: pid.as_raw(),
                        cgroup: self.name.clone(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Removes the task cgroup directories (nested ones first) once the tree is dead.
    /// Already-removed directories are fine; a still-populated one is retried for ~2 s.
    pub fn destroy(&self) -> Result<()> {
        for d in self.dirs() {
            remove_tree(&d)?;
        }
        Ok(())
    }

    /// The file holding this cgroup's `oom_kill` counter (v1 `memory.oom_control`, v2
    /// `memory.events`), for a supervisor that compares it before and after the task ran.
    pub fn oom_events_file(&self) -> Option<PathBuf> {
        self.backend.oom_events_file()
    }

    /// Whether the kernel OOM-killed a process of this cgroup (v1 `memory.oom_control`
    /// `oom_kill`, v2 `memory.events` `oom_kill`).
    pub fn oom_killed(&self) -> Result<bool> {
        self.backend.oom_killed()
    }

    /// Memory and CPU usage from the cgroup files, RSS from the cgroup's processes (see
    /// `process_memory`). CPU percentages are relative to one core over the time since the
    /// previous call (the first call reports 0 %).
    pub fn stats(&self) -> Result<TaskResourceUsage> {
        let mut raw = self.backend.raw_stats()?;
        // memory.stat lags up to 2 s behind the charges (see process_memory); the processes'
        // own counters do not.
        if let Some(rss) = process_memory::anon_resident_bytes(&self.pids()?) {
            raw.memory.rss = rss;
            if !raw.memory.measured.iter().any(|m| m == "RSS") {
                raw.memory.measured.insert(0, "RSS".to_string());
            }
        }
        Ok(self.cpu.usage(raw))
    }
}

/// Joins the calling process to a task cgroup using only `open`/`write`/`close`, so it can run
/// in a forked child before exec (e.g. `Command::pre_exec`). Writing `0` means "the writer".
#[derive(Debug, Clone)]
pub struct CgroupJoiner {
    files: Vec<CString>,
}

impl CgroupJoiner {
    /// Writes `0` into every `cgroup.procs` file; async-signal-safe (no allocation).
    pub fn join_current(&self) -> io::Result<()> {
        for f in &self.files {
            // SAFETY: f is a valid NUL-terminated path; open/write/close are async-signal-safe.
            let fd = unsafe { libc::open(f.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: writing one byte from a static buffer to an fd we own.
            let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
            let err = io::Error::last_os_error();
            // SAFETY: closing the fd opened above.
            unsafe { libc::close(fd) };
            if n != 1 {
                return Err(err);
            }
        }
        Ok(())
    }
}
