//! The server's state store: in-memory tables for reads, every write committed to the
//! durable store before it becomes visible, and one index watch per table for blocking
//! queries.

mod acl;
pub mod apply;
mod command;
mod durable;
mod group_commit;
mod records;
mod restore;
mod services;
mod sharing;
mod tables;
mod txn;
mod txn_delete;
mod variables;

use std::path::Path;
use std::sync::{Arc, RwLock, mpsc};
use std::thread::JoinHandle;

use tokio::sync::{MutexGuard, oneshot, watch};

pub use acl::{AclTables, BOOTSTRAP_META_KEY};
pub use apply::{
    AllocClientUpdate, Applied, ApplyCtx, ApplyError, DrainBatch, PlanApply, Promotion,
    RegisterOptions, ScaleRequest, VarOutcome, VarWrite, admit_job, apply, same_spec,
};
pub use command::{Command, Request};
pub use durable::Kind;
pub use records::for_each_record;
pub use restore::Restorer;
pub use services::ServiceTables;
pub use tables::{JOB_TRACKED_VERSIONS, NsKey, Table, Tables, ns_key};
pub use txn::{Txn, job_status};
pub use variables::VariableTables;

use durable::Durable;
pub(crate) use durable::{pack, unpack};
use group_commit::{Batch, Msg, Queued};

use crate::server::events::{EventBatch, EventBroker};

/// State store faults. Serializable because a refused command's error is what every
/// server's apply of it answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum StateError {
    /// The durable store failed; the write was not applied.
    #[error("state storage: {0}")]
    Storage(String),
    /// A write was refused because of what the state holds (the message says why).
    #[error("{0}")]
    Conflict(String),
    /// A named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit what the state holds (e.g. a task group the job lacks).
    #[error("{0}")]
    BadRequest(String),
}

impl StateError {
    /// Whether a storage failure's message says the disk (or quota) is full. Matched on
    /// the text because every write path (the local store, a Raft log) reports the
    /// `io::Error` it hit in its message; ENOSPC and EDQUOT read the same on every Linux.
    pub fn is_out_of_space_msg(msg: &str) -> bool {
        msg.contains("No space left on device")
            || msg.contains("os error 28")
            || msg.contains("Disk quota exceeded")
            || msg.contains("os error 122")
    }
}

/// The store. Readers take snapshots of durable state; writers are applied one at a time
/// and made durable in groups (see [`StateStore::write`]).
pub struct StateStore {
    shared: Arc<Shared>,
    /// The committer's queue; None for an in-memory store.
    queue: Option<mpsc::Sender<Msg>>,
    committer: Option<JoinHandle<()>>,
    /// Where a replicated store's commands go (the Raft log); their apply comes back through
    /// an [`Applier`]. None for a store that applies its writes itself.
    replicated: Option<Box<dyn Committer>>,
}

/// What a proposer waits on: the index its caller sees and what the apply answered, or why
/// the command was refused.
pub type Answer = Result<(u64, Applied), StateError>;

/// Proposes commands to a replicated log; each is answered once it is committed and applied
/// (the Raft committer in `server::raft`, which keeps openraft's types to itself).
pub trait Committer: Send + Sync {
    /// Queues `req`; the receiver answers once it is applied or refused.
    fn propose(&self, req: Request) -> Result<oneshot::Receiver<Answer>, StateError>;
}

/// A replicated store's state machine side: applies committed log entries and installs
/// snapshots, publishing each result to readers, blocking queries and the event stream.
#[derive(Clone)]
pub struct Applier {
    shared: Arc<Shared>,
}

impl Applier {
    /// Starts from `tables` (a snapshot's, or empty).
    pub fn new(tables: Tables, events: Option<Arc<EventBroker>>) -> Self {
        Applier {
            shared: Shared::new(tables, events),
        }
    }

    /// The tables as the last applied entry left them.
    pub fn tables(&self) -> Arc<Tables> {
        self.shared.snapshot()
    }

    /// Applies one log entry's requests in order, each on top of the one before, all at
    /// `index` (docs/raft.md §4), then publishes the tables and the events. A refused request
    /// changes nothing and is answered with its error; one that writes nothing is answered
    /// with the index the state already had.
    pub fn apply_entry(&self, index: u64, reqs: impl IntoIterator<Item = Request>) -> Vec<Answer> {
        let base = self.shared.snapshot();
        let mut tables: Option<Tables> = None;
        // One batch per entry: its requests share the index a subscriber resumes from.
        let mut events: Option<EventBatch> = None;
        let mut answers = Vec::new();
        for Request { at, seed, cmd } in reqs {
            let ctx = ApplyCtx { now: at, seed };
            let current = tables.as_ref().unwrap_or(&base);
            let written = run_txn(&self.shared, current, Some(index), |txn| {
                txn.set_now(at);
                apply(txn, cmd, &ctx)
            });
            answers.push(match written {
                Ok((out, None)) => Ok((current.index, out)),
                Ok((out, Some((next, batch)))) => {
                    tables = Some(next);
                    match (&mut events, batch) {
                        (Some(all), Some(more)) => all.events.extend(more.events),
                        (None, more) => events = more,
                        (Some(_), None) => {}
                    }
                    Ok((index, out))
                }
                Err(e) => Err(e),
            });
        }
        if let Some(t) = tables {
            self.shared.publish(Arc::new(t));
        }
        self.shared.publish_events(events);
        answers
    }

    /// Replaces the whole state with a snapshot's and wakes every blocking query whose table
    /// it moved.
    pub fn install(&self, tables: Tables) {
        self.shared.publish(Arc::new(prepared(tables)));
    }
}

/// Runs `f` as one write on top of `base`, at `index` or (None) the next index. Answers
/// the new tables and the write's events, or None when it wrote nothing.
#[allow(clippy::type_complexity)]
fn run_txn<R>(
    shared: &Shared,
    base: &Tables,
    index: Option<u64>,
    f: impl FnOnce(&mut Txn) -> Result<R, StateError>,
) -> Result<(R, Option<(Tables, Option<EventBatch>)>), StateError> {
    let record = shared.events.is_some();
    let mut txn = match index {
        Some(i) => Txn::new_at(base.clone(), i, Batch::default(), record),
        None => Txn::new(base.clone(), Batch::default(), record),
    };
    let out = f(&mut txn)?;
    if txn.writes_nothing() {
        return Ok((out, None));
    }
    txn.finish()?;
    let events = txn.take_events();
    Ok((out, Some((txn.tables, events))))
}

/// The file the store kept its tables in before Raft (docs/raft.md §3, migration).
pub const LEGACY_FILE: &str = "state.redb";

/// The tables kept in `dir/state.redb` by a server from before Raft; the file is closed
/// again when this returns.
pub fn read_legacy(dir: &Path) -> Result<Tables, StateError> {
    let durable = Durable::open(dir)?;
    restore::restore(&durable)
}

/// Tables as a store starts from them: an empty cluster reports index 1, so the first write
/// is visibly newer to a blocking query that started at 1, and the default namespace exists.
fn prepared(mut tables: Tables) -> Tables {
    tables.index = tables.index.max(1);
    tables.ensure_default_namespace();
    tables
}

/// What the store and its committer thread share.
struct Shared {
    /// What readers see: every write in it is durable.
    current: RwLock<Arc<Tables>>,
    /// What the next write starts from: `current` plus the writes still waiting for their
    /// commit. Holding it is what serializes writers; it is an async lock so a writer
    /// waiting for it does not hold a runtime thread.
    head: tokio::sync::Mutex<Arc<Tables>>,
    watches: Vec<watch::Sender<u64>>,
    /// Where the events of visible writes go; None when the server publishes none.
    events: Option<Arc<EventBroker>>,
}

impl Shared {
    fn new(tables: Tables, events: Option<Arc<EventBroker>>) -> Arc<Self> {
        let tables = prepared(tables);
        let watches = Table::ALL
            .iter()
            .map(|t| watch::channel(tables.table_index(*t)).0)
            .collect();
        let tables = Arc::new(tables);
        Arc::new(Shared {
            current: RwLock::new(tables.clone()),
            head: tokio::sync::Mutex::new(tables),
            watches,
            events,
        })
    }

    fn snapshot(&self) -> Arc<Tables> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Makes `tables` what readers see and wakes the watches of every table that moved.
    fn publish(&self, tables: Arc<Tables>) {
        let old = {
            let mut g = match self.current.write() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            std::mem::replace(&mut *g, tables.clone())
        };
        for t in Table::ALL {
            let index = tables.table_index(t);
            if index != old.table_index(t) {
                self.watches[t.pos()].send_replace(index);
            }
        }
    }

    /// Hands the events of a write that is now visible to the broker.
    fn publish_events(&self, batch: Option<EventBatch>) {
        if let (Some(broker), Some(batch)) = (&self.events, batch) {
            broker.publish(batch);
        }
    }
}

/// How a write learns that it is durable.
enum Ack {
    Durable(u64),
    Queued(oneshot::Receiver<Result<u64, StateError>>),
}

/// A write that did not happen, with the pending commit its answer must wait for.
struct Refused {
    error: StateError,
    pending: Option<Ack>,
}

impl From<StateError> for Refused {
    fn from(error: StateError) -> Self {
        Refused {
            error,
            pending: None,
        }
    }
}

fn committer_stopped() -> StateError {
    StateError::Storage("state committer stopped".into())
}

impl Ack {
    async fn wait(self) -> Result<u64, StateError> {
        match self {
            Ack::Durable(index) => Ok(index),
            Ack::Queued(rx) => rx.await.unwrap_or_else(|_| Err(committer_stopped())),
        }
    }

    fn wait_blocking(self) -> Result<u64, StateError> {
        match self {
            Ack::Durable(index) => Ok(index),
            Ack::Queued(rx) => rx
                .blocking_recv()
                .unwrap_or_else(|_| Err(committer_stopped())),
        }
    }
}

impl StateStore {
    /// An empty store that keeps nothing on disk (tests, benchmarks).
    pub fn in_memory() -> Self {
        Self::in_memory_with(None)
    }

    /// An in-memory store publishing the events of its writes to `events`.
    pub fn in_memory_with(events: Option<Arc<EventBroker>>) -> Self {
        Self::from_tables(Tables::default(), None, events)
            .unwrap_or_else(|_| unreachable!("an in-memory store starts no thread"))
    }

    /// Opens the store under `dir` (`data_dir/server`), restoring everything it holds.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        Self::open_with(dir, None)
    }

    /// [`StateStore::open`], publishing the events of its writes to `events`.
    pub fn open_with(dir: &Path, events: Option<Arc<EventBroker>>) -> Result<Self, StateError> {
        let durable = Durable::open(dir)?;
        // A record that cannot be read back is named with its file: starting on what could
        // be read would be a silently smaller (or empty) cluster.
        let tables = restore::restore(&durable).map_err(|e| {
            StateError::Storage(format!(
                "restoring {}: {e}",
                durable::Durable::path_in(dir).display()
            ))
        })?;
        Self::from_tables(tables, Some(durable), events)
    }

    /// [`StateStore::open`] with `hook` called at the start of every disk commit, and
    /// `applied` counting the records the committer puts into its transactions.
    #[cfg(test)]
    fn open_with_hook(
        dir: &Path,
        hook: durable::CommitHook,
        applied: Arc<std::sync::atomic::AtomicUsize>,
    ) -> Result<Self, StateError> {
        let mut durable = Durable::open(dir)?;
        durable.applied = applied;
        *durable
            .before_commit
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(hook);
        let tables = restore::restore(&durable)?;
        Self::from_tables(tables, Some(durable), None)
    }

    /// A store whose commands go through `committer` and come back through `applier`.
    pub fn replicated(applier: &Applier, committer: Box<dyn Committer>) -> Self {
        StateStore {
            shared: applier.shared.clone(),
            queue: None,
            committer: None,
            replicated: Some(committer),
        }
    }

    fn from_tables(
        tables: Tables,
        durable: Option<Durable>,
        events: Option<Arc<EventBroker>>,
    ) -> Result<Self, StateError> {
        let shared = Shared::new(tables, events);
        let (queue, committer) = match durable {
            Some(d) => {
                let (queue, handle) = group_commit::spawn(d, shared.clone())?;
                (Some(queue), Some(handle))
            }
            None => (None, None),
        };
        Ok(StateStore {
            shared,
            queue,
            committer,
            replicated: None,
        })
    }

    /// A consistent view of the current (durable) state; cheap (shared structure).
    pub fn snapshot(&self) -> Arc<Tables> {
        self.shared.snapshot()
    }

    /// The broker the events of this store's writes go to, when it publishes any.
    pub fn events(&self) -> Option<&Arc<EventBroker>> {
        self.shared.events.as_ref()
    }

    /// The latest durable write index.
    pub fn latest_index(&self) -> u64 {
        self.snapshot().index
    }

    /// A receiver that changes whenever `table` is written.
    pub fn watch(&self, table: Table) -> watch::Receiver<u64> {
        self.shared.watches[table.pos()].subscribe()
    }

    /// Runs `f` as one atomic, durable write and returns its index with `f`'s result.
    ///
    /// Writes are applied one after another, each on top of the one before, so each gets its
    /// own index; writes that arrive while a commit is in flight are made durable together
    /// by the next one. Readers see a write, and its caller is answered, only once it is
    /// durable. Nothing changes if `f` fails; if the disk commit fails, every write of that
    /// commit fails and the state stays as it was before them. `f` runs on the calling
    /// thread and must not block; waiting for the disk does not hold a runtime thread.
    /// Dropping the returned future once `f` has run does not undo the write.
    pub async fn write<R>(
        &self,
        f: impl FnOnce(&mut Txn) -> Result<R, StateError>,
    ) -> Result<(u64, R), StateError> {
        self.not_replicated()?;
        let head = self.shared.head.lock().await;
        match self.apply(head, f) {
            Ok((out, ack)) => Ok((ack.wait().await?, out)),
            Err(Refused { error, pending }) => {
                if let Some(ack) = pending {
                    ack.wait().await?;
                }
                Err(error)
            }
        }
    }

    /// Applies `req` (see [`apply`]) as one atomic, durable write, as [`StateStore::write`]
    /// runs a closure; returns its index and what the apply answered.
    pub async fn commit(&self, req: Request) -> Result<(u64, Applied), StateError> {
        if let Some(c) = &self.replicated {
            return c
                .propose(req)?
                .await
                .unwrap_or_else(|_| Err(committer_stopped()));
        }
        let Request { at, seed, cmd } = req;
        let ctx = ApplyCtx { now: at, seed };
        self.write(|txn| {
            txn.set_now(at);
            apply(txn, cmd, &ctx)
        })
        .await
    }

    /// [`StateStore::commit`] for a thread outside the async runtime; panics if called
    /// from async code.
    pub fn commit_blocking(&self, req: Request) -> Result<(u64, Applied), StateError> {
        if let Some(c) = &self.replicated {
            return c
                .propose(req)?
                .blocking_recv()
                .unwrap_or_else(|_| Err(committer_stopped()));
        }
        let Request { at, seed, cmd } = req;
        let ctx = ApplyCtx { now: at, seed };
        self.write_blocking(|txn| {
            txn.set_now(at);
            apply(txn, cmd, &ctx)
        })
    }

    /// [`StateStore::write`] for a thread outside the async runtime (e.g. a scheduler
    /// worker's blocking task); panics if called from async code.
    pub fn write_blocking<R>(
        &self,
        f: impl FnOnce(&mut Txn) -> Result<R, StateError>,
    ) -> Result<(u64, R), StateError> {
        self.not_replicated()?;
        let head = self.shared.head.blocking_lock();
        match self.apply(head, f) {
            Ok((out, ack)) => Ok((ack.wait_blocking()?, out)),
            Err(Refused { error, pending }) => {
                if let Some(ack) = pending {
                    ack.wait_blocking()?;
                }
                Err(error)
            }
        }
    }

    /// A replicated store changes only through commands in its log: a closure cannot be
    /// replicated.
    fn not_replicated(&self) -> Result<(), StateError> {
        match self.replicated {
            Some(_) => Err(StateError::Storage(
                "a replicated state store takes commands only".into(),
            )),
            None => Ok(()),
        }
    }

    /// Runs `f` on top of `head` and queues the result for the committer.
    fn apply<R>(
        &self,
        mut head: MutexGuard<'_, Arc<Tables>>,
        f: impl FnOnce(&mut Txn) -> Result<R, StateError>,
    ) -> Result<(R, Ack), Refused> {
        // On an early return the transaction is dropped, and with it its batch, which has the
        // committer put back whatever records it streamed.
        let mut txn = Txn::new(
            (**head).clone(),
            Batch::new(self.queue.clone()),
            self.shared.events.is_some(),
        );
        let out = match f(&mut txn) {
            Ok(out) => out,
            Err(error) => {
                drop(txn);
                // The refusal may rest on writes still waiting for their commit. Answer it
                // only once they are durable, so a caller that retries on a fresh snapshot
                // (the scheduler after a stale plan) sees what refused it.
                let index = head.index;
                let pending = if index == self.shared.snapshot().index {
                    None
                } else {
                    Some(self.enqueue(&mut head, index, None, None, self.empty_batch())?)
                };
                return Err(Refused { error, pending });
            }
        };
        if txn.writes_nothing() {
            // Nothing changed and the index does not move; but what `f` read may still be
            // waiting for its commit, and must not be answered from before it is durable.
            let index = head.index;
            if index == self.shared.snapshot().index {
                return Ok((out, Ack::Durable(index)));
            }
            drop(txn);
            return Ok((
                out,
                self.enqueue(&mut head, index, None, None, self.empty_batch())?,
            ));
        }
        txn.finish().map_err(Refused::from)?;
        let index = txn.index();
        let events = txn.take_events();
        let Txn { tables, batch, .. } = txn;
        let tables = Arc::new(tables);
        *head = tables.clone();
        let ack = self.enqueue(&mut head, index, Some(tables), events, batch)?;
        Ok((out, ack))
    }

    /// A batch for a write that records nothing and only waits for what it read.
    fn empty_batch(&self) -> Batch {
        Batch::new(self.queue.clone())
    }

    /// Completes the write whose records `batch` streamed.
    fn enqueue(
        &self,
        head: &mut Arc<Tables>,
        index: u64,
        tables: Option<Arc<Tables>>,
        events: Option<EventBatch>,
        batch: Batch,
    ) -> Result<Ack, StateError> {
        if self.queue.is_none() {
            // Nothing to wait for: the in-memory store publishes at once.
            if let Some(t) = tables {
                self.shared.publish(t);
            }
            self.shared.publish_events(events);
            return Ok(Ack::Durable(index));
        }
        let (reply, rx) = oneshot::channel();
        let queued = Queued {
            index,
            tables,
            events,
            records: 0,
            reply,
        };
        if let Err(e) = batch.done(queued) {
            *head = self.shared.snapshot();
            return Err(e);
        }
        Ok(Ack::Queued(rx))
    }
}

impl Drop for StateStore {
    /// Lets the committer finish what is queued and waits for it, so the database file is
    /// closed (and can be opened again) once the store is gone.
    fn drop(&mut self) {
        // The Raft committer stops its node, which lets the log store flush and close.
        self.replicated.take();
        self.queue.take();
        if let Some(handle) = self.committer.take()
            && handle.join().is_err()
        {
            tracing::error!("the state committer thread panicked");
        }
    }
}

#[cfg(test)]
mod tests;
