//! `GET /v1/client/allocation/:id/stats` (AllocResourceUsage) and `GET /v1/client/stats`
//! (HostStats), in Nomad's JSON shapes.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use yurt_drivers::{CpuStats, MemoryStats, TaskResourceUsage};

use super::ClientApp;
use super::host_stats;
use crate::http::{HttpError, JsonReply, QueryOptions, QueryParams};
use crate::structs::time::now_nanos;

/// Nomad's `ResourceUsage`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ResourceUsage {
    memory_stats: MemoryStats,
    cpu_stats: CpuStats,
    device_stats: Vec<serde_json::Value>,
}

/// Nomad's per-task `TaskResourceUsage`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct TaskUsage {
    resource_usage: ResourceUsage,
    timestamp: i64,
    /// Per-process usage; yurt measures the task as a whole.
    pids: Option<BTreeMap<String, serde_json::Value>>,
}

/// Nomad's `AllocResourceUsage`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct AllocUsage {
    resource_usage: ResourceUsage,
    tasks: BTreeMap<String, TaskUsage>,
    timestamp: i64,
}

fn add_memory(sum: &mut MemoryStats, m: &MemoryStats) {
    sum.rss += m.rss;
    sum.cache += m.cache;
    sum.swap += m.swap;
    sum.usage += m.usage;
    sum.max_usage += m.max_usage;
    sum.kernel_usage += m.kernel_usage;
    sum.kernel_max_usage += m.kernel_max_usage;
    if sum.measured.is_empty() {
        sum.measured = m.measured.clone();
    }
}

fn add_cpu(sum: &mut CpuStats, c: &CpuStats) {
    sum.system_mode += c.system_mode;
    sum.user_mode += c.user_mode;
    sum.total_ticks += c.total_ticks;
    sum.throttled_periods += c.throttled_periods;
    sum.throttled_time += c.throttled_time;
    sum.percent += c.percent;
    if sum.measured.is_empty() {
        sum.measured = c.measured.clone();
    }
}

/// `GET /v1/client/allocation/:id/stats[?task=]`: only running tasks are measured and summed.
pub async fn alloc_stats(
    State(app): State<ClientApp>,
    Path(id): Path<String>,
    params: QueryParams,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let runner = app.runner(&id)?;
    let filter = params.non_empty("task");
    let mut total = ResourceUsage::default();
    let mut tasks = BTreeMap::new();
    for (name, task) in runner.tasks() {
        if filter.is_some_and(|f| f != name) {
            continue;
        }
        let usage: TaskResourceUsage = match task.stats().await {
            Ok(u) => u,
            // Not running (or exited between the check and the sample): not measured.
            Err(_) => continue,
        };
        add_memory(&mut total.memory_stats, &usage.memory);
        add_cpu(&mut total.cpu_stats, &usage.cpu);
        tasks.insert(
            name.clone(),
            TaskUsage {
                resource_usage: ResourceUsage {
                    memory_stats: usage.memory,
                    cpu_stats: usage.cpu,
                    device_stats: Vec::new(),
                },
                timestamp: usage.timestamp,
                pids: None,
            },
        );
    }
    let body = AllocUsage {
        resource_usage: total,
        tasks,
        timestamp: now_nanos(),
    };
    Ok(JsonReply::new(body).pretty(opts.pretty).into_response())
}

/// `GET /v1/client/stats`: the host's memory, CPUs, disks and uptime.
pub async fn host_stats(
    State(app): State<ClientApp>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let node = app.client.node();
    let alloc_root = app.client.config().alloc_root();
    let stats = tokio::task::spawn_blocking(move || host_stats::collect(&node, &alloc_root))
        .await
        .map_err(|e| HttpError::internal(format!("collecting host stats: {e}")))?;
    Ok(JsonReply::new(stats).pretty(opts.pretty).into_response())
}
