//! Linux capability names and Nomad's exec capability policy.

use super::{IsolationError, Result};

/// Kernel capability names, indexed by capability number.
pub const CAP_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Nomad's default capability set for exec tasks (also the default `allow_caps`).
pub const NOMAD_EXEC_DEFAULT_CAPS: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// A set of capabilities as a bitmask (bit n = capability number n).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CapSet(pub u64);

/// The highest capability number this kernel supports (`/proc/sys/kernel/cap_last_cap`).
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(CAP_NAMES.len() as u32 - 1)
        .min(63)
}

/// Parses one capability name: case-insensitive, `CAP_` prefix optional; must be kernel-supported.
pub fn parse_cap(name: &str) -> Result<u32> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CAP_NAMES
        .iter()
        .position(|n| *n == bare)
        .map(|i| i as u32)
        .filter(|&i| i <= last_cap())
        .ok_or_else(|| IsolationError::InvalidCapability(name.to_string()))
}

impl CapSet {
    /// Every capability the running kernel supports.
    pub fn all_supported() -> CapSet {
        let last = last_cap();
        CapSet(if last >= 63 {
            u64::MAX
        } else {
            (1u64 << (last + 1)) - 1
        })
    }

    /// Nomad's default exec set.
    pub fn nomad_default() -> CapSet {
        let mut s = CapSet::default();
        for n in NOMAD_EXEC_DEFAULT_CAPS {
            if let Some(i) = CAP_NAMES.iter().position(|c| *c == n) {
                s.0 |= 1 << i;
            }
        }
        s
    }

    /// Parses a list of names; `all` stands for every supported capability.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<CapSet> {
        let mut s = CapSet::default();
        for n in names {
            if n.as_ref().trim().eq_ignore_ascii_case("all") {
                s.0 |= CapSet::all_supported().0;
            } else {
                s.0 |= 1 << parse_cap(n.as_ref())?;
            }
        }
        Ok(s)
    }

    /// Whether capability number `cap` is in the set.
    pub fn contains(&self, cap: u32) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }

    /// Names of the capabilities in the set (without `CAP_`), in kernel order.
    pub fn names(&self) -> Vec<&'static str> {
        CAP_NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.contains(*i as u32))
            .map(|(_, n)| *n)
            .collect()
    }
}

/// Nomad's rule: `(defaults ∩ allow_caps) − cap_drop ∪ cap_add`, and `cap_add ⊆ allow_caps`.
pub fn task_capabilities<S: AsRef<str>>(
    allow_caps: &[S],
    cap_add: &[S],
    cap_drop: &[S],
) -> Result<CapSet> {
    let allow = CapSet::parse_list(allow_caps)?;
    let add = CapSet::parse_list(cap_add)?;
    let drop = CapSet::parse_list(cap_drop)?;
    let outside = CapSet(add.0 & !allow.0);
    if outside.0 != 0 {
        return Err(IsolationError::CapabilityNotAllowed(
            outside.names().join(", "),
        ));
    }
    Ok(CapSet(
        (CapSet::nomad_default().0 & allow.0 & !drop.0) | add.0,
    ))
}
