//! `alloc exec` into a running exec task: the command enters the task's namespaces, root,
//! cgroup, user and capabilities (see `exec_session::isolated`), with the task's environment
//! and working directory read back from its launch spec.

use std::sync::Arc;

use futures::FutureExt;
use nix::unistd::Pid;

use crate::driver::DriverError;
use crate::exec_session::isolated::{self, IsolatedTarget};
use crate::exec_session::{ExecRequest, ExecSession};
use crate::isolation::CapSet;
use crate::supervised::entry::TaskEntry;
use crate::supervisor::spec::LaunchSpec;

/// Starts `req` inside the running task `entry`; the session ends when the task exits.
pub fn exec(entry: &Arc<TaskEntry>, req: &ExecRequest) -> Result<ExecSession, DriverError> {
    if entry.exit_result().is_some() {
        return Err(DriverError::TaskNotRunning);
    }
    let spec = LaunchSpec::load(&entry.state.spec_path)
        .map_err(|e| DriverError::Failed(format!("reading task spec: {e}")))?;
    let Some(iso) = spec.isolation.as_ref() else {
        return Err(DriverError::Failed(
            "exec task has no isolation in its launch spec".into(),
        ));
    };
    let task_pid = i32::try_from(entry.state.task_pid)
        .map_err(|_| DriverError::Failed(format!("bad task pid {}", entry.state.task_pid)))?;
    let target = IsolatedTarget {
        task_pid: Pid::from_raw(task_pid),
        env: spec.env.clone().into_iter().collect(),
        work_dir: spec.cwd.clone(),
        user: spec.user.clone(),
        capabilities: CapSet(iso.capabilities),
        cgroup_procs: spec.cgroup_procs.clone(),
    };
    let task = entry.clone();
    let kill_when = async move {
        task.wait().await;
    }
    .boxed();
    isolated::start(&target, req, Some(kill_when))
}
