//! `alloc exec` for the exec driver: the command enters the running task's namespaces, root,
//! cgroup, user and capabilities through [`crate::isolation::enter`], with the task's
//! environment and working directory read back from its launch spec. The session plumbing
//! it shares with the other drivers is [`crate::exec_session`].

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use nix::unistd::Pid;

use crate::driver::DriverError;
use crate::exec_session::process::{self, SpawnedExec};
use crate::exec_session::{ExecRequest, ExecSession};
use crate::isolation::{CapSet, EnterSpec, enter};
use crate::supervisor_client::task_entry::TaskEntry;

/// Starts `req` inside the running task `entry`; the session ends when the task exits.
pub fn exec(entry: &Arc<TaskEntry>, req: &ExecRequest) -> Result<ExecSession, DriverError> {
    if entry.exit_result().is_some() {
        return Err(DriverError::TaskNotRunning);
    }
    let spec = entry.launch_spec()?;
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
    start(&target, req, Some(kill_when))
}

/// What the exec driver knows about a running task, to enter it.
#[derive(Debug, Clone)]
pub struct IsolatedTarget {
    /// Host pid of the task (`IsolatedChild::task_pid`).
    pub task_pid: Pid,
    /// The task's environment (the session's variables are added on top).
    pub env: Vec<(String, String)>,
    /// Working directory inside the task root (the task's own work dir).
    pub work_dir: PathBuf,
    /// The task's user.
    pub user: String,
    /// The task's capabilities.
    pub capabilities: CapSet,
    /// The task cgroup's `cgroup.procs` files.
    pub cgroup_procs: Vec<PathBuf>,
}

/// Starts `req` inside `target`; `kill_when` (e.g. the task's exit) ends the session early.
pub fn start(
    target: &IsolatedTarget,
    req: &ExecRequest,
    kill_when: Option<BoxFuture<'static, ()>>,
) -> Result<ExecSession, DriverError> {
    if req.command.is_empty() {
        return Err(DriverError::Failed("command is not present".into()));
    }
    let mut env: Vec<(String, String)> = target
        .env
        .iter()
        .filter(|(k, _)| !req.env.contains_key(k))
        .cloned()
        .collect();
    if req.tty && !env.iter().any(|(k, _)| k == "TERM") && !req.env.contains_key("TERM") {
        env.push(("TERM".into(), "xterm-256color".into()));
    }
    env.extend(req.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    process::start(req, kill_when, |stdio| {
        let spec = EnterSpec {
            task_pid: target.task_pid,
            argv: req.command.clone(),
            env,
            work_dir: target.work_dir.clone(),
            user: target.user.clone(),
            capabilities: target.capabilities,
            cgroup_procs: target.cgroup_procs.clone(),
            stdin: stdio.stdin.as_fd(),
            stdout: stdio.stdout.as_fd(),
            stderr: stdio.stderr.as_fd(),
            tty: stdio.tty,
        };
        // Blocks for one fork + exec (a few ms); the command is running when it returns.
        let child = enter(&spec)
            .map_err(|e| DriverError::Failed(format!("failed to exec into task: {e}")))?;
        Ok(SpawnedExec {
            pid: child.pid.as_raw(),
            pgid: child.command_pid.as_raw(),
        })
    })
}
