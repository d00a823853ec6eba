//! The limits a task cgroup is created with, from the task's resources.

use crate::driver::TaskResources;

/// Limits written into a task cgroup; `None` leaves the kernel default (unlimited).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupLimits {
    /// Soft limit / reservation in bytes (v1 `memory.soft_limit_in_bytes`, v2 `memory.low`).
    pub memory_soft_bytes: Option<u64>,
    /// Hard limit in bytes (v1 `memory.limit_in_bytes` (+memsw), v2 `memory.max`).
    pub memory_hard_bytes: Option<u64>,
    /// Disable swap for the task where the kernel lets us (memsw / `memory.swap.max`).
    pub disable_swap: bool,
    /// CPU shares (v1 `cpu.shares`; v2 `cpu.weight` converted like runc).
    pub cpu_shares: Option<u64>,
    /// Maximum number of tasks (`pids.max`).
    pub pids_max: Option<u64>,
}

impl CgroupLimits {
    /// Nomad's mapping from task resources: MemoryMaxMB above MemoryMB oversubscribes (hard =
    /// MemoryMaxMB, reservation = MemoryMB), otherwise hard = MemoryMB with no reservation;
    /// shares = CPU MHz clamped to at least 2 as the exec driver does; swap off.
    pub fn from_resources(res: &TaskResources) -> CgroupLimits {
        const MIB: u64 = 1 << 20;
        let (soft, hard) = if res.memory_max_mb > res.memory_mb {
            (Some(res.memory_mb), Some(res.memory_max_mb))
        } else {
            (None, Some(res.memory_mb))
        };
        let nonzero = |v: Option<u64>| v.filter(|&v| v > 0).map(|v| v.saturating_mul(MIB));
        CgroupLimits {
            memory_soft_bytes: nonzero(soft),
            memory_hard_bytes: nonzero(hard),
            disable_swap: true,
            cpu_shares: (res.cpu_mhz > 0).then(|| res.cpu_mhz.max(2)),
            pids_max: (res.pids_limit > 0).then_some(res.pids_limit),
        }
    }
}

/// Converts v1 CPU shares to a v2 `cpu.weight` the way runc / opencontainers/cgroups do:
/// 0 → 0 (unset), ≤2 → 1, ≥262144 → 10000, else a quadratic fit in log2 space (1024 → 100).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    10f64.powf(exponent).ceil() as u64
}
