//! Variable lock leases, as Nomad keeps them: a held lock lives for twice its TTL (grace for
//! the holder's network and clock) from its acquisition or last renewal; once that passes
//! the lease is gone (a renewal is refused), and after the lock's LockDelay the lock is
//! taken off the variable, so no one else can take it over before the delay protects the
//! old holder from a split brain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::Server;
use crate::structs::variable::VariableLock;

/// The leases of the locks this server holds timers for, by lock ID.
#[derive(Debug, Default)]
pub struct VariableLocks {
    leases: Mutex<HashMap<String, Instant>>,
}

fn lease_end(ttl: Duration) -> Instant {
    Instant::now() + ttl.saturating_mul(2)
}

impl VariableLocks {
    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a lease; false when one already runs for this lock.
    fn start(&self, lock_id: &str, ttl: Duration) -> bool {
        let mut leases = self.leases();
        if leases.contains_key(lock_id) {
            return false;
        }
        leases.insert(lock_id.to_string(), lease_end(ttl));
        true
    }

    /// Extends a running lease; false when it has already run out (or never ran).
    pub fn renew(&self, lock_id: &str, ttl: Duration) -> bool {
        match self.leases().get_mut(lock_id) {
            Some(end) => {
                *end = lease_end(ttl);
                true
            }
            None => false,
        }
    }

    /// Ends a lease (the lock was released).
    pub fn remove(&self, lock_id: &str) {
        self.leases().remove(lock_id);
    }

    /// When the lease ends; None once it is gone.
    fn end(&self, lock_id: &str) -> Option<Instant> {
        self.leases().get(lock_id).copied()
    }

    /// Whether a lease runs for this lock.
    pub fn is_leased(&self, lock_id: &str) -> bool {
        self.end(lock_id).is_some()
    }
}

impl Server {
    /// Starts the lease of a lock just acquired on `namespace`/`path`; when it runs out,
    /// the lock is taken off the variable after its LockDelay.
    pub fn watch_lock(self: &Arc<Self>, namespace: &str, path: &str, lock: &VariableLock) {
        if !self.var_locks.start(&lock.id, lock.ttl) {
            return;
        }
        let server = Arc::downgrade(self);
        let (namespace, path, lock) = (namespace.to_string(), path.to_string(), lock.clone());
        tokio::spawn(async move {
            loop {
                let end = match server.upgrade().and_then(|s| s.var_locks.end(&lock.id)) {
                    Some(end) => end,
                    // Released, or the server is gone.
                    None => return,
                };
                if Instant::now() >= end {
                    break;
                }
                tokio::time::sleep_until(end).await;
            }
            if let Some(s) = server.upgrade() {
                s.var_locks.remove(&lock.id);
            }
            tracing::debug!(%namespace, %path, "variable lock lease ran out, waiting for its delay");
            tokio::time::sleep(lock.lock_delay).await;
            if let Some(s) = server.upgrade()
                && let Err(e) = s.expire_lock(&namespace, &path, &lock.id).await
            {
                tracing::error!(%namespace, %path, error = %e, "removing an expired variable lock failed");
            }
        });
    }

    /// Gives every lock the state holds a fresh lease (a restarted server cannot know how
    /// much of the old one was left; Nomad does the same when a leader takes over).
    pub fn restore_lock_leases(self: &Arc<Self>) {
        let snap = self.state.snapshot();
        for var in snap.vars.variables.values() {
            if let Some(lock) = &var.meta.lock {
                self.watch_lock(&var.meta.namespace, &var.meta.path, lock);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lease_lasts_twice_its_ttl_and_renewal_extends_it() {
        let locks = VariableLocks::default();
        let ttl = Duration::from_secs(10);
        assert!(locks.start("l", ttl));
        assert!(!locks.start("l", ttl), "one lease per lock");
        tokio::time::advance(Duration::from_secs(15)).await;
        assert!(locks.renew("l", ttl));
        let end = locks.end("l").unwrap();
        assert_eq!(end - Instant::now(), Duration::from_secs(20));
        locks.remove("l");
        assert!(!locks.renew("l", ttl));
        assert!(!locks.is_leased("l"));
    }
}
