//! The `raw_exec` driver: host processes without isolation, each under its own supervisor.
//!
//! - [`config`]: the plugin block and the task `config` block;
//! - [`launch`]: `TaskConfig` → what the supervisor runs (command lookup, env denylist);
//! - [`alloc_exec`]: `alloc exec` into a running task;
//! - [`driver`]: the `TaskDriver` implementation over [`crate::supervisor_client`], which owns the
//!   task table, the cgroup per task (accounting, limits, OOM, stats, whole-tree kill) and
//!   recovery.

pub mod alloc_exec;
pub mod config;
pub mod driver;
pub mod launch;

/// raw_exec's task handle state (shared with exec).
pub use crate::supervisor_client::SupervisedState as RawExecState;
pub use config::{RawExecPluginConfig, RawExecTaskConfig};
pub use driver::RawExecDriver;
