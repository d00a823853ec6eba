//! A task's resident anonymous memory read from its processes, for the `RSS` figure.
//!
//! The memcg counters behind `memory.stat` (v1 `rss`/`total_rss`, v2 `anon`) are per-CPU and
//! only folded into the values userspace reads when enough updates are pending (64 pages per
//! CPU) or by the kernel's periodic flush (every 2 s). A small task that has just started
//! therefore reads `rss 0` for up to 2 s although its pages are charged to its cgroup from the
//! first fault (`memory.usage_in_bytes` / `memory.current` show them at once). The per-process
//! `RssAnon` in `/proc/<pid>/status` is current at read time, so the sum over the cgroup's
//! processes is what a running task reports as RSS. Anonymous pages two processes share
//! copy-on-write after a fork count once per process, as in `ps`.

use nix::unistd::Pid;

/// Sum of `RssAnon` over `pids`, in bytes; `None` when none of them could be read (all gone,
/// or a kernel without the field), so the caller keeps the cgroup's own counter.
pub(crate) fn anon_resident_bytes(pids: &[Pid]) -> Option<u64> {
    let mut total = None;
    for pid in pids {
        // A process may exit between listing the cgroup and reading it: it holds no memory then.
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        if let Some(bytes) = rss_anon_bytes(&status) {
            *total.get_or_insert(0) += bytes;
        }
    }
    total
}

/// The `RssAnon:` line of a `/proc/<pid>/status` text, in bytes.
pub(crate) fn rss_anon_bytes(status: &str) -> Option<u64> {
    let value = status.lines().find_map(|l| l.strip_prefix("RssAnon:"))?;
    let kib: u64 = value.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rss_anon() {
        let status =
            "Name:\tsh\nVmRSS:\t    1540 kB\nRssAnon:\t     132 kB\nRssFile:\t    1408 kB\n";
        assert_eq!(rss_anon_bytes(status), Some(132 * 1024));
        assert_eq!(rss_anon_bytes("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn own_process_has_anonymous_memory() {
        let me = Pid::this();
        let gone = Pid::from_raw(i32::MAX);
        assert!(anon_resident_bytes(&[me]).is_some_and(|b| b > 0));
        assert_eq!(anon_resident_bytes(&[gone]), None);
    }
}
