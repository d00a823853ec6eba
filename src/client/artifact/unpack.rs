//! Unpacking tar, tar.gz and zip archives into a destination, refusing any entry that would
//! land outside it and enforcing the client's decompression limits.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::confine;

/// An archive format recognised by name (go-getter's suffixes) or forced by `archive=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tar,
    TarGz,
    Zip,
    TarBz2,
    TarXz,
}

impl Format {
    /// The format a file name's suffix names, if any.
    pub fn from_name(name: &str) -> Option<Format> {
        let n = name.to_ascii_lowercase();
        [
            (".tar.gz", Format::TarGz),
            (".tgz", Format::TarGz),
            (".tar.bz2", Format::TarBz2),
            (".tbz2", Format::TarBz2),
            (".tar.xz", Format::TarXz),
            (".txz", Format::TarXz),
            (".tar", Format::Tar),
            (".zip", Format::Zip),
        ]
        .into_iter()
        .find(|(suffix, _)| n.ends_with(suffix))
        .map(|(_, f)| f)
    }

    /// The format an `archive=` option value names.
    pub fn from_option(value: &str) -> Option<Format> {
        Self::from_name(&format!("x.{value}"))
    }
}

/// Upper bounds on what one archive may unpack; 0 means no bound.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_files: u64,
}

/// What has been unpacked so far, checked against [`Limits`].
struct Budget {
    limits: Limits,
    bytes: u64,
    files: u64,
}

impl Budget {
    fn file(&mut self) -> Result<(), String> {
        self.files += 1;
        if self.limits.max_files != 0 && self.files > self.limits.max_files {
            return Err(format!(
                "archive has more than {} files (decompression_file_count_limit)",
                self.limits.max_files
            ));
        }
        Ok(())
    }

    /// Copies `r` into `w`, failing once the total passes the size limit.
    fn copy(&mut self, r: &mut dyn Read, w: &mut dyn Write) -> Result<(), String> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = r
                .read(&mut buf)
                .map_err(|e| format!("reading archive: {e}"))?;
            if n == 0 {
                return Ok(());
            }
            self.bytes += n as u64;
            if self.limits.max_bytes != 0 && self.bytes > self.limits.max_bytes {
                return Err(format!(
                    "archive unpacks to more than {} bytes (decompression_size_limit)",
                    self.limits.max_bytes
                ));
            }
            w.write_all(&buf[..n])
                .map_err(|e| format!("writing archive entry: {e}"))?;
        }
    }
}

/// Unpacks `archive` (of `format`) into the directory `dest`, creating it.
pub fn unpack(archive: &Path, format: Format, dest: &Path, limits: Limits) -> Result<(), String> {
    std::fs::create_dir_all(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let file = std::fs::File::open(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
    let mut budget = Budget {
        limits,
        bytes: 0,
        files: 0,
    };
    match format {
        Format::Tar => unpack_tar(file, dest, &mut budget),
        Format::TarGz => unpack_tar(flate2::read::GzDecoder::new(file), dest, &mut budget),
        Format::Zip => unpack_zip(file, dest, &mut budget),
        Format::TarBz2 => unpack_tar(bzip2::read::BzDecoder::new(file), dest, &mut budget),
        Format::TarXz => unpack_tar(xz2::read::XzDecoder::new(file), dest, &mut budget),
    }
}

fn target(dest: &Path, parts: &[OsString]) -> PathBuf {
    parts.iter().fold(dest.to_path_buf(), |p, c| p.join(c))
}

/// Prepares to write the entry `parts`: its parents exist, nothing on the way is a symlink,
/// and a link left at the spot itself is removed rather than written through.
fn prepare(dest: &Path, parts: &[OsString]) -> Result<PathBuf, String> {
    confine::no_symlink_ancestor(dest, parts)?;
    let path = target(dest, parts);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(path)
}

fn write_file(
    path: &Path,
    r: &mut dyn Read,
    mode: Option<u32>,
    budget: &mut Budget,
) -> Result<(), String> {
    let mut f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    budget.copy(r, &mut f)?;
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o777))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn make_symlink(dest: &Path, parts: &[OsString], link_target: &Path) -> Result<(), String> {
    confine::symlink_target(parts, link_target)?;
    let path = prepare(dest, parts)?;
    std::os::unix::fs::symlink(link_target, &path).map_err(|e| format!("{}: {e}", path.display()))
}

fn unpack_tar(r: impl Read, dest: &Path, budget: &mut Budget) -> Result<(), String> {
    let mut ar = tar::Archive::new(r);
    let entries = ar.entries().map_err(|e| format!("reading tar: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("reading tar: {e}"))?;
        let name = entry
            .path()
            .map_err(|e| format!("tar entry name: {e}"))?
            .into_owned();
        let parts = confine::entry(&name)?;
        if parts.is_empty() {
            continue;
        }
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                confine::no_symlink_ancestor(dest, &parts)?;
                let path = target(dest, &parts);
                std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                budget.file()?;
                let path = prepare(dest, &parts)?;
                let mode = entry.header().mode().ok();
                write_file(&path, &mut entry, mode, budget)?;
            }
            tar::EntryType::Symlink => {
                budget.file()?;
                let link = entry
                    .link_name()
                    .map_err(|e| format!("tar link name: {e}"))?
                    .ok_or_else(|| format!("tar symlink {:?} has no target", name.display()))?
                    .into_owned();
                make_symlink(dest, &parts, &link)?;
            }
            tar::EntryType::Link => {
                budget.file()?;
                let link = entry
                    .link_name()
                    .map_err(|e| format!("tar link name: {e}"))?
                    .ok_or_else(|| format!("tar hard link {:?} has no target", name.display()))?
                    .into_owned();
                // A hard link's target is another entry of the archive, so it obeys the
                // same rules as an entry name.
                let target_parts = confine::entry(&link)?;
                confine::no_symlink_ancestor(dest, &target_parts)?;
                let from = target(dest, &target_parts);
                if std::fs::symlink_metadata(&from).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Err(format!(
                        "tar hard link {:?} points at a symlink",
                        name.display()
                    ));
                }
                let path = prepare(dest, &parts)?;
                std::fs::hard_link(&from, &path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            // Devices, fifos and metadata-only entries have no place in a task dir.
            _ => {}
        }
    }
    Ok(())
}

fn unpack_zip(file: std::fs::File, dest: &Path, budget: &mut Budget) -> Result<(), String> {
    let mut ar = zip::ZipArchive::new(file).map_err(|e| format!("reading zip: {e}"))?;
    for i in 0..ar.len() {
        let mut f = ar.by_index(i).map_err(|e| format!("reading zip: {e}"))?;
        let name = PathBuf::from(
            f.name()
                .map_err(|e| format!("zip entry name: {e}"))?
                .into_owned(),
        );
        let parts = confine::entry(&name)?;
        if parts.is_empty() {
            continue;
        }
        if f.is_dir() {
            confine::no_symlink_ancestor(dest, &parts)?;
            let path = target(dest, &parts);
            std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        } else if f.is_symlink() {
            budget.file()?;
            let mut link = String::new();
            f.read_to_string(&mut link)
                .map_err(|e| format!("zip symlink {:?}: {e}", name.display()))?;
            make_symlink(dest, &parts, Path::new(&link))?;
        } else {
            budget.file()?;
            let path = prepare(dest, &parts)?;
            let mode = f.unix_mode();
            write_file(&path, &mut f, mode, budget)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("yurt-unpack-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const NO_LIMITS: Limits = Limits {
        max_bytes: 0,
        max_files: 0,
    };

    /// A raw tar (built by hand so names the `tar` builder would refuse can be written).
    fn tar_with(entries: &[(&str, tar::EntryType, &[u8], &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            let raw = &mut h.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn unpack_bytes(bytes: &[u8], format: Format, limits: Limits) -> (PathBuf, Result<(), String>) {
        let d = tmp();
        let ar = d.join("archive");
        std::fs::write(&ar, bytes).unwrap();
        let out = d.join("out");
        let res = unpack(&ar, format, &out, limits);
        (d, res)
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn tar_gz_unpacks_files_dirs_and_inside_links() {
        let t = tar_with(&[
            ("dir/", tar::EntryType::Directory, b"", ""),
            ("dir/a.txt", tar::EntryType::Regular, b"alpha", ""),
            ("dir/link", tar::EntryType::Symlink, b"", "a.txt"),
        ]);
        let (d, res) = unpack_bytes(&gz(&t), Format::TarGz, NO_LIMITS);
        res.unwrap();
        assert_eq!(std::fs::read(d.join("out/dir/a.txt")).unwrap(), b"alpha");
        assert_eq!(std::fs::read(d.join("out/dir/link")).unwrap(), b"alpha");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn tar_entry_with_parent_dir_is_refused() {
        let t = tar_with(&[("../evil", tar::EntryType::Regular, b"x", "")]);
        let (d, res) = unpack_bytes(&gz(&t), Format::TarGz, NO_LIMITS);
        assert!(res.unwrap_err().contains("escapes"));
        assert!(!d.join("evil").exists());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn tar_entry_with_absolute_path_is_refused() {
        let t = tar_with(&[("/tmp/yurt-evil", tar::EntryType::Regular, b"x", "")]);
        let (d, res) = unpack_bytes(&t, Format::Tar, NO_LIMITS);
        assert!(res.unwrap_err().contains("absolute"));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn tar_symlink_out_is_refused_and_nothing_is_written_through_it() {
        let t = tar_with(&[("up", tar::EntryType::Symlink, b"", "../..")]);
        let (d, res) = unpack_bytes(&t, Format::Tar, NO_LIMITS);
        assert!(res.unwrap_err().contains("escapes"));
        std::fs::remove_dir_all(d).unwrap();

        let t = tar_with(&[("abs", tar::EntryType::Symlink, b"", "/etc")]);
        let (d, res) = unpack_bytes(&t, Format::Tar, NO_LIMITS);
        assert!(res.unwrap_err().contains("absolute"));
        std::fs::remove_dir_all(d).unwrap();

        // Each link looks harmless lexically, but the second one sits under the first.
        let t = tar_with(&[
            ("sub/", tar::EntryType::Directory, b"", ""),
            ("up", tar::EntryType::Symlink, b"", "sub/.."),
            ("up/x", tar::EntryType::Regular, b"x", ""),
        ]);
        let (d, res) = unpack_bytes(&t, Format::Tar, NO_LIMITS);
        assert!(res.unwrap_err().contains("through a symlink"));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn tar_hard_link_out_is_refused() {
        let t = tar_with(&[("h", tar::EntryType::Link, b"", "../../etc/passwd")]);
        let (d, res) = unpack_bytes(&t, Format::Tar, NO_LIMITS);
        assert!(res.unwrap_err().contains("escapes"));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn limits_on_size_and_file_count_are_enforced() {
        let t = tar_with(&[
            ("a", tar::EntryType::Regular, b"0123456789", ""),
            ("b", tar::EntryType::Regular, b"0123456789", ""),
        ]);
        let (d, res) = unpack_bytes(
            &t,
            Format::Tar,
            Limits {
                max_bytes: 15,
                max_files: 0,
            },
        );
        assert!(res.unwrap_err().contains("decompression_size_limit"));
        std::fs::remove_dir_all(d).unwrap();
        let (d, res) = unpack_bytes(
            &t,
            Format::Tar,
            Limits {
                max_bytes: 0,
                max_files: 1,
            },
        );
        assert!(res.unwrap_err().contains("decompression_file_count_limit"));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn zip_unpacks_and_refuses_escapes() {
        fn zip_with(name: &str) -> Vec<u8> {
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            w.start_file(
                name,
                zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored),
            )
            .unwrap();
            w.write_all(b"zipped").unwrap();
            w.finish().unwrap().into_inner()
        }
        let (d, res) = unpack_bytes(&zip_with("in/z.txt"), Format::Zip, NO_LIMITS);
        res.unwrap();
        assert_eq!(std::fs::read(d.join("out/in/z.txt")).unwrap(), b"zipped");
        std::fs::remove_dir_all(d).unwrap();
        let (d, res) = unpack_bytes(&zip_with("../z.txt"), Format::Zip, NO_LIMITS);
        assert!(res.unwrap_err().contains("escapes"));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn bz2_and_xz_tars_unpack() {
        let t = tar_with(&[("f.txt", tar::EntryType::Regular, b"compressed", "")]);
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&t).unwrap();
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&t).unwrap();
        for (bytes, format) in [
            (bz.finish().unwrap(), Format::TarBz2),
            (xz.finish().unwrap(), Format::TarXz),
        ] {
            let (d, res) = unpack_bytes(&bytes, format, NO_LIMITS);
            res.unwrap();
            assert_eq!(std::fs::read(d.join("out/f.txt")).unwrap(), b"compressed");
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn formats_are_named_by_suffix_or_option() {
        assert_eq!(Format::from_name("a/b.TGZ"), Some(Format::TarGz));
        assert_eq!(Format::from_name("x.tar.gz"), Some(Format::TarGz));
        assert_eq!(Format::from_name("x.tar"), Some(Format::Tar));
        assert_eq!(Format::from_name("x.zip"), Some(Format::Zip));
        assert_eq!(Format::from_name("x.txt"), None);
        assert_eq!(Format::from_option("tar.xz"), Some(Format::TarXz));
    }
}
