//! The task cgroup of a supervised task: created from the task's resources, reattached by
//! name, killed and removed. Blocking (cgroupfs I/O, bounded sleeps): call from a blocking
//! thread.

use std::sync::Arc;

use nix::sys::signal::Signal;

use crate::cgroups::{CgroupLimits, CgroupManager, TaskCgroup, task_cgroup_name};
use crate::driver::{DriverError, TaskConfig};

/// The cgroup name of a task: `<alloc_id>.<task>` (Nomad's scope name).
pub fn name_for(cfg: &TaskConfig) -> String {
    task_cgroup_name(&cfg.alloc_id, &cfg.name)
}

/// Creates the task cgroup with the limits of `cfg.resources` (memory soft/hard, CPU shares,
/// pids). A failure fails the start: as root, Nomad never runs a task uncontained.
pub fn create(manager: &CgroupManager, cfg: &TaskConfig) -> Result<Arc<TaskCgroup>, DriverError> {
    let name = name_for(cfg);
    let limits = CgroupLimits::from_resources(&cfg.resources);
    TaskCgroup::create(manager, &name, &limits)
        .map(Arc::new)
        .map_err(|e| DriverError::Failed(format!("creating task cgroup {name}: {e}")))
}

/// Reopens the cgroup a recovered task runs in; None (with a warning) when it is gone.
pub fn reattach(manager: &CgroupManager, name: &str) -> Option<Arc<TaskCgroup>> {
    match TaskCgroup::reattach(manager, name) {
        Ok(cg) => Some(Arc::new(cg)),
        Err(e) => {
            tracing::warn!(cgroup = name, error = %e, "task cgroup not reattached");
            None
        }
    }
}

/// SIGKILLs every process left in the cgroup: descendants that escaped the process group
/// (`setsid`, double forks) included.
pub fn kill_tree(cg: &TaskCgroup) -> Result<(), DriverError> {
    cg.kill_all(Signal::SIGKILL)
        .map_err(|e| DriverError::Failed(format!("killing task cgroup {}: {e}", cg.name())))
}

/// Kills what is left and removes the cgroup.
pub fn remove(cg: &TaskCgroup) -> Result<(), DriverError> {
    kill_tree(cg)?;
    cg.destroy()
        .map_err(|e| DriverError::Failed(format!("removing task cgroup {}: {e}", cg.name())))
}
