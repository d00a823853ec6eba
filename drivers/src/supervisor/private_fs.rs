//! Creating and opening a supervisor's control files (launch spec, exit record, supervisor
//! log) and their directories so that a file or link someone else planted is never used.
//!
//! Every path is opened with `O_NOFOLLOW`, every file is created with `O_EXCL` after removing
//! whatever was there (so a planted link is replaced, never written through), and what is read
//! back must be a regular file of our own user with a single name that nobody else may write:
//! a task running as another user can neither forge a control file nor make the agent or a
//! supervisor (both root in production) write through a link it planted. Directories are
//! checked on an open descriptor (`fstat`, `fchmod`), never by path, so nothing can be swapped
//! between the check and the change.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode of every control directory.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every control file.
pub const FILE_MODE: u32 = 0o600;

fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// An error naming `path`; `ELOOP` from `O_NOFOLLOW` is spelled out.
fn at(path: &Path, e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        return io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is a symbolic link; refusing to follow it",
                path.display()
            ),
        );
    }
    e
}

fn refuse(path: &Path, why: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{}: {why}", path.display()),
    )
}

/// Creates `dir` (and missing parents) if needed, then insists that it is a real directory
/// (not a link) owned by this process's user, and makes it 0700.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    let d = open_dir(dir)?;
    let meta = d.metadata()?;
    if meta.uid() != euid() {
        return Err(refuse(
            dir,
            format!("owned by uid {}, not by uid {}", meta.uid(), euid()),
        ));
    }
    if meta.mode() & 0o7777 != DIR_MODE {
        d.set_permissions(fs::Permissions::from_mode(DIR_MODE))?;
    }
    Ok(())
}

/// The directory `dir` itself (not a link to one), open for `fstat`, `fchmod` and `fsync`.
pub fn open_dir(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)
        .map_err(|e| at(dir, e))
}

/// Removes `path` if it exists (a link is removed itself, not its target).
pub fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A new, empty 0600 file at `path`, replacing whatever was there.
pub fn create(path: &Path) -> io::Result<File> {
    remove_if_present(path)?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| at(path, e))
}

/// `path` opened for appending (created 0600 if missing); it must be our own regular file.
pub fn open_append(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        // O_NONBLOCK: a FIFO put there must fail the check below, not hang the open.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| at(path, e))?;
    check_own_file(path, &f)?;
    Ok(f)
}

/// The contents of the control file at `path` (None when there is none), at most `max` bytes.
/// It must be a regular file with one name, owned by this process's user and writable by
/// nobody else.
pub fn read(path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    let f = match OpenOptions::new()
        .read(true)
        // O_NONBLOCK: a FIFO put there must fail the check below, not hang the open.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(at(path, e)),
    };
    check_own_file(path, &f)?;
    let mut data = Vec::new();
    f.take(max + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max {
        return Err(refuse(path, format!("larger than {max} bytes")));
    }
    Ok(Some(data))
}

fn check_own_file(path: &Path, f: &File) -> io::Result<()> {
    let meta = f.metadata()?;
    if !meta.file_type().is_file() {
        return Err(refuse(path, "not a regular file".into()));
    }
    if meta.uid() != euid() {
        return Err(refuse(
            path,
            format!("owned by uid {}, not by uid {}", meta.uid(), euid()),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(refuse(
            path,
            format!("writable by others (mode {:o})", meta.mode() & 0o7777),
        ));
    }
    // A second name could be a hard link someone made to a file of ours elsewhere.
    if meta.nlink() != 1 {
        return Err(refuse(path, format!("has {} names", meta.nlink())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("yurt-pfs-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn links_are_replaced_or_refused_never_followed() {
        let d = scratch("links");
        let victim = d.join("victim");
        fs::write(&victim, b"keep").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();

        let planted = d.join("exit.json");
        symlink(&victim, &planted).unwrap();
        let err = read(&planted, 1024).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let err = open_append(&planted).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        create(&planted).unwrap().write_all(b"new").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert!(!fs::symlink_metadata(&planted).unwrap().is_symlink());
        assert_eq!(read(&planted, 1024).unwrap().unwrap(), b"new");

        // A directory that is a link is refused; one of ours is made private.
        let real = d.join("real");
        fs::create_dir(&real).unwrap();
        let link = d.join("dirlink");
        symlink(&real, &link).unwrap();
        assert!(private_dir(&link).is_err());
        fs::set_permissions(&real, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&real).unwrap();
        assert_eq!(fs::metadata(&real).unwrap().mode() & 0o7777, 0o700);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn foreign_shared_or_oversized_files_are_refused() {
        let d = scratch("foreign");
        let f = d.join("spec.json");
        fs::write(&f, b"{}").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(read(&f, 1024).unwrap_err().to_string().contains("writable"));
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        let twin = d.join("twin");
        fs::hard_link(&f, &twin).unwrap();
        assert!(read(&f, 1024).unwrap_err().to_string().contains("names"));
        fs::remove_file(&twin).unwrap();
        assert!(read(&f, 1).unwrap_err().to_string().contains("larger"));
        assert_eq!(read(&f, 2).unwrap().unwrap(), b"{}");
        assert!(read(&d.join("none"), 2).unwrap().is_none());
        let fifo = d.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(read(&fifo, 2).unwrap_err().to_string().contains("regular"));
        assert!(open_append(&fifo).is_err());
        if euid() == 0 {
            nix::unistd::chown(&f, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
            assert!(read(&f, 1024).unwrap_err().to_string().contains("owned by"));
            let sub = d.join("sub");
            fs::create_dir(&sub).unwrap();
            nix::unistd::chown(&sub, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
            assert!(
                private_dir(&sub)
                    .unwrap_err()
                    .to_string()
                    .contains("owned by")
            );
        }
        fs::remove_dir_all(&d).unwrap();
    }
}
