//! The durable half of the state store: every accepted write is one redb transaction,
//! committed with immediate durability before the write is acknowledged.

use std::path::Path;

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
    Meta,
}

impl Kind {
    /// Every kind, in restore order (jobs before the allocations that point at them).
    pub const ALL: [Kind; 8] = [
        Kind::Meta,
        Kind::Jobs,
        Kind::JobVersions,
        Kind::AllocJobs,
        Kind::Allocs,
        Kind::Nodes,
        Kind::Evals,
        Kind::Deployments,
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
            Kind::Meta => "meta",
        })
    }
}

/// The changes of one write, applied atomically.
#[derive(Debug, Default)]
pub struct Batch {
    ops: Vec<(Kind, String, Option<Vec<u8>>)>,
}

impl Batch {
    /// Stores `value` under `key`.
    pub fn put(&mut self, kind: Kind, key: String, value: Vec<u8>) {
        self.ops.push((kind, key, Some(value)));
    }

    /// Removes `key`.
    pub fn delete(&mut self, kind: Kind, key: String) {
        self.ops.push((kind, key, None));
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// The on-disk store under `data_dir/server/`.
pub struct Durable {
    db: Database,
}

impl Durable {
    /// Opens (or creates) the store file.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StateError::Storage(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join("state.redb");
        let db = Database::create(&path)
            .map_err(|e| StateError::Storage(format!("opening {}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(storage)?;
        for kind in Kind::ALL {
            txn.open_table(kind.def()).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        Ok(Durable { db })
    }

    /// Commits a batch; returns only once it is on disk.
    pub fn commit(&self, batch: Batch) -> Result<(), StateError> {
        let txn = self.db.begin_write().map_err(storage)?;
        {
            let mut tables: Vec<(Kind, redb::Table<&str, &[u8]>)> = Vec::new();
            for (kind, key, value) in &batch.ops {
                let pos = match tables.iter().position(|(k, _)| k == kind) {
                    Some(p) => p,
                    None => {
                        tables.push((*kind, txn.open_table(kind.def()).map_err(storage)?));
                        tables.len() - 1
                    }
                };
                let table = &mut tables[pos].1;
                match value {
                    Some(v) => {
                        table.insert(key.as_str(), v.as_slice()).map_err(storage)?;
                    }
                    None => {
                        table.remove(key.as_str()).map_err(storage)?;
                    }
                }
            }
        }
        txn.commit().map_err(storage)
    }

    /// Every record of a kind.
    pub fn load(&self, kind: Kind) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(kind.def()).map_err(storage)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }
}

fn storage(e: impl std::fmt::Display) -> StateError {
    StateError::Storage(e.to_string())
}
