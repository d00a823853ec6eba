//! cgroup v1: one directory per controller hierarchy (memory, cpu, cpuacct, pids, freezer).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::backend::{Hierarchy, TaskBackend};
use super::error::{CgroupError, Result};
use super::fs::{
    mkdir_tolerant, poll_until, read_flat_keyed, read_optional_u64, read_string, write_file,
};
use super::limits::CgroupLimits;
use super::manager::CgroupVersion;
use super::stats::RawStats;
use crate::driver::MemoryStats;

/// The v1 controllers a task cgroup is created in (cpuset is left to the caller: its
/// `cpuset.cpus`/`cpuset.mems` must be initialised before any process can join).
pub const V1_CONTROLLERS: [&str; 5] = ["memory", "cpu", "cpuacct", "pids", "freezer"];

/// `USER_HZ` as used by `cpuacct.stat`; fixed at 100 on every Linux ABI we run on.
const USER_HZ_NS: u64 = 10_000_000;

/// The v1 hierarchies this machine mounts, by controller.
#[derive(Debug, Clone)]
pub(super) struct V1Hierarchy {
    mounts: BTreeMap<String, PathBuf>,
}

impl V1Hierarchy {
    pub(super) fn new(mounts: BTreeMap<String, PathBuf>) -> V1Hierarchy {
        let mounts = mounts
            .into_iter()
            .filter(|(c, _)| V1_CONTROLLERS.contains(&c.as_str()))
            .collect();
        V1Hierarchy { mounts }
    }

    /// controller → `<mount>/<parent>[/<task>]`.
    fn controller_dirs(&self, parent: &str, task: Option<&str>) -> BTreeMap<String, PathBuf> {
        self.mounts
            .iter()
            .map(|(c, m)| {
                let mut d = m.join(parent);
                if let Some(t) = task {
                    d.push(t);
                }
                (c.clone(), d)
            })
            .collect()
    }

    fn require(&self, controller: &str, parent: &str) -> Result<()> {
        if self.mounts.contains_key(controller) {
            Ok(())
        } else {
            Err(CgroupError::ControllerUnavailable {
                controller: controller.to_string(),
                path: Path::new("/sys/fs/cgroup").join(controller).join(parent),
            })
        }
    }
}

impl Hierarchy for V1Hierarchy {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }

    fn controller_available(&self, controller: &str) -> bool {
        self.mounts.contains_key(controller)
    }

    /// Distinct directories (cpu and cpuacct are often co-mounted at one path).
    fn parent_dirs(&self, parent: &str) -> Vec<PathBuf> {
        dedup(self.controller_dirs(parent, None).into_values())
    }

    fn init(&self, parent: &str) -> Result<()> {
        for d in self.parent_dirs(parent) {
            mkdir_tolerant(&d)?;
        }
        Ok(())
    }

    fn create_task(
        &self,
        parent: &str,
        name: &str,
        limits: &CgroupLimits,
    ) -> Result<Box<dyn TaskBackend>> {
        if limits.memory_hard_bytes.is_some() || limits.memory_soft_bytes.is_some() {
            self.require("memory", parent)?;
        }
        if limits.cpu_shares.is_some() {
            self.require("cpu", parent)?;
        }
        if limits.pids_max.is_some() {
            self.require("pids", parent)?;
        }
        let task = V1Task {
            dirs: self.controller_dirs(parent, Some(name)),
        };
        for d in task.dirs() {
            mkdir_tolerant(&d)?;
        }
        // On failure the half-made cgroup is removed so a retry starts clean.
        if let Err(e) = task.apply_limits(limits) {
            for d in task.dirs() {
                if let Err(rm) = std::fs::remove_dir(&d) {
                    tracing::warn!(dir = %d.display(), error = %rm, "removing a half-made task cgroup");
                }
            }
            return Err(e);
        }
        Ok(Box::new(task))
    }

    fn open_task(&self, parent: &str, name: &str) -> Result<Box<dyn TaskBackend>> {
        let task = V1Task {
            dirs: self.controller_dirs(parent, Some(name)),
        };
        // Every hierarchy must still hold it, else the launcher could not place a pid fully.
        for d in task.dirs() {
            if !d.is_dir() {
                return Err(CgroupError::NotFound(d));
            }
        }
        Ok(Box::new(task))
    }
}

fn dedup(it: impl Iterator<Item = PathBuf>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = Vec::new();
    for p in it {
        if !v.contains(&p) {
            v.push(p);
        }
    }
    v
}

/// One task's v1 cgroup directories.
#[derive(Debug)]
pub(super) struct V1Task {
    dirs: BTreeMap<String, PathBuf>,
}

impl V1Task {
    fn file(&self, controller: &str, name: &str) -> Option<PathBuf> {
        self.dirs.get(controller).map(|d| d.join(name))
    }

    fn apply_limits(&self, limits: &CgroupLimits) -> Result<()> {
        if let Some(soft) = limits.memory_soft_bytes
            && let Some(f) = self.file("memory", "memory.soft_limit_in_bytes")
        {
            write_file(&f, &soft.to_string())?;
        }
        if let Some(hard) = limits.memory_hard_bytes
            && let Some(f) = self.file("memory", "memory.limit_in_bytes")
        {
            write_file(&f, &hard.to_string())?;
            // memory+swap = memory means no swap. memsw exists only with swap accounting, and
            // must be written after limit_in_bytes (the kernel requires memsw >= limit).
            if limits.disable_swap
                && let Some(memsw) = self.file("memory", "memory.memsw.limit_in_bytes")
                && memsw.exists()
            {
                write_file(&memsw, &hard.to_string())?;
            }
        }
        if limits.disable_swap
            && let Some(f) = self.file("memory", "memory.swappiness")
        {
            // Refused for the root cgroup or with cgroup_disable=swap; swap-off is best effort.
            let _ = write_file(&f, "0");
        }
        if let Some(shares) = limits.cpu_shares
            && let Some(f) = self.file("cpu", "cpu.shares")
        {
            write_file(&f, &shares.to_string())?;
        }
        if let Some(max) = limits.pids_max
            && let Some(f) = self.file("pids", "pids.max")
        {
            write_file(&f, &max.to_string())?;
        }
        Ok(())
    }
}

impl TaskBackend for V1Task {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }

    fn dirs(&self) -> Vec<PathBuf> {
        dedup(self.dirs.values().cloned())
    }

    /// v1 has no kill file: the caller freezes and signals pid by pid.
    fn kill_all_at_once(&self) -> Result<bool> {
        Ok(false)
    }

    fn set_frozen(&self, frozen: bool) -> Result<()> {
        let Some(state) = self.file("freezer", "freezer.state") else {
            return Err(CgroupError::ControllerUnavailable {
                controller: "freezer".into(),
                path: self.dirs().into_iter().next().unwrap_or_default(),
            });
        };
        let want = if frozen { "FROZEN" } else { "THAWED" };
        write_file(&state, want)?;
        if frozen {
            // FREEZING → FROZEN normally takes microseconds; a task stuck in an uninterruptible
            // sleep can delay it, in which case we signal anyway (delivery happens on thaw).
            poll_until(Duration::from_millis(500), || {
                Ok(read_string(&state)?.trim() == "FROZEN")
            })?;
        }
        Ok(())
    }

    /// `memory.oom_control`, when the memory controller is mounted.
    fn oom_events_file(&self) -> Option<PathBuf> {
        self.file("memory", "memory.oom_control")
    }

    fn oom_killed(&self) -> Result<bool> {
        let Some(f) = self.oom_events_file() else {
            return Ok(false);
        };
        // `oom_kill` (kernel ≥ 4.13) counts kills in this memcg.
        Ok(read_flat_keyed(&f)?
            .and_then(|m| m.get("oom_kill").copied())
            .is_some_and(|n| n > 0))
    }

    fn raw_stats(&self) -> Result<RawStats> {
        let mut raw = RawStats::default();
        let mut mem = MemoryStats::default();
        let mut measured = Vec::new();
        if let Some(stat) = self
            .file("memory", "memory.stat")
            .map(|f| read_flat_keyed(&f))
            .transpose()?
            .flatten()
        {
            // total_* include nested cgroups; fall back to the local counters.
            let get = |k: &str| {
                stat.get(&format!("total_{k}"))
                    .or_else(|| stat.get(k))
                    .copied()
            };
            if let Some(v) = get("rss") {
                mem.rss = v;
                measured.push("RSS");
            }
            if let Some(v) = get("cache") {
                mem.cache = v;
                measured.push("Cache");
            }
            if let Some(v) = get("swap") {
                mem.swap = v;
                measured.push("Swap");
            }
        }
        let mut opt = |file: &str, label: &'static str, slot: &mut u64| -> Result<()> {
            if let Some(f) = self.file("memory", file)
                && let Some(v) = read_optional_u64(&f)?
            {
                *slot = v;
                measured.push(label);
            }
            Ok(())
        };
        opt("memory.usage_in_bytes", "Usage", &mut mem.usage)?;
        opt("memory.max_usage_in_bytes", "Max Usage", &mut mem.max_usage)?;
        opt(
            "memory.kmem.usage_in_bytes",
            "Kernel Usage",
            &mut mem.kernel_usage,
        )?;
        opt(
            "memory.kmem.max_usage_in_bytes",
            "Kernel Max Usage",
            &mut mem.kernel_max_usage,
        )?;
        mem.measured = measured.into_iter().map(String::from).collect();
        raw.memory = mem;

        if let Some(f) = self.file("cpuacct", "cpuacct.usage") {
            raw.cpu_total_ns = read_optional_u64(&f)?;
        }
        let user = self.file("cpuacct", "cpuacct.usage_user");
        let sys = self.file("cpuacct", "cpuacct.usage_sys");
        match (user, sys) {
            (Some(u), Some(s)) if u.exists() && s.exists() => {
                raw.cpu_user_ns = read_optional_u64(&u)?;
                raw.cpu_system_ns = read_optional_u64(&s)?;
            }
            _ => {
                // Older kernels: cpuacct.stat in USER_HZ ticks.
                if let Some(stat) = self
                    .file("cpuacct", "cpuacct.stat")
                    .map(|f| read_flat_keyed(&f))
                    .transpose()?
                    .flatten()
                {
                    raw.cpu_user_ns = stat.get("user").map(|t| t * USER_HZ_NS);
                    raw.cpu_system_ns = stat.get("system").map(|t| t * USER_HZ_NS);
                }
            }
        }
        if let Some(stat) = self
            .file("cpu", "cpu.stat")
            .map(|f| read_flat_keyed(&f))
            .transpose()?
            .flatten()
        {
            raw.throttled_periods = stat.get("nr_throttled").copied();
            raw.throttled_time_ns = stat.get("throttled_time").copied();
        }
        Ok(raw)
    }
}
