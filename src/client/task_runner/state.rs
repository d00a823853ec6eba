//! A task's state shared between its runner and the alloc runner: events and state
//! transitions with Nomad's bookkeeping, persisted and announced on every change.

use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::Notify;

use crate::structs::time::is_zero;
use crate::structs::{TASK_STATE_DEAD, TASK_STATE_RUNNING, TaskEvent, TaskState, event};
use yurt_drivers::TaskHandle;

use super::super::state_db::StateDb;
use super::events::populate_display_message;

/// State of one task plus its live driver handle.
pub(crate) struct TaskShared {
    alloc_id: String,
    name: String,
    state: Mutex<TaskState>,
    handle: Mutex<Option<TaskHandle>>,
    db: Arc<dyn StateDb>,
    on_change: Arc<Notify>,
}

impl TaskShared {
    pub(crate) fn new(
        alloc_id: &str,
        name: &str,
        db: Arc<dyn StateDb>,
        on_change: Arc<Notify>,
    ) -> Self {
        TaskShared {
            alloc_id: alloc_id.to_string(),
            name: name.to_string(),
            state: Mutex::new(TaskState::default()),
            handle: Mutex::new(None),
            db,
            on_change,
        }
    }

    /// Installs what an earlier agent process persisted, without writing it back or
    /// announcing it: restoring is not a state change.
    pub(crate) fn restore(&self, state: TaskState, handle: Option<TaskHandle>) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
        *self.handle.lock().unwrap_or_else(|p| p.into_inner()) = handle;
    }

    pub(crate) fn state(&self) -> TaskState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Appends an event without changing the state.
    pub(crate) fn emit(&self, ev: TaskEvent) {
        self.update("", Some(ev));
    }

    /// Moves to `new_state` (empty = unchanged) after appending `ev`, as Nomad's UpdateState.
    pub(crate) fn update(&self, new_state: &str, ev: Option<TaskEvent>) {
        self.change(new_state, ev, false);
    }

    /// Appends the event that ends a run and forgets the run's handle, persisted as one
    /// write: after a crash the restored runner sees either a running instance to reattach
    /// to or a recorded exit, never both (which would record the exit twice).
    pub(crate) fn end_run(&self, ev: TaskEvent) {
        *self.handle.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.change("", Some(ev), true);
    }

    fn change(&self, new_state: &str, ev: Option<TaskEvent>, clear_handle: bool) {
        let snapshot = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(mut ev) = ev {
                populate_display_message(&mut ev);
                if ev.r#type == event::RESTARTING {
                    st.restarts += 1;
                    st.last_restart = chrono::DateTime::from_timestamp_nanos(ev.time);
                }
                if ev.fails_task {
                    st.failed = true;
                }
                st.push_event(ev);
            }
            if !new_state.is_empty() {
                let old = std::mem::replace(&mut st.state, new_state.to_string());
                if new_state == TASK_STATE_RUNNING && old != TASK_STATE_RUNNING {
                    st.started_at = Utc::now();
                }
                if new_state == TASK_STATE_DEAD && is_zero(&st.finished_at) {
                    st.finished_at = Utc::now();
                }
            }
            st.clone()
        };
        let written = if clear_handle {
            self.db
                .put_task_state_without_handle(&self.alloc_id, &self.name, &snapshot)
        } else {
            self.db
                .put_task_state(&self.alloc_id, &self.name, &snapshot)
        };
        if let Err(e) = written {
            tracing::warn!(alloc_id = %self.alloc_id, task = %self.name, error = %e, "persisting task state");
        }
        self.on_change.notify_one();
    }

    /// The handle of the running instance, if any.
    pub(crate) fn handle(&self) -> Option<TaskHandle> {
        self.handle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records (and persists) the running instance's handle, or clears it.
    pub(crate) fn set_handle(&self, handle: Option<TaskHandle>) {
        if let Err(e) = self
            .db
            .put_task_handle(&self.alloc_id, &self.name, handle.as_ref())
        {
            tracing::warn!(alloc_id = %self.alloc_id, task = %self.name, error = %e, "persisting task handle");
        }
        *self.handle.lock().unwrap_or_else(|p| p.into_inner()) = handle;
    }
}
