//! Restoring a task runner after an agent restart: reattach to the instance an earlier agent
//! process started (Nomad's `TaskRunner.Restore` + `restoreHandle`), or decide how to go on
//! when that is impossible.

use crate::structs::{JOB_TYPE_SYSTEM, TaskStateName};
use yurt_drivers::DriverError;

use super::{Ending, TaskRunner, events};

/// How a restored (or new) runner goes on.
pub(super) enum Restored {
    /// Nothing to reattach to: run the task from the start (through its lifecycle gate).
    Start,
    /// The driver reattached to this running (or since exited) instance: wait on it.
    Running(String),
    /// Nothing more to do (the task was dead), or the runner was killed or detached while
    /// waiting for the servers.
    Ended(Ending),
}

impl TaskRunner {
    /// Reattaches to the persisted task handle, if the runner was built from restored state.
    pub(super) async fn restore(&mut self) -> Restored {
        let Some(record) = self.cfg.restore.take() else {
            return Restored::Start;
        };
        let state = self.shared.state();
        let dead = state.state == TaskStateName::Dead;
        let Some(handle) = record.handle else {
            // Pending (never started, or between restarts) starts anew; dead stays dead.
            return if dead {
                Restored::Ended(Ending::Finished)
            } else {
                Restored::Start
            };
        };
        let err = match self.cfg.driver.recover_task(&handle).await {
            // A dead task with a live handle: the run's end stops it and clears the handle.
            Ok(()) if dead => return Restored::Ended(Ending::Finished),
            Ok(()) => {
                // The handle is persisted before `running`: a crash in between leaves a
                // pending state whose task runs. Nomad marks it running without an event.
                if state.state != TaskStateName::Running {
                    self.shared.update(TaskStateName::Running, None);
                }
                tracing::info!(task_id = %handle.task_id, "reattached to task");
                return Restored::Running(handle.task_id);
            }
            Err(e) => e,
        };
        tracing::warn!(task_id = %handle.task_id, error = %err, "failed to restore task");
        // Release whatever the driver may still hold; an unknown task is the usual answer.
        match self.cfg.driver.destroy_task(&handle.task_id, true).await {
            Ok(()) | Err(DriverError::TaskNotFound(_)) => {}
            Err(e) => {
                tracing::warn!(task_id = %handle.task_id, error = %e, "destroying unrestorable task")
            }
        }
        self.shared.set_handle(None);
        if dead {
            return Restored::Ended(Ending::Finished);
        }
        // Only a task that was running lost something; otherwise there was nothing to
        // reattach to. System jobs and stopped allocations don't wait (as in Nomad).
        let job_type = self.cfg.alloc.job.as_ref().map(|j| j.r#type.as_str());
        if state.state != TaskStateName::Running
            || self.cfg.alloc.terminal()
            || job_type == Some(JOB_TYPE_SYSTEM)
        {
            return Restored::Start;
        }
        // The allocation may have been stopped or moved while the agent was away: don't run
        // the task again until the servers have had their say.
        self.shared.update(
            TaskStateName::Pending,
            Some(events::failed_restoring(&err.to_string())),
        );
        // Detach first: a detaching alloc runner also closes the kill channel.
        tokio::select! {
            biased;
            _ = self.detach_rx.wait_for(|d| *d) => Restored::Ended(Ending::Detached),
            _ = self.kill_rx.wait_for(Option::is_some) => Restored::Ended(Ending::Finished),
            _ = self.cfg.contacted.wait_for(|c| *c) => Restored::Start,
        }
    }
}
