//! Watches the node's allocations on the servers with a blocking query, pulls the ones that
//! changed, and adds, updates or removes local alloc runners to match.

use std::collections::{BTreeMap, HashMap};
use tokio::sync::watch;

use crate::rpc::{ClientAllocsRequest, GetAllocsRequest, RpcError};

use super::Inner;
use super::util::Backoff;

/// Pause before re-asking after an answer that brought nothing new.
const STALE_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// What to do after comparing the server's allocation map with the local runners.
#[derive(Debug, Default, PartialEq)]
pub struct Diff {
    /// Unknown or changed allocations to fetch.
    pub pull: Vec<String>,
    /// Local allocations the server no longer lists.
    pub removed: Vec<String>,
}

/// Compares `server` (ID → AllocModifyIndex) with `local` (same), skipping `invalid` IDs.
pub fn diff(
    local: &HashMap<String, u64>,
    server: &BTreeMap<String, u64>,
    invalid: &std::collections::HashSet<String>,
) -> Diff {
    let pull = server
        .iter()
        .filter(|(id, idx)| !invalid.contains(*id) && local.get(*id).is_none_or(|l| *idx > l))
        .map(|(id, _)| id.clone())
        .collect();
    let mut removed: Vec<String> = local
        .keys()
        .filter(|id| !server.contains_key(*id))
        .cloned()
        .collect();
    removed.sort();
    Diff { pull, removed }
}

/// Runs until `shutdown` flips.
pub(crate) async fn run(inner: std::sync::Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    let t = &inner.cfg.timings;
    let mut backoff = Backoff::new(t.retry_backoff_min, t.retry_backoff_max);
    let wait = t.alloc_query_wait;
    let mut index = 0u64;
    loop {
        tokio::select! {
            _ = inner.node.wait_registered() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let (node_id, secret_id) = inner.node.identity();
        let req = ClientAllocsRequest {
            node_id,
            secret_id,
            min_query_index: index,
            max_query_time: i64::try_from(wait.as_nanos()).unwrap_or(i64::MAX),
        };
        let res = tokio::select! {
            r = inner.server.get_client_allocs(req, wait) => r,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let resp = match res {
            Ok(r) => r,
            Err(e) => {
                if matches!(e, RpcError::NodeNotFound) {
                    inner.node.request_register(true);
                }
                let d = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?d, "fetching allocations failed");
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
                continue;
            }
        };
        if resp.index <= index {
            // A stale answer (or the wait ran out with nothing new); ask again, pausing
            // briefly so a server that answers at once cannot make this a busy loop.
            tokio::select! {
                _ = tokio::time::sleep(STALE_PAUSE) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            continue;
        }
        let local = inner.local_indexes();
        // Skipped allocations are forgotten once the server stops listing them; without a
        // local runner nothing else would ever remove them.
        inner
            .invalid
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id| resp.allocs.contains_key(id));
        let invalid = inner.invalid_ids();
        let d = diff(&local, &resp.allocs, &invalid);
        let mut pulled = Vec::new();
        if !d.pull.is_empty() {
            match inner
                .server
                .get_allocs({
                    let (node_id, secret_id) = inner.node.identity();
                    GetAllocsRequest {
                        node_id,
                        secret_id,
                        alloc_ids: d.pull.clone(),
                    }
                })
                .await
            {
                Ok(r) if r.allocs.len() >= d.pull.len() => pulled = r.allocs,
                other => {
                    let why = match other {
                        Err(e) => e.to_string(),
                        Ok(r) => format!("got {} of {} allocations", r.allocs.len(), d.pull.len()),
                    };
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %why, retry_in = ?delay, "pulling allocations failed");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.wait_for(|s| *s) => return,
                    }
                    continue;
                }
            }
        }
        backoff.reset();
        for a in &pulled {
            tracing::debug!(target: "yurt::latency", step = "alloc pulled", alloc_id = %a.id, job_id = %a.job_id);
        }
        for id in &d.removed {
            inner.remove_alloc(id);
        }
        for alloc in pulled {
            let known = local.get(&alloc.id).copied();
            match known {
                Some(old) if alloc.alloc_modify_index > old => inner.update_alloc(alloc),
                Some(_) => {}
                None => inner.add_alloc(alloc),
            }
        }
        index = resp.index;
        inner.contacted.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_pulls_new_and_changed_and_finds_removed() {
        let local = HashMap::from([
            ("a".to_string(), 5),
            ("b".to_string(), 7),
            ("gone".to_string(), 1),
        ]);
        let server = BTreeMap::from([
            ("a".to_string(), 5),
            ("b".to_string(), 9),
            ("new".to_string(), 3),
            ("bad".to_string(), 3),
        ]);
        let invalid = std::collections::HashSet::from(["bad".to_string()]);
        assert_eq!(
            diff(&local, &server, &invalid),
            Diff {
                pull: vec!["b".into(), "new".into()],
                removed: vec!["gone".into()],
            }
        );
    }
}
