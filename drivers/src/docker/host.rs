//! Facts about this machine the driver needs to turn MHz into CPU quotas.

use std::sync::OnceLock;

/// Assumed per-core speed when /proc/cpuinfo gives none (some VMs and ARM boards).
const FALLBACK_MHZ_PER_CORE: f64 = 1000.0;

/// Number of CPUs the agent may use.
pub fn num_cpus() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

/// Total compute of the machine in MHz (sum over cores), as Nomad's CPU fingerprint reports.
pub fn total_compute_mhz() -> f64 {
    static TOTAL: OnceLock<f64> = OnceLock::new();
    *TOTAL.get_or_init(|| {
        let per_core = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                let speeds: Vec<f64> = text
                    .lines()
                    .filter(|l| l.starts_with("cpu MHz"))
                    .filter_map(|l| l.split(':').nth(1)?.trim().parse().ok())
                    .collect();
                (!speeds.is_empty()).then(|| speeds.iter().sum::<f64>() / speeds.len() as f64)
            })
            .unwrap_or(FALLBACK_MHZ_PER_CORE);
        per_core * num_cpus() as f64
    })
}
