//! yurt-drivers: the TaskDriver trait, its types, and the task drivers.
//!
//! This crate knows nothing of jobs, allocations or HTTP. The agent hands a driver a
//! [`TaskConfig`] and gets back a [`TaskHandle`] it can persist and later use to recover the
//! task after an agent restart.
//!
//! It also holds the two small text helpers both crates share: Go duration strings
//! ([`go_duration`]) and `*` globs ([`glob`]).

pub mod cgroups;
pub mod docker;
pub mod driver;
pub mod exec;
pub mod exec_session;
pub mod glob;
pub mod go_duration;
pub mod isolation;
pub mod logrotate;
pub mod rawexec;
pub mod supervisor;
pub mod supervisor_client;

pub use driver::*;
