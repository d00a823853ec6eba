//! Memory: `memory.totalbytes` and NodeResources.Memory.

/// Total memory in bytes from `/proc/meminfo` (0 if unreadable).
pub fn total_bytes() -> i64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map_or(0, |kb| kb * 1024)
}
