//! The server's state store: in-memory tables for reads, every write committed to the
//! durable store before it becomes visible, and one index watch per table for blocking
//! queries.

mod durable;
mod restore;
mod sharing;
mod tables;
mod txn;

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;

pub use tables::{JOB_TRACKED_VERSIONS, NsKey, Table, Tables, ns_key};
pub use txn::{Txn, job_status};

use durable::{Batch, Durable};

/// State store faults.
#[derive(Debug, thiserror::Error)]
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
}

/// The store. Readers take snapshots; writers are serialized.
pub struct StateStore {
    current: RwLock<Arc<Tables>>,
    writer: Mutex<()>,
    durable: Option<Durable>,
    watches: Vec<watch::Sender<u64>>,
}

impl StateStore {
    /// An empty store that keeps nothing on disk (tests, benchmarks).
    pub fn in_memory() -> Self {
        Self::from_tables(Tables::default(), None)
    }

    /// Opens the store under `dir` (`data_dir/server`), restoring everything it holds.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let durable = Durable::open(dir)?;
        let tables = restore::restore(&durable)?;
        Ok(Self::from_tables(tables, Some(durable)))
    }

    fn from_tables(mut tables: Tables, durable: Option<Durable>) -> Self {
        // An empty cluster reports index 1, so the first write (index 2) is visibly newer
        // to a blocking query that started at 1.
        tables.index = tables.index.max(1);
        let watches = Table::ALL
            .iter()
            .map(|t| watch::channel(tables.table_index(*t)).0)
            .collect();
        StateStore {
            current: RwLock::new(Arc::new(tables)),
            writer: Mutex::new(()),
            durable,
            watches,
        }
    }

    /// A consistent view of the current state; cheap (shared structure).
    pub fn snapshot(&self) -> Arc<Tables> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The latest write index.
    pub fn latest_index(&self) -> u64 {
        self.snapshot().index
    }

    /// A receiver that changes whenever `table` is written.
    pub fn watch(&self, table: Table) -> watch::Receiver<u64> {
        self.watches[table.pos()].subscribe()
    }

    /// Runs `f` as one atomic, durable write. Nothing changes if `f` fails or the disk
    /// write fails. Returns the write's index with `f`'s result.
    pub fn write<R>(
        &self,
        f: impl FnOnce(&mut Txn) -> Result<R, StateError>,
    ) -> Result<(u64, R), StateError> {
        let _guard = match self.writer.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let base = (*self.snapshot()).clone();
        let (batch, pending) = match &self.durable {
            Some(d) => {
                let (batch, pending) = d.begin();
                (batch, Some(pending))
            }
            None => (Batch::default(), None),
        };
        // On any early return the batch is dropped uncommitted, which aborts it on disk.
        let mut txn = Txn::new(base, batch);
        let out = f(&mut txn)?;
        if txn.batch.is_empty() {
            // Nothing changed: the index does not move.
            return Ok((self.latest_index(), out));
        }
        txn.finish()?;
        let index = txn.index();
        let touched = txn.touched;
        let Txn { tables, batch, .. } = txn;
        if let Some(pending) = pending {
            pending.commit(batch)?;
        }
        match self.current.write() {
            Ok(mut g) => *g = Arc::new(tables),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(tables),
        }
        for t in Table::ALL {
            if touched[t.pos()] {
                self.watches[t.pos()].send_replace(index);
            }
        }
        Ok((index, out))
    }
}

#[cfg(test)]
mod tests;
