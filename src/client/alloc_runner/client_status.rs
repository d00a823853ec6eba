//! The allocation's client status, computed from its task states as Nomad's client does.

use std::collections::BTreeMap;

use crate::structs::{AllocClientStatus, TaskState, TaskStateName};

/// `(ClientStatus, ClientDescription)` for a set of task states.
pub fn client_status(states: &BTreeMap<String, TaskState>) -> (AllocClientStatus, &'static str) {
    let any = |f: &dyn Fn(&TaskState) -> bool| states.values().any(f);
    if any(&|s| s.state == TaskStateName::Dead && s.failed) {
        (AllocClientStatus::Failed, "Failed tasks")
    } else if any(&|s| s.state == TaskStateName::Running) {
        (AllocClientStatus::Running, "Tasks are running")
    } else if any(&|s| s.state == TaskStateName::Pending) {
        (AllocClientStatus::Pending, "No tasks have started")
    } else {
        (AllocClientStatus::Complete, "All tasks have completed")
    }
}

/// Whether a client status is final.
pub fn is_terminal(status: AllocClientStatus) -> bool {
    matches!(
        status,
        AllocClientStatus::Complete | AllocClientStatus::Failed | AllocClientStatus::Lost
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(state: TaskStateName, failed: bool) -> TaskState {
        TaskState {
            state,
            failed,
            ..Default::default()
        }
    }

    fn of(list: &[(TaskStateName, bool)]) -> (AllocClientStatus, &'static str) {
        let m = list
            .iter()
            .enumerate()
            .map(|(i, (s, f))| (format!("t{i}"), st(*s, *f)))
            .collect();
        client_status(&m)
    }

    #[test]
    fn precedence_failed_running_pending_complete() {
        assert_eq!(
            of(&[(TaskStateName::Dead, true), (TaskStateName::Running, false)]),
            (AllocClientStatus::Failed, "Failed tasks")
        );
        assert_eq!(
            of(&[
                (TaskStateName::Running, false),
                (TaskStateName::Pending, false),
                (TaskStateName::Dead, false)
            ]),
            (AllocClientStatus::Running, "Tasks are running")
        );
        assert_eq!(
            of(&[
                (TaskStateName::Pending, false),
                (TaskStateName::Dead, false)
            ]),
            (AllocClientStatus::Pending, "No tasks have started")
        );
        assert_eq!(
            of(&[(TaskStateName::Dead, false), (TaskStateName::Dead, false)]),
            (AllocClientStatus::Complete, "All tasks have completed")
        );
        // A failed flag on a task that is not dead yet (restarting) does not fail the alloc.
        assert_eq!(
            of(&[(TaskStateName::Pending, true)]).0,
            AllocClientStatus::Pending
        );
        for s in AllocClientStatus::ALL {
            let terminal = matches!(
                s,
                AllocClientStatus::Complete | AllocClientStatus::Failed | AllocClientStatus::Lost
            );
            assert_eq!(is_terminal(*s), terminal, "{s}");
        }
    }
}
