//! Which cgroup hierarchy this machine offers, from `/proc/self/mountinfo`.
//!
//! v2 when `/sys/fs/cgroup` is itself cgroup2, or when a cgroup2 mount beside v1 hierarchies
//! (hybrid, e.g. `/sys/fs/cgroup/unified`) offers the memory and pids controllers; otherwise v1
//! when the memory and freezer hierarchies are mounted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::error::{CgroupError, Result};
use super::manager::CgroupVersion;
use super::v1::V1_CONTROLLERS;

pub(super) const MOUNTINFO: &str = "/proc/self/mountinfo";
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The detected layout, before any directory is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// v1: controller name → mount point of its hierarchy.
    V1(BTreeMap<String, PathBuf>),
    /// v2: the cgroup2 mount point to use as root.
    V2(PathBuf),
}

/// Decides the layout from a mountinfo text. `controllers_of` returns the contents of a cgroup2
/// mount's `cgroup.controllers` (injected so detection is testable without a machine).
pub fn detect_layout(
    mountinfo: &str,
    controllers_of: impl Fn(&Path) -> Option<String>,
) -> Result<CgroupLayout> {
    let mut v1 = BTreeMap::new();
    let mut v2_mounts = Vec::new();
    for line in mountinfo.lines() {
        let Some((mount_point, fstype, super_opts)) = parse_mountinfo_line(line) else {
            continue;
        };
        match fstype {
            "cgroup2" => v2_mounts.push(mount_point),
            "cgroup" => {
                for opt in super_opts.split(',') {
                    if V1_CONTROLLERS.contains(&opt) {
                        v1.entry(opt.to_string())
                            .or_insert_with(|| mount_point.clone());
                    }
                }
            }
            _ => {}
        }
    }
    let root = Path::new(CGROUP_ROOT);
    if v2_mounts.iter().any(|m| m == root) {
        return Ok(CgroupLayout::V2(root.to_path_buf()));
    }
    // Hybrid: a cgroup2 mount beside v1 counts only if v1 did not claim memory and pids.
    for m in &v2_mounts {
        if let Some(c) = controllers_of(m) {
            let set: BTreeSet<&str> = c.split_whitespace().collect();
            if set.contains("memory") && set.contains("pids") {
                return Ok(CgroupLayout::V2(m.clone()));
            }
        }
    }
    if v1.contains_key("memory") && v1.contains_key("freezer") {
        return Ok(CgroupLayout::V1(v1));
    }
    Err(CgroupError::Unavailable(
        "no cgroup2 mount with memory and pids, and no v1 memory+freezer hierarchies".into(),
    ))
}

/// Returns (mount point, fs type, super options) of one `/proc/self/mountinfo` line.
pub(crate) fn parse_mountinfo_line(line: &str) -> Option<(PathBuf, &str, &str)> {
    let (left, right) = line.split_once(" - ")?;
    let mount_point = left.split(' ').nth(4)?;
    let mut r = right.split(' ');
    let fstype = r.next()?;
    let _source = r.next()?;
    let super_opts = r.next().unwrap_or("");
    Some((
        PathBuf::from(unescape_mountinfo(mount_point)),
        fstype,
        super_opts,
    ))
}

/// Undoes mountinfo's octal escapes (`\040` for space, `\011`, `\012`, `\134`).
pub(crate) fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let d = |c: u8| u32::from(c - b'0');
                // Values above 0o377 cannot occur in mountinfo; truncation is harmless.
                out.push((d(oct[0]) * 64 + d(oct[1]) * 8 + d(oct[2])) as u8);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether cgroups are usable by this process (root and a detectable hierarchy); the exec
/// driver's fingerprint reports "Failed to discover cgroup mount point" otherwise.
pub fn cgroups_usable() -> bool {
    nix::unistd::geteuid().is_root() && detect_version().is_some()
}

/// The detected cgroup version, if any (for the `os.cgroups.version` attribute).
pub fn detect_version() -> Option<CgroupVersion> {
    let mountinfo = std::fs::read_to_string(MOUNTINFO).ok()?;
    match detect_layout(&mountinfo, read_controllers_file).ok()? {
        CgroupLayout::V1(_) => Some(CgroupVersion::V1),
        CgroupLayout::V2(_) => Some(CgroupVersion::V2),
    }
}

pub(super) fn read_controllers_file(mount: &Path) -> Option<String> {
    std::fs::read_to_string(mount.join("cgroup.controllers")).ok()
}
