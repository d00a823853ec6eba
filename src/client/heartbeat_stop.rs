//! `disconnect { stop_on_client_after }` (Nomad's `stop_after_client_disconnect`): a client
//! whose heartbeats have gone unanswered for that long stops the group's allocations itself,
//! so they do not run on beside the replacements the servers have meanwhile placed elsewhere.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::structs::{AllocDesiredStatus, Allocation};

use super::Inner;

/// How often the allocations are checked against the silence so far.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// Description given to an allocation the client stopped on its own.
pub const DESC_STOPPED_DISCONNECTED: &str =
    "alloc stopped by its client after losing contact with the servers";

/// Whether `alloc` should be stopped after `silence` with heartbeats unanswered.
pub fn should_stop(alloc: &Allocation, silence: Duration) -> bool {
    !alloc.server_terminal()
        && alloc
            .group()
            .and_then(|g| g.stop_on_client_after())
            .and_then(|ns| u64::try_from(ns).ok())
            .is_some_and(|ns| silence > Duration::from_nanos(ns))
}

/// Checks until `shutdown` flips.
pub(crate) async fn run(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let silence = inner.node.out_of_contact();
        for runner in inner.allocs_snapshot() {
            let alloc = runner.alloc();
            if runner.finished_at().is_some() || !should_stop(&alloc, silence) {
                continue;
            }
            tracing::warn!(alloc_id = %alloc.id, ?silence, "no heartbeat answered for the group's stop_on_client_after; stopping the allocation");
            let mut stopped = (*alloc).clone();
            stopped.desired_status = AllocDesiredStatus::Stop;
            stopped.desired_description = DESC_STOPPED_DISCONNECTED.to_string();
            // As if the servers had asked: the runner kills its tasks and reports them.
            runner.update(stopped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::{Job, TaskGroup};

    fn alloc(group: TaskGroup) -> Allocation {
        Allocation {
            task_group: group.name.clone().into(),
            job: Some(Arc::new(Job {
                task_groups: Some(vec![group]),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn stops_only_past_the_group_timeout() {
        let s = 1_000_000_000i64;
        let old = alloc(TaskGroup {
            name: "g".into(),
            stop_after_client_disconnect: Some(30 * s),
            ..Default::default()
        });
        assert!(!should_stop(&old, Duration::from_secs(29)));
        assert!(should_stop(&old, Duration::from_secs(31)));
        let block = alloc(TaskGroup {
            name: "g".into(),
            stop_after_client_disconnect: Some(30 * s),
            disconnect: Some(Box::new(serde_json::json!({"StopOnClientAfter": 5 * s}))),
            ..Default::default()
        });
        assert!(should_stop(&block, Duration::from_secs(6)));
        let none = alloc(TaskGroup {
            name: "g".into(),
            ..Default::default()
        });
        assert!(!should_stop(&none, Duration::from_secs(3600)));
        let mut stopped = old.clone();
        stopped.desired_status = AllocDesiredStatus::Stop;
        assert!(!should_stop(&stopped, Duration::from_secs(3600)));
    }
}
