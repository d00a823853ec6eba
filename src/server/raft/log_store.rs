//! The Raft log on redb (docs/raft.md §3): `data_dir/server/raft/log.redb`.
//!
//! `append` keeps the entries in memory, where every reader finds them at once, and queues them
//! to the `raft-log` thread. That thread drains its queue into one redb transaction, commits it
//! with one fsync, and only then calls each append's `LogFlushed`: appends that arrive while a
//! commit is in flight share the next one. Votes, truncations and purges go through the same
//! queue, so every write reaches the disk in the order openraft made it.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, LogId, OptionalSend, RaftLogId, RaftLogReader, RaftTypeConfig, StorageError,
    StorageIOError, Vote,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::server::state::{StateError, pack, unpack};

/// `index → record`, a record being the entry's log ID (JSON) behind a u32 length, then the
/// whole entry as JSON, packed as the state store packs its records. The log ID is apart so
/// finding the last one does not decode a large plan.
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
/// The vote, the committed log ID and the last purged log ID, each as JSON.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// The log file's name in the raft directory.
pub const LOG_FILE: &str = "log.redb";

/// redb's page cache: the newest entries are also in memory until they are flushed, and a
/// follower that fell behind reads older ones once, so a small cache is enough.
const CACHE_BYTES: usize = 8 << 20;

type NodeIdOf<C> = <C as RaftTypeConfig>::NodeId;
type Result<T, C> = std::result::Result<T, StorageError<NodeIdOf<C>>>;

/// One write for the `raft-log` thread.
enum Op<C: RaftTypeConfig> {
    Append(Vec<C::Entry>, LogFlushed<C>),
    /// Removes the entries from this index on.
    Truncate(u64, Reply),
    /// Removes the entries up to this log ID and records it as the last purged.
    Purge(LogId<C::NodeId>, Reply),
    Vote(Vote<C::NodeId>, Reply),
    /// Recorded without an fsync of its own: openraft only needs it to re-apply on restart
    /// what was already committed, and it rides along with the next durable commit (or with
    /// closing the database, which makes a pending non-durable commit durable).
    Committed(Option<LogId<C::NodeId>>),
}

type Reply = oneshot::Sender<std::result::Result<(), String>>;

const WRITER_STOPPED: &str = "the raft-log thread stopped";

/// A failed read, kept small until a trait method turns it into openraft's (large) error.
struct ReadFail {
    /// The index being read, when the failure is about one entry.
    index: Option<u64>,
    message: String,
}

impl ReadFail {
    fn into_storage<NID: openraft::NodeId>(self) -> StorageError<NID> {
        match self.index {
            Some(i) => StorageIOError::read_log_at_index(i, io_err(self.message)),
            None => StorageIOError::read_logs(io_err(self.message)),
        }
        .into()
    }
}

/// What the store, its readers and its writer thread share.
struct Shared<C: RaftTypeConfig> {
    /// The open file. Replaced (closed, then opened again) after a write failed for want of
    /// space, because redb refuses every transaction after an I/O error.
    db: RwLock<Option<Arc<Database>>>,
    path: PathBuf,
    /// Appended entries that are not committed to `db` yet, by index. They always follow the
    /// entries in `db`, so a range is read from `db` below the first of them.
    pending: Mutex<BTreeMap<u64, C::Entry>>,
    /// Set while the writer holds a write back for want of space.
    out_of_space: Arc<AtomicBool>,
    /// Flushed entries the state machine has not applied yet, by index: applying reads them
    /// from here instead of decoding them from the file, and the state machine releases them
    /// (see [`AppliedLog`]) so it holds the only copy of what it moves into its state.
    unapplied: Mutex<BTreeMap<u64, C::Entry>>,
    /// Lets a test hold the writer before its next commit (one token per commit).
    #[cfg(test)]
    gate: Mutex<Option<mpsc::Receiver<()>>>,
    /// How the writes so far grouped (tests measure it).
    #[cfg(test)]
    stats: Arc<WriteStats>,
}

/// What the writer thread committed: transactions, the durable ones (one fsync each), append
/// calls and entries.
#[cfg(test)]
#[derive(Default, Debug)]
pub(crate) struct WriteStats {
    pub transactions: std::sync::atomic::AtomicU64,
    pub fsyncs: std::sync::atomic::AtomicU64,
    pub appends: std::sync::atomic::AtomicU64,
    pub entries: std::sync::atomic::AtomicU64,
}

#[cfg(test)]
impl WriteStats {
    fn count<C: RaftTypeConfig>(&self, group: &[Op<C>]) {
        use std::sync::atomic::Ordering::Relaxed;
        self.transactions.fetch_add(1, Relaxed);
        if group.iter().any(|op| !matches!(op, Op::Committed(_))) {
            self.fsyncs.fetch_add(1, Relaxed);
        }
        for op in group {
            if let Op::Append(entries, _) = op {
                self.appends.fetch_add(1, Relaxed);
                self.entries.fetch_add(entries.len() as u64, Relaxed);
            }
        }
    }

    /// Transactions, fsyncs, appends and entries so far.
    pub fn read(&self) -> [u64; 4] {
        use std::sync::atomic::Ordering::Relaxed;
        [
            self.transactions.load(Relaxed),
            self.fsyncs.load(Relaxed),
            self.appends.load(Relaxed),
            self.entries.load(Relaxed),
        ]
    }
}

/// The log store openraft writes through.
pub struct LogStore<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
    queue: Option<mpsc::Sender<Op<C>>>,
    writer: Option<JoinHandle<()>>,
    /// What the last saved vote, committed and purge were; every change goes through `&mut
    /// self`, so these are always what the disk will hold.
    vote: Option<Vote<C::NodeId>>,
    committed: Option<LogId<C::NodeId>>,
    last_purged: Option<LogId<C::NodeId>>,
}

/// Lets the state machine drop the log's in-memory copies of the entries it applies.
pub struct AppliedLog<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
}

impl<C: RaftTypeConfig> AppliedLog<C> {
    /// Forgets the in-memory copies of the entries up to `index`, which are being applied
    /// (the file keeps them).
    pub fn release_upto(&self, index: u64) {
        let mut unapplied = lock(&self.shared.unapplied);
        let rest = unapplied.split_off(&index.saturating_add(1));
        *unapplied = rest;
    }
}

/// A reader for openraft's replication tasks: sees every appended entry, flushed or not.
pub struct LogReader<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
}

fn io_err(e: impl std::fmt::Display) -> AnyError {
    AnyError::error(e)
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone,
{
    /// Opens (or creates) the log under `dir` (`data_dir/server/raft`), which is made 0700,
    /// the file 0600: the log holds every write, secrets included.
    pub fn open(dir: &Path) -> std::result::Result<Self, String> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("setting the mode of {}: {e}", dir.display()))?;
        let path = dir.join(LOG_FILE);
        // redb creates its file with the process umask; an empty file made 0600 first is one
        // it initializes in place.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("creating {}: {e}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("setting the mode of {}: {e}", path.display()))?;
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| format!("opening {}: {e}", path.display()))?;
        let fail = |e: &dyn std::fmt::Display| format!("reading {}: {e}", path.display());
        let txn = db.begin_write().map_err(|e| fail(&e))?;
        txn.open_table(ENTRIES).map_err(|e| fail(&e))?;
        txn.open_table(META).map_err(|e| fail(&e))?;
        txn.commit().map_err(|e| fail(&e))?;
        let (vote, committed, last_purged) = {
            let txn = db.begin_read().map_err(|e| fail(&e))?;
            let meta = txn.open_table(META).map_err(|e| fail(&e))?;
            let committed: Option<Option<LogId<C::NodeId>>> = read_meta(&meta, COMMITTED, &path)?;
            (
                read_meta(&meta, VOTE, &path)?,
                committed.flatten(),
                read_meta(&meta, LAST_PURGED, &path)?,
            )
        };
        let shared = Arc::new(Shared {
            db: RwLock::new(Some(Arc::new(db))),
            out_of_space: Arc::default(),
            path,
            pending: Mutex::new(BTreeMap::new()),
            unapplied: Mutex::new(BTreeMap::new()),
            #[cfg(test)]
            gate: Mutex::new(None),
            #[cfg(test)]
            stats: Arc::default(),
        });
        let (queue, rx) = mpsc::channel();
        let writer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("raft-log".into())
                .spawn(move || write_loop(&shared, &rx))
                .map_err(|e| format!("starting the raft-log thread: {e}"))?
        };
        Ok(LogStore {
            shared,
            queue: Some(queue),
            writer: Some(writer),
            vote,
            committed,
            last_purged,
        })
    }

    /// Holds the writer thread before each commit until the test sends a token.
    #[cfg(test)]
    fn gate(&self) -> mpsc::Sender<()> {
        let (tx, rx) = mpsc::channel();
        *lock(&self.shared.gate) = Some(rx);
        tx
    }

    /// True while the writer holds a write back because the disk is full: new writes are
    /// refused before they are proposed (they would only queue behind it).
    pub fn out_of_space(&self) -> Arc<AtomicBool> {
        self.shared.out_of_space.clone()
    }

    /// The state machine's handle on the entries kept for its apply.
    pub fn applied_log(&self) -> AppliedLog<C> {
        AppliedLog {
            shared: self.shared.clone(),
        }
    }

    /// Counts what the writer commits.
    #[cfg(test)]
    pub(crate) fn stats(&self) -> Arc<WriteStats> {
        self.shared.stats.clone()
    }

    /// Queues `op`; false when the writer thread is gone.
    fn send(&self, op: Op<C>) -> bool {
        self.queue.as_ref().is_some_and(|q| q.send(op).is_ok())
    }

    /// Queues `op` and waits until the writer thread has made it durable.
    async fn send_and_wait(
        &self,
        make: impl FnOnce(Reply) -> Op<C>,
        on_error: impl FnOnce(AnyError) -> StorageIOError<C::NodeId>,
    ) -> Result<(), C> {
        let (tx, rx) = oneshot::channel();
        if !self.send(make(tx)) {
            return Err(on_error(io_err(WRITER_STOPPED)).into());
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(on_error(io_err(e)).into()),
            Err(_) => Err(on_error(io_err(WRITER_STOPPED)).into()),
        }
    }
}

impl<C: RaftTypeConfig> Drop for LogStore<C> {
    /// Lets the writer finish what is queued, so every acknowledged write is on disk and the
    /// file can be opened again once the store is gone.
    fn drop(&mut self) {
        self.queue.take();
        if let Some(handle) = self.writer.take()
            && handle.join().is_err()
        {
            tracing::error!("the raft-log thread panicked");
        }
    }
}

impl<C: RaftTypeConfig> Shared<C> {
    /// The open file (a handle, so a reopen does not pull it from under a reader); None
    /// only between a failed reopen and the next try.
    fn db(&self) -> std::result::Result<Arc<Database>, String> {
        self.db
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| format!("{} is being reopened", self.path.display()))
    }

    /// Closes and opens the file again, which clears redb's failed state after an I/O error.
    /// Fails (to be retried) while a reader still holds the old handle: redb allows one
    /// handle per file.
    fn reopen(&self) -> std::result::Result<(), String> {
        let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = db.take()
            && let Err(shared) = Arc::try_unwrap(open)
        {
            *db = Some(shared);
            return Err("a reader holds the file".into());
        }
        let file = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&self.path)
            .map_err(|e| format!("reopening {}: {e}", self.path.display()))?;
        *db = Some(Arc::new(file));
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `range` as a half-open `[start, end)`.
fn half_open(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

/// A stored record: the log ID, then the packed entry.
fn encode_record<C: RaftTypeConfig>(entry: &C::Entry) -> std::result::Result<Vec<u8>, String> {
    let id = serde_json::to_vec(entry.get_log_id()).map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
    let packed = pack(&body);
    let mut out = Vec::with_capacity(4 + id.len() + packed.len());
    out.extend_from_slice(&(id.len() as u32).to_le_bytes());
    out.extend_from_slice(&id);
    out.extend_from_slice(&packed);
    Ok(out)
}

/// The log ID and the packed entry of a stored record.
fn split_record(record: &[u8]) -> std::result::Result<(&[u8], &[u8]), String> {
    let len = record
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("record shorter than its header")?;
    let id = record
        .get(4..4 + len)
        .ok_or("record shorter than its log ID")?;
    Ok((id, &record[4 + len..]))
}

impl<C: RaftTypeConfig> Shared<C>
where
    C::Entry: Clone,
{
    fn read_error(&self, index: u64, e: impl std::fmt::Display) -> ReadFail {
        ReadFail {
            index: Some(index),
            message: format!("{}: {e}", self.path.display()),
        }
    }

    /// The entries in `range`: the flushed ones from the file, the rest from memory.
    fn read_range(
        &self,
        range: impl RangeBounds<u64>,
    ) -> std::result::Result<Vec<C::Entry>, ReadFail> {
        let (start, end) = half_open(&range);
        if start >= end {
            return Ok(Vec::new());
        }
        // Memory first: an entry the writer flushes meanwhile is then in the file. The
        // entries in memory are the log's tail (flushed but not applied, then not flushed),
        // so the file supplies the range below the first of them.
        let in_memory: Vec<C::Entry> = {
            // The writer takes the two in this order too.
            let pending = lock(&self.pending);
            let unapplied = lock(&self.unapplied);
            let mut merged: BTreeMap<u64, C::Entry> = unapplied
                .range(start..end)
                .map(|(i, e)| (*i, e.clone()))
                .collect();
            merged.extend(pending.range(start..end).map(|(i, e)| (*i, e.clone())));
            merged.into_values().collect()
        };
        let file_end = in_memory
            .first()
            .map_or(end, |e| e.get_log_id().index.min(end));
        let mut out = Vec::new();
        if start < file_end {
            let txn = self
                .db()
                .map_err(|e| self.read_error(start, e))?
                .begin_read()
                .map_err(|e| self.read_error(start, e))?;
            let table = txn
                .open_table(ENTRIES)
                .map_err(|e| self.read_error(start, e))?;
            for row in table
                .range(start..file_end)
                .map_err(|e| self.read_error(start, e))?
            {
                let (k, v) = row.map_err(|e| self.read_error(start, e))?;
                let index = k.value();
                out.push(self.decode_entry(index, v.value())?);
            }
        }
        out.extend(in_memory);
        Ok(out)
    }

    fn decode_entry(&self, index: u64, record: &[u8]) -> std::result::Result<C::Entry, ReadFail> {
        let (_, packed) = split_record(record).map_err(|e| self.read_error(index, e))?;
        let body = unpack(packed).map_err(|e| self.read_error(index, e))?;
        serde_json::from_slice(&body).map_err(|e| self.read_error(index, e))
    }

    /// The log ID of the last entry in the file.
    fn last_flushed_id(&self) -> std::result::Result<Option<LogId<C::NodeId>>, ReadFail> {
        let err = |e: &dyn std::fmt::Display| ReadFail {
            index: None,
            message: format!("{}: {e}", self.path.display()),
        };
        let txn = self
            .db()
            .map_err(|e| err(&e))?
            .begin_read()
            .map_err(|e| err(&e))?;
        let table = txn.open_table(ENTRIES).map_err(|e| err(&e))?;
        let Some((_, v)) = table.last().map_err(|e| err(&e))? else {
            return Ok(None);
        };
        let (id, _) = split_record(v.value()).map_err(|e| err(&e))?;
        serde_json::from_slice(id).map(Some).map_err(|e| err(&e))
    }
}

/// The `raft-log` thread: one redb transaction and one fsync per group of queued writes.
fn write_loop<C: RaftTypeConfig>(shared: &Shared<C>, rx: &mpsc::Receiver<Op<C>>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        group.extend(rx.try_iter());
        #[cfg(test)]
        if let Some(gate) = lock(&shared.gate).as_ref() {
            // A test holding the gate has dropped its sender when it is done.
            let _ = gate.recv();
        }
        let result = commit_until_space(shared, &group);
        #[cfg(test)]
        shared.stats.count(&group);
        if result.is_ok() {
            let mut pending = lock(&shared.pending);
            let mut unapplied = lock(&shared.unapplied);
            for op in &group {
                if let Op::Append(entries, _) = op {
                    for e in entries {
                        let id = e.get_log_id();
                        // A truncation may have replaced the entry in memory since.
                        if pending.get(&id.index).map(|p| p.get_log_id()) == Some(id)
                            && let Some(flushed) = pending.remove(&id.index)
                        {
                            unapplied.insert(id.index, flushed);
                        }
                    }
                }
            }
        }
        if let Err(e) = &result {
            tracing::error!(file = %shared.path.display(), "raft log write failed: {e}");
        }
        for op in group {
            match op {
                Op::Append(entries, flushed) => {
                    // Dropped first, so the apply this completion leads to holds the only
                    // copy of each entry but the one kept for it.
                    drop(entries);
                    flushed.log_io_completed(result.clone().map_err(io::Error::other));
                }
                Op::Truncate(_, reply) | Op::Purge(_, reply) | Op::Vote(_, reply) => {
                    let _ = reply.send(result.clone());
                }
                Op::Committed(_) => {}
            }
        }
    }
}

/// Commits `group`, and when the disk is full keeps trying until space returns instead of
/// failing: openraft stops the node on any log I/O error, and these entries are already in
/// its memory, so they must reach the file or the server must stop. New writes are refused
/// before they are proposed while this lasts (see [`LogStore::out_of_space`]).
fn commit_until_space<C: RaftTypeConfig>(
    shared: &Shared<C>,
    group: &[Op<C>],
) -> std::result::Result<(), String> {
    let mut result = commit_group(shared, group);
    let mut wait = Duration::from_millis(100);
    while let Err(e) = &result
        && StateError::is_out_of_space_msg(e)
    {
        if !shared.out_of_space.swap(true, Ordering::SeqCst) {
            tracing::error!(file = %shared.path.display(), "raft log: {e}; holding writes until space returns");
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_secs(2));
        match shared.reopen() {
            Ok(()) => result = commit_group(shared, group),
            Err(reopen) => tracing::debug!("raft log: {reopen}"),
        }
    }
    if shared.out_of_space.swap(false, Ordering::SeqCst) && result.is_ok() {
        tracing::info!(file = %shared.path.display(), "raft log: space returned, writes resume");
    }
    result
}

fn commit_group<C: RaftTypeConfig>(
    shared: &Shared<C>,
    group: &[Op<C>],
) -> std::result::Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", shared.path.display());
    let mut txn = shared.db()?.begin_write().map_err(|e| fail(&e))?;
    if group.iter().all(|op| matches!(op, Op::Committed(_))) {
        txn.set_durability(Durability::None).map_err(|e| fail(&e))?;
    }
    {
        let mut entries = txn.open_table(ENTRIES).map_err(|e| fail(&e))?;
        let mut meta = txn.open_table(META).map_err(|e| fail(&e))?;
        for op in group {
            match op {
                Op::Append(batch, _) => {
                    for e in batch {
                        let record = encode_record::<C>(e).map_err(|e| fail(&e))?;
                        entries
                            .insert(e.get_log_id().index, record.as_slice())
                            .map_err(|e| fail(&e))?;
                    }
                }
                Op::Truncate(index, _) => {
                    entries
                        .retain_in(*index.., |_, _| false)
                        .map_err(|e| fail(&e))?;
                }
                Op::Purge(id, _) => {
                    entries
                        .retain_in(..=id.index, |_, _| false)
                        .map_err(|e| fail(&e))?;
                    meta.insert(LAST_PURGED, to_json(id, &shared.path)?.as_slice())
                        .map_err(|e| fail(&e))?;
                }
                Op::Vote(vote, _) => {
                    meta.insert(VOTE, to_json(vote, &shared.path)?.as_slice())
                        .map_err(|e| fail(&e))?;
                }
                Op::Committed(id) => {
                    meta.insert(COMMITTED, to_json(id, &shared.path)?.as_slice())
                        .map_err(|e| fail(&e))?;
                }
            }
        }
    }
    txn.commit().map_err(|e| fail(&e))
}

fn to_json<T: Serialize>(value: &T, path: &Path) -> std::result::Result<Vec<u8>, String> {
    serde_json::to_vec(value).map_err(|e| format!("{}: encoding: {e}", path.display()))
}

/// A meta record, None when it was never written.
fn read_meta<T: DeserializeOwned>(
    meta: &redb::ReadOnlyTable<&str, &[u8]>,
    key: &str,
    path: &Path,
) -> std::result::Result<Option<T>, String> {
    let Some(value) = meta
        .get(key)
        .map_err(|e| format!("reading {}: {e}", path.display()))?
    else {
        return Ok(None);
    };
    serde_json::from_slice(value.value())
        .map(Some)
        .map_err(|e| format!("{}: meta record {key:?}: {e}", path.display()))
}

impl<C> RaftLogReader<C> for LogReader<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, C> {
        self.shared
            .read_range(range)
            .map_err(ReadFail::into_storage)
    }
}

impl<C> RaftLogReader<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, C> {
        self.shared
            .read_range(range)
            .map_err(ReadFail::into_storage)
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    type LogReader = LogReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, C> {
        let last_pending = lock(&self.shared.pending)
            .values()
            .next_back()
            .map(|e| e.get_log_id().clone());
        let last = match last_pending {
            Some(id) => Some(id),
            None => self
                .shared
                .last_flushed_id()
                .map_err(ReadFail::into_storage)?,
        };
        Ok(LogState {
            last_purged_log_id: self.last_purged.clone(),
            last_log_id: last.or_else(|| self.last_purged.clone()),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), C> {
        let v = vote.clone();
        self.send_and_wait(|r| Op::Vote(v, r), StorageIOError::write_vote)
            .await?;
        self.vote = Some(vote.clone());
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, C> {
        Ok(self.vote.clone())
    }

    async fn save_committed(&mut self, committed: Option<LogId<C::NodeId>>) -> Result<(), C> {
        if !self.send(Op::Committed(committed.clone())) {
            return Err(StorageIOError::write_logs(io_err(WRITER_STOPPED)).into());
        }
        self.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<C::NodeId>>, C> {
        Ok(self.committed.clone())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> Result<(), C>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<C::Entry> = entries.into_iter().collect();
        {
            let mut pending = lock(&self.shared.pending);
            for e in &entries {
                pending.insert(e.get_log_id().index, e.clone());
            }
        }
        if !self.send(Op::Append(entries, callback)) {
            return Err(StorageIOError::write_logs(io_err(WRITER_STOPPED)).into());
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), C> {
        lock(&self.shared.pending).retain(|&index, _| index < log_id.index);
        lock(&self.shared.unapplied).retain(|&index, _| index < log_id.index);
        self.send_and_wait(
            |r| Op::Truncate(log_id.index, r),
            StorageIOError::write_logs,
        )
        .await
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), C> {
        lock(&self.shared.pending).retain(|&index, _| index > log_id.index);
        lock(&self.shared.unapplied).retain(|&index, _| index > log_id.index);
        let id = log_id.clone();
        self.send_and_wait(|r| Op::Purge(id, r), StorageIOError::write_logs)
            .await?;
        self.last_purged = Some(log_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
