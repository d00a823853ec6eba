//! Errors of the cgroups module.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

/// Errors from cgroup operations, each naming the file, directory or pid involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No usable cgroup hierarchy on this machine.
    #[error("cgroups unavailable: {0}")]
    Unavailable(String),
    /// A limit needs a controller the hierarchy does not offer to the task cgroup.
    #[error("cgroup controller {controller:?} is not available for {path}")]
    ControllerUnavailable {
        /// Controller name (`memory`, `pids`, ...).
        controller: String,
        /// The cgroup directory that lacks it.
        path: PathBuf,
    },
    /// A cgroup name that is empty, `.`/`..` or contains `/` or NUL.
    #[error("invalid cgroup name {0:?}")]
    InvalidName(String),
    /// [`TaskCgroup::reattach`] found no such cgroup.
    #[error("cgroup not found: {0}")]
    NotFound(PathBuf),
    /// A cgroupfs file or directory operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted (`read`, `write`, `mkdir`, `rmdir`).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A cgroupfs file held something unexpected.
    #[error("malformed {path}: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// Signalling a process of the cgroup failed (other than it being gone already).
    #[error("signal {signal} to pid {pid} in cgroup {cgroup}: {source}")]
    Signal {
        /// The signal sent.
        signal: Signal,
        /// The target pid.
        pid: i32,
        /// The task cgroup name.
        cgroup: String,
        /// The OS error.
        #[source]
        source: nix::Error,
    },
    /// Processes survived [`TaskCgroup::kill_all`] or kept [`TaskCgroup::destroy`] from finishing.
    #[error("cgroup {cgroup}: {remaining} process(es) still present after {waited:?}")]
    Timeout {
        /// The task cgroup name.
        cgroup: String,
        /// How many pids were left.
        remaining: usize,
        /// How long we waited.
        waited: Duration,
    },
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, CgroupError>;

pub(crate) fn io_err(op: &'static str, path: &Path, source: io::Error) -> CgroupError {
    CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}
