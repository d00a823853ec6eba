//! cgroup v2: a single directory per task in the unified hierarchy.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use super::backend::{Hierarchy, TaskBackend};
use super::error::{CgroupError, Result};
use super::fs::{
    mkdir_tolerant, poll_until, read_flat_keyed, read_optional, read_optional_u64, read_string,
    write_file,
};
use super::limits::{CgroupLimits, shares_to_weight};
use super::manager::CgroupVersion;
use super::stats::RawStats;
use crate::driver::MemoryStats;

/// The v2 controllers the manager enables for its subtree when the root offers them.
pub const V2_CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

/// A cgroup2 root (the mount point, or a delegated directory inside it).
#[derive(Debug, Clone)]
pub(super) struct V2Hierarchy {
    root: PathBuf,
    controllers: BTreeSet<String>,
}

fn controllers_in(s: &str) -> BTreeSet<String> {
    s.split_whitespace().map(String::from).collect()
}

impl V2Hierarchy {
    pub(super) fn new(root: PathBuf) -> Result<V2Hierarchy> {
        let file = root.join("cgroup.controllers");
        let Some(c) = read_optional(&file)? else {
            return Err(CgroupError::Unavailable(format!(
                "{} is not a cgroup2 directory (no cgroup.controllers)",
                root.display()
            )));
        };
        Ok(V2Hierarchy {
            root,
            controllers: controllers_in(&c),
        })
    }

    /// Enables the wanted controllers (that `dir` offers) in `dir/cgroup.subtree_control`.
    fn enable_subtree(&self, dir: &std::path::Path) -> Result<()> {
        let offered = match read_optional(&dir.join("cgroup.controllers"))? {
            Some(c) => controllers_in(&c),
            None => self.controllers.clone(),
        };
        let control = dir.join("cgroup.subtree_control");
        let enabled = read_optional(&control)?
            .map(|s| controllers_in(&s))
            .unwrap_or_default();
        let missing: Vec<String> = V2_CONTROLLERS
            .iter()
            .filter(|c| offered.contains(**c) && !enabled.contains(**c))
            .map(|c| format!("+{c}"))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        write_file(&control, &missing.join(" "))
    }
}

impl Hierarchy for V2Hierarchy {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V2
    }

    fn controller_available(&self, controller: &str) -> bool {
        self.controllers.contains(controller)
    }

    fn parent_dirs(&self, parent: &str) -> Vec<PathBuf> {
        vec![self.root.join(parent)]
    }

    fn init(&self, parent: &str) -> Result<()> {
        self.enable_subtree(&self.root)?;
        let dir = self.root.join(parent);
        mkdir_tolerant(&dir)?;
        self.enable_subtree(&dir)
    }

    fn create_task(
        &self,
        parent: &str,
        name: &str,
        limits: &CgroupLimits,
    ) -> Result<Box<dyn TaskBackend>> {
        let dir = self.root.join(parent).join(name);
        mkdir_tolerant(&dir)?;
        let task = V2Task { dir };
        // On failure the half-made cgroup is removed so a retry starts clean.
        if let Err(e) = task.apply_limits(limits) {
            if let Err(rm) = std::fs::remove_dir(&task.dir) {
                tracing::warn!(dir = %task.dir.display(), error = %rm, "removing a half-made task cgroup");
            }
            return Err(e);
        }
        Ok(Box::new(task))
    }

    fn open_task(&self, parent: &str, name: &str) -> Result<Box<dyn TaskBackend>> {
        let dir = self.root.join(parent).join(name);
        if !dir.join("cgroup.procs").exists() {
            return Err(CgroupError::NotFound(dir));
        }
        Ok(Box::new(V2Task { dir }))
    }
}

/// One task's v2 cgroup directory.
#[derive(Debug)]
pub(super) struct V2Task {
    dir: PathBuf,
}

impl V2Task {
    fn controllers(&self) -> Result<BTreeSet<String>> {
        Ok(read_optional(&self.dir.join("cgroup.controllers"))?
            .map(|s| controllers_in(&s))
            .unwrap_or_default())
    }

    fn require(&self, have: &BTreeSet<String>, controller: &str) -> Result<()> {
        if have.contains(controller) {
            Ok(())
        } else {
            Err(CgroupError::ControllerUnavailable {
                controller: controller.to_string(),
                path: self.dir.clone(),
            })
        }
    }

    fn apply_limits(&self, limits: &CgroupLimits) -> Result<()> {
        let have = self.controllers()?;
        if limits.memory_hard_bytes.is_some() || limits.memory_soft_bytes.is_some() {
            self.require(&have, "memory")?;
        }
        if limits.cpu_shares.is_some() {
            self.require(&have, "cpu")?;
        }
        if limits.pids_max.is_some() {
            self.require(&have, "pids")?;
        }
        if let Some(soft) = limits.memory_soft_bytes {
            write_file(&self.dir.join("memory.low"), &soft.to_string())?;
        }
        if let Some(hard) = limits.memory_hard_bytes {
            write_file(&self.dir.join("memory.max"), &hard.to_string())?;
        }
        if limits.disable_swap && have.contains("memory") {
            // memory.swap.max is absent without swap accounting (CONFIG_MEMCG_SWAP / swapaccount=0).
            let swap = self.dir.join("memory.swap.max");
            if swap.exists() {
                write_file(&swap, "0")?;
            }
        }
        if let Some(shares) = limits.cpu_shares {
            let weight = shares_to_weight(shares);
            if weight > 0 {
                write_file(&self.dir.join("cpu.weight"), &weight.to_string())?;
            }
        }
        if let Some(max) = limits.pids_max {
            write_file(&self.dir.join("pids.max"), &max.to_string())?;
        }
        Ok(())
    }
}

impl TaskBackend for V2Task {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V2
    }

    fn dirs(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }

    /// Writes `1` to `cgroup.kill` (kernel ≥ 5.14); false when the file does not exist.
    fn kill_all_at_once(&self) -> Result<bool> {
        let f = self.dir.join("cgroup.kill");
        if !f.exists() {
            return Ok(false);
        }
        write_file(&f, "1")?;
        Ok(true)
    }

    fn set_frozen(&self, frozen: bool) -> Result<()> {
        let f = self.dir.join("cgroup.freeze");
        write_file(&f, if frozen { "1" } else { "0" })?;
        if frozen {
            let events = self.dir.join("cgroup.events");
            // Wait for the kernel to confirm; signal regardless after the bound (see v1).
            poll_until(Duration::from_millis(500), || {
                Ok(read_string(&events)?
                    .lines()
                    .any(|l| l.trim() == "frozen 1"))
            })?;
        }
        Ok(())
    }

    /// `memory.events` (hierarchical: nested cgroups count too).
    fn oom_events_file(&self) -> Option<PathBuf> {
        Some(self.dir.join("memory.events"))
    }

    fn oom_killed(&self) -> Result<bool> {
        Ok(read_flat_keyed(&self.dir.join("memory.events"))?
            .and_then(|m| m.get("oom_kill").copied())
            .is_some_and(|n| n > 0))
    }

    fn raw_stats(&self) -> Result<RawStats> {
        let mut raw = RawStats::default();
        let mut mem = MemoryStats::default();
        let mut measured = Vec::new();
        if let Some(stat) = read_flat_keyed(&self.dir.join("memory.stat"))? {
            if let Some(v) = stat.get("anon") {
                mem.rss = *v;
                measured.push("RSS");
            }
            if let Some(v) = stat.get("file") {
                mem.cache = *v;
                measured.push("Cache");
            }
        }
        if let Some(v) = read_optional_u64(&self.dir.join("memory.swap.current"))? {
            mem.swap = v;
            measured.push("Swap");
        }
        if let Some(v) = read_optional_u64(&self.dir.join("memory.current"))? {
            mem.usage = v;
            measured.push("Usage");
        }
        if let Some(v) = read_optional_u64(&self.dir.join("memory.peak"))? {
            mem.max_usage = v;
            measured.push("Max Usage");
        }
        mem.measured = measured.into_iter().map(String::from).collect();
        raw.memory = mem;
        // cpu.stat's usage fields are core cgroup accounting, present even without the cpu
        // controller; the throttling fields only appear with it.
        if let Some(stat) = read_flat_keyed(&self.dir.join("cpu.stat"))? {
            raw.cpu_total_ns = stat.get("usage_usec").map(|v| v * 1000);
            raw.cpu_user_ns = stat.get("user_usec").map(|v| v * 1000);
            raw.cpu_system_ns = stat.get("system_usec").map(|v| v * 1000);
            raw.throttled_periods = stat.get("nr_throttled").copied();
            raw.throttled_time_ns = stat.get("throttled_usec").map(|v| v * 1000);
        }
        Ok(raw)
    }
}
