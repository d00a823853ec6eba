//! The latest result of every check of every allocation on this client, as
//! `/v1/client/allocation/:id/checks` answers them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::structs::service::CheckQueryResult;

/// Results by allocation, then by check ID. Cheap to clone; every clone is the same store.
#[derive(Debug, Clone, Default)]
pub struct CheckStore {
    results: Arc<Mutex<HashMap<String, BTreeMap<String, CheckQueryResult>>>>,
}

impl CheckStore {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, BTreeMap<String, CheckQueryResult>>> {
        self.results.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the latest result of a check of `alloc_id`.
    pub fn set(&self, alloc_id: &str, result: CheckQueryResult) {
        self.lock()
            .entry(alloc_id.to_string())
            .or_default()
            .insert(result.id.clone(), result);
    }

    /// The latest results of an allocation's checks (empty when it has none yet).
    pub fn results(&self, alloc_id: &str) -> BTreeMap<String, CheckQueryResult> {
        self.lock().get(alloc_id).cloned().unwrap_or_default()
    }

    /// Drops what is known of checks of `alloc_id` that are not in `keep`.
    pub fn retain(&self, alloc_id: &str, keep: &[String]) {
        let mut all = self.lock();
        if let Some(r) = all.get_mut(alloc_id) {
            r.retain(|id, _| keep.contains(id));
            if r.is_empty() {
                all.remove(alloc_id);
            }
        }
    }
}
