//! The OOM hook: reading a cgroup's OOM-kill counter.
//!
//! The cgroup code passes the counter file in `LaunchSpec::oom_events` (v2 `memory.events`,
//! v1 `memory.oom_control` on kernels ≥ 4.13); the supervisor reads it at start and at exit and
//! reports `oom_killed` when it grew. Without a file the flag stays false: no guessing.

use std::io;
use std::path::Path;

/// The `oom_kill <n>` count in `path`.
pub fn oom_kills(path: &Path) -> io::Result<u64> {
    let text = std::fs::read_to_string(path)?;
    parse(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no oom_kill line in {}", path.display()),
        )
    })
}

fn parse(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_v2_and_v1() {
        let v2 = "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(super::parse(v2), Some(1));
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n";
        assert_eq!(super::parse(v1), Some(4));
        assert_eq!(super::parse("nothing"), None);
    }
}
