//! The host's resource usage for `/v1/client/stats`, read from /proc and statvfs, in
//! Nomad's `HostStats` shape.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::structs::Node;
use crate::structs::time::now_nanos;

/// Nomad's `HostStats`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostStats {
    pub(crate) memory: HostMemory,
    #[serde(rename = "CPU")]
    pub(crate) cpu: Vec<HostCpu>,
    pub(crate) disk_stats: Vec<HostDisk>,
    pub(crate) alloc_dir_stats: Option<HostDisk>,
    pub(crate) device_stats: Vec<serde_json::Value>,
    pub(crate) uptime: u64,
    pub(crate) timestamp: i64,
    #[serde(rename = "CPUTicksConsumed")]
    pub(crate) cpu_ticks_consumed: f64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct HostMemory {
    pub(crate) total: u64,
    pub(crate) available: u64,
    pub(crate) used: u64,
    pub(crate) free: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct HostCpu {
    #[serde(rename = "CPU")]
    pub(crate) cpu: String,
    pub(crate) user: f64,
    pub(crate) system: f64,
    pub(crate) idle: f64,
    pub(crate) total_percent: f64,
    pub(crate) total_ticks: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct HostDisk {
    pub(crate) device: String,
    pub(crate) mountpoint: String,
    pub(crate) size: u64,
    pub(crate) used: u64,
    pub(crate) available: u64,
    pub(crate) used_percent: f64,
    pub(crate) inodes_used_percent: f64,
}

/// Jiffies of one CPU line of /proc/stat: (user incl. nice, system incl. irq, idle incl. iowait, total).
type CpuTimes = (String, u64, u64, u64, u64);

/// The previous /proc/stat sample, so percentages cover the time since the last request.
static LAST_CPU: Mutex<Option<(Instant, Vec<CpuTimes>)>> = Mutex::new(None);

/// Samples the host now.
pub fn collect(node: &Node, alloc_root: &Path) -> HostStats {
    let cores = node
        .attr("cpu.numcores")
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(1.0)
        .max(1.0);
    let total_compute = node
        .attr("cpu.totalcompute")
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    let core_mhz = total_compute / cores;
    let cpu = cpu_percentages(core_mhz);
    let cpu_ticks_consumed = cpu.iter().map(|c| c.total_ticks).sum();
    HostStats {
        memory: memory(),
        cpu,
        disk_stats: disks(),
        alloc_dir_stats: disk(alloc_root, "", ""),
        device_stats: Vec::new(),
        uptime: uptime(),
        timestamp: now_nanos(),
        cpu_ticks_consumed,
    }
}

fn memory() -> HostMemory {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    let total = field("MemTotal");
    let available = field("MemAvailable");
    HostMemory {
        total,
        available,
        used: total.saturating_sub(available),
        free: field("MemFree"),
    }
}

fn read_cpu_times() -> Vec<CpuTimes> {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?.to_string();
            let v: Vec<u64> = it.filter_map(|x| x.parse().ok()).collect();
            let at = |i: usize| v.get(i).copied().unwrap_or(0);
            let user = at(0) + at(1);
            let system = at(2) + at(5) + at(6);
            let idle = at(3) + at(4);
            Some((name, user, system, idle, user + system + idle + at(7)))
        })
        .collect()
}

fn cpu_percentages(core_mhz: f64) -> Vec<HostCpu> {
    let now = read_cpu_times();
    let mut last = LAST_CPU.lock().unwrap_or_else(|p| p.into_inner());
    // Without an earlier sample, the averages since boot are the best answer.
    let prev = last.as_ref().map(|(_, p)| p.clone()).unwrap_or_default();
    let out = now
        .iter()
        .map(|(name, user, system, idle, total)| {
            let base = prev.iter().find(|p| &p.0 == name);
            let d = |cur: u64, old: Option<u64>| cur.saturating_sub(old.unwrap_or(0)) as f64;
            let dt = d(*total, base.map(|b| b.4)).max(1.0);
            let pct = |v: f64| v / dt * 100.0;
            let (u, s, i) = (
                pct(d(*user, base.map(|b| b.1))),
                pct(d(*system, base.map(|b| b.2))),
                pct(d(*idle, base.map(|b| b.3))),
            );
            let busy = (100.0 - i).clamp(0.0, 100.0);
            HostCpu {
                cpu: name.clone(),
                user: u,
                system: s,
                idle: i,
                total_percent: busy,
                total_ticks: busy / 100.0 * core_mhz,
            }
        })
        .collect();
    *last = Some((Instant::now(), now));
    out
}

/// Filesystems worth reporting: real block devices, each mount point once.
fn disks() -> Vec<HostDisk> {
    let text = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (dev, mnt) = (it.next()?, it.next()?);
            (dev.starts_with("/dev/") && seen.insert(dev.to_string()))
                .then(|| disk(Path::new(mnt), dev, mnt))
                .flatten()
        })
        .collect()
}

fn disk(path: &Path, device: &str, mountpoint: &str) -> Option<HostDisk> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = st.fragment_size() as u64;
    let size = st.blocks() as u64 * frag;
    let free = st.blocks_free() as u64 * frag;
    let available = st.blocks_available() as u64 * frag;
    let used = size.saturating_sub(free);
    let pct = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64 * 100.0
        }
    };
    let inodes = st.files() as u64;
    let inodes_used = inodes.saturating_sub(st.files_free() as u64);
    Some(HostDisk {
        device: device.to_string(),
        mountpoint: if mountpoint.is_empty() {
            path.display().to_string()
        } else {
            mountpoint.to_string()
        },
        size,
        used,
        available,
        used_percent: pct(used, used + available),
        inodes_used_percent: pct(inodes_used, inodes),
    })
}

fn uptime() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0, |s| s as u64)
}
