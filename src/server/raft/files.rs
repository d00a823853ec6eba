//! Durable small files under `data_dir/server/raft/`: the server ID, snapshot metadata, and
//! the directory syncs that make a rename survive a crash.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::server::state::StateError;

/// Writes `bytes` to `path` (0600) through a fsynced temporary file, then syncs the
/// directory so the rename itself is on disk.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let fail = |e: &dyn std::fmt::Display| StateError::Storage(format!("{}: {e}", path.display()));
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| fail(&e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| fail(&e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail(&e))?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Makes the entries of `dir` (new files, renames) durable.
pub fn sync_dir(dir: &Path) -> Result<(), StateError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StateError::Storage(format!("{}: {e}", dir.display())))
}
