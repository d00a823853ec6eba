//! Ending supervisors the agent has lost its hold on: one whose launch timed out or reported
//! nothing usable (it may still be setting up, or already run its task, and nothing would
//! ever stop either), and one that can be neither reattached nor shown to have exited.
//!
//! A supervisor is a child subreaper, so everything its task started stays below it in the
//! process tree: it is stopped first (a stopped supervisor reaps nothing, so its children
//! stay its children), then every descendant is killed, then the supervisor itself.

use std::path::Path;

use super::launcher::runs_supervisor_of;
use crate::supervisor::proctree::{descendants, is_alive, send_signal};

/// Rounds of "kill every live descendant": a process forking while it is being killed may
/// leave a child that the first round did not see.
const KILL_ROUNDS: usize = 5;

/// Kills every process that runs the supervisor of the spec at `spec_path` (in either form a
/// build launched, see [`runs_supervisor_of`]), with its whole tree; returns how many
/// supervisors were found.
pub fn kill_supervisors_of(spec_path: &Path) -> usize {
    let found = supervisors_of(spec_path);
    for &pid in &found {
        kill_tree(pid);
    }
    found.len()
}

/// PIDs whose command line is the supervisor of `spec_path`.
fn supervisors_of(spec_path: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| runs_supervisor_of(&c, spec_path))
        })
        .collect()
}

/// Stops `pid`, kills every descendant, then kills `pid`. Failures are logged (the usual one,
/// a process that is already gone, is not a failure).
pub fn kill_tree(pid: u32) {
    let Ok(p) = i32::try_from(pid) else {
        return;
    };
    if p <= 1 {
        return;
    }
    if let Err(e) = send_signal(p, libc::SIGSTOP) {
        tracing::warn!(pid, error = %e, "stopping a supervisor before killing its tree");
    }
    for _ in 0..KILL_ROUNDS {
        let live: Vec<u32> = descendants(pid)
            .into_iter()
            .filter(|&d| is_alive(d))
            .collect();
        if live.is_empty() {
            break;
        }
        for d in live {
            if let Ok(d) = i32::try_from(d)
                && let Err(e) = send_signal(d, libc::SIGKILL)
            {
                tracing::warn!(pid = d, supervisor_pid = pid, error = %e, "killing a task process");
            }
        }
    }
    if let Err(e) = send_signal(p, libc::SIGKILL) {
        tracing::warn!(pid, error = %e, "killing a supervisor");
    }
}
