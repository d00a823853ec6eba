//! The `exec` driver: isolated tasks (mount, PID, IPC and UTS namespaces; a chroot of
//! read-only bind mounts from `chroot_env`; the user `nobody` by default; a cgroup with the
//! task's limits), each under its own supervisor.
//!
//! - [`config`]: the plugin block (`allow_caps`, `no_pivot_root`, `default_pid_mode`,
//!   `default_ipc_mode`, `chroot_env`) and the task `config` block;
//! - [`launch`]: builds the chroot, resolves the program inside it, sets the in-chroot env;
//! - [`driver`]: the `TaskDriver` over [`crate::supervisor_client`] (shared with raw_exec); the
//!   supervisor starts the task through [`crate::isolation::spawn_isolated`] and destroy
//!   unmounts the chroot.

pub mod alloc_exec;
pub mod config;
pub mod driver;
pub mod launch;

/// exec's task handle state (shared with raw_exec).
pub use crate::supervisor_client::SupervisedState as ExecState;
pub use config::{ExecPluginConfig, ExecTaskConfig};
pub use driver::ExecDriver;
