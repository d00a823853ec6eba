//! Agent telemetry: the metrics registry every part of the agent records into through the
//! `metrics` crate's macros (`metrics::counter!("nomad.client.allocs.running", ...)`), and
//! its two renderings for `GET /v1/metrics` — Nomad's JSON summary and the Prometheus text
//! format. Names are Nomad's dotted names, written out in full at each call site.
//!
//! Neutral ground: client and server both record here without knowing each other; only
//! the agent installs the registry and serves it.

mod process;
mod registry;
mod render;
mod series;

use std::sync::OnceLock;
use std::time::Duration;

pub use process::{ProcessStats, emit_runtime_gauges};
pub use registry::{Registry, RegistrySettings};
pub use render::{Exposition, GaugeValue, MetricsSummary, SampledValue, prometheus_name};

/// Installs `settings` as the process-wide recorder the first time, and returns the
/// installed registry every time (a process has one recorder; later settings are ignored).
pub fn install(settings: RegistrySettings) -> Registry {
    static GLOBAL: OnceLock<Registry> = OnceLock::new();
    GLOBAL
        .get_or_init(|| {
            let registry = Registry::new(settings);
            if metrics::set_global_recorder(registry.clone()).is_err() {
                tracing::warn!(
                    "a metrics recorder was already installed; /v1/metrics will be empty"
                );
            }
            registry
        })
        .clone()
}

/// Sets the runtime gauges every `interval` until the runtime stops.
pub fn spawn_runtime_collector(interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            emit_runtime_gauges();
        }
    })
}
