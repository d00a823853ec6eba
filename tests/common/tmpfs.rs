//! A small tmpfs a test fills up to see how yurt copes with a full disk. Needs root.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{TempDir, kill_processes_under, unmount_under};

/// A tmpfs of a given size, unmounted (with whatever runs from it killed) when dropped,
/// even when the test fails.
pub struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        let dir = TempDir::new("tmpfs");
        let opts = format!("size={size}");
        nix::mount::mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(opts.as_str()),
        )
        .unwrap_or_else(|e| panic!("mounting a tmpfs needs root: {e}"));
        Tmpfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the filesystem with one file until writes fail; returns the file, whose
    /// removal gives the space back.
    pub fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("create filler");
        let chunk = vec![0u8; 64 * 1024];
        loop {
            if let Err(e) = f.write_all(&chunk) {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "filling: {e}");
                break;
            }
        }
        // The pages a partly written chunk left: fill them too.
        while f.write(&[0u8; 512]).is_ok_and(|n| n > 0) {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        kill_processes_under(self.dir.path());
        unmount_under(self.dir.path());
        let _ = nix::mount::umount2(self.dir.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}
