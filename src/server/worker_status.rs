//! What each scheduler worker is doing, for `GET /v1/agent/schedulers`: Nomad's worker
//! statuses and workload statuses, with each worker's ID and start time. A worker updates
//! its own entry with an atomic store; readers take a snapshot.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// A worker's workload, spelled as Nomad's `SchedulerWorkerStatus` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Workload {
    WaitingToDequeue = 1,
    Paused = 2,
    Scheduling = 3,
}

impl Workload {
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::WaitingToDequeue => "WaitingToDequeue",
            Workload::Paused => "Paused",
            Workload::Scheduling => "Scheduling",
        }
    }

    fn from_u8(v: u8) -> Option<Self> {
        [
            Workload::WaitingToDequeue,
            Workload::Paused,
            Workload::Scheduling,
        ]
        .into_iter()
        .find(|w| *w as u8 == v)
    }
}

/// One worker's entry.
#[derive(Debug)]
pub struct WorkerSlot {
    pub id: String,
    pub started: DateTime<Utc>,
    workload: AtomicU8,
}

impl WorkerSlot {
    pub fn set(&self, w: Workload) {
        self.workload.store(w as u8, Ordering::Relaxed);
    }

    /// Nomad's `workload_status`; "UnknownStatus" before the worker first reports.
    pub fn workload(&self) -> &'static str {
        Workload::from_u8(self.workload.load(Ordering::Relaxed))
            .map_or("UnknownStatus", Workload::as_str)
    }

    /// Nomad's worker `status`: a paused broker pauses the worker.
    pub fn status(&self) -> &'static str {
        match Workload::from_u8(self.workload.load(Ordering::Relaxed)) {
            Some(Workload::Paused) => "Paused",
            Some(_) => "Started",
            None => "Starting",
        }
    }
}

/// Every worker of this server.
#[derive(Debug, Default)]
pub struct WorkerStatuses {
    slots: Mutex<Vec<Arc<WorkerSlot>>>,
}

impl WorkerStatuses {
    /// A slot for a worker starting now.
    pub fn register(&self) -> Arc<WorkerSlot> {
        let slot = Arc::new(WorkerSlot {
            id: crate::structs::generate_uuid(),
            started: Utc::now(),
            workload: AtomicU8::new(0),
        });
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(slot.clone());
        slot
    }

    pub fn snapshot(&self) -> Vec<Arc<WorkerSlot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_report_nomads_strings() {
        let all = WorkerStatuses::default();
        let w = all.register();
        assert_eq!((w.status(), w.workload()), ("Starting", "UnknownStatus"));
        w.set(Workload::WaitingToDequeue);
        assert_eq!((w.status(), w.workload()), ("Started", "WaitingToDequeue"));
        w.set(Workload::Paused);
        assert_eq!((w.status(), w.workload()), ("Paused", "Paused"));
        assert_eq!(all.snapshot().len(), 1);
        assert_eq!(all.snapshot()[0].id.len(), 36);
    }
}
