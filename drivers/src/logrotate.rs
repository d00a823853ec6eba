//! Rotated log files: `<dir>/<task>.stdout.<n>` and `.stderr.<n>`, Nomad's naming and rules.
//!
//! Synchronous and unbuffered on purpose: it runs inside the per-task supervisor (no async
//! runtime), and writing straight through means a crash of any process loses no byte that the
//! task had already handed over. The pipe the supervisor reads from already batches small writes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Below this many bytes left in a file, writes try to end on a line boundary.
const LINE_SLACK: u64 = 32 * 1024;

/// One rotated stream (`<task>.stdout` or `<task>.stderr`).
#[derive(Debug)]
pub struct FileRotator {
    dir: PathBuf,
    base: String,
    max_files: u64,
    max_size: u64,
    file: File,
    index: u64,
    written: u64,
}

impl FileRotator {
    /// Opens the stream, resuming in the highest existing index (appending) like Nomad.
    pub fn open(dir: &Path, base: &str, max_files: u32, max_size: u64) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let index = existing_indexes(dir, base)?.into_iter().max().unwrap_or(0);
        let (file, written) = open_append(&dir.join(format!("{base}.{index}")))?;
        let mut rotator = FileRotator {
            dir: dir.to_path_buf(),
            base: base.to_string(),
            max_files: u64::from(max_files.max(1)),
            max_size: max_size.max(1),
            file,
            index,
            written,
        };
        rotator.purge()?;
        Ok(rotator)
    }

    /// The index of the file being written.
    pub fn current_index(&self) -> u64 {
        self.index
    }

    /// Path of the file being written.
    pub fn current_path(&self) -> PathBuf {
        self.path_for(self.index)
    }

    fn path_for(&self, index: u64) -> PathBuf {
        self.dir.join(format!("{}.{}", self.base, index))
    }

    /// Moves to the next index, skipping entries that are full files or directories.
    fn rotate(&mut self) -> io::Result<()> {
        let mut next = self.index + 1;
        loop {
            let path = self.path_for(next);
            match fs::metadata(&path) {
                Ok(m) if m.is_dir() || m.len() >= self.max_size => next += 1,
                _ => break,
            }
        }
        let (file, written) = open_append(&self.path_for(next))?;
        self.file = file;
        self.index = next;
        self.written = written;
        self.purge()
    }

    /// Deletes the oldest files so that at most `max_files` remain, counting the current one.
    fn purge(&mut self) -> io::Result<()> {
        let mut indexes = existing_indexes(&self.dir, &self.base)?;
        if indexes.len() as u64 <= self.max_files {
            return Ok(());
        }
        indexes.sort_unstable();
        let excess = indexes.len() - self.max_files as usize;
        for idx in indexes.into_iter().take(excess) {
            if idx == self.index {
                continue;
            }
            match fs::remove_file(self.path_for(idx)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// How many bytes of `buf` go into the current file, or None to rotate first.
    fn chunk_len(&self, buf: &[u8]) -> Option<usize> {
        let space = self.max_size.saturating_sub(self.written);
        if space == 0 {
            return None;
        }
        let remaining = buf.len() as u64;
        if space >= remaining + LINE_SLACK.min(self.max_size)
            || remaining <= space && self.max_size < LINE_SLACK
        {
            return Some(buf.len());
        }
        // Near the end of the file: keep lines whole when possible.
        match buf.iter().position(|&b| b == b'\n') {
            Some(nl) if (nl as u64) < space => Some(nl + 1),
            Some(_) if self.written > 0 => None,
            Some(_) => Some(space as usize),
            None if remaining > self.max_size || self.max_size < LINE_SLACK => {
                Some(space.min(remaining) as usize)
            }
            None if self.written == 0 => Some(space.min(remaining) as usize),
            // A chunk without a newline is the start of a line whose end comes in a later
            // write (pipe reads cut lines anywhere): writing it here, even though it fits,
            // would split that line across files. Rotate first, as Nomad does.
            None => None,
        }
    }
}

impl Write for FileRotator {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let Some(n) = self.chunk_len(buf) else {
                self.rotate()?;
                continue;
            };
            if let Err(e) = self.file.write_all(&buf[..n]) {
                // Part of the chunk may have landed (a disk filling up mid-write): count
                // what the file really holds so rotation still happens at the size limit.
                if let Ok(m) = self.file.metadata() {
                    self.written = m.len();
                }
                return Err(e);
            }
            self.written += n as u64;
            buf = &buf[n..];
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn open_append(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let len = file.metadata()?.len();
    Ok((file, len))
}

/// Indexes of the `<base>.<n>` files in `dir`; other names are ignored.
pub fn existing_indexes(dir: &Path, base: &str) -> io::Result<Vec<u64>> {
    let prefix = format!("{base}.");
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name
            .strip_prefix(&prefix)
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push(n);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("yurt-rotator-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn concat(dir: &Path, base: &str) -> Vec<u8> {
        let mut idx = existing_indexes(dir, base).unwrap();
        idx.sort_unstable();
        let mut out = Vec::new();
        for i in idx {
            out.extend(fs::read(dir.join(format!("{base}.{i}"))).unwrap());
        }
        out
    }

    #[test]
    fn starts_at_zero_and_rotates_keeping_max_files() {
        let dir = tmpdir("basic");
        let mut r = FileRotator::open(&dir, "web.stdout", 2, 100_000).unwrap();
        assert_eq!(r.current_index(), 0);
        let mut all = Vec::new();
        for i in 0..40_000u32 {
            let line = format!("line {i}\n");
            all.extend_from_slice(line.as_bytes());
            r.write_all(line.as_bytes()).unwrap();
        }
        let idx = existing_indexes(&dir, "web.stdout").unwrap();
        assert!(idx.len() <= 2, "{idx:?}");
        let kept = concat(&dir, "web.stdout");
        assert!(all.ends_with(&kept), "kept files are not the exact tail");
        for i in idx {
            let size = fs::metadata(dir.join(format!("web.stdout.{i}")))
                .unwrap()
                .len();
            assert!(size <= 100_000);
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lines_are_not_split_across_files() {
        let dir = tmpdir("lines");
        let mut r = FileRotator::open(&dir, "t.stdout", 100, 64 * 1024).unwrap();
        for i in 0..5000u32 {
            r.write_all(format!("{i:08}-{}\n", "x".repeat((i % 200) as usize)).as_bytes())
                .unwrap();
        }
        for i in existing_indexes(&dir, "t.stdout").unwrap() {
            let data = fs::read(dir.join(format!("t.stdout.{i}"))).unwrap();
            assert_eq!(data.last(), Some(&b'\n'), "file {i} ends mid-line");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lines_cut_across_writes_stay_whole() {
        let dir = tmpdir("cut");
        let mut r = FileRotator::open(&dir, "t.stdout", 1000, 64 * 1024).unwrap();
        let mut all = Vec::new();
        for i in 0..40_000u32 {
            all.extend_from_slice(format!("{i}\n").as_bytes());
        }
        // Odd-sized writes cut lines anywhere, like reads from a pipe do.
        for chunk in all.chunks(4093) {
            r.write_all(chunk).unwrap();
        }
        // The worst cut: a line start that exactly fills the file, its end in the next write.
        let used = fs::metadata(r.current_path()).unwrap().len() as usize;
        let pad = 64 * 1024 - used - 10;
        let mut filler = vec![b'x'; pad - 1];
        filler.push(b'\n');
        for piece in [&filler[..], b"abcdefghij", b"k\n"] {
            r.write_all(piece).unwrap();
            all.extend_from_slice(piece);
        }
        assert_eq!(concat(&dir, "t.stdout"), all);
        for i in existing_indexes(&dir, "t.stdout").unwrap() {
            let data = fs::read(dir.join(format!("t.stdout.{i}"))).unwrap();
            assert_eq!(data.last(), Some(&b'\n'), "file {i} ends mid-line");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resumes_in_highest_index_after_reopen() {
        let dir = tmpdir("resume");
        {
            let mut r = FileRotator::open(&dir, "t.stderr", 5, 1000).unwrap();
            r.write_all(&[b'a'; 2500]).unwrap();
            assert_eq!(r.current_index(), 2);
        }
        let mut r = FileRotator::open(&dir, "t.stderr", 5, 1000).unwrap();
        assert_eq!(r.current_index(), 2);
        r.write_all(b"bb").unwrap();
        let last = fs::read(dir.join("t.stderr.2")).unwrap();
        assert_eq!(last.len(), 502);
        assert!(last.ends_with(b"bb"));
        assert_eq!(concat(&dir, "t.stderr").len(), 2502);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn long_lines_fill_files() {
        let dir = tmpdir("long");
        let mut r = FileRotator::open(&dir, "t.stdout", 10, 1000).unwrap();
        let data: Vec<u8> = (0..3500u32).map(|i| b'a' + (i % 26) as u8).collect();
        r.write_all(&data).unwrap();
        assert_eq!(concat(&dir, "t.stdout"), data);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ignores_foreign_names() {
        let dir = tmpdir("foreign");
        fs::write(dir.join("t.stdout.fifo"), b"").unwrap();
        fs::write(dir.join(".t.stdout.fifo"), b"").unwrap();
        fs::write(dir.join("t.stdout.7"), b"old\n").unwrap();
        let r = FileRotator::open(&dir, "t.stdout", 3, 1000).unwrap();
        assert_eq!(r.current_index(), 7);
        fs::remove_dir_all(&dir).unwrap();
    }
}
