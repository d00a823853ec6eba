//! The `raw_exec` driver: host processes without isolation, each under its own supervisor.
//!
//! - [`config`]: the plugin block and the task `config` block;
//! - [`launch`]: `TaskConfig` → what the supervisor runs (command lookup, env denylist);
//! - [`exec`]: `alloc exec` into a running task;
//! - [`driver`]: the `TaskDriver` implementation over [`crate::supervised`], which owns the
//!   task table, the cgroup per task (accounting, limits, OOM, stats, whole-tree kill) and
//!   recovery.

pub mod config;
pub mod driver;
pub mod exec;
pub mod launch;

/// raw_exec's task handle state (shared with exec).
pub use crate::supervised::SupervisedState as RawExecState;
pub use config::{RawExecPluginConfig, RawExecTaskConfig};
pub use driver::RawExecDriver;
