//! The durable half of the state store: every accepted write is one redb transaction,
//! committed with immediate durability before the write is acknowledged.

use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

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
    Meta,
}

impl Kind {
    /// Every kind, in restore order (jobs before the allocations that point at them).
    pub const ALL: [Kind; 9] = [
        Kind::Meta,
        Kind::Jobs,
        Kind::JobVersions,
        Kind::AllocJobs,
        Kind::Allocs,
        Kind::Nodes,
        Kind::Evals,
        Kind::Deployments,
        Kind::ScalingEvents,
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
            Kind::Meta => "meta",
        })
    }
}

/// redb's page cache (reads are answered from the in-memory tables, not from redb). redb
/// keeps every page it flushes in this cache until it is full, so in a dev agent it grows
/// with each write toward the bound, in the agent's RSS; half of it bounds the write buffer
/// (beyond it, dirty pages are written out early).
const CACHE_BYTES: usize = 4 << 20;

/// One record change, or the end of a batch that is to be committed.
enum Op {
    Put(Kind, String, Vec<u8>),
    Delete(Kind, String),
    /// Only this makes a batch durable: a batch whose channel closes without it (an error
    /// path dropped it) is aborted.
    Commit,
}

/// The changes of one write, applied atomically. With a durable store behind it every change
/// goes straight to the store's writer thread, which inserts it into an open redb transaction
/// while the in-memory half of the write is still being computed: encoding (this thread) and
/// the B-tree inserts (the writer thread) overlap instead of running one after the other.
#[derive(Default)]
pub struct Batch {
    /// The writer thread's op channel; None for an in-memory store (nothing is written).
    sink: Option<mpsc::Sender<Op>>,
    /// How many changes were recorded (a write with none does not move the index).
    len: usize,
    /// Set once the writer thread stopped taking ops; the commit reports it.
    broken: bool,
}

impl Batch {
    /// Stores `value` under `key`.
    pub fn put(&mut self, kind: Kind, key: String, value: Vec<u8>) {
        self.send(Op::Put(kind, key, value));
    }

    /// Removes `key`.
    pub fn delete(&mut self, kind: Kind, key: String) {
        self.send(Op::Delete(kind, key));
    }

    fn send(&mut self, op: Op) {
        self.len += 1;
        if let Some(sink) = &self.sink
            && sink.send(op).is_err()
        {
            self.broken = true;
        }
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A write being streamed into the store; dropping it without [`Pending::commit`] aborts it.
pub struct Pending {
    reply: mpsc::Receiver<Result<(), StateError>>,
}

impl Pending {
    /// Commits what `batch` sent; returns only once it is on disk.
    pub fn commit(self, mut batch: Batch) -> Result<(), StateError> {
        let broken = batch.broken;
        let Some(sink) = batch.sink.take() else {
            return Ok(());
        };
        let sent = sink.send(Op::Commit).is_ok();
        drop(sink);
        if broken || !sent {
            return Err(StateError::Storage("state writer thread stopped".into()));
        }
        self.reply
            .recv()
            .unwrap_or_else(|_| Err(StateError::Storage("state writer thread stopped".into())))
    }
}

/// One write's channel pair, handed to the writer thread.
struct Job {
    ops: mpsc::Receiver<Op>,
    reply: mpsc::SyncSender<Result<(), StateError>>,
}

/// The on-disk store under `data_dir/server/`.
pub struct Durable {
    db: Arc<Database>,
    /// None once dropped: closing it ends the writer thread.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Durable {
    /// Opens (or creates) the store file and starts its writer thread.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StateError::Storage(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join("state.redb");
        // redb caches up to 1 GiB by default; the in-memory tables already serve every read,
        // so the cache only has to hold a large plan's dirty pages.
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| StateError::Storage(format!("opening {}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(storage)?;
        for kind in Kind::ALL {
            txn.open_table(kind.def()).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        let db = Arc::new(db);
        let (jobs, rx) = mpsc::channel();
        let writer_db = db.clone();
        let handle = std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || writer(&writer_db, &rx))
            .map_err(|e| StateError::Storage(format!("starting the state writer: {e}")))?;
        Ok(Durable {
            db,
            jobs: Mutex::new(Some(jobs)),
            writer: Some(handle),
        })
    }

    /// Starts a write: the returned batch streams its changes to the writer thread.
    /// Writes must not overlap (the state store serializes them).
    pub fn begin(&self) -> (Batch, Pending) {
        let (ops_tx, ops_rx) = mpsc::channel();
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let job = Job {
            ops: ops_rx,
            reply: reply_tx,
        };
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let started = jobs.as_ref().is_some_and(|j| j.send(job).is_ok());
        drop(jobs);
        let batch = Batch {
            sink: Some(ops_tx),
            len: 0,
            broken: !started,
        };
        (batch, Pending { reply: reply_rx })
    }

    /// Every record of a kind.
    pub fn load(&self, kind: Kind) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        let txn = self.db.begin_read().map_err(storage)?;
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

impl Drop for Durable {
    /// Stops the writer thread and waits for it, so the database file is closed (and can be
    /// opened again) once the store is gone.
    fn drop(&mut self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

/// The writer thread: one redb write transaction per job, filled as its ops arrive and
/// committed (with immediate durability) when the commit marker comes.
fn writer(db: &Database, jobs: &mpsc::Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        let result = apply(db, &job.ops);
        if let Some(result) = result {
            let _ = job.reply.send(result);
        }
    }
}

/// Applies one job's ops; None when the batch was abandoned (nothing is committed).
fn apply(db: &Database, ops: &mpsc::Receiver<Op>) -> Option<Result<(), StateError>> {
    let mut ops = ops.iter().peekable();
    // A write that changes nothing closes its channel without an op: no redb transaction.
    ops.peek()?;
    let txn = match db.begin_write() {
        Ok(t) => t,
        Err(e) => {
            // Drain so the sender never blocks, then report at the commit.
            let committed = ops.any(|op| matches!(op, Op::Commit));
            return committed.then(|| Err(storage(e)));
        }
    };
    let mut failed: Option<StateError> = None;
    let mut committed = false;
    {
        let mut tables: Vec<(Kind, redb::Table<&str, &[u8]>)> = Vec::new();
        for op in ops {
            let kind = match &op {
                Op::Put(k, _, _) | Op::Delete(k, _) => *k,
                Op::Commit => {
                    committed = true;
                    break;
                }
            };
            if failed.is_some() {
                continue;
            }
            let pos = match tables.iter().position(|(k, _)| *k == kind) {
                Some(p) => p,
                None => match txn.open_table(kind.def()) {
                    Ok(t) => {
                        tables.push((kind, t));
                        tables.len() - 1
                    }
                    Err(e) => {
                        failed = Some(storage(e));
                        continue;
                    }
                },
            };
            let table = &mut tables[pos].1;
            let r = match &op {
                Op::Put(_, key, value) => {
                    table.insert(key.as_str(), pack(value).as_ref()).map(drop)
                }
                Op::Delete(_, key) => table.remove(key.as_str()).map(drop),
                Op::Commit => Ok(()),
            };
            if let Err(e) = r {
                failed = Some(storage(e));
            }
        }
    }
    if !committed {
        // Dropping an uncommitted redb transaction aborts it.
        return None;
    }
    Some(match failed {
        Some(e) => Err(e),
        None => txn.commit().map_err(storage),
    })
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
fn pack(value: &[u8]) -> std::borrow::Cow<'_, [u8]> {
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
fn unpack(stored: &[u8]) -> Result<Vec<u8>, String> {
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
