//! The `raw_exec` driver: host processes without isolation, each under its own supervisor.
//!
//! - [`config`]: the plugin block and the task `config` block;
//! - [`launch`]: `TaskConfig` → supervisor launch spec (command lookup, env denylist, paths);
//! - [`handle`]: what the task handle stores, and the live per-task entry with its exit watch;
//! - [`stats`]: usage from /proc over the task's process tree;
//! - [`exec`]: `alloc exec` into a running task;
//! - [`driver`]: the `TaskDriver` implementation.
//!
//! Cgroups are not wired yet: the spec's `cgroup_procs` and `oom_events` stay empty until the
//! cgroup manager provides them; tree kill meanwhile goes through the process group plus the
//! supervisor's subreaper sweep.

pub mod config;
pub mod driver;
pub mod exec;
pub mod handle;
pub mod launch;
pub mod stats;

pub use config::{RawExecPluginConfig, RawExecTaskConfig};
pub use driver::RawExecDriver;
pub use handle::RawExecState;
