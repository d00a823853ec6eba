//! A task's state shared between its runner and the alloc runner: events and state
//! transitions with Nomad's bookkeeping, announced on every change and persisted with every
//! state or handle change.

use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::Notify;

use crate::structs::time::is_zero;
use crate::structs::{TaskEvent, TaskState, TaskStateName, event};
use yurt_drivers::TaskHandle;

use super::super::state_db::StateDb;
use super::events::populate_display_message;

/// What a state change writes to the client's state db.
enum Persist {
    /// Nothing now; the next write carries it.
    Later,
    /// The task state.
    State,
    /// The task state, and the handle cleared.
    WithoutHandle,
    /// The task state and this handle.
    WithHandle(TaskHandle),
}

/// State of one task plus its live driver handle.
pub(crate) struct TaskShared {
    alloc_id: String,
    name: String,
    state: Mutex<TaskState>,
    handle: Mutex<Option<TaskHandle>>,
    db: Arc<dyn StateDb>,
    on_change: Arc<Notify>,
    /// The task's metric labels; empty counts nothing (tests).
    metric_labels: Vec<metrics::Label>,
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
            metric_labels: Vec::new(),
        }
    }

    /// Counts this task's state changes under `labels` (see `client::gauges`).
    pub(crate) fn with_metric_labels(mut self, labels: Vec<metrics::Label>) -> Self {
        self.metric_labels = labels;
        self
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

    /// Appends an event without changing the state. It is announced at once but written to
    /// disk with the next state or handle change: an event alone changes nothing a restarted
    /// agent acts on, and a durable write per event (Received, Task Setup, …) was most of a
    /// task's start latency.
    pub(crate) fn emit(&self, ev: TaskEvent) {
        self.change(None, Some(ev), Persist::Later);
    }

    /// Moves to `new_state` after appending `ev`, as Nomad's UpdateState.
    pub(crate) fn update(&self, new_state: TaskStateName, ev: Option<TaskEvent>) {
        self.change(Some(new_state), ev, Persist::State);
    }

    /// The task's new instance is running: its handle, the `running` state and `ev` are
    /// persisted in one write before anyone is told, so a restarted agent can reattach.
    pub(crate) fn started(&self, handle: TaskHandle, ev: TaskEvent) {
        *self.handle.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle.clone());
        self.change(
            Some(TaskStateName::Running),
            Some(ev),
            Persist::WithHandle(handle),
        );
    }

    /// Appends the event that ends a run and forgets the run's handle, persisted as one
    /// write: after a crash the restored runner sees either a running instance to reattach
    /// to or a recorded exit, never both (which would record the exit twice).
    pub(crate) fn end_run(&self, ev: TaskEvent) {
        *self.handle.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.change(None, Some(ev), Persist::WithoutHandle);
    }

    fn change(&self, new_state: Option<TaskStateName>, ev: Option<TaskEvent>, persist: Persist) {
        let snapshot = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(mut ev) = ev {
                populate_display_message(&mut ev);
                if ev.r#type == event::RESTARTING {
                    crate::client::gauges::count_restart(&self.metric_labels);
                    st.restarts += 1;
                    st.last_restart = chrono::DateTime::from_timestamp_nanos(ev.time);
                }
                if ev.fails_task {
                    st.failed = true;
                }
                st.push_event(ev);
            }
            if let Some(new_state) = new_state {
                let old = std::mem::replace(&mut st.state, new_state);
                crate::client::gauges::count_transition(
                    &self.metric_labels,
                    old,
                    new_state,
                    st.failed,
                );
                if new_state == TaskStateName::Running && old != TaskStateName::Running {
                    st.started_at = Utc::now();
                }
                if new_state == TaskStateName::Dead && is_zero(&st.finished_at) {
                    st.finished_at = Utc::now();
                }
            }
            st.clone()
        };
        let written = match persist {
            Persist::Later => Ok(()),
            Persist::State => self
                .db
                .put_task_state(&self.alloc_id, &self.name, &snapshot),
            Persist::WithoutHandle => {
                self.db
                    .put_task_state_without_handle(&self.alloc_id, &self.name, &snapshot)
            }
            Persist::WithHandle(handle) => {
                self.db
                    .put_task_started(&self.alloc_id, &self.name, &snapshot, &handle)
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::state_db::JsonStateDb;
    use crate::client::task_runner::events;

    #[test]
    fn events_wait_for_the_start_which_persists_handle_and_state_together() {
        let dir = std::env::temp_dir().join(format!("yurt-task-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = Arc::new(JsonStateDb::open(&dir).unwrap());
        let shared = TaskShared::new("a1", "web", db, Arc::new(Notify::new()));
        shared.emit(events::received());
        shared.emit(events::building_task_dir());
        assert_eq!(shared.state().events.as_ref().map(Vec::len), Some(2));
        // Read back through a second db, as a restarted agent would.
        let on_disk = || {
            JsonStateDb::open(&dir)
                .unwrap()
                .get_task("a1", "web")
                .unwrap()
        };
        assert!(on_disk().is_none(), "an event alone was written");
        let handle = TaskHandle {
            version: 1,
            driver: "raw_exec".into(),
            task_id: "a1/web/1".into(),
            state: serde_json::json!({"pid": 42}),
        };
        shared.started(handle.clone(), events::started());
        let rec = on_disk().expect("the start was written");
        assert_eq!(rec.handle, Some(handle));
        let state = rec.state.unwrap();
        assert_eq!(state.state, TaskStateName::Running);
        let types: Vec<String> = state
            .events
            .unwrap()
            .into_iter()
            .map(|e| e.r#type)
            .collect();
        assert_eq!(types, ["Received", "Task Setup", "Started"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
