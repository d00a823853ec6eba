//! Events drivers raise outside any call (image pull progress), routed to the task runner they
//! name and recorded there as Nomad's `Driver` task events.

use std::sync::{Arc, Weak};

use tokio::sync::{mpsc, watch};
use yurt_drivers::DriverEvent;

use super::task_runner::events;
use super::{Client, Inner};

impl Client {
    /// Records every event received on `rx` on its task; runs until the client shuts down or
    /// every sender is gone. The agent gives the matching sender to its drivers.
    pub fn route_driver_events(
        &self,
        rx: mpsc::UnboundedReceiver<DriverEvent>,
    ) -> tokio::task::JoinHandle<()> {
        // Weak: the drivers (owned by the client) hold the senders, so a strong reference
        // here would keep the client alive through its own channel.
        let inner = Arc::downgrade(&self.inner);
        let shutdown = self.inner.shutdown.subscribe();
        tokio::spawn(run(inner, rx, shutdown))
    }
}

async fn run(
    inner: Weak<Inner>,
    mut rx: mpsc::UnboundedReceiver<DriverEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            _ = shutdown.wait_for(|s| *s) => None,
        };
        let (Some(ev), Some(inner)) = (ev, inner.upgrade()) else {
            return;
        };
        dispatch(&inner, &ev);
    }
}

/// Appends `ev` to the task `<alloc_id>/<task>` it names; events of unknown tasks are dropped.
fn dispatch(inner: &Inner, ev: &DriverEvent) {
    let Some((alloc_id, task)) = ev.task_id.split_once('/') else {
        tracing::debug!(task_id = %ev.task_id, "driver event with a malformed task ID");
        return;
    };
    let runner = inner
        .allocs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(alloc_id)
        .cloned();
    match runner.as_ref().and_then(|a| a.task(task)) {
        Some(t) => t.emit_event(events::driver_message(&ev.message, &ev.annotations)),
        None => {
            tracing::debug!(task_id = %ev.task_id, message = %ev.message, "driver event for an unknown task")
        }
    }
}
