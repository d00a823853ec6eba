//! Starting an isolated (`exec`) task from the supervisor through [`crate::isolation`].
//!
//! The supervisor only supplies the pipes and translates its spec; namespaces, chroot entry,
//! capabilities and the cgroup placement are the isolation launcher's job. It must run on the
//! supervisor's main thread: the shim's parent-death signal is tied to the forking thread, and
//! the supervisor is single-threaded.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use super::child::{SpawnedTask, user_env};
use super::creds::Credentials;
use super::error::SupervisorError;
use super::spec::{IsolationSpec, LaunchSpec};
use crate::isolation::{CapSet, IsolatedSpec, spawn_isolated};

/// Starts the task in new namespaces inside `iso.root`; the returned pid is the shim's.
pub fn spawn(
    spec: &LaunchSpec,
    iso: &IsolationSpec,
    creds: Option<&Credentials>,
) -> Result<SpawnedTask, SupervisorError> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let mut env: Vec<(String, String)> = spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.extend(user_env(spec, creds));
    let mut argv = Vec::with_capacity(spec.args.len() + 1);
    argv.push(spec.command.to_string_lossy().into_owned());
    argv.extend(spec.args.iter().cloned());

    let mut ispec = IsolatedSpec::new(&iso.root, &spec.command);
    ispec.args = argv;
    ispec.env = env;
    ispec.work_dir = spec.cwd.clone();
    ispec.user = spec.user.clone();
    ispec.hostname = iso.hostname.clone();
    ispec.pid_mode = iso.pid_mode;
    ispec.ipc_mode = iso.ipc_mode;
    ispec.capabilities = CapSet(iso.capabilities);
    ispec.stdout = Some(out_w.as_fd());
    ispec.stderr = Some(err_w.as_fd());
    ispec.cgroup_procs = spec.cgroup_procs.clone();
    // Nomad sets 0 explicitly: an exec task never inherits the agent's adjustment.
    ispec.oom_score_adj = spec.oom_score_adj.unwrap_or(0);
    ispec.no_pivot_root = iso.no_pivot_root;
    ispec.die_with_parent = true;
    let child = spawn_isolated(&ispec).map_err(|e| {
        SupervisorError::Spec(format!(
            "starting isolated task {}: {e}",
            spec.command.display()
        ))
    })?;
    // Our copies of the write ends must go, or the pipes never reach EOF.
    drop((out_w, err_w));
    let as_u32 = |p: nix::unistd::Pid| u32::try_from(p.as_raw()).unwrap_or(0);
    Ok(SpawnedTask {
        pid: as_u32(child.pid),
        task_pid: as_u32(child.task_pid),
        signal_group: false,
        stdout: out_r,
        stderr: err_r,
    })
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> Result<(OwnedFd, OwnedFd), SupervisorError> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two fresh fds into the array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(SupervisorError::io(
            "creating a task pipe",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: both fds are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
