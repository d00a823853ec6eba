//! The engine's container stats in Nomad's `TaskResourceUsage` shape.

use bollard::models::ContainerStatsResponse;

use super::host;
use crate::{CpuStats, MemoryStats, TaskResourceUsage};

/// CPU counters of one sample, kept to compute percentages from the next one.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuSample {
    /// Container CPU time, ns.
    pub total: u64,
    /// Container kernel-mode CPU time, ns.
    pub kernel: u64,
    /// Container user-mode CPU time, ns.
    pub user: u64,
    /// Host CPU time, ns.
    pub system: u64,
}

/// Nomad's measured lists.
const CPU_MEASURED: &[&str] = &["Throttled Periods", "Throttled Time", "Percent"];
const MEM_MEASURED_V1: &[&str] = &["RSS", "Cache", "Swap", "Usage", "Max Usage"];
const MEM_MEASURED_V2: &[&str] = &["RSS", "Cache", "Swap", "Usage"];

fn percent(now: u64, before: u64, total_now: u64, total_before: u64, cores: f64) -> f64 {
    let delta = now.saturating_sub(before) as f64;
    let total = total_now.saturating_sub(total_before) as f64;
    if delta <= 0.0 || total <= 0.0 {
        return 0.0;
    }
    delta / total * cores * 100.0
}

/// Converts a one-shot stats answer, using `prev` (the previous answer's counters) for rates.
pub fn convert(
    s: &ContainerStatsResponse,
    prev: Option<CpuSample>,
    now_ns: i64,
) -> (TaskResourceUsage, CpuSample) {
    let mem = s.memory_stats.clone().unwrap_or_default();
    let stats = mem.stats.clone().unwrap_or_default();
    let get = |k: &str| stats.get(k).copied().unwrap_or(0);
    let usage = mem.usage.unwrap_or(0);
    let max_usage = mem.max_usage.unwrap_or(0);
    // cgroup v2 has no max_usage and names its counters differently.
    let v2 = max_usage == 0 && usage != 0 && !stats.contains_key("rss");
    let memory = if v2 {
        MemoryStats {
            rss: get("anon"),
            cache: get("file"),
            swap: get("swap"),
            usage,
            measured: MEM_MEASURED_V2.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    } else {
        MemoryStats {
            rss: get("rss"),
            cache: get("cache"),
            swap: get("swap"),
            usage,
            max_usage,
            measured: MEM_MEASURED_V1.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    };

    let cpu = s.cpu_stats.clone().unwrap_or_default();
    let usage_now = cpu.cpu_usage.clone().unwrap_or_default();
    let sample = CpuSample {
        total: usage_now.total_usage.unwrap_or(0),
        kernel: usage_now.usage_in_kernelmode.unwrap_or(0),
        user: usage_now.usage_in_usermode.unwrap_or(0),
        system: cpu.system_cpu_usage.unwrap_or(0),
    };
    // The engine's own previous sample when it sent one, else ours from the last call.
    let before = s
        .precpu_stats
        .as_ref()
        .and_then(|p| {
            let u = p.cpu_usage.clone()?;
            let system = p.system_cpu_usage?;
            (system > 0).then(|| CpuSample {
                total: u.total_usage.unwrap_or(0),
                kernel: u.usage_in_kernelmode.unwrap_or(0),
                user: u.usage_in_usermode.unwrap_or(0),
                system,
            })
        })
        .or(prev);
    let cores = cpu
        .online_cpus
        .map(f64::from)
        .unwrap_or_else(|| host::num_cpus() as f64);
    let (pct, system_mode, user_mode) = match before {
        Some(b) => (
            percent(sample.total, b.total, sample.system, b.system, cores),
            percent(sample.kernel, b.kernel, sample.total, b.total, 1.0),
            percent(sample.user, b.user, sample.total, b.total, 1.0),
        ),
        None => (0.0, 0.0, 0.0),
    };
    let throttling = cpu.throttling_data.unwrap_or_default();
    let cpu_stats = CpuStats {
        system_mode,
        user_mode,
        total_ticks: pct / 100.0 * host::total_compute_mhz() / cores.max(1.0),
        throttled_periods: throttling.throttled_periods.unwrap_or(0),
        throttled_time: throttling.throttled_time.unwrap_or(0),
        percent: pct,
        measured: CPU_MEASURED.iter().map(|s| s.to_string()).collect(),
    };
    (
        TaskResourceUsage {
            memory,
            cpu: cpu_stats,
            timestamp: now_ns,
        },
        sample,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats};
    use std::collections::HashMap;

    #[test]
    fn v1_memory_and_cpu_percent() {
        let s = ContainerStatsResponse {
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(100),
                max_usage: Some(200),
                stats: Some(HashMap::from([
                    ("rss".to_string(), 60),
                    ("cache".to_string(), 30),
                ])),
                ..Default::default()
            }),
            cpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(2_000),
                    usage_in_kernelmode: Some(500),
                    usage_in_usermode: Some(1_500),
                    ..Default::default()
                }),
                system_cpu_usage: Some(20_000),
                online_cpus: Some(2),
                ..Default::default()
            }),
            ..Default::default()
        };
        let prev = CpuSample {
            total: 1_000,
            kernel: 0,
            user: 1_000,
            system: 10_000,
        };
        let (u, sample) = convert(&s, Some(prev), 7);
        assert_eq!(u.memory.rss, 60);
        assert_eq!(u.memory.max_usage, 200);
        assert!(u.memory.measured.contains(&"Max Usage".to_string()));
        // 1000 of 10000 host ns on 2 cores = 20%.
        assert!((u.cpu.percent - 20.0).abs() < 1e-9);
        assert!((u.cpu.system_mode - 50.0).abs() < 1e-9);
        assert_eq!(sample.total, 2_000);
        assert_eq!(u.timestamp, 7);
        let (first, _) = convert(&s, None, 7);
        assert_eq!(first.cpu.percent, 0.0);
    }
}
