//! Image reference counting and delayed removal (Nomad's docker coordinator GC).
//!
//! Every task holding an image is a reference. When the last one goes, removal is scheduled
//! after `image_delay`; a new reference before then cancels it, so a restarting task does not
//! lose (and re-pull) its image.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::task::JoinHandle;

/// Removes one image (by ID); errors are the remover's to log.
pub type Remover = Arc<dyn Fn(String) -> BoxFuture<'static, ()> + Send + Sync>;

#[derive(Default)]
struct State {
    refs: HashMap<String, HashSet<String>>,
    /// Scheduled removals, with a generation so a stale timer never removes a re-used image.
    pending: HashMap<String, (u64, JoinHandle<()>)>,
    generation: u64,
}

/// Per-image sets of task IDs and the timers of unused images.
pub struct ImageRefs {
    enabled: bool,
    delay: Duration,
    remover: Remover,
    state: Arc<Mutex<State>>,
}

impl ImageRefs {
    /// A refcount that removes unused images after `delay` when `enabled`.
    pub fn new(enabled: bool, delay: Duration, remover: Remover) -> Self {
        ImageRefs {
            enabled,
            delay,
            remover,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Records that `task_id` uses `image_id`, cancelling a scheduled removal.
    pub fn add(&self, image_id: &str, task_id: &str) {
        let mut state = self.lock();
        if let Some((_, timer)) = state.pending.remove(image_id) {
            timer.abort();
        }
        state
            .refs
            .entry(image_id.to_string())
            .or_default()
            .insert(task_id.to_string());
    }

    /// Drops `task_id`'s reference; the last one schedules removal after the delay.
    pub fn remove(&self, image_id: &str, task_id: &str) {
        let mut state = self.lock();
        let Some(holders) = state.refs.get_mut(image_id) else {
            return;
        };
        holders.remove(task_id);
        if !holders.is_empty() {
            return;
        }
        state.refs.remove(image_id);
        if !self.enabled {
            return;
        }
        state.generation += 1;
        let generation = state.generation;
        let shared = Arc::clone(&self.state);
        let remover = Arc::clone(&self.remover);
        let delay = self.delay;
        let image = image_id.to_string();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            {
                let mut state = lock(&shared);
                let ours = matches!(state.pending.get(&image), Some((g, _)) if *g == generation);
                if !ours || state.refs.contains_key(&image) {
                    return;
                }
                state.pending.remove(&image);
            }
            remover(image).await;
        });
        if let Some((_, old)) = state
            .pending
            .insert(image_id.to_string(), (generation, timer))
        {
            old.abort();
        }
    }

    /// Number of tasks holding `image_id`.
    pub fn holders(&self, image_id: &str) -> usize {
        self.lock().refs.get(image_id).map_or(0, HashSet::len)
    }

    /// Whether a removal of `image_id` is scheduled.
    pub fn removal_pending(&self, image_id: &str) -> bool {
        self.lock().pending.contains_key(image_id)
    }

    /// Cancels every scheduled removal (the driver is going away).
    pub fn shutdown(&self) {
        for (_, (_, timer)) in self.lock().pending.drain() {
            timer.abort();
        }
    }
}

/// Locks the state; a panic elsewhere cannot leave the maps half-updated, so poison is ignored.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
// The timers run on paused (virtual) time: a margin of tens of milliseconds between a
// check and the delay it observes would not hold on a loaded machine with a real clock.
mod tests {
    use super::*;
    use futures::FutureExt;

    fn recorder() -> (Remover, Arc<Mutex<Vec<String>>>) {
        let removed = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&removed);
        let remover: Remover = Arc::new(move |image: String| {
            let sink = Arc::clone(&sink);
            async move { sink.lock().unwrap().push(image) }.boxed()
        });
        (remover, removed)
    }

    #[tokio::test(start_paused = true)]
    async fn last_reference_schedules_removal_after_delay() {
        let (remover, removed) = recorder();
        let refs = ImageRefs::new(true, Duration::from_millis(100), remover);
        refs.add("img", "t1");
        refs.add("img", "t2");
        refs.remove("img", "t1");
        assert_eq!(refs.holders("img"), 1);
        assert!(!refs.removal_pending("img"));
        refs.remove("img", "t2");
        assert!(refs.removal_pending("img"));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(
            removed.lock().unwrap().is_empty(),
            "removed before the delay"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(*removed.lock().unwrap(), vec!["img".to_string()]);
        assert!(!refs.removal_pending("img"));
    }

    #[tokio::test(start_paused = true)]
    async fn new_reference_cancels_scheduled_removal() {
        let (remover, removed) = recorder();
        let refs = ImageRefs::new(true, Duration::from_millis(80), remover);
        refs.add("img", "t1");
        refs.remove("img", "t1");
        tokio::time::sleep(Duration::from_millis(20)).await;
        refs.add("img", "t2");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(removed.lock().unwrap().is_empty());
        // Released again: a fresh timer runs its full delay.
        refs.remove("img", "t2");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(removed.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_gc_never_removes() {
        let (remover, removed) = recorder();
        let refs = ImageRefs::new(false, Duration::from_millis(10), remover);
        refs.add("img", "t1");
        refs.remove("img", "t1");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(removed.lock().unwrap().is_empty());
        assert_eq!(refs.holders("img"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_release_is_harmless_and_shutdown_cancels() {
        let (remover, removed) = recorder();
        let refs = ImageRefs::new(true, Duration::from_millis(50), remover);
        refs.remove("nope", "t1");
        refs.add("img", "t1");
        refs.remove("img", "t1");
        refs.shutdown();
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(removed.lock().unwrap().is_empty());
    }
}
