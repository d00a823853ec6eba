//! Storage: the data dir's filesystem (`unique.storage.*`, NodeResources.Disk).

use std::path::Path;

/// Device, total bytes and free bytes of the filesystem holding `path`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Storage {
    /// The mounted device, like `df` prints it.
    pub volume: String,
    /// Size of the filesystem.
    pub bytes_total: i64,
    /// Space available to unprivileged users.
    pub bytes_free: i64,
}

/// Looks at the filesystem of `path` (its closest existing ancestor).
pub fn detect(path: &Path) -> Storage {
    let mut p = path.to_path_buf();
    while !p.exists() {
        if !p.pop() {
            break;
        }
    }
    let p = p.canonicalize().unwrap_or(p);
    let (total, free) = match nix::sys::statvfs::statvfs(&p) {
        Ok(st) => {
            let frag = st.fragment_size() as i64;
            (
                st.blocks() as i64 * frag,
                st.blocks_available() as i64 * frag,
            )
        }
        Err(_) => (0, 0),
    };
    Storage {
        volume: mount_device(&p).unwrap_or_default(),
        bytes_total: total,
        bytes_free: free,
    }
}

/// The device of the longest mount point that contains `path`.
fn mount_device(path: &Path) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.replace("\\040", " ")))
        })
        .filter(|(_, mp)| path.starts_with(mp))
        .max_by_key(|(_, mp)| mp.len())
        .map(|(dev, _)| dev)
}
