//! Garbage collection of terminal allocations: keeps at most a bounded number of finished
//! allocations (and optionally only for a while) on disk, destroying the oldest first.

use std::time::{Duration, Instant};

use super::alloc_runner::AllocRunnerHandle;
use super::config::GcConfig;

/// Picks the terminal allocations to destroy now, oldest first.
pub fn select(
    allocs: &[AllocRunnerHandle],
    cfg: &GcConfig,
    now: Instant,
) -> Vec<AllocRunnerHandle> {
    let mut finished: Vec<(Instant, &AllocRunnerHandle)> = allocs
        .iter()
        .filter(|a| !a.is_destroyed())
        .filter_map(|a| a.finished_at().map(|t| (t, a)))
        .collect();
    finished.sort_by_key(|(t, _)| *t);
    let excess = finished.len().saturating_sub(cfg.max_terminal_allocs);
    finished
        .iter()
        .enumerate()
        .filter(|(i, (t, _))| {
            *i < excess
                || cfg
                    .terminal_retention
                    .is_some_and(|keep: Duration| now.duration_since(*t) >= keep)
        })
        .map(|(_, (_, a))| (*a).clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::testutil::{Harness, alloc, restart, task};

    #[tokio::test]
    async fn keeps_the_newest_terminal_allocs() {
        let mut hs = Vec::new();
        for _ in 0..3 {
            let h = Harness::start(alloc(
                "batch",
                vec![task("t", "true")],
                restart(0, 10, "fail"),
            ));
            h.wait_terminal(Duration::from_secs(10)).await;
            hs.push(h);
        }
        let running = Harness::start(alloc(
            "service",
            vec![task("t", "while true; do sleep 0.05; done")],
            restart(0, 10, "fail"),
        ));
        running.wait_running("t", Duration::from_secs(10)).await;
        let mut handles: Vec<_> = hs.iter().map(|h| h.handle.clone()).collect();
        handles.push(running.handle.clone());
        let cfg = GcConfig {
            max_terminal_allocs: 1,
            ..Default::default()
        };
        let mut picked: Vec<String> = select(&handles, &cfg, Instant::now())
            .iter()
            .map(|a| a.id().to_string())
            .collect();
        picked.sort();
        let mut oldest: Vec<String> = hs[..2].iter().map(|h| h.handle.id().to_string()).collect();
        oldest.sort();
        assert_eq!(picked, oldest);

        let by_age = GcConfig {
            max_terminal_allocs: 50,
            terminal_retention: Some(Duration::ZERO),
            ..Default::default()
        };
        assert_eq!(select(&handles, &by_age, Instant::now()).len(), 3);
        for a in select(&handles, &cfg, Instant::now()) {
            a.destroy().await;
            assert!(!a.alloc_dir().path().exists());
        }
        assert_eq!(select(&handles, &cfg, Instant::now()).len(), 0);
        running.handle.destroy().await;
    }
}
