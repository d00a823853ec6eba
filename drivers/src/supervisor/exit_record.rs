//! The durable exit record: how the task ended, written before anyone is told.
//!
//! Written as JSON to a temp file, fsynced, renamed over the final name and the directory
//! fsynced, so a reader sees either no record or a complete one, even after a crash. Both
//! sides go through [`super::private_fs`]: no link at either name is ever followed.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::private_fs;
use crate::driver::ExitResult;

/// How a task's leader process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The driver task ID the supervisor ran (guards against a stale record of an older run).
    pub task_id: String,
    /// PID the task had.
    pub task_pid: u32,
    /// Exit status, or 128+signal for a death by signal (Nomad's encoding).
    pub exit_code: i32,
    /// The terminating signal, 0 for a normal exit.
    pub signal: i32,
    /// Whether the kernel wrote a core dump.
    pub core_dumped: bool,
    /// Whether the task's cgroup recorded an OOM kill while it ran (see `LaunchSpec::oom_events`).
    pub oom_killed: bool,
    /// Unix milliseconds when the task started.
    pub started_at_ms: u64,
    /// Unix milliseconds when the leader was reaped.
    pub finished_at_ms: u64,
}

impl ExitRecord {
    /// The driver-level exit result.
    pub fn to_exit_result(&self) -> ExitResult {
        ExitResult {
            exit_code: self.exit_code,
            signal: self.signal,
            oom_killed: self.oom_killed,
            err: None,
        }
    }

    /// Builds a record from a `waitpid` status word.
    pub fn from_wait_status(task_id: &str, pid: u32, status: libc::c_int) -> Self {
        let (exit_code, signal, core_dumped) = if libc::WIFSIGNALED(status) {
            let sig = libc::WTERMSIG(status);
            (128 + sig, sig, libc::WCOREDUMP(status))
        } else {
            (libc::WEXITSTATUS(status), 0, false)
        };
        ExitRecord {
            task_id: task_id.to_string(),
            task_pid: pid,
            exit_code,
            signal,
            core_dumped,
            oom_killed: false,
            started_at_ms: 0,
            finished_at_ms: 0,
        }
    }
}

/// Writes `rec` to `path` atomically and durably (temp + fsync + rename + dir fsync).
pub fn write_durable(path: &Path, rec: &ExitRecord) -> io::Result<()> {
    let data = serde_json::to_vec(rec).map_err(io::Error::other)?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    {
        let mut f = private_fs::create(tmp)?;
        f.write_all(&data)?;
        f.sync_all()?;
    }
    fs::rename(tmp, path)?;
    if let Some(dir) = path.parent() {
        private_fs::open_dir(dir)?.sync_all()?;
    }
    Ok(())
}

/// Longest exit record read back (one is about 200 bytes).
const MAX_RECORD: u64 = 64 * 1024;

/// Reads the record at `path`; Ok(None) when there is none yet.
pub fn read(path: &Path) -> io::Result<Option<ExitRecord>> {
    match private_fs::read(path, MAX_RECORD)? {
        Some(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_encoding() {
        let dir = std::env::temp_dir().join(format!("yurt-exitrec-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("exit.json");
        assert!(read(&path).unwrap().is_none());
        // 9 << 0 = killed by SIGKILL; 3 << 8 = exit(3).
        let killed = ExitRecord::from_wait_status("t", 7, 9);
        assert_eq!((killed.exit_code, killed.signal), (137, 9));
        let exited = ExitRecord::from_wait_status("t", 7, 3 << 8);
        assert_eq!((exited.exit_code, exited.signal), (3, 0));
        write_durable(&path, &exited).unwrap();
        assert_eq!(read(&path).unwrap(), Some(exited));
        fs::remove_dir_all(&dir).unwrap();
    }
}
