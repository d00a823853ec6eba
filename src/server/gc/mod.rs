//! Server-side garbage collection, a leader duty: every `job_gc_interval` it removes what
//! [`collect`] finds old enough; `PUT /v1/system/gc` runs it at once ignoring the thresholds.

pub mod collect;

use std::sync::Arc;
use std::time::Duration;

use collect::{Garbage, Thresholds};

use super::Server;
use super::state::{Applied, Command, Request, StateError};
use crate::structs::time::now_nanos;

/// GC settings from the agent's `server {}` block, with Nomad's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcConfig {
    /// How often the periodic collection runs (`job_gc_interval`).
    pub interval: Duration,
    /// `eval_gc_threshold`, `batch_eval_gc_threshold`, `job_gc_threshold`,
    /// `deployment_gc_threshold`, `node_gc_threshold`.
    pub thresholds: Thresholds,
}

impl Default for GcConfig {
    fn default() -> Self {
        let hour = Duration::from_secs(3600);
        GcConfig {
            interval: Duration::from_secs(300),
            thresholds: Thresholds {
                eval: hour,
                batch_eval: 24 * hour,
                job: 4 * hour,
                deployment: hour,
                node: 24 * hour,
            },
        }
    }
}

/// Starts the periodic collection; aborting the handle stops it.
pub fn start(server: Arc<Server>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = server.config.gc.interval.max(Duration::from_millis(100));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            let thresholds = server.config.gc.thresholds;
            if let Err(e) = server.collect_garbage(&thresholds).await {
                tracing::error!(error = %e, "garbage collection failed");
            }
        }
    })
}

impl Server {
    /// Removes everything eligible under `thresholds`; returns what was removed.
    pub async fn collect_garbage(&self, thresholds: &Thresholds) -> Result<Garbage, StateError> {
        let now = now_nanos();
        let candidates = collect::collect(&self.state.snapshot(), now, thresholds);
        if candidates.is_empty() {
            return Ok(candidates);
        }
        let reap = Command::GcReap {
            garbage: candidates,
            thresholds: *thresholds,
        };
        let (_, applied) = self.state.commit(Request::new_at(now, reap)).await?;
        let garbage = match applied {
            Applied::Garbage(g) => g,
            other => return Err(other.unexpected()),
        };
        for id in &garbage.nodes {
            self.heartbeats.clear(id);
        }
        tracing::info!(
            jobs = garbage.jobs.len(),
            evals = garbage.evals.len(),
            allocs = garbage.allocs.len(),
            deployments = garbage.deployments.len(),
            nodes = garbage.nodes.len(),
            "garbage collected"
        );
        Ok(garbage)
    }
}
