//! Task resource usage from /proc, summed over the task's process tree: the fallback when the
//! task has no cgroup (rootless raw_exec), as Nomad walks the process tree when cgroups are off.
//!
//! The supervisor is a child subreaper, so every live process of the task (orphans included)
//! is a descendant of it.

use std::sync::OnceLock;
use std::time::Instant;

use super::task_entry::{CpuSample, TaskEntry};
use crate::driver::{CpuStats, MemoryStats, TaskResourceUsage};
use crate::supervisor::proctree;

/// One usage sample of the task's tree.
pub fn collect(entry: &TaskEntry) -> TaskResourceUsage {
    let st = &entry.state;
    let mut pids = proctree::descendants(st.supervisor_pid);
    if pids.is_empty() && proctree::is_alive(st.task_pid) {
        // Supervisor gone (or not a subreaper here): fall back to the leader's own tree.
        pids.push(st.task_pid);
        pids.extend(proctree::descendants(st.task_pid));
    }
    let (mut rss, mut user, mut system) = (0u64, 0u64, 0u64);
    for pid in pids {
        if let Ok(s) = proctree::sample(pid) {
            rss += s.rss_bytes;
            user += s.utime_ticks;
            system += s.stime_ticks;
        }
    }
    let now = Instant::now();
    let prev = entry
        .cpu_prev
        .lock()
        .map(|mut p| {
            p.replace(CpuSample {
                at: now,
                user,
                system,
            })
        })
        .unwrap_or(None);
    let hz = proctree::clock_ticks_per_sec() as f64;
    let (user_pct, sys_pct) = match prev {
        Some(p) => {
            let wall = now.duration_since(p.at).as_secs_f64();
            if wall > 0.0 {
                let pct = |d: u64| d as f64 / hz / wall * 100.0;
                (
                    pct(user.saturating_sub(p.user)),
                    pct(system.saturating_sub(p.system)),
                )
            } else {
                (0.0, 0.0)
            }
        }
        None => (0.0, 0.0),
    };
    let percent = user_pct + sys_pct;
    TaskResourceUsage {
        memory: MemoryStats {
            rss,
            measured: vec!["RSS".into()],
            ..MemoryStats::default()
        },
        cpu: CpuStats {
            system_mode: sys_pct,
            user_mode: user_pct,
            // Nomad: TotalTicks = percent/100 × (TotalCompute / NumCores), in MHz.
            total_ticks: percent / 100.0 * core_mhz(),
            percent,
            measured: vec!["System Mode".into(), "User Mode".into(), "Percent".into()],
            ..CpuStats::default()
        },
        timestamp: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64),
    }
}

/// MHz of one core, from the first `cpu MHz` line of /proc/cpuinfo (0 when absent).
fn core_mhz() -> f64 {
    static MHZ: OnceLock<f64> = OnceLock::new();
    *MHZ.get_or_init(|| {
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("cpu MHz"))
                    .and_then(|l| l.split(':').nth(1))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0.0)
    })
}
