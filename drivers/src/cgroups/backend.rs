//! What a cgroup version must provide: one hierarchy holding the parent cgroup, and the task
//! cgroups created under it. [`super::v1`] and [`super::v2`] implement both traits; the
//! manager and the task cgroup only talk to them through these.

use std::fmt::Debug;
use std::path::PathBuf;

use super::error::Result;
use super::limits::CgroupLimits;
use super::manager::CgroupVersion;
use super::stats::RawStats;

/// A cgroup hierarchy: v1's per-controller mounts, or v2's unified tree.
pub(super) trait Hierarchy: Debug + Send + Sync {
    fn version(&self) -> CgroupVersion;

    /// Whether `controller` (`memory`, `pids`, `cpu`, ...) is offered to task cgroups.
    fn controller_available(&self, controller: &str) -> bool;

    /// The parent cgroup's directories (one per v1 hierarchy, one on v2).
    fn parent_dirs(&self, parent: &str) -> Vec<PathBuf>;

    /// Creates the parent cgroup (on v2 also enabling the controllers for its subtree).
    /// Idempotent.
    fn init(&self, parent: &str) -> Result<()>;

    /// Creates (or reuses) task cgroup `name` under `parent` and writes `limits`; a limit whose
    /// controller is missing fails and leaves no half-made cgroup behind.
    fn create_task(
        &self,
        parent: &str,
        name: &str,
        limits: &CgroupLimits,
    ) -> Result<Box<dyn TaskBackend>>;

    /// Reopens an existing task cgroup (after an agent restart).
    fn open_task(&self, parent: &str, name: &str) -> Result<Box<dyn TaskBackend>>;
}

/// One task cgroup in a given hierarchy.
pub(super) trait TaskBackend: Debug + Send + Sync {
    fn version(&self) -> CgroupVersion;

    /// The task cgroup's directories (one per v1 hierarchy, one on v2).
    fn dirs(&self) -> Vec<PathBuf>;

    /// Has the kernel SIGKILL every process at once (v2 `cgroup.kill`); false when this
    /// hierarchy or kernel has no such file, and the caller signals pid by pid.
    fn kill_all_at_once(&self) -> Result<bool>;

    /// Freezes or thaws the cgroup, waiting (bounded) for the kernel to confirm a freeze.
    fn set_frozen(&self, frozen: bool) -> Result<()>;

    /// The file holding the `oom_kill` counter, if the memory controller is there.
    fn oom_events_file(&self) -> Option<PathBuf>;

    /// Whether the kernel OOM-killed a process of this cgroup.
    fn oom_killed(&self) -> Result<bool>;

    /// The memory and CPU counters as the cgroup files have them.
    fn raw_stats(&self) -> Result<RawStats>;
}
