//! The allocation's client status, computed from its task states as Nomad's client does.

use std::collections::BTreeMap;

use crate::structs::{
    ALLOC_CLIENT_COMPLETE, ALLOC_CLIENT_FAILED, ALLOC_CLIENT_PENDING, ALLOC_CLIENT_RUNNING,
    TASK_STATE_DEAD, TASK_STATE_PENDING, TASK_STATE_RUNNING, TaskState,
};

/// `(ClientStatus, ClientDescription)` for a set of task states.
pub fn client_status(states: &BTreeMap<String, TaskState>) -> (&'static str, &'static str) {
    let any = |f: &dyn Fn(&TaskState) -> bool| states.values().any(f);
    if any(&|s| s.state == TASK_STATE_DEAD && s.failed) {
        (ALLOC_CLIENT_FAILED, "Failed tasks")
    } else if any(&|s| s.state == TASK_STATE_RUNNING) {
        (ALLOC_CLIENT_RUNNING, "Tasks are running")
    } else if any(&|s| s.state == TASK_STATE_PENDING) {
        (ALLOC_CLIENT_PENDING, "No tasks have started")
    } else {
        (ALLOC_CLIENT_COMPLETE, "All tasks have completed")
    }
}

/// Whether a client status is final.
pub fn is_terminal(status: &str) -> bool {
    matches!(
        status,
        ALLOC_CLIENT_COMPLETE | ALLOC_CLIENT_FAILED | crate::structs::ALLOC_CLIENT_LOST
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(state: &str, failed: bool) -> TaskState {
        TaskState {
            state: state.into(),
            failed,
            ..Default::default()
        }
    }

    fn of(list: &[(&str, bool)]) -> (&'static str, &'static str) {
        let m = list
            .iter()
            .enumerate()
            .map(|(i, (s, f))| (format!("t{i}"), st(s, *f)))
            .collect();
        client_status(&m)
    }

    #[test]
    fn precedence_failed_running_pending_complete() {
        assert_eq!(
            of(&[("dead", true), ("running", false)]),
            ("failed", "Failed tasks")
        );
        assert_eq!(
            of(&[("running", false), ("pending", false), ("dead", false)]),
            ("running", "Tasks are running")
        );
        assert_eq!(
            of(&[("pending", false), ("dead", false)]),
            ("pending", "No tasks have started")
        );
        assert_eq!(
            of(&[("dead", false), ("dead", false)]),
            ("complete", "All tasks have completed")
        );
        // A failed flag on a task that is not dead yet (restarting) does not fail the alloc.
        assert_eq!(of(&[("pending", true)]).0, "pending");
        assert!(is_terminal("complete") && is_terminal("failed") && !is_terminal("running"));
    }
}
