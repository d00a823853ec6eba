//! The durable half of the state store: the redb file, and one redb transaction per commit
//! group, committed with immediate durability before any write in it is acknowledged.

use std::path::Path;
#[cfg(test)]
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::StateError;

/// The kinds of records kept on disk; each is one redb table of `key → JSON`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Jobs,
    JobVersions,
    AllocJobs,
    Allocs,
    Nodes,
    Evals,
    Deployments,
    ScalingEvents,
    Namespaces,
    AclPolicies,
    AclTokens,
    AclRoles,
    AclOneTimeTokens,
    JobSubmissions,
    Variables,
    RootKeys,
    Services,
    Meta,
}

impl Kind {
    /// Every kind, in restore order (jobs before the allocations that point at them).
    pub const ALL: [Kind; 18] = [
        Kind::Meta,
        Kind::Jobs,
        Kind::JobVersions,
        Kind::AllocJobs,
        Kind::Allocs,
        Kind::Nodes,
        Kind::Evals,
        Kind::Deployments,
        Kind::ScalingEvents,
        Kind::Namespaces,
        Kind::AclPolicies,
        Kind::AclTokens,
        Kind::AclRoles,
        Kind::AclOneTimeTokens,
        Kind::JobSubmissions,
        Kind::Variables,
        Kind::RootKeys,
        Kind::Services,
    ];

    fn def(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        TableDefinition::new(match self {
            Kind::Jobs => "jobs",
            Kind::JobVersions => "job_versions",
            Kind::AllocJobs => "alloc_jobs",
            Kind::Allocs => "allocs",
            Kind::Nodes => "nodes",
            Kind::Evals => "evals",
            Kind::Deployments => "deployments",
            Kind::ScalingEvents => "scaling_events",
            Kind::Namespaces => "namespaces",
            Kind::AclPolicies => "acl_policies",
            Kind::AclTokens => "acl_tokens",
            Kind::AclRoles => "acl_roles",
            Kind::AclOneTimeTokens => "acl_one_time_tokens",
            Kind::JobSubmissions => "job_submissions",
            Kind::Variables => "variables",
            Kind::RootKeys => "root_keys",
            Kind::Services => "service_registrations",
            Kind::Meta => "meta",
        })
    }
}

/// redb's page cache (reads are answered from the in-memory tables, not from redb). redb
/// keeps every page it flushes in this cache until it is full, so in a dev agent it grows
/// with each write toward the bound, in the agent's RSS; half of it bounds the write buffer
/// (beyond it, dirty pages are written out early).
const CACHE_BYTES: usize = 4 << 20;

/// One record change.
pub(super) enum Op {
    Put(Kind, String, Vec<u8>),
    Delete(Kind, String),
}

impl Op {
    fn kind(&self) -> Kind {
        match self {
            Op::Put(k, _, _) | Op::Delete(k, _) => *k,
        }
    }
}

/// What puts one record back as it was before an applied [`Op`]: its stored bytes, or None
/// when it did not exist.
pub(super) struct Undo {
    kind: Kind,
    key: String,
    old: Option<Vec<u8>>,
}

/// The on-disk store under `data_dir/server/`.
pub struct Durable {
    path: std::path::PathBuf,
    /// The open database; None after a failure that leaves redb refusing every later
    /// transaction ("Previous I/O error occurred"), e.g. the disk filled up mid-commit. The
    /// next transaction reopens the file, so writes resume by themselves once the cause is
    /// gone instead of failing until a restart.
    db: std::sync::Mutex<Option<Database>>,
    /// Set by a failure: the next [`Durable::begin`] closes and reopens the file.
    reopen: std::sync::atomic::AtomicBool,
    /// Lets a test hold a commit in flight or make it fail.
    #[cfg(test)]
    pub(super) before_commit: std::sync::Mutex<Option<CommitHook>>,
    /// Records applied to a transaction so far (tests watch a write's records arrive).
    #[cfg(test)]
    pub(super) applied: Arc<std::sync::atomic::AtomicUsize>,
}

/// Called at the start of every commit (tests only); an error fails the commit.
#[cfg(test)]
pub(super) type CommitHook = Box<dyn FnMut() -> Result<(), StateError> + Send>;

impl Durable {
    /// The database file the store keeps in `dir`.
    pub fn path_in(dir: &Path) -> std::path::PathBuf {
        dir.join("state.redb")
    }

    /// Opens (or creates) the store file.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StateError::Storage(format!("creating {}: {e}", dir.display())))?;
        let path = Self::path_in(dir);
        let db = open_db(&path)?;
        let txn = db.begin_write().map_err(storage)?;
        for kind in Kind::ALL {
            txn.open_table(kind.def()).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        Ok(Durable {
            path,
            db: std::sync::Mutex::new(Some(db)),
            reopen: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            before_commit: std::sync::Mutex::new(None),
            #[cfg(test)]
            applied: Arc::default(),
        })
    }

    /// Starts the transaction the next records go into, reopening the file first if an
    /// earlier failure closed it. Called only with no transaction open.
    pub(super) fn begin(&self) -> Result<redb::WriteTransaction, StateError> {
        let mut db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        if self.reopen.swap(false, std::sync::atomic::Ordering::SeqCst) {
            // Closed before reopening: redb refuses a second handle on the same file.
            *db = None;
        }
        if db.is_none() {
            *db = Some(open_db(&self.path)?);
            tracing::info!(path = %self.path.display(), "state store reopened after a failed write");
        }
        let Some(open) = db.as_ref() else {
            return Err(StateError::Storage("state store is closed".into()));
        };
        open.begin_write().map_err(|e| {
            *db = None;
            storage(e)
        })
    }

    /// Marks the database for reopening after a failed record or commit: redb may refuse
    /// every later transaction on this handle. It is closed by the next `begin`, when the
    /// failed transaction is gone (the committer drops it before beginning another).
    fn failed(&self, e: impl std::fmt::Display) -> StateError {
        self.reopen.store(true, std::sync::atomic::Ordering::SeqCst);
        storage(e)
    }

    /// Applies `ops` to `txn` in order, recording in `undo` how to revert each.
    pub(super) fn apply(
        &self,
        txn: &redb::WriteTransaction,
        ops: impl IntoIterator<Item = Op>,
        undo: &mut Vec<Undo>,
    ) -> Result<(), StateError> {
        let mut tables: Vec<(Kind, redb::Table<&str, &[u8]>)> = Vec::new();
        #[cfg(test)]
        let mut count = 0;
        for op in ops {
            #[cfg(test)]
            {
                count += 1;
            }
            let kind = op.kind();
            let pos = match tables.iter().position(|(k, _)| *k == kind) {
                Some(p) => p,
                None => {
                    let table = txn.open_table(kind.def()).map_err(|e| self.failed(e))?;
                    tables.push((kind, table));
                    tables.len() - 1
                }
            };
            let table = &mut tables[pos].1;
            let (key, old) = match op {
                Op::Put(_, key, value) => {
                    let old = table.insert(key.as_str(), pack(&value).as_ref());
                    let old = old.map_err(|e| self.failed(e))?.map(|g| g.value().to_vec());
                    (key, old)
                }
                Op::Delete(_, key) => {
                    let old = table.remove(key.as_str()).map_err(|e| self.failed(e))?;
                    (key, old.map(|g| g.value().to_vec()))
                }
            };
            undo.push(Undo { kind, key, old });
        }
        #[cfg(test)]
        self.applied
            .fetch_add(count, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Puts back, newest first, every record `undo` names, as it was before.
    pub(super) fn revert(
        &self,
        txn: &redb::WriteTransaction,
        undo: Vec<Undo>,
    ) -> Result<(), StateError> {
        for Undo { kind, key, old } in undo.into_iter().rev() {
            let mut table = txn.open_table(kind.def()).map_err(storage)?;
            match old {
                Some(bytes) => table.insert(key.as_str(), bytes.as_slice()).map(drop),
                None => table.remove(key.as_str()).map(drop),
            }
            .map_err(storage)?;
        }
        Ok(())
    }

    /// Makes everything applied to `txn` durable (one fsync); on an error none of it is.
    pub(super) fn commit(&self, txn: redb::WriteTransaction) -> Result<(), StateError> {
        #[cfg(test)]
        if let Some(hook) = self
            .before_commit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            // Dropping the transaction uncommitted aborts it.
            hook()?;
        }
        txn.commit().map_err(|e| self.failed(e))
    }

    /// Every record of a kind.
    pub fn load(&self, kind: Kind) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        let txn = {
            let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
            let Some(open) = db.as_ref() else {
                return Err(StateError::Storage("state store is closed".into()));
            };
            open.begin_read().map_err(storage)?
        };
        let table = txn.open_table(kind.def()).map_err(storage)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            let key = k.value().to_string();
            let value = unpack(v.value()).map_err(|e| {
                StateError::Storage(format!("reading {kind:?} record {key:?}: {e}"))
            })?;
            out.push((key, value));
        }
        Ok(out)
    }
}

/// First byte of a compressed record. Plain records are JSON, which never starts with it.
const LZ4_TAG: u8 = 1;
/// Records at least this long are compressed: allocations (several KiB of JSON with
/// repeated field names) shrink about 3×, which is most of a large plan's commit time.
const COMPRESS_FROM: usize = 256;
/// Largest record a compressed length prefix may claim (a damaged file must not make the
/// restore allocate gigabytes).
const MAX_RECORD: usize = 64 << 20;

/// The stored form of a record.
pub(crate) fn pack(value: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if value.len() < COMPRESS_FROM {
        return std::borrow::Cow::Borrowed(value);
    }
    let compressed = lz4_flex::block::compress_prepend_size(value);
    let mut out = Vec::with_capacity(compressed.len() + 1);
    out.push(LZ4_TAG);
    out.extend_from_slice(&compressed);
    std::borrow::Cow::Owned(out)
}

/// A record as written by [`pack`] (or plain JSON from before compression).
pub(crate) fn unpack(stored: &[u8]) -> Result<Vec<u8>, String> {
    let Some((&LZ4_TAG, body)) = stored.split_first() else {
        return Ok(stored.to_vec());
    };
    let claimed = body
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("truncated compressed record")?;
    if claimed > MAX_RECORD {
        return Err(format!("compressed record claims {claimed} bytes"));
    }
    lz4_flex::block::decompress_size_prepended(body).map_err(|e| e.to_string())
}

/// Opens (or creates) the database file, naming it in any error.
fn open_db(path: &Path) -> Result<Database, StateError> {
    // redb caches up to 1 GiB by default; the in-memory tables already serve every read,
    // so the cache only has to hold a large plan's dirty pages.
    redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .create(path)
        .map_err(|e| StateError::Storage(format!("opening {}: {e}", path.display())))
}

fn storage(e: impl std::fmt::Display) -> StateError {
    StateError::Storage(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_packed_and_plain() {
        let small = br#"{"a":1}"#.to_vec();
        assert_eq!(
            pack(&small).as_ref(),
            small.as_slice(),
            "small records stay plain"
        );
        let big = serde_json::to_vec(&vec![serde_json::json!({"Name": "web", "Count": 3}); 40])
            .expect("json");
        let packed = pack(&big).into_owned();
        assert_eq!(packed[0], LZ4_TAG);
        assert!(
            packed.len() < big.len() / 2,
            "{} of {}",
            packed.len(),
            big.len()
        );
        assert_eq!(unpack(&packed).expect("unpack"), big);
        // Records written before compression are plain JSON and still read.
        assert_eq!(unpack(&big).expect("plain"), big);
        assert!(unpack(&[LZ4_TAG, 1]).is_err());
        assert!(unpack(&[LZ4_TAG, 0xff, 0xff, 0xff, 0x7f, 0]).is_err());
    }
}
