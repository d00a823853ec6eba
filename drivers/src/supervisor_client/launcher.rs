//! Starting a supervisor from the agent: which executable, running it, reading its ready line.

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::supervisor::Ready;
use crate::supervisor::SupervisorError;
use crate::supervisor::paths::{default_socket_dir, default_state_dir};
use crate::supervisor::private_fs;

use super::stray;

/// The file name of the supervisor executable the agent looks for next to itself.
pub const SUPERVISOR_EXE: &str = "yurt-supervisor";

/// The subcommand of the agent binary that runs a supervisor (`yurt supervise <spec>`).
pub const SUPERVISE_ARG: &str = "supervise";

/// How to run a supervisor: `<exe> <args_prefix...> <spec.json>`, where sockets go and where
/// the control files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorCommand {
    /// The executable (the agent passes `std::env::current_exe()`).
    pub exe: PathBuf,
    /// Arguments before the spec path (the agent passes `["supervise"]`).
    pub args_prefix: Vec<String>,
    /// Runtime directory for supervisor sockets (short, see `paths`).
    pub socket_dir: PathBuf,
    /// Root of the per-task control directories (spec, exit record, supervisor log): the
    /// agent's own, outside every task's tree (see `paths`).
    pub state_dir: PathBuf,
}

impl SupervisorCommand {
    /// A command with the default socket and state directories.
    pub fn new(exe: impl Into<PathBuf>, args_prefix: Vec<String>) -> Self {
        SupervisorCommand {
            exe: exe.into(),
            args_prefix,
            socket_dir: default_socket_dir(),
            state_dir: default_state_dir(),
        }
    }

    /// The same command with the control files under `state_dir`.
    pub fn with_state_dir(mut self, state_dir: impl Into<PathBuf>) -> Self {
        self.state_dir = state_dir.into();
        self
    }

    /// The running binary re-executed as `<self> supervise <spec>`: the form every build
    /// before the separate executable used, and the fallback when it is missing.
    pub fn current_exe() -> std::io::Result<Self> {
        Ok(Self::reexec(std::env::current_exe()?))
    }

    /// `<exe> supervise <spec>`.
    pub fn reexec(exe: impl Into<PathBuf>) -> Self {
        Self::new(exe, vec![SUPERVISE_ARG.to_string()])
    }

    /// What the agent runs: [`SUPERVISOR_EXE`] found next to the running executable, else
    /// the running executable re-executed (see [`SupervisorCommand::beside`]).
    pub fn for_agent() -> std::io::Result<Self> {
        Ok(Self::beside(&std::env::current_exe()?))
    }

    /// [`SUPERVISOR_EXE`] in the directory of `agent_exe`; when it is not there (e.g.
    /// `cargo run`, which builds only the `yurt` binary), `<agent_exe> supervise <spec>`
    /// with one warning: that works, but each supervisor then maps the whole agent binary
    /// and costs more private memory.
    pub fn beside(agent_exe: &Path) -> Self {
        let small = agent_exe.with_file_name(SUPERVISOR_EXE);
        if is_executable(&small) {
            return Self::new(small, Vec::new());
        }
        tracing::warn!(
            missing = %small.display(),
            fallback = %format!("{} {SUPERVISE_ARG}", agent_exe.display()),
            "task supervisor executable not found beside the agent; re-executing the agent \
             binary for each task instead (works, but costs more memory per task; \
             `cargo build` builds it, packaging/install.sh installs it)"
        );
        Self::reexec(agent_exe)
    }

    /// Starts a supervisor for `spec_path` and waits (≤ `timeout`) for its ready line.
    ///
    /// Blocking: call it from a blocking thread. The supervisor's own stderr goes to
    /// `log_path`. The process spawned here forks the real supervisor and exits at once; it is
    /// reaped here, so no zombie is left behind and the supervisor is nobody's child. When no
    /// usable ready line comes, whatever runs for this spec (the supervisor and its task) is
    /// killed before the error is returned: nobody would ever stop it otherwise.
    pub fn launch(
        &self,
        spec_path: &Path,
        log_path: &Path,
        timeout: Duration,
    ) -> Result<Ready, SupervisorError> {
        let log = private_fs::open_append(log_path)
            .map_err(|e| SupervisorError::io(format!("opening {}", log_path.display()), e))?;
        let spawning = Instant::now();
        let mut child = Command::new(&self.exe)
            .args(&self.args_prefix)
            .arg(spec_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| SupervisorError::io(format!("running {}", self.exe.display()), e))?;
        let spawned = Instant::now();
        let line = match child.stdout.take() {
            Some(mut out) => read_line_with_timeout(&mut out, timeout),
            None => Err(SupervisorError::Protocol("no stdout pipe".into())),
        };
        let read = Instant::now();
        // The line is read before the first process is reaped: one that hangs before it forks
        // must not hang the launcher past its timeout.
        if line.is_err()
            && let Err(e) = child.kill()
        {
            tracing::debug!(error = %e, "killing the supervisor's first process");
        }
        let status = child
            .wait()
            .map_err(|e| SupervisorError::io("waiting for the supervisor's first process", e));
        tracing::debug!(target: "yurt::latency", step = "supervisor launched",
            spawn_us = spawned.duration_since(spawning).as_micros() as u64,
            ready_line_us = read.duration_since(spawned).as_micros() as u64);
        let ready = line.and_then(|line| {
            let status = status?;
            if line.is_empty() {
                return Err(SupervisorError::Protocol(format!(
                    "exited ({status}) without reporting; see {}",
                    log_path.display()
                )));
            }
            serde_json::from_slice::<Ready>(&line).map_err(|e| {
                SupervisorError::Protocol(format!("bad ready line {:?}: {e}", lossy(&line)))
            })
        });
        match ready {
            Ok(ready) if ready.ok => Ok(ready),
            Ok(ready) => Err(SupervisorError::Protocol(
                ready.error.unwrap_or_else(|| "start failed".into()),
            )),
            Err(e) => {
                let killed = stray::kill_supervisors_of(spec_path);
                if killed > 0 {
                    tracing::warn!(spec = %spec_path.display(), killed, error = %e,
                        "killed the supervisor of a launch that failed, and its task");
                }
                Err(e)
            }
        }
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether `cmdline` (the NUL-separated `/proc/<pid>/cmdline`) is a supervisor of the spec at
/// `spec`, in either form a build has launched: `<dir>/yurt-supervisor <spec>` or
/// `<exe> supervise <spec>` (every build before the separate executable). A reused PID runs
/// something else and does not match.
pub fn runs_supervisor_of(cmdline: &[u8], spec: &Path) -> bool {
    let args: Vec<&[u8]> = cmdline
        .strip_suffix(b"\0")
        .unwrap_or(cmdline)
        .split(|b| *b == 0)
        .collect();
    let spec = spec.as_os_str().as_encoded_bytes();
    match args.as_slice() {
        // `starts_with`: the drivers crate's test helper is `yurt-supervisor-test`.
        [exe, s] => {
            *s == spec
                && Path::new(OsStr::from_bytes(exe))
                    .file_name()
                    .is_some_and(|n| n.as_bytes().starts_with(SUPERVISOR_EXE.as_bytes()))
        }
        [_, sub, s] => *sub == SUPERVISE_ARG.as_bytes() && *s == spec,
        _ => false,
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Reads up to the first newline (excluded) or EOF, failing after `timeout`.
fn read_line_with_timeout(
    out: &mut std::process::ChildStdout,
    timeout: Duration,
) -> Result<Vec<u8>, SupervisorError> {
    let deadline = Instant::now() + timeout;
    let mut line = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SupervisorError::Protocol(format!(
                "no ready line within {timeout:?}"
            )));
        }
        let mut pfd = libc::pollfd {
            fd: out.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(SupervisorError::io("waiting for the ready line", e));
        }
        if rc == 0 {
            continue;
        }
        let n = out
            .read(&mut chunk)
            .map_err(|e| SupervisorError::io("reading the ready line", e))?;
        if n == 0 {
            return Ok(line);
        }
        line.extend_from_slice(&chunk[..n]);
        if let Some(nl) = line.iter().position(|&b| b == b'\n') {
            line.truncate(nl);
            return Ok(line);
        }
        if line.len() > 64 * 1024 {
            return Err(SupervisorError::Protocol("ready line too long".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_both_supervisor_forms_of_this_spec_only() {
        let spec = Path::new("/var/lib/yurt/client/supervisors/0123/spec.json");
        let new =
            b"/usr/local/bin/yurt-supervisor\0/var/lib/yurt/client/supervisors/0123/spec.json\0";
        let old =
            b"/usr/local/bin/yurt\0supervise\0/var/lib/yurt/client/supervisors/0123/spec.json\0";
        assert!(runs_supervisor_of(new, spec));
        assert!(runs_supervisor_of(old, spec));
        // Another task's supervisor, or a PID reused by something else.
        let other =
            b"/usr/local/bin/yurt-supervisor\0/var/lib/yurt/client/supervisors/9/spec.json\0";
        assert!(!runs_supervisor_of(other, spec));
        let cat = b"/bin/cat\0/var/lib/yurt/client/supervisors/0123/spec.json\0";
        assert!(!runs_supervisor_of(cat, spec));
        let vi = b"/usr/bin/vi\0-R\0/var/lib/yurt/client/supervisors/0123/spec.json\0";
        assert!(!runs_supervisor_of(vi, spec));
        assert!(!runs_supervisor_of(b"", spec));
    }

    #[test]
    fn prefers_the_small_executable_beside_the_agent() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("yurt-beside-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let agent = dir.join("yurt");
        std::fs::write(&agent, b"").unwrap();
        assert_eq!(
            SupervisorCommand::beside(&agent),
            SupervisorCommand::reexec(&agent)
        );
        let small = dir.join(SUPERVISOR_EXE);
        std::fs::write(&small, b"").unwrap();
        // Not executable: still the fallback.
        assert_eq!(SupervisorCommand::beside(&agent).exe, agent);
        std::fs::set_permissions(&small, std::fs::Permissions::from_mode(0o755)).unwrap();
        let sv = SupervisorCommand::beside(&agent);
        assert_eq!((sv.exe, sv.args_prefix), (small, Vec::<String>::new()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
