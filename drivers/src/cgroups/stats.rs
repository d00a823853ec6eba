//! Turning a backend's raw counters into Nomad's resource usage shapes.

use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::driver::{CpuStats, MemoryStats, TaskResourceUsage};

/// The node's CPU capacity, used to turn a CPU percentage into MHz ("ticks") like Nomad.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeCompute {
    /// Total MHz across all cores.
    pub total_mhz: f64,
    /// Number of usable cores.
    pub cores: u32,
}

impl NodeCompute {
    /// Reads the per-core clock from `/proc/cpuinfo` and the usable core count; falls back to
    /// 1000 MHz per core when the clock is not published (some VMs and arm boards).
    pub fn detect() -> NodeCompute {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1);
        let mhz = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("cpu MHz"))
                    .and_then(|l| l.split(':').nth(1))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .unwrap_or(1000.0);
        NodeCompute {
            total_mhz: mhz * f64::from(cores),
            cores,
        }
    }

    /// MHz of one core.
    pub fn mhz_per_core(&self) -> f64 {
        if self.cores == 0 {
            self.total_mhz
        } else {
            self.total_mhz / f64::from(self.cores)
        }
    }
}

/// One CPU accounting sample, kept between two stats calls.
#[derive(Debug, Clone, Copy)]
struct CpuSample {
    at: Instant,
    total_ns: u64,
    user_ns: u64,
    system_ns: u64,
}

/// Raw counters a backend reads; [`CpuTracker::usage`] turns them into Nomad's shapes.
#[derive(Debug, Default)]
pub(crate) struct RawStats {
    pub memory: MemoryStats,
    pub cpu_total_ns: Option<u64>,
    pub cpu_user_ns: Option<u64>,
    pub cpu_system_ns: Option<u64>,
    pub throttled_periods: Option<u64>,
    pub throttled_time_ns: Option<u64>,
}

/// The previous CPU sample of one task cgroup and the node's compute, for percentages.
#[derive(Debug)]
pub(super) struct CpuTracker {
    compute: NodeCompute,
    prev: Mutex<Option<CpuSample>>,
}

impl CpuTracker {
    pub(super) fn new(compute: NodeCompute) -> CpuTracker {
        CpuTracker {
            compute,
            prev: Mutex::new(None),
        }
    }

    /// Nomad's usage from one raw sample: CPU percentages relative to one core over the time
    /// since the previous call (the first call reports 0 %).
    pub(super) fn usage(&self, raw: RawStats) -> TaskResourceUsage {
        let now = Instant::now();
        let sample = CpuSample {
            at: now,
            total_ns: raw.cpu_total_ns.unwrap_or(0),
            user_ns: raw.cpu_user_ns.unwrap_or(0),
            system_ns: raw.cpu_system_ns.unwrap_or(0),
        };
        // A poisoned lock only means a previous stats call panicked; the sample is still valid.
        let mut prev = match self.prev.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let (percent, user, system) = match *prev {
            Some(p) => {
                let wall = now.duration_since(p.at).as_nanos() as f64;
                let pct = |cur: u64, old: u64| {
                    if wall <= 0.0 {
                        0.0
                    } else {
                        cur.saturating_sub(old) as f64 / wall * 100.0
                    }
                };
                (
                    pct(sample.total_ns, p.total_ns),
                    pct(sample.user_ns, p.user_ns),
                    pct(sample.system_ns, p.system_ns),
                )
            }
            None => (0.0, 0.0, 0.0),
        };
        *prev = Some(sample);
        drop(prev);

        let mut measured = Vec::new();
        if raw.cpu_system_ns.is_some() {
            measured.push("System Mode".to_string());
        }
        if raw.cpu_user_ns.is_some() {
            measured.push("User Mode".to_string());
        }
        if raw.throttled_periods.is_some() {
            measured.push("Throttled Periods".to_string());
        }
        if raw.throttled_time_ns.is_some() {
            measured.push("Throttled Time".to_string());
        }
        if raw.cpu_total_ns.is_some() {
            measured.push("Percent".to_string());
        }
        let cpu = CpuStats {
            system_mode: system,
            user_mode: user,
            // Nomad: TotalTicks = percent/100 × (TotalCompute / NumCores), i.e. MHz consumed.
            total_ticks: percent / 100.0 * self.compute.mhz_per_core(),
            throttled_periods: raw.throttled_periods.unwrap_or(0),
            throttled_time: raw.throttled_time_ns.unwrap_or(0),
            percent,
            measured,
        };
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        TaskResourceUsage {
            memory: raw.memory,
            cpu,
            timestamp,
        }
    }
}
