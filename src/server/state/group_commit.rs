//! The committer thread. A write streams its records here while its closure is still
//! running, and the committer puts each into the open redb transaction at once, remembering
//! what it replaced, so the disk work overlaps the encoding. A write whose closure fails
//! after streaming some records has them put back inside the transaction. Writes that
//! complete while a commit is in flight are made durable together by the next one (one
//! redb transaction, one fsync); only then do readers see them and are their writers
//! answered.

use std::collections::VecDeque;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::durable::{Durable, Kind, Op, Undo};
use super::{Shared, StateError, Tables};
use crate::server::events::EventBatch;

/// What a writer sends the committer. Writers hold the store's head while they stream, so
/// the messages of one write are never interleaved with another's.
pub(super) enum Msg {
    /// A record of the write being applied.
    Record(Op),
    /// The write being applied failed: its records are put back.
    Abort,
    /// The write being applied is complete.
    Done(Queued),
}

/// One applied write waiting to be made durable.
pub(super) struct Queued {
    /// The write's index, returned to its caller once durable.
    pub index: u64,
    /// The state after this write; None for a write that changed nothing and only waits
    /// for what it read to become durable.
    pub tables: Option<Arc<Tables>>,
    /// The events of this write, published once it is visible.
    pub events: Option<EventBatch>,
    /// How many records it streamed.
    pub records: usize,
    pub reply: oneshot::Sender<Result<u64, StateError>>,
}

/// The record changes of one write, streamed to the committer as the write makes them. If
/// the batch is dropped before [`Batch::done`] (the closure failed, or panicked), the
/// committer puts back what it streamed.
#[derive(Default)]
pub struct Batch {
    /// None for a store that keeps nothing on disk.
    tx: Option<mpsc::Sender<Msg>>,
    pub(super) records: usize,
    done: bool,
}

impl Batch {
    pub(super) fn new(tx: Option<mpsc::Sender<Msg>>) -> Self {
        Batch {
            tx,
            records: 0,
            done: false,
        }
    }

    fn send(&mut self, op: Op) {
        self.records += 1;
        if let Some(tx) = &self.tx {
            // A stopped committer is reported when the write completes (see `done`).
            let _ = tx.send(Msg::Record(op));
        }
    }

    /// `v` as its record, encoded only when the batch goes to disk: the Raft log makes the
    /// writes of a replicated store durable, and an in-memory store keeps nothing.
    pub(super) fn encode<T: serde::Serialize>(&self, v: &T) -> Result<Vec<u8>, StateError> {
        match self.tx {
            Some(_) => super::txn::encode(v),
            None => Ok(Vec::new()),
        }
    }

    /// Stores `value` under `key`.
    pub fn put(&mut self, kind: Kind, key: String, value: Vec<u8>) {
        self.send(Op::Put(kind, key, value));
    }

    /// Removes `key`.
    pub fn delete(&mut self, kind: Kind, key: String) {
        self.send(Op::Delete(kind, key));
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Ends the write: `queued` is answered once its records are durable. Err when the
    /// committer has stopped.
    pub(super) fn done(mut self, mut queued: Queued) -> Result<(), StateError> {
        self.done = true;
        queued.records = self.records;
        match &self.tx {
            Some(tx) => tx
                .send(Msg::Done(queued))
                .map_err(|_| StateError::Storage("state committer stopped".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if !self.done
            && self.records > 0
            && let Some(tx) = &self.tx
        {
            let _ = tx.send(Msg::Abort);
        }
    }
}

/// Starts the committer over `durable`; it stops once every sender is dropped and
/// everything queued before that is committed.
pub(super) fn spawn(
    durable: Durable,
    shared: Arc<Shared>,
) -> Result<(mpsc::Sender<Msg>, JoinHandle<()>), StateError> {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("state-commit".into())
        .spawn(move || Committer::new(&durable, &shared, &rx).run())
        .map_err(|e| StateError::Storage(format!("starting the state committer: {e}")))?;
    Ok((tx, handle))
}

/// Received messages the committer keeps room for between bursts.
const PENDING_KEPT: usize = 1024;

/// The committer's state between messages.
struct Committer<'a> {
    durable: &'a Durable,
    shared: &'a Shared,
    queue: &'a mpsc::Receiver<Msg>,
    /// Received, not yet handled.
    pending: VecDeque<Msg>,
    /// How many of `pending` are `Done`.
    pending_done: usize,
    /// The transaction the records go into, once one arrived since the last commit.
    txn: Option<redb::WriteTransaction>,
    /// How to put back the records of the write being applied.
    undo: Vec<Undo>,
    /// Complete writes in `txn`, in order.
    group: Vec<Queued>,
}

impl<'a> Committer<'a> {
    fn new(durable: &'a Durable, shared: &'a Shared, queue: &'a mpsc::Receiver<Msg>) -> Self {
        Committer {
            durable,
            shared,
            queue,
            pending: VecDeque::new(),
            pending_done: 0,
            txn: None,
            undo: Vec::new(),
            group: Vec::new(),
        }
    }

    fn receive(&mut self, msg: Msg) {
        if matches!(msg, Msg::Done(_)) {
            self.pending_done += 1;
        }
        self.pending.push_back(msg);
    }

    fn run(mut self) {
        loop {
            if self.pending.is_empty() {
                match self.queue.recv() {
                    Ok(msg) => self.receive(msg),
                    Err(_) => return,
                }
            }
            while let Ok(msg) = self.queue.try_recv() {
                self.receive(msg);
            }
            if let Err(e) = self.handle_pending() {
                self.fail(&e);
            }
            // A large plan's backlog must not stay reserved for good.
            if self.pending.capacity() > PENDING_KEPT {
                self.pending.shrink_to(PENDING_KEPT);
            }
        }
    }

    /// Handles everything received; commits at the last complete write among it, so writes
    /// that arrived during a commit share the next one.
    fn handle_pending(&mut self) -> Result<(), StateError> {
        while let Some(msg) = self.pending.pop_front() {
            match msg {
                Msg::Record(op) => {
                    let mut ops = vec![op];
                    while matches!(self.pending.front(), Some(Msg::Record(_))) {
                        if let Some(Msg::Record(op)) = self.pending.pop_front() {
                            ops.push(op);
                        }
                    }
                    if self.txn.is_none() {
                        self.txn = Some(self.durable.begin()?);
                    }
                    if let Some(txn) = &self.txn {
                        self.durable.apply(txn, ops, &mut self.undo)?;
                    }
                }
                Msg::Abort => {
                    let undo = std::mem::take(&mut self.undo);
                    if let Some(txn) = &self.txn {
                        self.durable.revert(txn, undo)?;
                    }
                }
                Msg::Done(q) => {
                    self.pending_done -= 1;
                    self.undo.clear();
                    self.group.push(q);
                    if self.pending_done == 0 {
                        self.commit()?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Makes the complete writes durable, then visible, then answers them.
    fn commit(&mut self) -> Result<(), StateError> {
        let txn = self.txn.take();
        if self.group.iter().any(|q| q.records > 0)
            && let Some(txn) = txn
        {
            self.durable.commit(txn)?;
        }
        // Otherwise every record in `txn` was put back: dropping it aborts it.
        let group = std::mem::take(&mut self.group);
        if let Some(tables) = group.iter().rev().find_map(|q| q.tables.clone()) {
            self.shared.publish(tables);
        }
        for q in group {
            self.shared.publish_events(q.events);
            // A caller that stopped waiting still has its write made durable.
            let _ = q.reply.send(Ok(q.index));
        }
        Ok(())
    }

    /// A failed commit (or record): the writes of its transaction and every write received
    /// after them (each was computed on top of the failed ones) fail, and the next write
    /// starts again from the durable state.
    fn fail(&mut self, e: &StateError) {
        self.txn = None;
        self.undo.clear();
        // Writers stream while holding the head, so with it held nothing built on the
        // failed writes can still arrive after the drain.
        let mut head = self.shared.head.blocking_lock();
        *head = self.shared.snapshot();
        let mut later: Vec<Queued> = Vec::new();
        for msg in self.pending.drain(..).chain(self.queue.try_iter()) {
            if let Msg::Done(q) = msg {
                later.push(q);
            }
        }
        self.pending_done = 0;
        drop(head);
        let group = std::mem::take(&mut self.group);
        tracing::error!(
            error = %e,
            writes = group.len(),
            dependent = later.len(),
            "state commit failed; its writes are undone"
        );
        for q in group {
            let _ = q.reply.send(Err(StateError::Storage(e.to_string())));
        }
        for q in later {
            let _ = q.reply.send(Err(StateError::Storage(format!(
                "an earlier write this one built on failed to commit: {e}"
            ))));
        }
    }
}
