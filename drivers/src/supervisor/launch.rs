//! Starting a supervisor from the agent: re-exec a binary, read its one ready line.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::error::SupervisorError;
use super::paths::default_socket_dir;
use super::protocol::Ready;

/// How to run a supervisor: `<exe> <args_prefix...> <spec.json>`, and where sockets go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorCommand {
    /// The executable (the agent passes `std::env::current_exe()`).
    pub exe: PathBuf,
    /// Arguments before the spec path (the agent passes `["supervise"]`).
    pub args_prefix: Vec<String>,
    /// Runtime directory for supervisor sockets (short, see `paths`).
    pub socket_dir: PathBuf,
}

impl SupervisorCommand {
    /// A command with the default socket directory.
    pub fn new(exe: impl Into<PathBuf>, args_prefix: Vec<String>) -> Self {
        SupervisorCommand {
            exe: exe.into(),
            args_prefix,
            socket_dir: default_socket_dir(),
        }
    }

    /// The running binary re-executed as `<self> supervise <spec>` (what the agent uses).
    pub fn current_exe() -> std::io::Result<Self> {
        Ok(Self::new(
            std::env::current_exe()?,
            vec!["supervise".to_string()],
        ))
    }

    /// Starts a supervisor for `spec_path` and waits (≤ `timeout`) for its ready line.
    ///
    /// Blocking: call it from a blocking thread. The supervisor's own stderr goes to
    /// `log_path`. The process spawned here forks the real supervisor and exits at once; it is
    /// reaped here, so no zombie is left behind and the supervisor is nobody's child.
    pub fn launch(
        &self,
        spec_path: &Path,
        log_path: &Path,
        timeout: Duration,
    ) -> Result<Ready, SupervisorError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(|e| SupervisorError::io(format!("opening {}", log_path.display()), e))?;
        let mut child = Command::new(&self.exe)
            .args(&self.args_prefix)
            .arg(spec_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| SupervisorError::io(format!("running {}", self.exe.display()), e))?;
        let out = child.stdout.take();
        let status = child
            .wait()
            .map_err(|e| SupervisorError::io("waiting for the supervisor's fork", e))?;
        let Some(mut out) = out else {
            return Err(SupervisorError::Protocol("no stdout pipe".into()));
        };
        let line = read_line_with_timeout(&mut out, timeout)?;
        if line.is_empty() {
            return Err(SupervisorError::Protocol(format!(
                "exited ({status}) without reporting; see {}",
                log_path.display()
            )));
        }
        let ready: Ready = serde_json::from_slice(&line).map_err(|e| {
            SupervisorError::Protocol(format!("bad ready line {:?}: {e}", lossy(&line)))
        })?;
        if !ready.ok {
            return Err(SupervisorError::Protocol(
                ready.error.unwrap_or_else(|| "start failed".into()),
            ));
        }
        Ok(ready)
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
