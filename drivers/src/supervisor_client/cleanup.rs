//! Releasing what a supervised task held on the host: its cgroup and its chroot mounts.
//! Blocking; call from a blocking thread once the supervisor has stopped the task.

use std::path::Path;

use super::cgroup;
use crate::cgroups::TaskCgroup;
use crate::driver::DriverError;
use crate::isolation::teardown_keeping;

/// The marker the agent leaves inside the tmpfs it mounted itself (`secrets/`, `private/`).
const AGENT_MOUNT_MARKER: &str = ".nomad-mount";
/// Task dir entries the agent may have mounted; they outlive a task run (restarts keep their
/// secrets) and are unmounted by the agent when the allocation is destroyed.
const AGENT_MOUNTS: [&str; 2] = ["secrets", "private"];

/// Kills what is left in the cgroup and removes it, then unmounts the chroot (keeping the
/// agent's own tmpfs mounts). Both are attempted; the first error is returned.
pub fn release(cg: Option<&TaskCgroup>, chroot: Option<&Path>) -> Result<(), DriverError> {
    let cg_result = cg.map_or(Ok(()), cgroup::remove);
    let mount_result = chroot.map_or(Ok(()), teardown_chroot);
    cg_result.and(mount_result)
}

/// Unmounts everything the exec driver mounted under the task dir.
pub fn teardown_chroot(task_dir: &Path) -> Result<(), DriverError> {
    let keep: Vec<&Path> = AGENT_MOUNTS
        .iter()
        .map(Path::new)
        .filter(|m| task_dir.join(m).join(AGENT_MOUNT_MARKER).exists())
        .collect();
    teardown_keeping(task_dir, &keep).map_err(|e| {
        DriverError::Failed(format!(
            "unmounting the chroot in {}: {e}",
            task_dir.display()
        ))
    })
}
