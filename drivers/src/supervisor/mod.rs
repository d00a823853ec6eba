//! The per-task supervisor: a small process that owns one task for its whole life.
//!
//! The agent re-executes its own binary in a minimal mode (`yurt supervise <spec.json>`,
//! dispatched before any runtime starts) which calls [`supervisor_main`]. The supervisor
//! detaches into its own session, starts the task, copies its stdout/stderr into rotated log
//! files, reaps it, records its exit durably, and answers the agent over a unix socket
//! ([`protocol`]). Because it is a separate process, tasks and their logs survive the agent
//! being killed; a restarted agent reconnects using what the task handle stored.
//!
//! Agent-side pieces: [`SupervisorCommand::launch`] starts one, [`client`] talks to it.

pub mod child;
pub mod client;
pub mod creds;
pub mod entry;
pub mod error;
pub mod event_loop;
pub mod exit_record;
pub mod isolated;
pub mod launch;
pub mod oom;
pub mod paths;
pub mod proctree;
pub mod protocol;
pub mod signals;
pub mod spec;

pub use entry::supervisor_main;
pub use error::SupervisorError;
pub use exit_record::ExitRecord;
pub use launch::SupervisorCommand;
pub use protocol::{Ready, Request, Response, Status};
pub use spec::{IsolationSpec, LaunchSpec, LogSpec};
