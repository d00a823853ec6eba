//! The per-task supervisor process: a small process that owns one task for its whole life.
//!
//! Everything in this module runs **inside the supervisor process** (the `yurt-supervisor`
//! executable, or `yurt supervise <spec.json>` as a fallback and in older builds), except the
//! contract it shares with the agent: [`protocol`] (the socket's requests and answers),
//! [`spec`] (the launch spec the agent writes), [`exit_record`] (the durable exit), [`paths`]
//! (where sockets and control files live), [`private_fs`] (creating and reading those files
//! without following planted links), [`signals`] (Nomad's signal names) and [`proctree`]
//! (/proc process-tree walks). The agent's side — launching supervisors, talking to them and
//! the task table built on that — is [`crate::supervisor_client`].
//!
//! [`supervisor_main`] is the entry point: the supervisor detaches into its own session,
//! starts the task, copies its stdout/stderr into rotated log files, reaps it, records its
//! exit durably and answers the agent over a unix socket. Because it is a separate process,
//! tasks and their logs survive the agent being killed; a restarted agent reconnects using
//! what the task handle stored.
//!
//! In the process: [`entry`] (start-up and daemonizing), [`event_loop`] (the poll loop),
//! [`child`] and [`isolated`] (starting the task on the host or isolated), [`creds`] (the
//! task user), [`oom`] (the OOM-kill counter), [`error`].

pub mod child;
pub mod creds;
pub mod entry;
pub mod error;
pub mod event_loop;
pub mod exit_record;
pub mod isolated;
pub mod oom;
pub mod paths;
pub mod private_fs;
pub mod proctree;
pub mod protocol;
pub mod signals;
pub mod spec;

pub use entry::supervisor_main;
pub use error::SupervisorError;
pub use exit_record::ExitRecord;
pub use protocol::{Ready, Request, Response, Status};
pub use spec::{IsolationSpec, LaunchSpec, LogSpec};
