//! The storage behind one series: a counter, a gauge or a sample (timing) keeps what both
//! views need — the aggregate of the current in-memory interval for the JSON view (Nomad's
//! go-metrics `InmemSink` shows per-interval Count/Sum/Min/Max) and running totals for the
//! Prometheus view. Counters and gauges are atomics only: they sit on hot paths (plans,
//! registrations) where a lock per update would serialize the workers.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics::{CounterFn, GaugeFn, HistogramFn};

/// What one interval saw of a counter or sample, as go-metrics' `AggregateSample` reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregate {
    pub count: u64,
    pub sum: f64,
    pub sum_sq: f64,
    pub min: f64,
    pub max: f64,
}

impl Aggregate {
    /// Nothing seen yet.
    pub const EMPTY: Aggregate = Aggregate {
        count: 0,
        sum: 0.0,
        sum_sq: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };

    fn ingest(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        self.sum_sq += v * v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    /// The sample standard deviation, computed as go-metrics does.
    pub fn stddev(&self) -> f64 {
        let n = self.count as f64;
        let div = n * (n - 1.0);
        if div <= 0.0 {
            return 0.0;
        }
        ((n * self.sum_sq - self.sum * self.sum) / div)
            .max(0.0)
            .sqrt()
    }
}

/// A monotonically increasing counter.
#[derive(Debug)]
pub struct CounterCell {
    /// Everything ever added: the Prometheus value.
    total: AtomicU64,
    /// The current interval: increments, their sum, sum of squares, smallest and largest.
    count: AtomicU64,
    sum: AtomicU64,
    sum_sq: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
}

impl Default for CounterCell {
    fn default() -> Self {
        CounterCell {
            total: AtomicU64::new(0),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            sum_sq: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }
}

impl CounterCell {
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// The current interval's aggregate, reset for the next one when `reset`. An increment
    /// racing the reset may land in either interval, never in none.
    pub fn interval(&self, reset: bool) -> Aggregate {
        let take = |a: &AtomicU64, fresh: u64| {
            if reset {
                a.swap(fresh, Ordering::Relaxed)
            } else {
                a.load(Ordering::Relaxed)
            }
        };
        let count = take(&self.count, 0);
        let sum = take(&self.sum, 0);
        let sum_sq = take(&self.sum_sq, 0);
        let min = take(&self.min, u64::MAX);
        let max = take(&self.max, 0);
        if count == 0 {
            return Aggregate::EMPTY;
        }
        Aggregate {
            count,
            sum: sum as f64,
            sum_sq: sum_sq as f64,
            min: min as f64,
            max: max as f64,
        }
    }
}

impl CounterFn for CounterCell {
    fn increment(&self, value: u64) {
        self.total.fetch_add(value, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.sum_sq
            .fetch_add(value.saturating_mul(value), Ordering::Relaxed);
        self.min.fetch_min(value, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        let before = self.total.fetch_max(value, Ordering::Relaxed);
        if value > before {
            let delta = value - before;
            self.count.fetch_add(1, Ordering::Relaxed);
            self.sum.fetch_add(delta, Ordering::Relaxed);
            self.sum_sq
                .fetch_add(delta.saturating_mul(delta), Ordering::Relaxed);
            self.min.fetch_min(delta, Ordering::Relaxed);
            self.max.fetch_max(delta, Ordering::Relaxed);
        }
    }
}

/// A value that goes up and down; remembers when it was last set so series of things that
/// are gone (a stopped allocation's memory) stop being shown.
#[derive(Debug)]
pub struct GaugeCell {
    bits: AtomicU64,
    /// Milliseconds since the registry's start when last set.
    set_at: AtomicU64,
    epoch: Instant,
}

impl GaugeCell {
    pub fn new(epoch: Instant) -> Self {
        GaugeCell {
            bits: AtomicU64::new(0f64.to_bits()),
            set_at: AtomicU64::new(millis_since(epoch)),
            epoch,
        }
    }

    pub fn value(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }

    /// How long ago the gauge was last set.
    pub fn age(&self) -> Duration {
        let now = millis_since(self.epoch);
        Duration::from_millis(now.saturating_sub(self.set_at.load(Ordering::Relaxed)))
    }

    fn touch(&self) {
        self.set_at
            .store(millis_since(self.epoch), Ordering::Relaxed);
    }

    fn update(&self, f: impl Fn(f64) -> f64) {
        let _ = self
            .bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(f(f64::from_bits(b)).to_bits())
            });
        self.touch();
    }
}

impl GaugeFn for GaugeCell {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }

    fn set(&self, value: f64) {
        self.bits.store(value.to_bits(), Ordering::Relaxed);
        self.touch();
    }
}

fn millis_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

/// How long observations stay in a summary's quantile window (go-metrics' Prometheus sink
/// gives its summaries a 10s MaxAge).
pub const QUANTILE_WINDOW: Duration = Duration::from_secs(10);
/// Observations kept for quantiles at most; older ones go first.
const QUANTILE_CAP: usize = 1024;

#[derive(Debug)]
struct SampleState {
    interval: Aggregate,
    total_count: u64,
    total_sum: f64,
    window: VecDeque<(Instant, f64)>,
}

/// A distribution of observations (timings in milliseconds, as go-metrics' `MeasureSince`).
/// One lock per observation: samples are recorded once per request, evaluation or plan,
/// never per placement.
#[derive(Debug)]
pub struct SampleCell {
    state: Mutex<SampleState>,
}

impl Default for SampleCell {
    fn default() -> Self {
        SampleCell {
            state: Mutex::new(SampleState {
                interval: Aggregate::EMPTY,
                total_count: 0,
                total_sum: 0.0,
                window: VecDeque::new(),
            }),
        }
    }
}

/// What the Prometheus view shows of a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SummarySnapshot {
    pub count: u64,
    pub sum: f64,
    /// (quantile, value); NaN when the window is empty, as client_golang reports it.
    pub quantiles: Vec<(f64, f64)>,
}

/// The quantiles go-metrics' Prometheus sink reports.
pub const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];

impl SampleCell {
    fn lock(&self) -> std::sync::MutexGuard<'_, SampleState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn interval(&self, reset: bool) -> Aggregate {
        let mut s = self.lock();
        let out = s.interval;
        if reset {
            s.interval = Aggregate::EMPTY;
        }
        out
    }

    pub fn summary(&self) -> SummarySnapshot {
        let mut s = self.lock();
        let now = Instant::now();
        while s
            .window
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > QUANTILE_WINDOW)
        {
            s.window.pop_front();
        }
        let mut values: Vec<f64> = s.window.iter().map(|(_, v)| *v).collect();
        values.sort_by(f64::total_cmp);
        let quantiles = QUANTILES
            .iter()
            .map(|q| (*q, quantile(&values, *q)))
            .collect();
        SummarySnapshot {
            count: s.total_count,
            sum: s.total_sum,
            quantiles,
        }
    }
}

/// The nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl HistogramFn for SampleCell {
    fn record(&self, value: f64) {
        let mut s = self.lock();
        s.interval.ingest(value);
        s.total_count += 1;
        s.total_sum += value;
        if s.window.len() == QUANTILE_CAP {
            s.window.pop_front();
        }
        s.window.push_back((Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_keeps_totals_across_intervals() {
        let c = CounterCell::default();
        c.increment(2);
        c.increment(4);
        let a = c.interval(true);
        assert_eq!((a.count, a.sum, a.min, a.max), (2, 6.0, 2.0, 4.0));
        assert_eq!(a.mean(), 3.0);
        assert!((a.stddev() - 2f64.sqrt()).abs() < 1e-9);
        assert_eq!(c.interval(false), Aggregate::EMPTY);
        c.increment(1);
        assert_eq!(c.total(), 7);
        assert_eq!(c.interval(false).count, 1);
    }

    #[test]
    fn gauge_arithmetic_and_set() {
        let g = GaugeCell::new(Instant::now());
        g.set(5.0);
        g.increment(2.5);
        g.decrement(1.0);
        assert_eq!(g.value(), 6.5);
        assert!(g.age() < Duration::from_secs(5));
    }

    #[test]
    fn sample_quantiles_and_totals() {
        let s = SampleCell::default();
        for v in 1..=100 {
            s.record(v as f64);
        }
        let snap = s.summary();
        assert_eq!(snap.count, 100);
        assert_eq!(snap.sum, 5050.0);
        assert_eq!(snap.quantiles, vec![(0.5, 50.0), (0.9, 90.0), (0.99, 99.0)]);
        let a = s.interval(true);
        assert_eq!((a.count, a.min, a.max), (100, 1.0, 100.0));
        assert_eq!(s.interval(false).count, 0);
        assert_eq!(s.summary().count, 100, "totals outlive the interval");
        assert!(SampleCell::default().summary().quantiles[0].1.is_nan());
    }
}
