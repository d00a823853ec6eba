//! The committer thread: writes queue up here in index order while a commit is in flight,
//! and the next commit makes all of them durable at once (one redb transaction, one fsync).
//! Only then do readers see them and are their writers answered.

use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::durable::{Batch, Durable};
use super::{Shared, StateError, Tables};

/// One applied write waiting to be made durable.
pub(super) struct Queued {
    /// The write's index, returned to its caller once durable.
    pub index: u64,
    /// The state after this write; None for a write that changed nothing and only waits
    /// for what it read to become durable.
    pub tables: Option<Arc<Tables>>,
    pub batch: Batch,
    pub reply: oneshot::Sender<Result<u64, StateError>>,
}

/// Starts the committer over `durable`; it stops once the returned sender is dropped and
/// everything queued before that is committed.
pub(super) fn spawn(
    durable: Durable,
    shared: Arc<Shared>,
) -> Result<(mpsc::Sender<Queued>, JoinHandle<()>), StateError> {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("state-commit".into())
        .spawn(move || run(&durable, &shared, &rx))
        .map_err(|e| StateError::Storage(format!("starting the state committer: {e}")))?;
    Ok((tx, handle))
}

fn run(durable: &Durable, shared: &Shared, queue: &mpsc::Receiver<Queued>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        group.extend(queue.try_iter());
        let result = if group.iter().all(|q| q.batch.is_empty()) {
            Ok(())
        } else {
            durable.commit(group.iter().map(|q| &q.batch))
        };
        match result {
            Ok(()) => {
                if let Some(tables) = group.iter().rev().find_map(|q| q.tables.clone()) {
                    shared.publish(tables);
                }
                for q in group {
                    // A caller that stopped waiting still has its write made durable.
                    let _ = q.reply.send(Ok(q.index));
                }
            }
            Err(e) => undo(shared, queue, group, &e),
        }
    }
}

/// A failed commit: its writes and every write queued after them (each was computed on top
/// of the failed ones) fail, and the next write starts again from the durable state.
fn undo(shared: &Shared, queue: &mpsc::Receiver<Queued>, group: Vec<Queued>, e: &StateError) {
    // Writers queue while holding the head, so with it held nothing built on the failed
    // writes can still arrive after the drain.
    let mut head = shared.head.blocking_lock();
    *head = shared.snapshot();
    let later: Vec<Queued> = queue.try_iter().collect();
    drop(head);
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
