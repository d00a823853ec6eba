//! The latest result of every check of every allocation on this client, as
//! `/v1/client/allocation/:id/checks` answers them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use crate::structs::service::CheckQueryResult;

/// Results by allocation, then by check ID. Cheap to clone; every clone is the same store.
#[derive(Debug, Clone, Default)]
pub struct CheckStore {
    results: Arc<Mutex<HashMap<String, BTreeMap<String, CheckQueryResult>>>>,
    /// The HTTP client every check of the node shares, built when the first one runs: an
    /// agent whose allocations have no checks never pays for it.
    http: Arc<OnceLock<reqwest::Client>>,
}

impl CheckStore {
    /// The HTTP client checks probe with.
    pub fn http(&self) -> reqwest::Client {
        self.http
            .get_or_init(|| {
                crate::tls::install_default_provider();
                // Checks reach tasks on loopback and private addresses; proxies are not theirs.
                reqwest::Client::builder()
                    .no_proxy()
                    .build()
                    .unwrap_or_default()
            })
            .clone()
    }

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
