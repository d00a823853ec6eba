//! The launch spec: everything one supervisor needs, written by the driver as JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::SupervisorError;
use super::private_fs;
use crate::isolation::NamespaceMode;

/// How an isolated (`exec`) task is confined; interpreted by [`crate::isolation`].
///
/// With this set the supervisor starts the task through `isolation::spawn_isolated`: it then
/// waits on the launcher's shim (whose exit mirrors the task's) and signals go to the shim,
/// which forwards them to the task. `LaunchSpec::command` and `cwd` are paths inside `root`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsolationSpec {
    /// The prepared chroot (the task dir after `isolation::build_chroot`).
    pub root: PathBuf,
    /// PID namespace: `private` makes the task PID 1.
    pub pid_mode: NamespaceMode,
    /// IPC namespace.
    pub ipc_mode: NamespaceMode,
    /// The task's capabilities as a bitmask (`isolation::CapSet`).
    pub capabilities: u64,
    /// MS_MOVE + chroot instead of pivot_root (roots on initramfs).
    #[serde(default)]
    pub no_pivot_root: bool,
    /// Hostname in the task's UTS namespace (None keeps the host's).
    #[serde(default)]
    pub hostname: Option<String>,
}

/// Largest spec file read back (the task's environment is most of it).
pub const MAX_SPEC_BYTES: u64 = 16 * 1024 * 1024;

/// Longest socket path a `sockaddr_un` holds (108 bytes including the NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Where the task's two output streams go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogSpec {
    /// The alloc's `alloc/logs` directory.
    pub dir: PathBuf,
    /// Rotator base for stdout, `<task>.stdout`.
    pub stdout_base: String,
    /// Rotator base for stderr, `<task>.stderr`.
    pub stderr_base: String,
    /// Files kept per stream (MaxFiles).
    pub max_files: u32,
    /// Bytes per file (MaxFileSizeMB · 2^20).
    pub max_file_size_bytes: u64,
}

/// Everything the supervisor needs to start, watch and report one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// The driver's task ID; copied into the exit record so a stale record is detectable.
    pub task_id: String,
    /// Absolute path of the program (already resolved by the driver); also argv\[0\].
    pub command: PathBuf,
    /// argv\[1..\].
    pub args: Vec<String>,
    /// The complete environment of the task.
    pub env: BTreeMap<String, String>,
    /// Working directory of the task (absolute).
    pub cwd: PathBuf,
    /// User name to run as; empty runs as the supervisor's own user (the agent's).
    #[serde(default)]
    pub user: String,
    /// `cgroup.procs` files the task joins before it execs (v2: one, v1: one per controller).
    #[serde(default)]
    pub cgroup_procs: Vec<PathBuf>,
    /// Value written to the task's `oom_score_adj` before exec, if any.
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    /// Hook for the cgroup code: a file with an `oom_kill <n>` line (v2 `memory.events`,
    /// v1 `memory.oom_control`). The exit record's `oom_killed` is true when the count grew
    /// while the task ran. None: OOM kills are not detected (the flag stays false).
    #[serde(default)]
    pub oom_events: Option<PathBuf>,
    /// Confinement for an isolated task (exec); None runs it on the host (raw_exec).
    #[serde(default)]
    pub isolation: Option<IsolationSpec>,
    /// Log destination and rotation limits.
    pub logs: LogSpec,
    /// Unix socket the supervisor listens on (≤ 107 bytes, see [`MAX_SOCKET_PATH`]).
    pub socket_path: PathBuf,
    /// Where the durable exit record is written.
    pub exit_record_path: PathBuf,
    /// How long the supervisor stays after the task exited and its output reached EOF,
    /// waiting for `shutdown` (the exit record covers an agent that is down longer).
    pub linger_ms: u64,
}

impl LaunchSpec {
    /// Reads and checks a spec file (our own regular file, never through a link: see
    /// [`super::private_fs`]).
    pub fn load(path: &Path) -> Result<Self, SupervisorError> {
        let data = private_fs::read(path, MAX_SPEC_BYTES)
            .map_err(|e| SupervisorError::io(format!("reading spec {}", path.display()), e))?
            .ok_or_else(|| SupervisorError::Spec(format!("{} does not exist", path.display())))?;
        let spec: LaunchSpec = serde_json::from_slice(&data)
            .map_err(|e| SupervisorError::Spec(format!("parsing {}: {e}", path.display())))?;
        spec.check()?;
        Ok(spec)
    }

    /// Rejects specs the supervisor cannot honour (relative paths, an over-long socket path).
    pub fn check(&self) -> Result<(), SupervisorError> {
        let paths = [
            ("command", &self.command),
            ("cwd", &self.cwd),
            ("logs.dir", &self.logs.dir),
            ("socket_path", &self.socket_path),
            ("exit_record_path", &self.exit_record_path),
        ];
        for (name, p) in paths {
            if !p.is_absolute() {
                return Err(SupervisorError::Spec(format!(
                    "{name} must be absolute: {}",
                    p.display()
                )));
            }
        }
        let len = self.socket_path.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(SupervisorError::Spec(format!(
                "socket_path is {len} bytes, the limit is {MAX_SOCKET_PATH}: {}",
                self.socket_path.display()
            )));
        }
        if let Some(iso) = &self.isolation
            && !iso.root.is_absolute()
        {
            return Err(SupervisorError::Spec(format!(
                "isolation.root must be absolute: {}",
                iso.root.display()
            )));
        }
        if self.logs.stdout_base.is_empty() || self.logs.stderr_base.is_empty() {
            return Err(SupervisorError::Spec("empty log base name".into()));
        }
        Ok(())
    }

    /// Writes the spec as JSON into a new 0600 file (it holds the task's environment, secrets
    /// included), replacing whatever was at `path` without following it.
    pub fn store(&self, path: &Path) -> Result<(), SupervisorError> {
        use std::io::Write;
        let data = serde_json::to_vec_pretty(self)
            .map_err(|e| SupervisorError::Spec(format!("encoding spec: {e}")))?;
        let mut f = private_fs::create(path)
            .map_err(|e| SupervisorError::io(format!("creating spec {}", path.display()), e))?;
        f.write_all(&data)
            .map_err(|e| SupervisorError::io(format!("writing spec {}", path.display()), e))
    }
}
