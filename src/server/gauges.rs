//! The server's gauges, set every `telemetry.collection_interval` as Nomad's leader sets
//! them on its stats interval: each job's summary per task group, jobs by status, the eval
//! broker's and blocked evaluations' depths, and nodes with a live heartbeat timer. They are
//! read from one state snapshot, off the request path.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use metrics::{Label, gauge};

use super::Server;
use super::http::job_summary;
use crate::structs::JobStatus;

/// Plans between their scheduler and their commit. Workers commit their own plans one at a
/// time, so all but one of them are waiting: Nomad's plan queue.
#[derive(Debug, Default)]
pub struct PlanQueue {
    in_flight: AtomicUsize,
}

/// A plan's place in the [`PlanQueue`], given up when dropped.
pub struct QueuedPlan<'a>(&'a PlanQueue);

impl PlanQueue {
    pub fn enter(&self) -> QueuedPlan<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        QueuedPlan(self)
    }

    /// Plans waiting behind the one being committed.
    pub fn depth(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed).saturating_sub(1)
    }
}

impl Drop for QueuedPlan<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Sets the gauges every `interval` until the runtime stops.
pub fn spawn_collector(server: Arc<Server>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let s = server.clone();
            // Summaries walk every job's allocations: keep that off the async workers.
            if tokio::task::spawn_blocking(move || emit(&s)).await.is_err() {
                tracing::warn!("collecting server metrics failed");
            }
        }
    })
}

/// The labels Nomad puts on a job summary gauge: dispatched and periodic children also name
/// their parent and their own suffix.
fn summary_labels(namespace: &str, job_id: &str, group: &str) -> Vec<Label> {
    let mut labels = vec![
        Label::new("job", job_id.to_string()),
        Label::new("task_group", group.to_string()),
        Label::new("namespace", namespace.to_string()),
    ];
    for (marker, child_label) in [("/dispatch-", "dispatch_id"), ("/periodic-", "periodic_id")] {
        if let Some((parent, child)) = job_id.split_once(marker) {
            labels.push(Label::new("parent_id", parent.to_string()));
            labels.push(Label::new(child_label, child.to_string()));
        }
    }
    labels
}

/// Sets every server gauge once.
pub fn emit(server: &Server) {
    let snap = server.state.snapshot();
    let (mut pending, mut running, mut dead) = (0u64, 0u64, 0u64);
    for job in snap.jobs.values() {
        match job.status {
            Some(JobStatus::Pending) => pending += 1,
            Some(JobStatus::Running) => running += 1,
            Some(JobStatus::Dead) => dead += 1,
            None => {}
        }
        let summary = job_summary(&snap, job);
        for (group, s) in &summary.summary {
            let labels = summary_labels(&job.namespace, &job.id, group);
            for (name, v) in [
                ("nomad.nomad.job_summary.queued", s.queued),
                ("nomad.nomad.job_summary.complete", s.complete),
                ("nomad.nomad.job_summary.failed", s.failed),
                ("nomad.nomad.job_summary.running", s.running),
                ("nomad.nomad.job_summary.starting", s.starting),
                ("nomad.nomad.job_summary.lost", s.lost),
                ("nomad.nomad.job_summary.unknown", s.unknown),
            ] {
                gauge!(name, labels.clone()).set(v as f64);
            }
        }
    }
    gauge!("nomad.nomad.job_status.pending").set(pending as f64);
    gauge!("nomad.nomad.job_status.running").set(running as f64);
    gauge!("nomad.nomad.job_status.dead").set(dead as f64);

    let broker = server.broker.stats();
    gauge!("nomad.nomad.broker.total_ready").set(broker.total_ready as f64);
    gauge!("nomad.nomad.broker.total_unacked").set(broker.total_unacked as f64);
    gauge!("nomad.nomad.broker.total_pending").set(broker.total_pending as f64);
    gauge!("nomad.nomad.broker.total_waiting").set(broker.total_waiting as f64);
    for (scheduler, s) in &broker.by_scheduler {
        gauge!(format!("nomad.nomad.broker.{scheduler}.ready")).set(s.ready as f64);
        gauge!(format!("nomad.nomad.broker.{scheduler}.unacked")).set(s.unacked as f64);
    }
    gauge!("nomad.nomad.blocked_evals.total_blocked").set(server.blocked.len() as f64);
    gauge!("nomad.nomad.heartbeat.active").set(server.heartbeats.active() as f64);
    gauge!("nomad.nomad.plan.queue_depth").set(server.plans_pending.depth() as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_queue_counts_the_waiting() {
        let q = PlanQueue::default();
        let a = q.enter();
        assert_eq!(q.depth(), 0, "the one being committed is not waiting");
        let b = q.enter();
        let c = q.enter();
        assert_eq!(q.depth(), 2);
        drop((a, b));
        assert_eq!(q.depth(), 0);
        drop(c);
        assert_eq!(q.depth(), 0);
    }

    #[test]
    fn children_name_their_parent() {
        let l = summary_labels("default", "batch/dispatch-1700000000-abcd1234", "g");
        let pairs: Vec<(&str, &str)> = l.iter().map(|l| (l.key(), l.value())).collect();
        assert!(pairs.contains(&("parent_id", "batch")), "{pairs:?}");
        assert!(
            pairs.contains(&("dispatch_id", "1700000000-abcd1234")),
            "{pairs:?}"
        );
        let l = summary_labels("default", "web", "g");
        assert_eq!(l.len(), 3);
    }
}
