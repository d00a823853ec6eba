//! CPU: model, frequency, core counts and compute (`cpu.*` attributes, NodeResources.Cpu).

use std::collections::BTreeMap;

use crate::structs::NodeCpuResources;

/// What was detected about the CPUs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuInfo {
    /// `model name` of the first processor.
    pub model: String,
    /// Per-core frequency in MHz.
    pub mhz: i64,
    /// Logical cores in the machine.
    pub cores: i64,
    /// Cores this process may use (its affinity mask).
    pub reservable: Vec<u32>,
}

/// Reads `/proc/cpuinfo`, sysfs cpufreq and the affinity mask.
pub fn detect() -> CpuInfo {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mut model = String::new();
    let mut cores = 0i64;
    let mut mhz = 0f64;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        match k.trim() {
            "processor" => cores += 1,
            "model name" if model.is_empty() => model = v.trim().to_string(),
            "cpu MHz" => mhz = mhz.max(v.trim().parse().unwrap_or(0.0)),
            _ => {}
        }
    }
    if cores == 0 {
        cores = std::thread::available_parallelism().map_or(1, |n| n.get() as i64);
    }
    // The maximum frequency is what Nomad reports when cpufreq exposes it.
    if let Some(khz) =
        std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
    {
        mhz = khz / 1000.0;
    }
    if mhz <= 0.0 {
        // Virtual machines sometimes hide the clock; assume a nominal 1 GHz.
        mhz = 1000.0;
    }
    CpuInfo {
        model,
        mhz: mhz.round() as i64,
        cores,
        reservable: reservable_cores(cores),
    }
}

fn reservable_cores(cores: i64) -> Vec<u32> {
    match nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..nix::sched::CpuSet::count())
            .filter(|i| set.is_set(*i).unwrap_or(false))
            .filter_map(|i| u32::try_from(i).ok())
            .collect(),
        Err(_) => (0..u32::try_from(cores).unwrap_or(1)).collect(),
    }
}

impl CpuInfo {
    /// Sets the `cpu.*` attributes; `total_override` replaces the computed total.
    pub fn attributes(&self, attrs: &mut BTreeMap<String, String>, total_override: Option<i64>) {
        let total = total_override.unwrap_or(self.mhz * self.cores);
        attrs.insert("cpu.modelname".into(), self.model.clone());
        attrs.insert("cpu.frequency".into(), self.mhz.to_string());
        attrs.insert("cpu.numcores".into(), self.cores.to_string());
        attrs.insert(
            "cpu.reservablecores".into(),
            self.reservable.len().to_string(),
        );
        attrs.insert("cpu.totalcompute".into(), total.to_string());
        attrs.insert(
            "cpu.usablecompute".into(),
            (self.mhz * self.reservable.len() as i64).to_string(),
        );
    }

    /// NodeResources.Cpu.
    pub fn resources(&self, total_override: Option<i64>) -> NodeCpuResources {
        NodeCpuResources {
            cpu_shares: total_override.unwrap_or(self.mhz * self.cores),
            total_cpu_cores: self.cores,
            reservable_cpu_cores: Some(self.reservable.clone()),
        }
    }
}
