//! A Raft snapshot's content (docs/raft.md §3): the state store's tables as the records the
//! durable store keeps, each `(Kind, key, packed JSON)`, one after another with a length in
//! front, closed by a trailer with their count and a CRC-32 of everything before it.
//!
//! ```text
//! "YURTSNAP" u32:version
//! { u32:len  u8:kind u32:key_len key packed_value }*      len = 1 + 4 + key_len + value_len
//! u32:0xFFFF_FFFF  u64:records  u32:crc32                 crc32 of all bytes before it
//! ```
//!
//! All integers are little-endian. A file cut short, with a damaged byte, or with anything after
//! the trailer is refused with an error naming it: never an empty or partial state.

use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::server::state::{Kind, Restorer, StateError, Tables, for_each_record, pack, unpack};

const MAGIC: &[u8; 8] = b"YURTSNAP";
const VERSION: u32 = 1;
/// The length that marks the trailer instead of a record.
const TRAILER: u32 = u32::MAX;
/// Largest record a length may claim: a damaged length must not make the reader allocate
/// gigabytes. The state store's own bound on one record is 64 MiB unpacked.
const MAX_RECORD: usize = 80 << 20;

/// A kind's code in the file. Codes are part of the format: never reuse or renumber one.
fn code(kind: Kind) -> u8 {
    match kind {
        Kind::Meta => 1,
        Kind::Jobs => 2,
        Kind::JobVersions => 3,
        Kind::AllocJobs => 4,
        Kind::Allocs => 5,
        Kind::Nodes => 6,
        Kind::Evals => 7,
        Kind::Deployments => 8,
        Kind::ScalingEvents => 9,
        Kind::Namespaces => 10,
        Kind::AclPolicies => 11,
        Kind::AclTokens => 12,
        Kind::AclRoles => 13,
        Kind::AclOneTimeTokens => 14,
        Kind::JobSubmissions => 15,
        Kind::Variables => 16,
        Kind::RootKeys => 17,
        Kind::Services => 18,
    }
}

fn kind_of(code: u8) -> Option<Kind> {
    Kind::ALL.into_iter().find(|k| self::code(*k) == code)
}

/// Wraps a writer, keeping the CRC of what went through it.
struct Crc<W> {
    inner: W,
    hasher: crc32fast::Hasher,
}

impl<W: Write> Write for Crc<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn write_error(e: std::io::Error) -> StateError {
    StateError::Storage(format!("writing: {e}"))
}

/// Writes `tables` as a snapshot to `out`; returns the number of records.
pub fn write(tables: &Tables, out: impl Write) -> Result<u64, StateError> {
    let mut out = Crc {
        inner: out,
        hasher: crc32fast::Hasher::new(),
    };
    out.write_all(MAGIC).map_err(write_error)?;
    out.write_all(&VERSION.to_le_bytes()).map_err(write_error)?;
    let mut count = 0u64;
    for_each_record(tables, |kind, key, value| {
        let packed = pack(value);
        let len = 1 + 4 + key.len() + packed.len();
        if len > MAX_RECORD {
            return Err(StateError::Storage(format!(
                "{kind:?} record {key:?} is {len} bytes packed, over the {MAX_RECORD} a snapshot holds"
            )));
        }
        let mut head = [0u8; 9];
        head[..4].copy_from_slice(&(len as u32).to_le_bytes());
        head[4] = code(kind);
        head[5..].copy_from_slice(&(key.len() as u32).to_le_bytes());
        out.write_all(&head).map_err(write_error)?;
        out.write_all(key.as_bytes()).map_err(write_error)?;
        out.write_all(&packed).map_err(write_error)?;
        count += 1;
        Ok(())
    })?;
    out.write_all(&TRAILER.to_le_bytes()).map_err(write_error)?;
    out.write_all(&count.to_le_bytes()).map_err(write_error)?;
    let crc = out.hasher.clone().finalize();
    out.inner
        .write_all(&crc.to_le_bytes())
        .map_err(write_error)?;
    out.inner.flush().map_err(write_error)?;
    Ok(count)
}

/// Reads exactly `buf.len()` bytes, naming what was cut short.
fn fill(input: &mut impl Read, buf: &mut [u8], what: &str, records: u64) -> Result<(), String> {
    input.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            format!("truncated in {what} after {records} records")
        } else {
            format!("reading {what} after {records} records: {e}")
        }
    })
}

/// Reads a snapshot written by [`write`] back into tables.
pub fn read(input: impl Read) -> Result<Tables, StateError> {
    read_inner(input).map_err(StateError::Storage)
}

fn read_inner(input: impl Read) -> Result<Tables, String> {
    let mut input = CrcReader {
        inner: input,
        hasher: crc32fast::Hasher::new(),
    };
    let mut head = [0u8; 12];
    fill(&mut input, &mut head, "the header", 0)?;
    if &head[..8] != MAGIC {
        return Err("not a yurt snapshot (bad magic)".into());
    }
    let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if version != VERSION {
        return Err(format!(
            "snapshot format version {version}; this yurt reads {VERSION}"
        ));
    }
    let mut restorer = Restorer::default();
    let mut records = 0u64;
    let mut body = Vec::new();
    loop {
        let mut len = [0u8; 4];
        fill(&mut input, &mut len, "a record length", records)?;
        let len = u32::from_le_bytes(len);
        if len == TRAILER {
            break;
        }
        let len = len as usize;
        if !(5..=MAX_RECORD).contains(&len) {
            return Err(format!(
                "record {} claims {len} bytes: damaged",
                records + 1
            ));
        }
        body.resize(len, 0);
        fill(&mut input, &mut body, "a record", records)?;
        let kind = kind_of(body[0]).ok_or_else(|| {
            format!(
                "record {} has unknown kind {}: damaged",
                records + 1,
                body[0]
            )
        })?;
        let key_len = u32::from_le_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let rest = &body[5..];
        if key_len > rest.len() {
            return Err(format!(
                "record {} claims a {key_len}-byte key in {} bytes: damaged",
                records + 1,
                rest.len()
            ));
        }
        let (key, packed) = rest.split_at(key_len);
        let key = std::str::from_utf8(key)
            .map_err(|_| format!("record {} has a key that is not UTF-8", records + 1))?;
        let value = unpack(packed).map_err(|e| format!("{kind:?} record {key:?}: {e}"))?;
        restorer.add(kind, key, &value).map_err(|e| match e {
            StateError::Storage(m) => m,
            other => other.to_string(),
        })?;
        records += 1;
    }
    let mut count = [0u8; 8];
    fill(&mut input, &mut count, "the trailer", records)?;
    let count = u64::from_le_bytes(count);
    let crc = input.hasher.clone().finalize();
    let mut stored = [0u8; 4];
    fill(&mut input.inner, &mut stored, "the trailer", records)?;
    let stored_crc = u32::from_le_bytes(stored);
    if count != records {
        return Err(format!(
            "the trailer counts {count} records, the file holds {records}"
        ));
    }
    if stored_crc != crc {
        return Err(format!(
            "checksum mismatch (stored {stored_crc:08x}, computed {crc:08x}): damaged"
        ));
    }
    let mut extra = [0u8; 1];
    match input.inner.read(&mut extra) {
        Ok(0) => Ok(restorer.finish()),
        Ok(_) => Err("bytes after the trailer".into()),
        Err(e) => Err(format!("reading after the trailer: {e}")),
    }
}

/// Wraps a reader, keeping the CRC of what came through it.
struct CrcReader<R> {
    inner: R,
    hasher: crc32fast::Hasher,
}

impl<R: Read> Read for CrcReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Writes `tables` to `path` (0600) through a temporary file that is fsynced and renamed
/// into place, so `path` is either the old snapshot or the whole new one.
pub fn save(tables: &Tables, path: &Path) -> Result<u64, StateError> {
    let named = |e: &dyn std::fmt::Display| {
        StateError::Storage(format!("snapshot {}: {e}", path.display()))
    };
    let tmp = path.with_extension("snap.tmp");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| named(&e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let count = write(tables, &mut out).map_err(|e| named(&e))?;
    let file = out.into_inner().map_err(|e| named(&e.into_error()))?;
    file.sync_all().map_err(|e| named(&e))?;
    std::fs::rename(&tmp, path).map_err(|e| named(&e))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| named(&e))?;
    }
    Ok(count)
}

/// Reads the snapshot at `path`; every failure names the file.
pub fn load(path: &Path) -> Result<Tables, StateError> {
    let named = |e: &dyn std::fmt::Display| {
        StateError::Storage(format!("snapshot {}: {e}", path.display()))
    };
    let file = std::fs::File::open(path).map_err(|e| named(&e))?;
    read_inner(BufReader::with_capacity(1 << 20, file)).map_err(|e| named(&e))
}

#[cfg(test)]
pub(crate) mod tests;
