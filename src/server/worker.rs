//! Scheduler workers: take an evaluation from the broker, run the scheduler on a snapshot and
//! hand the outcome to the plan applier ([`super::plan_apply`]); recompute against a fresh
//! snapshot when the applier finds the plan stale.

use std::sync::Arc;

use super::Server;
use super::plan_apply::PlanError;
use super::scheduler;
use super::state::{Command, Request, Table};
use super::worker_status::{WorkerSlot, Workload};
use crate::structs::{EvalStatus, Evaluation, time::now_nanos};

/// How many times a plan is recomputed when the state moved under it.
const MAX_PLAN_ATTEMPTS: usize = 5;

/// Runs one worker forever.
pub async fn run(server: Arc<Server>) {
    let slot = server.workers.register();
    loop {
        slot.set(Workload::WaitingToDequeue);
        let eval = server.broker.dequeue().await;
        wait_while_paused(&server, &slot).await;
        slot.set(Workload::Scheduling);
        tracing::debug!(target: "yurt::latency", step = "eval dequeued", job_id = %eval.job_id);
        let s = server.clone();
        let e = eval.clone();
        let superseded = match tokio::task::spawn_blocking(move || s.process_eval(e)).await {
            Ok(superseded) => superseded,
            Err(e) => {
                tracing::error!(eval_id = %eval.id, error = %e, "scheduler worker panicked");
                Vec::new()
            }
        };
        let mut cancelled = server.broker.ack(&eval);
        cancelled.extend(superseded);
        server.cancel_evals(cancelled).await;
    }
}

/// Holds a worker while the scheduler configuration pauses the eval broker (an operator
/// does this to delete evaluations safely), waking on each configuration change.
async fn wait_while_paused(server: &Server, slot: &WorkerSlot) {
    let mut changes = server.state.watch(Table::SchedulerConfig);
    while server.state.snapshot().scheduler_config().pause_eval_broker {
        slot.set(Workload::Paused);
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Milliseconds since `start`, the unit of Nomad's timing samples.
fn millis(start: std::time::Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

impl Server {
    /// Schedules one evaluation to completion (or failure), committing its plan; runs on a
    /// blocking thread. Returns the blocked evaluations the outcome superseded, for the
    /// caller to cancel.
    pub fn process_eval(self: &Arc<Self>, eval: Evaluation) -> Vec<Evaluation> {
        for attempt in 0..MAX_PLAN_ATTEMPTS {
            let snap = self.state.snapshot();
            // The broker may hold a copy older than the stored one (e.g. a re-queued blocked
            // eval); skip evaluations that are already finished, or were deleted while the
            // broker was paused.
            if snap.eval(&eval.id).is_none_or(|e| e.terminal()) {
                return Vec::new();
            }
            let started = std::time::Instant::now();
            let outcome = match scheduler::schedule(&eval, snap.as_ref()) {
                Ok(o) => o,
                Err(e) => {
                    self.fail_eval(&eval, &e.to_string());
                    return Vec::new();
                }
            };
            tracing::debug!(target: "yurt::latency", step = "scheduled", job_id = %eval.job_id, us = started.elapsed().as_micros() as u64);
            metrics::histogram!(format!(
                "nomad.nomad.worker.invoke_scheduler.{}",
                eval.r#type
            ))
            .record(millis(started));
            let started = std::time::Instant::now();
            let applied = {
                let _queued = self.plans_pending.enter();
                self.apply_outcome(&eval, outcome, snap.index)
            };
            metrics::histogram!("nomad.nomad.plan.submit").record(millis(started));
            tracing::debug!(target: "yurt::latency", step = "plan committed", job_id = %eval.job_id, us = started.elapsed().as_micros() as u64);
            match applied {
                Ok(superseded) => return superseded,
                Err(PlanError::Stale(why)) => {
                    tracing::debug!(eval_id = %eval.id, attempt, why, "plan refused, recomputing");
                }
                Err(PlanError::State(e)) => {
                    tracing::error!(eval_id = %eval.id, error = %e, "committing plan");
                    self.fail_eval(&eval, &e.to_string());
                    return Vec::new();
                }
            }
        }
        self.fail_eval(&eval, "maximum attempts reached (5)");
        Vec::new()
    }

    fn fail_eval(&self, eval: &Evaluation, why: &str) {
        let mut e = eval.clone();
        e.status = EvalStatus::Failed;
        e.status_description = why.to_string();
        e.modify_time = now_nanos();
        let update = Request::new(Command::EvalUpdate { evals: vec![e] });
        if let Err(err) = self.state.commit_blocking(update) {
            tracing::error!(eval_id = %eval.id, error = %err, "recording failed evaluation");
        }
    }
}
