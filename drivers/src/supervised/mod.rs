//! What raw_exec and exec share: tasks run under a per-task [`crate::supervisor`], each in its
//! own cgroup when cgroups are usable.
//!
//! - [`tasks`]: the task table and the lifecycle (start, recover, wait, stop, destroy, signal,
//!   stats); the drivers only parse their configs and say what to run ([`launch::TaskCommand`]);
//! - [`launch`]: a resolved command → the supervisor's launch spec on disk, with the cgroup's
//!   `cgroup.procs` files to join and its OOM counter to watch;
//! - [`state`]: what the task handle stores; [`entry`]: the live entry with its exit watch;
//! - [`cgroup`]: the task cgroup (limits from the task resources, reattach, tree kill);
//! - [`cleanup`]: releasing the cgroup and the chroot mounts;
//! - [`proc_stats`]: usage from /proc when there is no cgroup.

pub mod cgroup;
pub mod cleanup;
pub mod entry;
pub mod launch;
pub mod proc_stats;
pub mod state;
pub mod tasks;

pub use launch::TaskCommand;
pub use state::{HANDLE_VERSION, SupervisedState};
pub use tasks::SupervisedTasks;

use crate::cgroups::{CgroupManager, DEFAULT_PARENT, cgroups_usable};

/// The agent's cgroup manager under `parent` (default [`DEFAULT_PARENT`]), when this process
/// can use cgroups (root and a detectable hierarchy); None otherwise.
pub fn detect_cgroups(parent: Option<&str>) -> Option<CgroupManager> {
    if !cgroups_usable() {
        return None;
    }
    let parent = parent.unwrap_or(DEFAULT_PARENT);
    match CgroupManager::detect(parent) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(parent, error = %e, "cgroups not usable; tasks run without one");
            None
        }
    }
}
