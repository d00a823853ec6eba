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
