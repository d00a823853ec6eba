//! Blocked evaluations: evaluations that could not place everything wait here, one per job,
//! and go back to the broker when capacity may have appeared (a node became ready or
//! changed, or allocations stopped).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::state::{NsKey, ns_key};
use crate::structs::Evaluation;

/// The blocked evaluations, keyed by job.
#[derive(Default)]
pub struct BlockedEvals {
    by_job: Mutex<HashMap<NsKey, Evaluation>>,
    /// State index of the last unblock. An evaluation scheduled on an older snapshot missed
    /// that capacity change, so it must not wait for the next one.
    last_unblock: AtomicU64,
}

/// What became of an evaluation handed to [`BlockedEvals::block_at`].
pub enum Blocked {
    /// It waits for capacity; `replaced` is an older blocked eval of the same job (to cancel).
    Waiting { replaced: Option<Evaluation> },
    /// Capacity appeared after its snapshot: run it again now.
    RetryNow(Evaluation),
}

impl BlockedEvals {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NsKey, Evaluation>> {
        match self.by_job.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Tracks a blocked evaluation; returns the one it replaces for the same job (to cancel).
    pub fn block(&self, eval: Evaluation) -> Option<Evaluation> {
        let key = ns_key(&eval.namespace, &eval.job_id);
        let old = self.lock().insert(key, eval.clone());
        old.filter(|o| o.id != eval.id)
    }

    /// Forgets the blocked evaluation of a job (the job was stopped or re-registered).
    pub fn untrack(&self, namespace: &str, job_id: &str) -> Option<Evaluation> {
        self.lock().remove(&ns_key(namespace, job_id))
    }

    /// Blocks an evaluation that was scheduled against the snapshot at `snapshot_index`,
    /// unless capacity has appeared since then.
    pub fn block_at(&self, eval: Evaluation, snapshot_index: u64) -> Blocked {
        // Checked under the lock so an unblock cannot slip between the check and the insert.
        let mut by_job = self.lock();
        if self.last_unblock.load(Ordering::SeqCst) > snapshot_index {
            return Blocked::RetryNow(eval);
        }
        let key = ns_key(&eval.namespace, &eval.job_id);
        let old = by_job.insert(key, eval.clone());
        Blocked::Waiting {
            replaced: old.filter(|o| o.id != eval.id),
        }
    }

    /// Takes every blocked evaluation so it can be retried; `index` is the state index the
    /// capacity change was written at.
    pub fn unblock_all(&self, index: u64) -> Vec<Evaluation> {
        let mut by_job = self.lock();
        self.last_unblock.fetch_max(index, Ordering::SeqCst);
        by_job.drain().map(|(_, e)| e).collect()
    }

    /// How many evaluations are blocked.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when none are blocked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
