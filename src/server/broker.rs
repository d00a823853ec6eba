//! The evaluation broker: hands ready evaluations to scheduler workers, one at a time per
//! job (a job's evaluations are serialized so two workers never plan the same job at once),
//! highest priority first, and holds delayed evaluations until their `WaitUntil`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::state::{NsKey, ns_key};
use crate::structs::Evaluation;

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Ready {
    priority: i64,
    order: Reverse<u64>,
    id: String,
}

#[derive(Default)]
struct Inner {
    ready: BinaryHeap<Ready>,
    evals: HashMap<String, Evaluation>,
    inflight_jobs: HashSet<NsKey>,
    waiting_by_job: HashMap<NsKey, VecDeque<String>>,
    delayed: BTreeMap<(DateTime<Utc>, String), Evaluation>,
    seq: u64,
}

/// The broker; cheap to share behind an `Arc`.
#[derive(Default)]
pub struct EvalBroker {
    inner: Mutex<Inner>,
    ready: Notify,
    delayed_changed: Notify,
}

impl EvalBroker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Queues an evaluation (delayed ones wait for their `WaitUntil`).
    pub fn enqueue(&self, eval: Evaluation) {
        let mut inner = self.lock();
        if inner.evals.contains_key(&eval.id) {
            return;
        }
        if let Some(at) = eval.wait_until.filter(|t| *t > Utc::now()) {
            inner.delayed.insert((at, eval.id.clone()), eval);
            drop(inner);
            self.delayed_changed.notify_one();
            return;
        }
        Self::push_ready(&mut inner, eval);
        drop(inner);
        self.ready.notify_one();
    }

    fn push_ready(inner: &mut Inner, eval: Evaluation) {
        let key = ns_key(&eval.namespace, &eval.job_id);
        let id = eval.id.clone();
        let priority = eval.priority;
        inner.evals.insert(id.clone(), eval);
        if inner.inflight_jobs.contains(&key)
            || inner.ready.iter().any(|r| {
                inner
                    .evals
                    .get(&r.id)
                    .is_some_and(|e| ns_key(&e.namespace, &e.job_id) == key)
            })
        {
            inner.waiting_by_job.entry(key).or_default().push_back(id);
            return;
        }
        inner.seq += 1;
        let order = Reverse(inner.seq);
        inner.ready.push(Ready {
            priority,
            order,
            id,
        });
    }

    /// Waits for the next ready evaluation and marks its job in flight.
    pub async fn dequeue(&self) -> Evaluation {
        loop {
            let notified = self.ready.notified();
            {
                let mut inner = self.lock();
                while let Some(r) = inner.ready.pop() {
                    if let Some(eval) = inner.evals.get(&r.id).cloned() {
                        inner
                            .inflight_jobs
                            .insert(ns_key(&eval.namespace, &eval.job_id));
                        return eval;
                    }
                }
            }
            notified.await;
        }
    }

    /// Marks an evaluation done, releasing its job. Returns evaluations made redundant by a
    /// newer one for the same job (the caller marks them cancelled).
    pub fn ack(&self, eval: &Evaluation) -> Vec<Evaluation> {
        let mut inner = self.lock();
        inner.evals.remove(&eval.id);
        let key = ns_key(&eval.namespace, &eval.job_id);
        inner.inflight_jobs.remove(&key);
        let mut cancelled = Vec::new();
        if let Some(mut waiting) = inner.waiting_by_job.remove(&key) {
            // Only the newest waiting evaluation matters: it sees the latest state anyway.
            if let Some(newest) = waiting.pop_back() {
                for id in waiting {
                    if let Some(e) = inner.evals.remove(&id) {
                        cancelled.push(e);
                    }
                }
                if let Some(e) = inner.evals.remove(&newest) {
                    Self::push_ready(&mut inner, e);
                }
            }
        }
        drop(inner);
        self.ready.notify_one();
        cancelled
    }

    /// Moves delayed evaluations whose time has come to the ready queue; returns the next
    /// wake-up time, if any.
    fn promote_delayed(&self) -> Option<DateTime<Utc>> {
        let now = Utc::now();
        let mut inner = self.lock();
        let due: Vec<_> = inner
            .delayed
            .keys()
            .take_while(|(at, _)| *at <= now)
            .cloned()
            .collect();
        let promoted = !due.is_empty();
        for k in due {
            if let Some(e) = inner.delayed.remove(&k) {
                Self::push_ready(&mut inner, e);
            }
        }
        let next = inner.delayed.keys().next().map(|(at, _)| *at);
        drop(inner);
        if promoted {
            self.ready.notify_waiters();
            self.ready.notify_one();
        }
        next
    }

    /// Runs forever, releasing delayed evaluations on time. Spawn once.
    pub async fn run_delayed(&self) {
        loop {
            let changed = self.delayed_changed.notified();
            match self.promote_delayed() {
                Some(at) => {
                    let wait = (at - Utc::now()).to_std().unwrap_or_default();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// Evaluations known to the broker (ready, waiting, delayed or in flight).
    pub fn len(&self) -> usize {
        let inner = self.lock();
        inner.evals.len() + inner.delayed.len()
    }

    /// True when nothing is queued or in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many evaluations are in each stage, in Nomad's `BrokerStats` terms.
    pub fn stats(&self) -> BrokerStats {
        let inner = self.lock();
        let ready: HashSet<&str> = inner.ready.iter().map(|r| r.id.as_str()).collect();
        let waiting: HashSet<&str> = inner
            .waiting_by_job
            .values()
            .flatten()
            .map(String::as_str)
            .collect();
        let mut stats = BrokerStats {
            total_waiting: inner.delayed.len(),
            ..BrokerStats::default()
        };
        for (id, eval) in &inner.evals {
            let by_type = stats.by_scheduler.entry(eval.r#type.clone()).or_default();
            if ready.contains(id.as_str()) {
                stats.total_ready += 1;
                by_type.ready += 1;
            } else if waiting.contains(id.as_str()) {
                stats.total_pending += 1;
            } else {
                stats.total_unacked += 1;
                by_type.unacked += 1;
            }
        }
        stats
    }
}

/// The broker's depths: ready for a worker, handed to one and not yet acknowledged, queued
/// behind another evaluation of the same job, and delayed until their `WaitUntil`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BrokerStats {
    pub total_ready: usize,
    pub total_unacked: usize,
    pub total_pending: usize,
    pub total_waiting: usize,
    /// Ready and unacknowledged evaluations by scheduler type.
    pub by_scheduler: BTreeMap<String, SchedulerStats>,
}

/// One scheduler type's share of [`BrokerStats`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SchedulerStats {
    pub ready: usize,
    pub unacked: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn eval(id: &str, job: &str, priority: i64) -> Evaluation {
        Evaluation {
            id: id.into(),
            namespace: "default".into(),
            job_id: job.into(),
            priority,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn priority_then_fifo_and_one_per_job() {
        let b = EvalBroker::default();
        b.enqueue(eval("1", "a", 50));
        b.enqueue(eval("2", "b", 70));
        b.enqueue(eval("3", "a", 90)); // waits: job a already queued
        b.enqueue(eval("4", "c", 50));
        assert_eq!(b.dequeue().await.id, "2");
        let first_a = b.dequeue().await;
        assert_eq!(first_a.id, "1");
        assert_eq!(b.dequeue().await.id, "4");
        // Job a is in flight: eval 3 is not handed out until 1 is acked.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), b.dequeue())
                .await
                .is_err()
        );
        assert!(b.ack(&first_a).is_empty());
        assert_eq!(b.dequeue().await.id, "3");
    }

    #[tokio::test]
    async fn older_waiting_evals_are_cancelled() {
        let b = EvalBroker::default();
        b.enqueue(eval("1", "a", 50));
        let e1 = b.dequeue().await;
        b.enqueue(eval("2", "a", 50));
        b.enqueue(eval("3", "a", 50));
        let cancelled = b.ack(&e1);
        assert_eq!(cancelled.len(), 1);
        assert_eq!(cancelled[0].id, "2");
        assert_eq!(b.dequeue().await.id, "3");
    }

    #[tokio::test]
    async fn delayed_evals_wait_until_due() {
        let b = std::sync::Arc::new(EvalBroker::default());
        let runner = b.clone();
        tokio::spawn(async move { runner.run_delayed().await });
        let mut e = eval("1", "a", 50);
        e.wait_until = Some(Utc::now() + chrono::Duration::milliseconds(150));
        b.enqueue(e);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), b.dequeue())
                .await
                .is_err()
        );
        let got = tokio::time::timeout(Duration::from_secs(2), b.dequeue()).await;
        assert_eq!(got.map(|e| e.id).ok(), Some("1".to_string()));
    }

    #[tokio::test]
    async fn stats_count_each_stage() {
        let b = EvalBroker::default();
        let typed = |id: &str, job: &str, t: &str| Evaluation {
            r#type: t.into(),
            ..eval(id, job, 50)
        };
        b.enqueue(typed("1", "a", "service"));
        b.enqueue(typed("2", "a", "service")); // behind 1: same job
        b.enqueue(typed("3", "b", "batch"));
        let mut delayed = typed("4", "c", "service");
        delayed.wait_until = Some(Utc::now() + chrono::Duration::hours(1));
        b.enqueue(delayed);
        assert_eq!(b.dequeue().await.id, "1");
        let s = b.stats();
        assert_eq!(
            (
                s.total_ready,
                s.total_unacked,
                s.total_pending,
                s.total_waiting
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(
            s.by_scheduler["service"],
            SchedulerStats {
                ready: 0,
                unacked: 1
            }
        );
        assert_eq!(
            s.by_scheduler["batch"],
            SchedulerStats {
                ready: 1,
                unacked: 0
            }
        );
    }
}
