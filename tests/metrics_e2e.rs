//! `GET /v1/metrics`: Nomad's JSON summary and, with `telemetry { prometheus_metrics }`, the
//! Prometheus text format — read by a Prometheus text parser, with Nomad's metric names and
//! labels present and moving while a raw_exec task runs.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use prometheus_parse::{Sample, Scrape, Value as PromValue};
use serde_json::json;

/// Short intervals so the JSON view rotates (it shows the last finished interval) while the
/// test runs.
const TELEMETRY: &str = "telemetry {\n  prometheus_metrics = true\n  publish_allocation_metrics = true\n  publish_node_metrics = true\n  collection_interval = \"250ms\"\n  in_memory_collection_interval = \"2s\"\n}\n";

fn agent_with(extra_hcl: &str) -> Agent {
    let mut opts = AgentOpts::dev();
    opts.extra_hcl = extra_hcl.to_string();
    Agent::start(opts)
}

/// Scrapes the Prometheus format and parses it; every sample line must come out of the
/// parser (it skips lines it cannot read, which would hide a malformed exposition).
fn scrape(http: &Http, agent: &Agent) -> Vec<Sample> {
    let r = http.get(&agent.url("/v1/metrics?format=prometheus"));
    assert_eq!(r.status, 200, "{}", r.body);
    let content_type = r.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let parsed = Scrape::parse(r.body.lines().map(|l| Ok(l.to_string()))).expect("parse");
    let names: std::collections::HashSet<&str> =
        parsed.samples.iter().map(|s| s.metric.as_str()).collect();
    for line in r
        .body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let family = name.trim_end_matches("_sum").trim_end_matches("_count");
        assert!(
            names.contains(name) || names.contains(family),
            "the parser dropped {line:?}"
        );
    }
    parsed.samples
}

/// The value of the gauge or counter `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .find_map(|s| match s.value {
            PromValue::Gauge(v) | PromValue::Counter(v) | PromValue::Untyped(v) => Some(v),
            _ => None,
        })
}

fn has(samples: &[Sample], name: &str) -> bool {
    samples.iter().any(|s| s.metric == name)
}

#[test]
fn metrics_follow_a_running_task_in_both_formats() {
    let agent = agent_with(TELEMETRY);
    let http = Http::default();

    let before = wait_for(Duration::from_secs(30), "client gauges", || {
        let s = scrape(&http, &agent);
        has(&s, "nomad_client_allocations_running").then_some(s)
    });
    assert_eq!(
        value(
            &before,
            "nomad_client_allocs_running",
            &[("job", "metered")]
        ),
        None,
        "no task has run yet"
    );

    // A shell holding a few MiB in a variable, then sleeping.
    let job = shell_job(
        "metered",
        &[(
            "hold",
            "x=$(head -c 4000000 /dev/zero | tr '\\0' a); sleep 600",
        )],
    );
    let alloc = run_job_and_wait(&http, &agent.url(""), &job);
    let task = [("alloc_id", alloc.as_str()), ("task", "hold")];

    let after = wait_for(Duration::from_secs(30), "the task's memory gauge", || {
        let s = scrape(&http, &agent);
        let rss = value(&s, "nomad_client_allocs_memory_rss", &task)?;
        (rss > 0.0).then_some(s)
    });
    // Nomad's labels on a task's series.
    let rss = after
        .iter()
        .find(|s| {
            s.metric == "nomad_client_allocs_memory_rss" && s.labels.get("alloc_id") == Some(&alloc)
        })
        .expect("rss sample");
    for (k, v) in [
        ("job", "metered"),
        ("task_group", "g"),
        ("task", "hold"),
        ("namespace", "default"),
    ] {
        assert_eq!(rss.labels.get(k), Some(v), "{:?}", rss.labels);
    }
    assert!(
        rss.labels.get("host").is_some_and(|h| !h.is_empty()),
        "{:?}",
        rss.labels
    );
    assert_eq!(
        value(&after, "nomad_client_allocs_memory_allocated", &task),
        Some(64.0 * 1024.0 * 1024.0)
    );
    assert!(has(&after, "nomad_client_allocs_cpu_total_ticks"));

    // The counter of tasks started moved when the task ran.
    assert_eq!(
        value(&after, "nomad_client_allocs_running", &[("job", "metered")]),
        Some(1.0)
    );
    let counters: HashMap<&str, bool> = after
        .iter()
        .filter(|s| matches!(s.value, PromValue::Counter(_)))
        .map(|s| (s.metric.as_str(), true))
        .collect();
    assert!(
        counters.contains_key("nomad_client_allocs_running"),
        "typed as a counter"
    );

    // The host, the client's allocations, the server's view, the runtime.
    for name in [
        "nomad_client_host_memory_total",
        "nomad_client_host_memory_available",
        "nomad_client_host_cpu_total",
        "nomad_client_host_disk_size",
        "nomad_client_uptime",
        "nomad_nomad_job_status_running",
        "nomad_nomad_broker_total_ready",
        "nomad_nomad_broker_total_unacked",
        "nomad_nomad_plan_queue_depth",
        "nomad_nomad_blocked_evals_total_blocked",
        "nomad_runtime_num_goroutines",
        "nomad_runtime_alloc_bytes",
        "nomad_runtime_num_threads",
    ] {
        assert!(has(&after, name), "{name} missing");
    }
    assert!(value(&after, "nomad_client_host_memory_total", &[]).unwrap_or(0.0) > 0.0);
    let node = wait_for(Duration::from_secs(10), "node id", || {
        http.get(&agent.url("/v1/nodes")).json()[0]["ID"]
            .as_str()
            .map(str::to_string)
    });
    assert_eq!(
        value(
            &after,
            "nomad_client_allocations_running",
            &[
                ("node_id", &node),
                ("datacenter", "dc1"),
                ("node_status", "ready")
            ]
        ),
        Some(1.0)
    );
    assert!(value(&after, "nomad_nomad_heartbeat_active", &[]).unwrap_or(0.0) >= 1.0);
    let job = [
        ("job", "metered"),
        ("task_group", "g"),
        ("namespace", "default"),
    ];
    let summary_running = wait_for(Duration::from_secs(10), "job summary gauge", || {
        let s = scrape(&http, &agent);
        value(&s, "nomad_nomad_job_summary_running", &job).filter(|v| *v == 1.0)
    });
    assert_eq!(summary_running, 1.0);
    assert!(value(&after, "process_resident_memory_bytes", &[]).unwrap_or(0.0) > 0.0);
    assert!(value(&after, "process_threads", &[]).unwrap_or(0.0) >= 1.0);

    // Timings are summaries; the scrapes themselves move the request timing's count.
    let plan = after
        .iter()
        .find(|s| s.metric == "nomad_nomad_plan_submit")
        .expect("plan.submit summary");
    assert!(
        matches!(&plan.value, PromValue::Summary(q) if q.len() == 3),
        "{:?}",
        plan.value
    );
    let scrapes = |s: &[Sample]| {
        value(
            s,
            "nomad_agent_http_request_count",
            &[("method", "GET"), ("path", "/v1/metrics")],
        )
        .unwrap_or(0.0)
    };
    let first = scrapes(&scrape(&http, &agent));
    let second = scrapes(&scrape(&http, &agent));
    assert!(second > first && first >= 1.0, "{first} then {second}");

    // The JSON view: go-metrics' DisplayMetrics shape, Nomad's dotted names, the aggregates
    // of the last finished interval (counters and samples only appear in intervals that
    // saw them, so this waits for one with a scrape in it).
    let (body, gauge, counter, sample) = wait_for(Duration::from_secs(30), "JSON view", || {
        let r = http.get(&agent.url("/v1/metrics"));
        assert_eq!(r.status, 200, "{}", r.body);
        let body = r.json();
        let find = |list: &str, name: &str, label: (&str, &str)| {
            body[list]
                .as_array()?
                .iter()
                .find(|g| g["Name"] == name && g["Labels"][label.0] == label.1)
                .cloned()
        };
        let gauge = find(
            "Gauges",
            "nomad.client.allocs.memory.rss",
            ("alloc_id", &alloc),
        )?;
        let counter = find(
            "Counters",
            "nomad.client.allocs.cpu.total_ticks_count",
            ("alloc_id", &alloc),
        )?;
        let sample = find(
            "Samples",
            "nomad.agent.http.request",
            ("path", "/v1/metrics"),
        )?;
        Some((body.clone(), gauge, counter, sample))
    });
    let ts = body["Timestamp"].as_str().expect("Timestamp");
    assert!(ts.ends_with(" +0000 UTC") && ts.len() == 29, "{ts}");
    assert!(body["Points"].is_array(), "{body}");
    assert!(gauge["Value"].as_f64().unwrap_or(0.0) > 0.0, "{gauge}");
    assert_eq!(gauge["Labels"]["job"], "metered");
    assert!(gauge["Labels"]["host"].is_string(), "{gauge}");
    for field in ["Count", "Rate", "Sum", "Min", "Max", "Mean", "Stddev"] {
        assert!(counter[field].is_number(), "{field} in {counter}");
        assert!(sample[field].is_number(), "{field} in {sample}");
    }
    assert!(counter["Count"].as_u64().unwrap_or(0) >= 1, "{counter}");
    assert!(sample["Count"].as_u64().unwrap_or(0) >= 1, "{sample}");
    assert_eq!(sample["Labels"]["method"], "GET");

    let r = http.delete(&agent.url("/v1/job/metered"));
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn prometheus_format_needs_prometheus_metrics_and_hostname_can_be_left_off() {
    let agent = agent_with(
        "telemetry {\n  disable_hostname = true\n  collection_interval = \"250ms\"\n}\n",
    );
    let http = Http::default();
    let r = http.get(&agent.url("/v1/metrics?format=prometheus"));
    assert_eq!(r.status, 415, "{}", r.body);
    assert_eq!(r.body, "Prometheus is not enabled");
    // Any other format is the JSON view, as in Nomad.
    let gauges = wait_for(Duration::from_secs(30), "runtime gauges", || {
        let body = http.get(&agent.url("/v1/metrics?format=json")).json();
        let gauges = body["Gauges"].as_array()?.clone();
        gauges
            .iter()
            .any(|g| g["Name"] == "nomad.runtime.alloc_bytes")
            .then_some(gauges)
    });
    for g in &gauges {
        assert!(g["Labels"].get("host").is_none(), "{g}");
    }
    let body = http.get(&agent.url("/v1/metrics")).json();
    for list in ["Gauges", "Points", "Counters", "Samples"] {
        assert!(body[list].is_array(), "{list} in {body}");
    }
    // Off by default, like Nomad: no per-task or host gauges.
    assert!(
        !gauges
            .iter()
            .any(|g| g["Name"] == "nomad.client.host.memory.total"),
        "{gauges:?}"
    );
    assert!(
        gauges
            .iter()
            .any(|g| g["Name"] == "nomad.client.allocations.running")
    );
    let r = http.put(&agent.url("/v1/metrics"), &json!({}));
    assert_eq!(r.status, 405, "{}", r.body);
}

/// Runs `yurt agent -config <file>` with `hcl`; returns its exit code and output, or fails
/// if it is still running after 30s (a bad config must stop it at once).
fn agent_exit(hcl: &str) -> (i32, String) {
    let dir = TempDir::new("metrics-config");
    let path = dir.path().join("agent.hcl");
    std::fs::write(&path, hcl).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_yurt"))
        .arg("agent")
        .arg("-config")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn yurt");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().expect("wait").is_some() {
            let out = child.wait_with_output().expect("output");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (out.status.code().unwrap_or(-1), text);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("agent with a bad telemetry block kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_bad_telemetry_value_stops_the_agent_naming_the_key() {
    let data = TempDir::new("metrics-data");
    let base = format!(
        "data_dir = {:?}\nbind_addr = \"127.0.0.1\"\nports {{\n  http = {}\n  rpc = {}\n}}\nclient {{\n  enabled = true\n}}\n",
        data.path().display().to_string(),
        free_port(),
        free_port()
    );
    for (block, key) in [
        (
            "telemetry {\n  collection_interval = \"often\"\n}\n",
            "collection_interval",
        ),
        (
            "telemetry {\n  prometheus_metrics = \"sure\"\n}\n",
            "prometheus_metrics",
        ),
        (
            "telemetry {\n  in_memory_collection_interval = \"0s\"\n}\n",
            "in_memory_collection_interval",
        ),
    ] {
        let (code, out) = agent_exit(&format!("{base}{block}"));
        assert_ne!(code, 0, "{out}");
        assert!(out.contains(key), "{key} not named in {out}");
    }
}
