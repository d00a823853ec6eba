//! The recorder behind the `metrics` macros: every series by key, and the last finished
//! in-memory interval that the JSON view shows (as go-metrics' `InmemSink` shows the most
//! recent complete interval, or the current one before any has completed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, Utc};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

use super::render::{GaugeValue, MetricsSummary, SampledValue, labels_of};
use super::series::{CounterCell, GaugeCell, SampleCell};

/// How the registry labels and ages its series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    /// The `host` label put on every gauge; `None` with `disable_hostname`.
    pub host: Option<String>,
    /// Length of one in-memory interval (`in_memory_collection_interval`, default 10s).
    pub interval: Duration,
    /// A gauge not set for this long is dropped (go-metrics' Prometheus sink expires series
    /// after 60s): the allocation or job it described is gone.
    pub gauge_expiry: Duration,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            host: None,
            interval: Duration::from_secs(10),
            gauge_expiry: Duration::from_secs(60),
        }
    }
}

type Table<T> = RwLock<HashMap<Key, Arc<T>>>;

struct Inner {
    settings: RegistrySettings,
    epoch: Instant,
    counters: Table<CounterCell>,
    gauges: Table<GaugeCell>,
    samples: Table<SampleCell>,
    /// Start of the interval in progress.
    current_start: Mutex<DateTime<Utc>>,
    /// The last finished interval, once one has finished.
    last: Mutex<Option<MetricsSummary>>,
}

/// The metrics registry; cheap to clone (one shared store).
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

/// Gets or creates the series of `key`. The read lock is the common path; callers on hot
/// paths keep the returned handle instead of looking it up each time.
fn series<T>(table: &Table<T>, key: &Key, make: impl FnOnce() -> T) -> Arc<T> {
    if let Some(cell) = table.read().unwrap_or_else(|p| p.into_inner()).get(key) {
        return cell.clone();
    }
    table
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key.clone())
        .or_insert_with(|| Arc::new(make()))
        .clone()
}

fn read<T>(table: &Table<T>) -> Vec<(Key, Arc<T>)> {
    table
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The start of the interval `now` falls in, as go-metrics truncates it.
fn interval_start(now: DateTime<Utc>, interval: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(interval)
        .ok()
        .and_then(|d| now.duration_trunc(d).ok())
        .unwrap_or(now)
}

impl Registry {
    pub fn new(settings: RegistrySettings) -> Self {
        let start = interval_start(Utc::now(), settings.interval);
        Registry {
            inner: Arc::new(Inner {
                settings,
                epoch: Instant::now(),
                counters: RwLock::default(),
                gauges: RwLock::default(),
                samples: RwLock::default(),
                current_start: Mutex::new(start),
                last: Mutex::new(None),
            }),
        }
    }

    pub fn settings(&self) -> &RegistrySettings {
        &self.inner.settings
    }

    /// The JSON view: the last finished interval, or the current one before any finished.
    pub fn display(&self) -> MetricsSummary {
        if let Some(last) = self
            .inner
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return last;
        }
        self.interval_summary(false)
    }

    /// Ends the interval in progress: its aggregates become the JSON view and start again
    /// from zero, and gauges nobody set for `gauge_expiry` are dropped.
    pub fn rotate(&self) {
        let summary = self.interval_summary(true);
        *self.inner.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(summary);
        *self
            .inner
            .current_start
            .lock()
            .unwrap_or_else(|p| p.into_inner()) =
            interval_start(Utc::now(), self.inner.settings.interval);
        let expiry = self.inner.settings.gauge_expiry;
        self.inner
            .gauges
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, g| g.age() <= expiry);
    }

    /// Rotates every interval until the runtime stops.
    pub fn spawn_rotation(&self) -> tokio::task::JoinHandle<()> {
        let registry = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(registry.inner.settings.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                registry.rotate();
            }
        })
    }

    fn interval_summary(&self, reset: bool) -> MetricsSummary {
        let settings = &self.inner.settings;
        let start = *self
            .inner
            .current_start
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let secs = settings.interval.as_secs_f64().max(f64::MIN_POSITIVE);
        let mut gauges: Vec<GaugeValue> = self
            .gauges()
            .into_iter()
            .filter(|(_, g)| g.age() <= settings.interval)
            .map(|(k, g)| GaugeValue {
                name: k.name().to_string(),
                value: g.value(),
                labels: self.gauge_labels(&k).into_iter().collect(),
            })
            .collect();
        let sampled = |name: &Key, a: super::series::Aggregate| {
            (a.count > 0).then(|| SampledValue::new(name, &a, secs))
        };
        let mut counters: Vec<SampledValue> = read(&self.inner.counters)
            .into_iter()
            .filter_map(|(k, c)| sampled(&k, c.interval(reset)))
            .collect();
        let mut samples: Vec<SampledValue> = read(&self.inner.samples)
            .into_iter()
            .filter_map(|(k, s)| sampled(&k, s.interval(reset)))
            .collect();
        gauges.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        counters.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        samples.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        MetricsSummary {
            // Go's `time.Time.String()` of the UTC interval start, as Nomad prints it.
            timestamp: start.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string(),
            gauges,
            points: Vec::new(),
            counters,
            samples,
        }
    }

    /// Gauges that are still live.
    pub fn gauges(&self) -> Vec<(Key, Arc<GaugeCell>)> {
        let expiry = self.inner.settings.gauge_expiry;
        let mut out = read(&self.inner.gauges);
        out.retain(|(_, g)| g.age() <= expiry);
        out
    }

    pub fn counters(&self) -> Vec<(Key, Arc<CounterCell>)> {
        read(&self.inner.counters)
    }

    pub fn samples(&self) -> Vec<(Key, Arc<SampleCell>)> {
        read(&self.inner.samples)
    }

    /// A gauge's labels with the agent's `host` label, which go-metrics adds to gauges.
    pub fn gauge_labels(&self, key: &Key) -> Vec<(String, String)> {
        let mut labels = labels_of(key);
        if let Some(host) = &self.inner.settings.host {
            labels.push(("host".to_string(), host.clone()));
        }
        labels
    }
}

impl Recorder for Registry {
    // Nomad's metrics carry no descriptions; the Prometheus HELP line repeats the name.
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(series(&self.inner.counters, key, CounterCell::default))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let epoch = self.inner.epoch;
        Gauge::from_arc(series(&self.inner.gauges, key, || GaugeCell::new(epoch)))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(series(&self.inner.samples, key, SampleCell::default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::Level;

    fn meta() -> Metadata<'static> {
        Metadata::new("test", Level::INFO, None)
    }

    fn registry() -> Registry {
        Registry::new(RegistrySettings {
            host: Some("box".into()),
            ..RegistrySettings::default()
        })
    }

    #[test]
    fn one_series_per_key_and_labels() {
        let r = registry();
        let key = Key::from_parts(
            "nomad.client.allocs.running",
            vec![metrics::Label::new("job", "web")],
        );
        r.register_counter(&key, &meta()).increment(1);
        r.register_counter(&key, &meta()).increment(2);
        let other = Key::from_parts(
            "nomad.client.allocs.running",
            vec![metrics::Label::new("job", "db")],
        );
        r.register_counter(&other, &meta()).increment(5);
        let counters = r.counters();
        assert_eq!(counters.len(), 2);
        let web = counters
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, c)| c.total());
        assert_eq!(web, Some(3));
    }

    #[test]
    fn display_shows_the_last_finished_interval() {
        let r = registry();
        let c = r.register_counter(&Key::from_name("nomad.test.count"), &meta());
        let g = r.register_gauge(&Key::from_name("nomad.test.gauge"), &meta());
        c.increment(3);
        g.set(7.0);
        // Before any interval finished: the current one.
        let live = r.display();
        assert_eq!(live.counters.len(), 1);
        assert_eq!(live.counters[0].sum, 3.0);
        assert_eq!(live.gauges[0].value, 7.0);
        assert_eq!(
            live.gauges[0].labels.get("host").map(String::as_str),
            Some("box")
        );
        r.rotate();
        c.increment(10);
        let shown = r.display();
        assert_eq!(
            shown.counters[0].sum, 3.0,
            "the finished interval, not the new one"
        );
        assert_eq!(shown.counters[0].rate, 0.3);
        r.rotate();
        assert_eq!(r.display().counters[0].sum, 10.0);
    }

    /// Four threads increment one counter through the handle a hot path keeps: nothing is
    /// lost, and the cost per increment is printed (`--nocapture`) for the record.
    #[test]
    fn counter_handles_are_shared_without_losing_increments() {
        let r = registry();
        let counter = r.register_counter(&Key::from_name("nomad.test.hot"), &meta());
        const PER_THREAD: u64 = 250_000;
        let started = std::time::Instant::now();
        std::thread::scope(|s| {
            for _ in 0..4 {
                let c = counter.clone();
                s.spawn(move || {
                    for _ in 0..PER_THREAD {
                        c.increment(1);
                    }
                });
            }
        });
        let per_op = started.elapsed().as_nanos() as f64 / (4 * PER_THREAD) as f64;
        println!("counter increment: {per_op:.1} ns (4 threads, this build's profile)");
        assert_eq!(r.counters()[0].1.total(), 4 * PER_THREAD);
        assert_eq!(r.display().counters[0].count, 4 * PER_THREAD);

        // What a worker pays per evaluation: a timing looked up by a formatted name.
        const EVALS: u32 = 100_000;
        let started = std::time::Instant::now();
        metrics::with_local_recorder(&r, || {
            for i in 0..EVALS {
                let kind = if i % 2 == 0 { "service" } else { "batch" };
                metrics::histogram!(format!("nomad.nomad.worker.invoke_scheduler.{kind}"))
                    .record(1.0);
            }
        });
        let per_eval = started.elapsed().as_nanos() as f64 / f64::from(EVALS);
        println!("timing lookup + record: {per_eval:.1} ns");
        let recorded: u64 = r.samples().iter().map(|(_, s)| s.summary().count).sum();
        assert_eq!(recorded, u64::from(EVALS));
    }

    #[test]
    fn stale_gauges_expire() {
        let r = Registry::new(RegistrySettings {
            gauge_expiry: Duration::ZERO,
            ..RegistrySettings::default()
        });
        r.register_gauge(&Key::from_name("nomad.test.gone"), &meta())
            .set(1.0);
        std::thread::sleep(Duration::from_millis(5));
        assert!(r.gauges().is_empty());
        r.rotate();
        assert!(r.inner.gauges.read().unwrap().is_empty());
    }
}
