//! The client's metrics under Nomad's names and labels: the host's resource usage
//! (`nomad.client.host.*`, with `publish_node_metrics`), each running task's usage
//! (`nomad.client.allocs.memory.*`/`cpu.*`, with `publish_allocation_metrics`) and the
//! allocations and tasks by state (`nomad.client.allocations.*`, `nomad.client.tasks.*`),
//! set every `telemetry.collection_interval` from the same sources as `/v1/client/stats`
//! and `/v1/client/allocation/:id/stats`.

use std::time::Duration;

use metrics::{Label, counter, gauge};

use super::Client;
use super::http::host_stats;
use crate::structs::{AllocClientStatus, Allocation, TaskStateName};

/// What the collector publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GaugeSettings {
    pub interval: Duration,
    pub publish_allocation_metrics: bool,
    pub publish_node_metrics: bool,
}

/// The labels Nomad puts on a task's metrics.
pub fn task_labels(alloc: &Allocation, task: &str) -> Vec<Label> {
    let job = alloc
        .job
        .as_ref()
        .map_or_else(|| alloc.job_id.to_string(), |j| j.name.clone());
    vec![
        Label::new("job", job),
        Label::new("task_group", alloc.task_group.to_string()),
        Label::new("alloc_id", alloc.id.to_string()),
        Label::new("task", task.to_string()),
        Label::new("namespace", alloc.namespace.to_string()),
    ]
}

/// Counts a task's move into `to` (from `from`), as Nomad's task runner counts them.
pub(crate) fn count_transition(
    labels: &[Label],
    from: TaskStateName,
    to: TaskStateName,
    failed: bool,
) {
    if from == to || labels.is_empty() {
        return;
    }
    let name = match to {
        TaskStateName::Running => "nomad.client.allocs.running",
        TaskStateName::Dead if failed => "nomad.client.allocs.failed",
        TaskStateName::Dead => "nomad.client.allocs.complete",
        _ => return,
    };
    counter!(name, labels.to_vec()).increment(1);
}

/// Counts a restart of the task.
pub(crate) fn count_restart(labels: &[Label]) {
    if !labels.is_empty() {
        counter!("nomad.client.allocs.restart", labels.to_vec()).increment(1);
    }
}

/// Sets the gauges every interval until the runtime stops.
pub fn spawn_collector(client: Client, settings: GaugeSettings) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            emit(&client, settings).await;
        }
    })
}

/// The client-wide labels: Nomad's base labels plus the node's status and eligibility.
fn node_labels(client: &Client) -> Vec<Label> {
    let node = client.node();
    let class = if node.node_class.is_empty() {
        "none".to_string()
    } else {
        node.node_class.clone()
    };
    vec![
        Label::new("node_id", node.id.clone()),
        Label::new("datacenter", node.datacenter.clone()),
        Label::new("node_class", class),
        Label::new("node_pool", node.node_pool.clone()),
        // The client reports itself ready from its registration on, as Nomad's does.
        Label::new(
            "node_status",
            if client.is_registered() {
                crate::structs::NodeStatus::Ready.to_string()
            } else {
                node.status.to_string()
            },
        ),
        Label::new(
            "node_scheduling_eligibility",
            node.scheduling_eligibility.clone(),
        ),
    ]
}

/// Sets every client gauge once.
pub async fn emit(client: &Client, settings: GaugeSettings) {
    let labels = node_labels(client);
    if settings.publish_node_metrics {
        let node = client.node();
        let alloc_root = client.config().alloc_root();
        match tokio::task::spawn_blocking(move || host_stats::collect(&node, &alloc_root)).await {
            Ok(stats) => emit_host(&stats, &labels),
            Err(e) => tracing::warn!(error = %e, "collecting host stats for metrics"),
        }
    }
    let (mut pending, mut running, mut terminal) = (0u32, 0u32, 0u32);
    let (mut t_pending, mut t_running, mut t_dead) = (0u32, 0u32, 0u32);
    for runner in client.allocs() {
        let status = runner
            .client_view()
            .map_or(AllocClientStatus::Pending, |a| a.client_status);
        match status {
            AllocClientStatus::Pending => pending += 1,
            AllocClientStatus::Running => running += 1,
            AllocClientStatus::Complete | AllocClientStatus::Failed => terminal += 1,
            _ => {}
        }
        let alloc = runner.alloc();
        for (name, task) in runner.tasks() {
            match task.state().state {
                TaskStateName::Pending => t_pending += 1,
                TaskStateName::Running => t_running += 1,
                TaskStateName::Dead => t_dead += 1,
            }
            if !settings.publish_allocation_metrics {
                continue;
            }
            // A task that is not running has nothing to measure.
            if let Ok(usage) = task.stats().await {
                emit_task(&alloc, name, &usage);
            }
        }
    }
    for (name, v) in [
        ("nomad.client.allocations.pending", pending),
        ("nomad.client.allocations.running", running),
        ("nomad.client.allocations.terminal", terminal),
        ("nomad.client.tasks.pending", t_pending),
        ("nomad.client.tasks.running", t_running),
        ("nomad.client.tasks.dead", t_dead),
    ] {
        gauge!(name, labels.clone()).set(f64::from(v));
    }
}

fn emit_host(stats: &host_stats::HostStats, labels: &[Label]) {
    let with = |extra: (&'static str, &str)| {
        let mut l = labels.to_vec();
        l.push(Label::new(extra.0, extra.1.to_string()));
        l
    };
    let m = &stats.memory;
    for (name, v) in [
        ("nomad.client.host.memory.total", m.total),
        ("nomad.client.host.memory.available", m.available),
        ("nomad.client.host.memory.used", m.used),
        ("nomad.client.host.memory.free", m.free),
        ("nomad.client.uptime", stats.uptime),
    ] {
        gauge!(name, labels.to_vec()).set(v as f64);
    }
    for cpu in &stats.cpu {
        let l = with(("cpu", &cpu.cpu));
        for (name, v) in [
            ("nomad.client.host.cpu.total", cpu.total_percent),
            ("nomad.client.host.cpu.total_percent", cpu.total_percent),
            ("nomad.client.host.cpu.total_ticks", cpu.total_ticks),
            ("nomad.client.host.cpu.user", cpu.user),
            ("nomad.client.host.cpu.idle", cpu.idle),
            ("nomad.client.host.cpu.system", cpu.system),
        ] {
            gauge!(name, l.clone()).set(v);
        }
    }
    for disk in &stats.disk_stats {
        let l = with(("disk", &disk.device));
        for (name, v) in [
            ("nomad.client.host.disk.size", disk.size as f64),
            ("nomad.client.host.disk.used", disk.used as f64),
            ("nomad.client.host.disk.available", disk.available as f64),
            ("nomad.client.host.disk.used_percent", disk.used_percent),
            (
                "nomad.client.host.disk.inodes_percent",
                disk.inodes_used_percent,
            ),
        ] {
            gauge!(name, l.clone()).set(v);
        }
    }
}

fn emit_task(alloc: &Allocation, task: &str, usage: &yurt_drivers::TaskResourceUsage) {
    let labels = task_labels(alloc, task);
    let m = &usage.memory;
    // Like Nomad: a figure is published when it is non-zero or the driver measured it.
    let measured = |what: &str| m.measured.iter().any(|x| x == what);
    for (name, v, what) in [
        ("nomad.client.allocs.memory.rss", m.rss, "RSS"),
        ("nomad.client.allocs.memory.cache", m.cache, "Cache"),
        ("nomad.client.allocs.memory.swap", m.swap, "Swap"),
        ("nomad.client.allocs.memory.usage", m.usage, "Usage"),
        (
            "nomad.client.allocs.memory.max_usage",
            m.max_usage,
            "Max Usage",
        ),
        (
            "nomad.client.allocs.memory.kernel_usage",
            m.kernel_usage,
            "Kernel Usage",
        ),
        (
            "nomad.client.allocs.memory.kernel_max_usage",
            m.kernel_max_usage,
            "Kernel Max Usage",
        ),
    ] {
        if v != 0 || measured(what) {
            gauge!(name, labels.clone()).set(v as f64);
        }
    }
    let allocated = alloc
        .allocated_resources
        .as_ref()
        .and_then(|r| r.tasks.get(task));
    if let Some(r) = allocated {
        const MIB: f64 = 1024.0 * 1024.0;
        if r.memory.memory_mb > 0 {
            gauge!("nomad.client.allocs.memory.allocated", labels.clone())
                .set(r.memory.memory_mb as f64 * MIB);
        }
        if r.memory.memory_max_mb > 0 {
            gauge!("nomad.client.allocs.memory.max_allocated", labels.clone())
                .set(r.memory.memory_max_mb as f64 * MIB);
        }
        if r.cpu.cpu_shares > 0 {
            gauge!("nomad.client.allocs.cpu.allocated", labels.clone())
                .set(r.cpu.cpu_shares as f64);
        }
    }
    let c = &usage.cpu;
    for (name, v) in [
        ("nomad.client.allocs.cpu.total_percent", c.percent),
        ("nomad.client.allocs.cpu.system", c.system_mode),
        ("nomad.client.allocs.cpu.user", c.user_mode),
        (
            "nomad.client.allocs.cpu.throttled_time",
            c.throttled_time as f64,
        ),
        (
            "nomad.client.allocs.cpu.throttled_periods",
            c.throttled_periods as f64,
        ),
        ("nomad.client.allocs.cpu.total_ticks", c.total_ticks),
    ] {
        gauge!(name, labels.clone()).set(v);
    }
    counter!("nomad.client.allocs.cpu.total_ticks_count", labels).increment(c.total_ticks as u64);
}
