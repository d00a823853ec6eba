//! Reading the process tree and per-process figures from /proc (no cgroups needed).

use std::fs;
use std::io;

/// Sends `sig` to `pid` (negative: a process group). ESRCH is not an error: the target is gone.
pub fn send_signal(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) takes plain integers.
    if unsafe { libc::kill(pid, sig) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(e)
    }
}

/// Direct children of `pid` (over all its threads), from `/proc/<pid>/task/*/children`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(list) = fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        out.extend(
            list.split_ascii_whitespace()
                .filter_map(|s| s.parse::<u32>().ok()),
        );
    }
    out
}

/// Every descendant of `pid` (not `pid` itself), parents before children.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut out = children_of(pid);
    let mut i = 0;
    while i < out.len() {
        let grandchildren = children_of(out[i]);
        out.extend(grandchildren);
        i += 1;
    }
    out
}

/// One process's figures from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcSample {
    /// One-letter state (`R`, `S`, `Z`, ...).
    pub state: char,
    /// User-mode CPU in clock ticks.
    pub utime_ticks: u64,
    /// Kernel-mode CPU in clock ticks.
    pub stime_ticks: u64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
}

/// Reads `/proc/<pid>/stat`.
pub fn sample(pid: u32) -> io::Result<ProcSample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unparsable /proc/{pid}/stat"),
        )
    })
}

fn parse_stat(stat: &str) -> Option<ProcSample> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // f[0] is field 3 (state); utime is field 14, stime 15, rss (pages) 24.
    let page = page_size();
    Some(ProcSample {
        state: f.first()?.chars().next()?,
        utime_ticks: f.get(11)?.parse().ok()?,
        stime_ticks: f.get(12)?.parse().ok()?,
        rss_bytes: f.get(21)?.parse::<u64>().ok()? * page,
    })
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    matches!(sample(pid), Ok(s) if s.state != 'Z' && s.state != 'X')
}

/// Private memory of `pid` in bytes: `Private_Clean + Private_Dirty` from `smaps_rollup`.
pub fn private_memory_bytes(pid: u32) -> io::Result<u64> {
    let (clean, dirty) = private_memory_split(pid)?;
    Ok(clean + dirty)
}

/// `(Private_Clean, Private_Dirty)` of `pid` in bytes. Clean private pages are mostly the
/// binary's code that no other process maps right now; they become shared as soon as another
/// process (the agent, a second supervisor) runs the same binary. Dirty ones are the real cost.
pub fn private_memory_split(pid: u32) -> io::Result<(u64, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    let field = |name: &str| -> io::Result<u64> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no {name}")))?;
        let kib = line
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(kib * 1024)
    };
    Ok((field("Private_Clean:")?, field("Private_Dirty:")?))
}

/// Clock ticks per second (`_SC_CLK_TCK`).
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf takes a plain integer.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as u64 } else { 100 }
}

fn page_size() -> u64 {
    // SAFETY: sysconf takes a plain integer.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 { v as u64 } else { 4096 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 100 1000 5 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!((s.utime_ticks, s.stime_ticks), (7, 3));
        assert_eq!(s.rss_bytes, 5 * page_size());
    }

    #[test]
    fn sees_own_process() {
        let me = std::process::id();
        assert!(is_alive(me));
        assert!(private_memory_bytes(me).unwrap() > 0);
    }
}
