//! Per-task cgroups on cgroup v1 and v2, written directly over cgroupfs.
//!
//! Layout follows Nomad: one parent cgroup (default `yurt`) and one cgroup per task named
//! `<alloc_id>.<task>` under it. On v1 the task cgroup exists once per controller hierarchy
//! (memory, cpu, cpuacct, pids, freezer); on v2 it is a single directory.
//!
//! The version is detected once at start ([`CgroupManager::detect`], rules in [`detect`]). Each
//! version is a backend behind the two traits of `backend` — the hierarchy that holds the
//! parent cgroup, and one task cgroup in it — implemented in `v1.rs` and `v2.rs`; the
//! [`CgroupManager`] and the per-task [`TaskCgroup`] only use those traits. Both backends can
//! also be pointed at an explicit root ([`CgroupManager::v1`], [`CgroupManager::v2`]) so they
//! can be tested side by side.
//!
//! | file | what |
//! |---|---|
//! | `detect.rs` | v1 / v2 / hybrid from mountinfo |
//! | `backend.rs` | the `Hierarchy` and `TaskBackend` traits |
//! | `v1.rs`, `v2.rs` | the two backends |
//! | `manager.rs` | [`CgroupManager`]: hierarchy + parent cgroup |
//! | `task.rs` | [`TaskCgroup`]: create/reattach, join, kill, stats, destroy |
//! | `limits.rs` | [`CgroupLimits`] from task resources |
//! | `stats.rs`, `process_memory.rs` | raw counters → Nomad's usage shapes |
//! | `fs.rs`, `error.rs` | cgroupfs helpers, [`CgroupError`] |
//!
//! Everything here is synchronous and does plain file I/O; it is meant for the per-task
//! supervisor and for the agent's destroy/stats paths alike.

#![warn(missing_docs)]

mod backend;
mod detect;
mod error;
mod fs;
mod limits;
mod manager;
mod process_memory;
mod stats;
mod task;
mod v1;
mod v2;

pub(crate) use detect::parse_mountinfo_line;
pub use detect::{CgroupLayout, cgroups_usable, detect_layout, detect_version};
pub use error::{CgroupError, Result};
pub use limits::{CgroupLimits, shares_to_weight};
pub use manager::{CgroupManager, CgroupVersion};
pub use stats::NodeCompute;
pub use task::{CgroupJoiner, DEFAULT_KILL_TIMEOUT, TaskCgroup, task_cgroup_name};
pub use v1::V1_CONTROLLERS;
pub use v2::V2_CONTROLLERS;

/// Default parent cgroup name (Nomad uses `nomad.slice` on v2 and `/nomad` on v1).
pub const DEFAULT_PARENT: &str = "yurt";

#[cfg(test)]
mod tests;
