//! This process's own figures, read from /proc: the counterparts of the Go runtime gauges
//! Nomad emits (`nomad.runtime.*`) and of the `process_*` families client_golang's process
//! collector adds to Nomad's Prometheus output.

use super::render::Exposition;

/// What /proc says about this process.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    pub rss_bytes: u64,
    /// Anonymous resident memory: the heap and stacks, the nearest thing to Go's alloc_bytes.
    pub rss_anon_bytes: u64,
    pub virtual_bytes: u64,
    pub threads: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub cpu_seconds: f64,
    pub start_time_seconds: f64,
}

fn status_kb(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
}

/// Clock ticks per second for /proc/*/stat times.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Seconds since the epoch when the machine booted.
fn boot_time() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

impl ProcessStats {
    /// Reads them now; a figure /proc does not give stays 0.
    pub fn read() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let mut out = ProcessStats {
            rss_bytes: status_kb(&status, "VmRSS") * 1024,
            rss_anon_bytes: status_kb(&status, "RssAnon") * 1024,
            virtual_bytes: status_kb(&status, "VmSize") * 1024,
            threads: status_kb(&status, "Threads"),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .map(|d| d.count() as u64)
                .unwrap_or(0),
            ..ProcessStats::default()
        };
        if let Ok((soft, _)) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        {
            out.max_fds = soft;
        }
        // /proc/self/stat: fields after the parenthesised command name; utime, stime and
        // starttime are fields 14, 15 and 22.
        if let Some(rest) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.to_string()))
        {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let at = |n: usize| {
                f.get(n - 3)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            let ticks = clock_ticks();
            out.cpu_seconds = (at(14) + at(15)) / ticks;
            out.start_time_seconds = boot_time() + at(22) / ticks;
        }
        out
    }

    /// The client_golang process collector's families.
    pub fn exposition(&self) -> Exposition {
        let mut exp = Exposition::default();
        let none: &[(String, String)] = &[];
        exp.add(
            "process_resident_memory_bytes",
            "gauge",
            "",
            none,
            self.rss_bytes as f64,
        );
        exp.add(
            "process_virtual_memory_bytes",
            "gauge",
            "",
            none,
            self.virtual_bytes as f64,
        );
        exp.add(
            "process_cpu_seconds_total",
            "counter",
            "",
            none,
            self.cpu_seconds,
        );
        exp.add("process_open_fds", "gauge", "", none, self.open_fds as f64);
        exp.add("process_max_fds", "gauge", "", none, self.max_fds as f64);
        exp.add(
            "process_start_time_seconds",
            "gauge",
            "",
            none,
            self.start_time_seconds,
        );
        exp.add("process_threads", "gauge", "", none, self.threads as f64);
        exp
    }
}

/// Sets the `nomad.runtime.*` gauges: Go's goroutines are tokio's live tasks here, its heap
/// the anonymous resident memory, its `sys_bytes` the resident set.
pub fn emit_runtime_gauges() {
    let p = ProcessStats::read();
    metrics::gauge!("nomad.runtime.alloc_bytes").set(p.rss_anon_bytes as f64);
    metrics::gauge!("nomad.runtime.sys_bytes").set(p.rss_bytes as f64);
    metrics::gauge!("nomad.runtime.num_threads").set(p.threads as f64);
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        metrics::gauge!("nomad.runtime.num_goroutines")
            .set(handle.metrics().num_alive_tasks() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let p = ProcessStats::read();
        assert!(p.rss_bytes > 0, "{p:?}");
        assert!(p.threads >= 1, "{p:?}");
        assert!(p.open_fds >= 3, "{p:?}");
        assert!(p.start_time_seconds > 1.0e9, "{p:?}");
        let text = p.exposition().render();
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter"),
            "{text}"
        );
    }
}
