//! `yurt-supervisor <spec.json>`: the per-task supervisor, one process per exec/raw_exec task
//! (see `yurt_drivers::supervisor`). The agent starts it from the directory of its own
//! executable.
//!
//! It is a binary of its own, not `yurt supervise`, for its memory: every process that maps
//! the agent binary dirties that binary's relocated read-only data (~1.5 MiB) in private
//! pages. This one links only the supervisor: no async runtime, no HTTP, no server.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    match (args.next(), args.next()) {
        (Some(spec), None) => yurt_drivers::supervisor::supervisor_main(&spec),
        _ => {
            eprintln!(
                "usage: yurt-supervisor <spec.json>\n\
                 (started by the yurt agent, one per exec/raw_exec task)"
            );
            ExitCode::from(2)
        }
    }
}
