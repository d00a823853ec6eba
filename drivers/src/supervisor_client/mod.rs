//! The agent's side of supervised tasks (raw_exec and exec): everything here runs **in the
//! agent** and reaches a task only through its [`crate::supervisor`] process. Each task runs
//! under its own supervisor, in its own cgroup when cgroups are usable.
//!
//! - [`launcher`]: which supervisor executable to run ([`SupervisorCommand`]: the
//!   `yurt-supervisor` beside the agent, or the agent re-executed) and starting one;
//! - [`connection`]: calls over a supervisor's unix socket (tokio);
//! - [`tasks`]: the task table and the lifecycle (start, recover, wait, stop, destroy, signal,
//!   stats); the drivers only parse their configs and say what to run
//!   ([`spec_file::TaskCommand`]);
//! - [`spec_file`]: a resolved command → the supervisor's launch spec on disk (in the task's
//!   control directory under the agent's state dir, out of the task's reach), with the
//!   cgroup's `cgroup.procs` files to join and its OOM counter to watch;
//! - [`stray`]: killing a supervisor the agent lost its hold on, with its task;
//! - [`handle_state`]: what the task handle stores; [`task_entry`]: the live entry with its
//!   exit watch;
//! - [`cgroup`]: the task cgroup (limits from the task resources, reattach, tree kill);
//! - [`cleanup`]: releasing the cgroup and the chroot mounts;
//! - [`proc_stats`]: usage from /proc when there is no cgroup.

pub mod cgroup;
pub mod cleanup;
pub mod connection;
pub mod handle_state;
pub mod launcher;
pub mod proc_stats;
pub mod spec_file;
pub mod stray;
pub mod task_entry;
pub mod tasks;

pub use handle_state::{HANDLE_VERSION, SupervisedState};
pub use launcher::{SUPERVISE_ARG, SUPERVISOR_EXE, SupervisorCommand};
pub use spec_file::TaskCommand;
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
