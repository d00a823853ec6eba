//! Blocking queries: park a request on the state store's per-table index watches until a
//! write moves the index past the client's `?index`, or the wait (+ jitter) runs out.
//! Waking is event-driven through `tokio::sync::watch`; nothing polls.

use std::future::Future;
use std::time::Duration;

use futures::future::select_all;
use tokio::sync::watch;
use tokio::time::Instant;

use super::QueryOptions;

/// Fraction of the wait added as random jitter, so concurrent waiters don't wake together.
pub const JITTER_FRACTION: u32 = 16;

/// Why `wait_for_index` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// A watched index is above the requested one.
    Advanced,
    /// The deadline passed first.
    TimedOut,
    /// A watched table's sender was dropped (shutdown) or nothing was watched.
    Closed,
}

/// `wait` plus a random extra of up to `wait / 16`, as seed 004 describes.
pub fn with_jitter(wait: Duration) -> Duration {
    let max_extra = u64::try_from((wait / JITTER_FRACTION).as_nanos()).unwrap_or(u64::MAX);
    let extra = if max_extra == 0 {
        0
    } else {
        rand::random_range(0..=max_extra)
    };
    wait.saturating_add(Duration::from_nanos(extra))
}

/// The highest current value among the watches (0 when there are none).
pub fn current_index(watches: &[watch::Receiver<u64>]) -> u64 {
    watches.iter().map(|rx| *rx.borrow()).max().unwrap_or(0)
}

/// Waits until any watched index exceeds `min_index`, `deadline` passes, or a sender is dropped.
pub async fn wait_for_index(
    watches: &[watch::Receiver<u64>],
    min_index: u64,
    deadline: Instant,
) -> WaitOutcome {
    // Private clones so the caller's receivers keep their own "seen" state.
    let mut rxs: Vec<watch::Receiver<u64>> = watches.to_vec();
    if rxs.is_empty() {
        return WaitOutcome::Closed;
    }
    loop {
        // Marking each value seen before waiting means any later write wakes `changed()`.
        let current = rxs
            .iter_mut()
            .map(|rx| *rx.borrow_and_update())
            .max()
            .unwrap_or(0);
        if current > min_index {
            return WaitOutcome::Advanced;
        }
        let any_changed = select_all(rxs.iter_mut().map(|rx| Box::pin(rx.changed())));
        match tokio::time::timeout_at(deadline, any_changed).await {
            Err(_elapsed) => return WaitOutcome::TimedOut,
            Ok((Err(_closed), _, _)) => return WaitOutcome::Closed,
            Ok((Ok(()), _, _)) => {}
        }
    }
}

/// Runs `query` as a Nomad blocking query.
///
/// `query` returns `(index, value)`, where `index` is what the response reports in
/// `X-Nomad-Index` (a table index for lists, the object's ModifyIndex for single objects).
/// Without `?index` it runs once. Otherwise it waits for a watched table to move past
/// `?index`, runs, and — if the result's own index has still not moved (a write touched
/// another row) — waits for the next write, until `wait + jitter` is spent. On timeout or a
/// dropped sender it runs once more and returns whatever the state is.
pub async fn blocking_query<T, E, F, Fut>(
    watches: &[watch::Receiver<u64>],
    opts: &QueryOptions,
    mut query: F,
) -> Result<(u64, T), E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(u64, T), E>>,
{
    if !opts.is_blocking() {
        return query().await;
    }
    let deadline = Instant::now() + with_jitter(opts.wait);
    let mut min_index = opts.index;
    loop {
        let outcome = wait_for_index(watches, min_index, deadline).await;
        // Read before querying: a write racing the query then still wakes the next wait.
        let seen = current_index(watches);
        let (index, value) = query().await?;
        if index > opts.index || outcome != WaitOutcome::Advanced {
            return Ok((index, value));
        }
        min_index = min_index.max(seen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn opts(index: u64, wait: Duration) -> QueryOptions {
        QueryOptions {
            index,
            wait,
            ..QueryOptions::default()
        }
    }

    async fn read(rx: &watch::Receiver<u64>) -> Result<(u64, u64), Infallible> {
        let v = *rx.borrow();
        Ok((v, v))
    }

    #[tokio::test(start_paused = true)]
    async fn write_during_wait_wakes_early() {
        let (tx, rx) = watch::channel(5u64);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = tx.send(6);
            // Keep the sender alive past the wake-up so "closed" cannot explain it.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        let start = Instant::now();
        let watches = [rx.clone()];
        let (index, _) = blocking_query(&watches, &opts(5, Duration::from_secs(60)), || read(&rx))
            .await
            .unwrap();
        assert_eq!(index, 6);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn no_write_returns_after_wait_plus_jitter() {
        let (_tx, rx) = watch::channel(5u64);
        let wait = Duration::from_secs(16);
        let start = Instant::now();
        let (index, _) = blocking_query(std::slice::from_ref(&rx), &opts(5, wait), || read(&rx))
            .await
            .unwrap();
        let elapsed = start.elapsed();
        assert_eq!(index, 5);
        assert!(elapsed >= wait, "{elapsed:?}");
        assert!(elapsed <= wait + wait / 16, "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn index_already_passed_returns_immediately() {
        let (_tx, rx) = watch::channel(10u64);
        let start = Instant::now();
        let (index, _) = blocking_query(
            std::slice::from_ref(&rx),
            &opts(5, Duration::from_secs(60)),
            || read(&rx),
        )
        .await
        .unwrap();
        assert_eq!(index, 10);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn no_index_runs_once_without_waiting() {
        let (_tx, rx) = watch::channel(3u64);
        let start = Instant::now();
        let (index, _) = blocking_query(
            std::slice::from_ref(&rx),
            &opts(0, Duration::from_secs(60)),
            || read(&rx),
        )
        .await
        .unwrap();
        assert_eq!(index, 3);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_sender_returns_immediately() {
        let (tx, rx) = watch::channel(5u64);
        drop(tx);
        let start = Instant::now();
        let (index, _) = blocking_query(
            std::slice::from_ref(&rx),
            &opts(5, Duration::from_secs(60)),
            || read(&rx),
        )
        .await
        .unwrap();
        assert_eq!(index, 5);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn sender_dropped_mid_wait_wakes() {
        let (tx, rx) = watch::channel(5u64);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            drop(tx);
        });
        let start = Instant::now();
        let out = wait_for_index(&[rx], 5, Instant::now() + Duration::from_secs(60)).await;
        assert_eq!(out, WaitOutcome::Closed);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn any_of_several_tables_wakes() {
        let (_jobs_tx, jobs) = watch::channel(4u64);
        let (allocs_tx, allocs) = watch::channel(7u64);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = allocs_tx.send(9);
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        let start = Instant::now();
        let out =
            wait_for_index(&[jobs, allocs], 7, Instant::now() + Duration::from_secs(60)).await;
        assert_eq!(out, WaitOutcome::Advanced);
        assert_eq!(start.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn unrelated_write_keeps_waiting_without_spinning() {
        // The table moves at t=1s (another object) and t=2s (ours); the object's own index
        // only passes ?index at t=2s.
        let (tx, rx) = watch::channel(5u64);
        let object_index = Arc::new(AtomicUsize::new(5));
        let obj = object_index.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = tx.send(6);
            tokio::time::sleep(Duration::from_secs(1)).await;
            obj.store(7, Ordering::SeqCst);
            let _ = tx.send(7);
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        let runs = AtomicUsize::new(0);
        let start = Instant::now();
        let (index, ()) = blocking_query(&[rx], &opts(5, Duration::from_secs(60)), || {
            runs.fetch_add(1, Ordering::SeqCst);
            let idx = object_index.load(Ordering::SeqCst) as u64;
            async move { Ok::<_, Infallible>((idx, ())) }
        })
        .await
        .unwrap();
        assert_eq!(index, 7);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn jitter_bounds() {
        let wait = Duration::from_secs(160);
        for _ in 0..100 {
            let d = with_jitter(wait);
            assert!(d >= wait && d <= wait + Duration::from_secs(10));
        }
        assert_eq!(with_jitter(Duration::ZERO), Duration::ZERO);
    }
}
