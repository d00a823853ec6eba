//! Blocked evaluations: evaluations that could not place everything wait here, one per job,
//! and go back to the broker when capacity may have appeared (a node became ready or
//! changed, or allocations stopped).

use std::collections::HashMap;
use std::sync::Mutex;

use super::state::{NsKey, ns_key};
use crate::structs::Evaluation;

/// The blocked evaluations, keyed by job.
#[derive(Default)]
pub struct BlockedEvals {
    by_job: Mutex<HashMap<NsKey, Evaluation>>,
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

    /// Takes every blocked evaluation so it can be retried.
    pub fn unblock_all(&self) -> Vec<Evaluation> {
        self.lock().drain().map(|(_, e)| e).collect()
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
