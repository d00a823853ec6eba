//! The two views of the registry: Nomad's JSON `MetricsSummary` (go-metrics'
//! `DisplayMetrics` shape) and the Prometheus text exposition format, with Nomad's dotted
//! names flattened as its Prometheus sink flattens them (`nomad.client.allocs.memory.rss` →
//! `nomad_client_allocs_memory_rss`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use metrics::Key;
use serde::Serialize;

use super::registry::Registry;
use super::series::Aggregate;

/// `GET /v1/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricsSummary {
    pub timestamp: String,
    pub gauges: Vec<GaugeValue>,
    /// go-metrics' key/value points; nothing in Nomad (or yurt) emits them.
    pub points: Vec<PointValue>,
    pub counters: Vec<SampledValue>,
    pub samples: Vec<SampledValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GaugeValue {
    pub name: String,
    pub value: f64,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PointValue {
    pub name: String,
    pub points: Vec<f64>,
}

/// A counter's or sample's aggregate over one interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SampledValue {
    pub name: String,
    pub count: u64,
    /// `Sum` per second of the interval.
    pub rate: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub stddev: f64,
    pub labels: BTreeMap<String, String>,
}

impl SampledValue {
    pub fn new(key: &Key, a: &Aggregate, interval_secs: f64) -> Self {
        SampledValue {
            name: key.name().to_string(),
            count: a.count,
            rate: a.sum / interval_secs,
            sum: a.sum,
            min: a.min,
            max: a.max,
            mean: a.mean(),
            stddev: a.stddev(),
            labels: labels_of(key).into_iter().collect(),
        }
    }
}

/// A key's labels as owned pairs.
pub fn labels_of(key: &Key) -> Vec<(String, String)> {
    key.labels()
        .map(|l| (l.key().to_string(), l.value().to_string()))
        .collect()
}

/// A name Prometheus accepts: every character outside `[a-zA-Z0-9_]` becomes `_`, and a
/// leading digit gets a `_` in front.
pub fn prometheus_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A sample value in the text format's spelling (`NaN`, `+Inf`, `-Inf`).
pub fn prometheus_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn label_set(labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{}=\"{}\"", prometheus_name(k), escape_label_value(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// One metric family of the text format.
#[derive(Default)]
pub struct Family {
    kind: &'static str,
    lines: Vec<String>,
}

/// Families by flattened name, written in name order as client_golang writes them.
#[derive(Default)]
pub struct Exposition {
    families: BTreeMap<String, Family>,
}

impl Exposition {
    /// Adds one sample line; `suffix` is `_sum`/`_count` for summaries.
    pub fn add(
        &mut self,
        family: &str,
        kind: &'static str,
        suffix: &str,
        labels: &[(String, String)],
        value: f64,
    ) {
        let name = prometheus_name(family);
        let line = format!(
            "{name}{suffix}{} {}",
            label_set(labels),
            prometheus_value(value)
        );
        let f = self.families.entry(name).or_default();
        // A name registered as two kinds keeps its first: one family has one TYPE.
        if f.kind.is_empty() {
            f.kind = kind;
        } else if f.kind != kind {
            return;
        }
        f.lines.push(line);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, f) in &self.families {
            let _ = writeln!(out, "# HELP {name} {name}");
            let _ = writeln!(out, "# TYPE {name} {}", f.kind);
            for line in &f.lines {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Registry {
    /// Every live series in the Prometheus text format, plus `extra` families.
    pub fn prometheus(&self, extra: Exposition) -> String {
        let mut exp = extra;
        for (key, g) in self.gauges() {
            exp.add(key.name(), "gauge", "", &self.gauge_labels(&key), g.value());
        }
        for (key, c) in self.counters() {
            exp.add(
                key.name(),
                "counter",
                "",
                &labels_of(&key),
                c.total() as f64,
            );
        }
        for (key, s) in self.samples() {
            let labels = labels_of(&key);
            let snap = s.summary();
            for (q, v) in &snap.quantiles {
                let mut with_q = labels.clone();
                with_q.push(("quantile".into(), format!("{q}")));
                exp.add(key.name(), "summary", "", &with_q, *v);
            }
            exp.add(key.name(), "summary", "_sum", &labels, snap.sum);
            exp.add(key.name(), "summary", "_count", &labels, snap.count as f64);
        }
        exp.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::registry::RegistrySettings;
    use metrics::{Label, Level, Metadata, Recorder};

    #[test]
    fn names_and_labels_are_flattened_and_escaped() {
        assert_eq!(
            prometheus_name("nomad.client.allocs.memory.rss"),
            "nomad_client_allocs_memory_rss"
        );
        assert_eq!(prometheus_name("nomad.broker.9x-y"), "nomad_broker_9x_y");
        assert_eq!(prometheus_name("1st"), "_1st");
        assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(prometheus_value(f64::NAN), "NaN");
        assert_eq!(prometheus_value(f64::INFINITY), "+Inf");
        assert_eq!(prometheus_value(2.5), "2.5");
        assert_eq!(prometheus_value(3.0), "3");
    }

    #[test]
    fn exposition_groups_families_with_one_type() {
        let r = Registry::new(RegistrySettings {
            host: Some("h1".into()),
            ..RegistrySettings::default()
        });
        let meta = Metadata::new("t", Level::INFO, None);
        let key = |n: &'static str| Key::from_parts(n, vec![Label::new("job", "web")]);
        r.register_gauge(&key("nomad.nomad.job_summary.running"), &meta)
            .set(2.0);
        r.register_counter(&key("nomad.client.allocs.running"), &meta)
            .increment(4);
        r.register_histogram(&Key::from_name("nomad.nomad.plan.submit"), &meta)
            .record(1.5);
        let text = r.prometheus(Exposition::default());
        let expected = [
            "# TYPE nomad_client_allocs_running counter",
            "nomad_client_allocs_running{job=\"web\"} 4",
            "# TYPE nomad_nomad_job_summary_running gauge",
            "nomad_nomad_job_summary_running{job=\"web\",host=\"h1\"} 2",
            "# TYPE nomad_nomad_plan_submit summary",
            "nomad_nomad_plan_submit{quantile=\"0.5\"} 1.5",
            "nomad_nomad_plan_submit_sum 1.5",
            "nomad_nomad_plan_submit_count 1",
        ];
        for line in expected {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
        assert_eq!(text.matches("# TYPE nomad_nomad_plan_submit ").count(), 1);
    }
}
