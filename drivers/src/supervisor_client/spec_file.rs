//! Turning a driver's resolved command into a supervisor launch spec on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::launcher::SupervisorCommand;
use crate::cgroups::TaskCgroup;
use crate::driver::{DriverError, TaskConfig};
use crate::supervisor::paths::{socket_path, task_state_dir};
use crate::supervisor::private_fs;
use crate::supervisor::spec::{IsolationSpec, LaunchSpec, LogSpec, MAX_SOCKET_PATH};

/// How long a supervisor waits for `shutdown` after its task exited and its output closed.
pub const LINGER_MS: u64 = 5 * 60 * 1000;

/// What to run, as the driver resolved it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCommand {
    /// Absolute program path (inside the chroot for an isolated task).
    pub command: PathBuf,
    /// argv\[1..\].
    pub args: Vec<String>,
    /// The complete environment.
    pub env: BTreeMap<String, String>,
    /// Working directory (inside the chroot for an isolated task).
    pub cwd: PathBuf,
    /// User to run as; empty keeps the agent's user.
    pub user: String,
    /// `oom_score_adj` for the task, if any.
    pub oom_score_adj: Option<i32>,
    /// Confinement (exec); None runs on the host.
    pub isolation: Option<IsolationSpec>,
}

/// A spec ready to launch, and where its files go.
#[derive(Debug)]
pub struct Prepared {
    /// The spec.
    pub spec: LaunchSpec,
    /// Where the spec is written.
    pub spec_path: PathBuf,
    /// The supervisor's own stderr.
    pub log_path: PathBuf,
}

/// The control files of one task ID, in its directory under the state dir.
pub const SPEC_FILE: &str = "spec.json";
/// See [`SPEC_FILE`].
pub const EXIT_FILE: &str = "exit.json";
/// See [`SPEC_FILE`].
pub const LOG_FILE: &str = "supervisor.log";

fn private_dir(dir: &Path) -> Result<(), DriverError> {
    private_fs::private_dir(dir)
        .map_err(|e| DriverError::io(format!("making {} private (0700)", dir.display()), e))
}

/// Builds the spec (joining `cgroup` and watching its OOM counter when given), creates the
/// directories it needs and writes it.
pub fn prepare(
    cfg: &TaskConfig,
    sv: &SupervisorCommand,
    cmd: TaskCommand,
    cgroup: Option<&TaskCgroup>,
) -> Result<Prepared, DriverError> {
    // What controls the task (its spec, exit record and the supervisor's socket) must be out
    // of the task's reach: in directories of the agent's own user, private to it, and not
    // inside the allocation the task may write to. Otherwise the task does not start.
    if sv.state_dir.starts_with(&cfg.alloc_dir) || sv.socket_dir.starts_with(&cfg.alloc_dir) {
        return Err(DriverError::InvalidConfig(format!(
            "supervisor state dir {} and socket dir {} must lie outside the allocation dir {}",
            sv.state_dir.display(),
            sv.socket_dir.display(),
            cfg.alloc_dir.display()
        )));
    }
    private_dir(&sv.state_dir)?;
    let dir = task_state_dir(&sv.state_dir, &cfg.id);
    private_dir(&dir)?;
    private_dir(&sv.socket_dir)?;
    // An exit record left by an earlier run of this task ID must not pass for this run's.
    for stale in [EXIT_FILE.to_string(), format!("{EXIT_FILE}.tmp")] {
        let path = dir.join(stale);
        private_fs::remove_if_present(&path)
            .map_err(|e| DriverError::io(format!("removing {}", path.display()), e))?;
    }

    let sock = socket_path(&sv.socket_dir, &cfg.id, nonce());
    if sock.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(DriverError::Failed(format!(
            "supervisor socket dir {} is too long for a unix socket path",
            sv.socket_dir.display()
        )));
    }
    let max_size_mb = if cfg.logs.max_file_size_mb == 0 {
        10
    } else {
        cfg.logs.max_file_size_mb
    };
    let spec = LaunchSpec {
        task_id: cfg.id.clone(),
        command: cmd.command,
        args: cmd.args,
        env: cmd.env,
        cwd: cmd.cwd,
        user: cmd.user,
        cgroup_procs: cgroup.map(TaskCgroup::procs_files).unwrap_or_default(),
        oom_score_adj: cmd.oom_score_adj,
        oom_events: cgroup.and_then(TaskCgroup::oom_events_file),
        isolation: cmd.isolation,
        logs: LogSpec {
            dir: cfg.logs.dir.clone(),
            stdout_base: format!("{}.stdout", cfg.logs.prefix),
            stderr_base: format!("{}.stderr", cfg.logs.prefix),
            max_files: cfg.logs.max_files.max(1),
            max_file_size_bytes: max_size_mb * 1024 * 1024,
        },
        socket_path: sock,
        exit_record_path: dir.join(EXIT_FILE),
        linger_ms: LINGER_MS,
    };
    spec.check()
        .map_err(|e| DriverError::InvalidConfig(e.to_string()))?;
    let spec_path = dir.join(SPEC_FILE);
    spec.store(&spec_path)
        .map_err(|e| DriverError::Failed(e.to_string()))?;
    Ok(Prepared {
        spec,
        spec_path,
        log_path: dir.join(LOG_FILE),
    })
}

fn nonce() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32) ^ u64::from(std::process::id())
}
