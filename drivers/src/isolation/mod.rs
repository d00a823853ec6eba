//! Isolation primitives for the `exec` driver: a bind-mounted chroot built from `chroot_env`,
//! capability sets, user resolution, and a launcher that starts a task as PID 1 of new mount,
//! PID, IPC and UTS namespaces inside that root.
//!
//! Intended use by the per-task supervisor (synchronous, no async runtime):
//! 1. [`chroot::build`] the task dir (host mount namespace, before start; idempotent).
//! 2. [`caps::task_capabilities`] from the plugin's `allow_caps` and the task's `cap_add`/`cap_drop`.
//! 3. [`launch::spawn_isolated`] with the task cgroup's `procs_files()`; `waitpid` the returned pid.
//! 4. After the task is dead (and its cgroup killed): [`chroot::teardown`] the task dir.

#![warn(missing_docs)]

pub mod caps;
pub mod chroot;
pub mod enter;
mod fork;
pub mod launch;
pub mod user;

use std::io;
use std::path::PathBuf;

pub use caps::{CapSet, task_capabilities};
pub use chroot::{
    ChrootSpec, build as build_chroot, default_chroot_env, mounts_under, teardown, teardown_keeping,
};
pub use enter::{EnterSpec, EnteredChild, enter};
pub use launch::{IsolatedChild, IsolatedSpec, NamespaceMode, spawn_isolated};
pub use user::{ResolvedUser, resolve_user};

/// Errors from building a chroot, resolving users/capabilities or launching a task.
#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// mount(2) failed.
    #[error("mount {what} on {target}: {source}")]
    Mount {
        /// Source or fs type description.
        what: String,
        /// The mount point.
        target: PathBuf,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// umount2(2) failed (after the lazy-detach fallback).
    #[error("unmount {target}: {source}")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// A path that would lead outside the task dir (symlink, `..`, relative) or is otherwise unsafe.
    #[error("unsafe path {path}: {reason}")]
    UnsafePath {
        /// The offending path.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// The user does not exist in the host's passwd database.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// A capability name the kernel does not know.
    #[error("invalid capability {0:?}")]
    InvalidCapability(String),
    /// `cap_add` names a capability outside `allow_caps`.
    #[error("capability {0} is not allowed by allow_caps")]
    CapabilityNotAllowed(String),
    /// The launch spec is malformed.
    #[error("invalid isolated spec: {0}")]
    InvalidSpec(String),
    /// A system call in the launching process failed.
    #[error("{call}: {source}")]
    Sys {
        /// The call.
        call: &'static str,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// The forked task failed before exec; `stage` says where.
    #[error("task setup failed at {stage}: {source}")]
    ChildSetup {
        /// Setup step that failed (e.g. `pivot_root`, `execve`).
        stage: &'static str,
        /// The errno it failed with.
        #[source]
        source: nix::Error,
    },
    /// Writing the task pid into a cgroup.procs file failed.
    #[error("place pid {pid} into {path}: {source}")]
    Cgroup {
        /// The host pid of the task.
        pid: i32,
        /// The cgroup.procs file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, IsolationError>;

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
    source: io::Error,
) -> IsolationError {
    IsolationError::Io {
        op,
        path: path.into(),
        source,
    }
}

#[cfg(test)]
mod tests;
