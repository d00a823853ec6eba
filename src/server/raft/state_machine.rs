//! The state store as openraft's state machine (docs/raft.md §2–§3): committed entries are
//! applied through the store's [`Applier`], each entry's requests at the entry's log index;
//! snapshots are the store's tables in the `raft/snapshot.rs` format, kept as
//! `snapshots/<term>-<index>.snap` beside a `.meta.json` naming the log ID and membership
//! they stand for. The newest two are kept.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};

use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::files::{sync_dir, write_file};
use super::log_store::AppliedLog;
use super::snapshot;
use super::types::{Answers, ServerPeer, TypeConfig};
use crate::server::events::EventBroker;
use crate::server::state::{Applier, Request, StateError, Tables};

/// The directory under `data_dir/server/raft` that holds the snapshots.
pub const SNAPSHOT_DIR: &str = "snapshots";
/// How many snapshots are kept: the newest, and the one before in case it is damaged.
const KEEP: usize = 2;

type Meta = SnapshotMeta<u64, ServerPeer>;
type Membership = StoredMembership<u64, ServerPeer>;

/// The name (without extension) of the snapshot taken at `id`.
fn name_of(id: Option<&LogId<u64>>) -> String {
    match id {
        Some(id) => format!("{}-{}", id.leader_id.term, id.index),
        None => "0-0".into(),
    }
}

fn snap_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.snap"))
}

fn meta_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.meta.json"))
}

fn storage(e: impl std::fmt::Display) -> StateError {
    StateError::Storage(e.to_string())
}

/// Creates `dir` 0700 (snapshots hold every secret the state does).
pub fn create_dir(dir: &Path) -> Result<(), StateError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| StateError::Storage(format!("creating {}: {e}", dir.display())))
}

/// Records `meta` beside its snapshot file (already in place), then removes all but the
/// newest [`KEEP`] snapshots. A snapshot counts only once its meta file exists.
fn commit_snapshot(dir: &Path, meta: &Meta) -> Result<(), StateError> {
    let name = name_of(meta.last_log_id.as_ref());
    let json = serde_json::to_vec(meta).map_err(storage)?;
    write_file(&meta_path(dir, &name), &json)?;
    let all = list(dir)?;
    for (_, old) in all.iter().rev().skip(KEEP) {
        for path in [meta_path(dir, old), snap_path(dir, old)] {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(file = %path.display(), error = %e, "removing an old snapshot");
            }
        }
    }
    Ok(())
}

/// Writes `tables` as the snapshot `meta` describes, in `dir`.
pub fn save_snapshot(dir: &Path, tables: &Tables, meta: &Meta) -> Result<PathBuf, StateError> {
    let path = snap_path(dir, &name_of(meta.last_log_id.as_ref()));
    snapshot::save(tables, &path)?;
    commit_snapshot(dir, meta)?;
    Ok(path)
}

/// A snapshot's place in the order (index, then term) and its file name.
type Listed = ((u64, u64), String);

/// The complete snapshots in `dir` (both files present), oldest first.
fn list(dir: &Path) -> Result<Vec<Listed>, StateError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StateError::Storage(format!("{}: {e}", dir.display()))),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StateError::Storage(format!("{}: {e}", dir.display())))?;
        let file = entry.file_name();
        let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".meta.json")) else {
            continue;
        };
        let Some((term, index)) = name.split_once('-') else {
            continue;
        };
        let (Ok(term), Ok(index)) = (term.parse::<u64>(), index.parse::<u64>()) else {
            continue;
        };
        if snap_path(dir, name).exists() {
            out.push(((index, term), name.to_string()));
        }
    }
    out.sort();
    Ok(out)
}

/// The newest complete snapshot in `dir`: its meta and its file.
fn latest(dir: &Path) -> Result<Option<(Meta, PathBuf)>, StateError> {
    let Some((_, name)) = list(dir)?.pop() else {
        return Ok(None);
    };
    let path = meta_path(dir, &name);
    let bytes = std::fs::read(&path)
        .map_err(|e| StateError::Storage(format!("{}: {e}", path.display())))?;
    let meta: Meta = serde_json::from_slice(&bytes)
        .map_err(|e| StateError::Storage(format!("{}: {e}", path.display())))?;
    Ok(Some((meta, snap_path(dir, &name))))
}

/// The state machine over the state store.
pub struct StateMachine {
    applier: Applier,
    /// Where snapshots are kept.
    dir: PathBuf,
    /// The log's in-memory copies of entries waiting for their apply: released before an
    /// entry is applied, so its requests move into the tables instead of being copied.
    log: AppliedLog<TypeConfig>,
    applied: Option<LogId<u64>>,
    membership: Membership,
    /// The file a snapshot from the leader is being received into.
    receiving: Option<PathBuf>,
}

impl StateMachine {
    /// Starts from the newest snapshot in `dir` (or an empty state), publishing to `events`;
    /// the applier is the store's side of it.
    pub fn open(
        dir: &Path,
        log: AppliedLog<TypeConfig>,
        events: Option<Arc<EventBroker>>,
    ) -> Result<(Self, Applier), StateError> {
        create_dir(dir)?;
        let (tables, applied, membership) = match latest(dir)? {
            Some((meta, path)) => (
                snapshot::load(&path)?,
                meta.last_log_id,
                meta.last_membership,
            ),
            None => (Tables::default(), None, Membership::default()),
        };
        let applier = Applier::new(tables, events);
        Ok((
            StateMachine {
                applier: applier.clone(),
                dir: dir.to_path_buf(),
                log,
                applied,
                membership,
                receiving: None,
            },
            applier,
        ))
    }
}

fn read_error(e: impl std::fmt::Display) -> StorageError<u64> {
    StorageIOError::read_snapshot(None, AnyError::error(e)).into()
}

fn write_error(e: impl std::fmt::Display) -> StorageError<u64> {
    StorageIOError::write_snapshot(None, AnyError::error(e)).into()
}

/// Builds a snapshot of the tables as they were when the builder was made.
pub struct SnapshotBuilder {
    tables: Arc<Tables>,
    meta: Meta,
    dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let (tables, meta, dir) = (self.tables.clone(), self.meta.clone(), self.dir.clone());
        // Encoding a large state takes seconds; apply goes on meanwhile.
        let path = tokio::task::spawn_blocking(move || save_snapshot(&dir, &tables, &meta))
            .await
            .map_err(write_error)?
            .map_err(write_error)?;
        let file = tokio::fs::File::open(&path).await.map_err(read_error)?;
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(file),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, Membership), StorageError<u64>> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Answers>, StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        if let Some(last) = entries.last() {
            self.log.release_upto(last.log_id.index);
        }
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            self.applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => out.push(Answers::default()),
                EntryPayload::Normal(proposal) => {
                    // The last holder moves the request in; a copy is made only while another
                    // reader (a replication task) still holds the entry.
                    let reqs = proposal
                        .reqs
                        .into_iter()
                        .map(|r| Arc::try_unwrap(r).unwrap_or_else(|r| Request::clone(&r)));
                    out.push(Answers(self.applier.apply_entry(entry.log_id.index, reqs)));
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    out.push(Answers::default());
                }
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            tables: self.applier.tables(),
            meta: SnapshotMeta {
                last_log_id: self.applied,
                last_membership: self.membership.clone(),
                snapshot_id: name_of(self.applied.as_ref()),
            },
            dir: self.dir.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<tokio::fs::File>, StorageError<u64>> {
        let path = self
            .dir
            .join(format!("receiving-{}.snap.tmp", uuid::Uuid::new_v4()));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(write_error)?;
        if let Some(old) = self.receiving.replace(path) {
            let _ = std::fs::remove_file(old);
        }
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError<u64>> {
        // The data may not be in the file `begin_receiving_snapshot` made (a caller may hand
        // over another snapshot's file), so it is copied from the handle given.
        let mut file = *snapshot;
        file.flush().await.map_err(write_error)?;
        file.seek(std::io::SeekFrom::Start(0))
            .await
            .map_err(read_error)?;
        let dest = snap_path(&self.dir, &name_of(meta.last_log_id.as_ref()));
        let tmp = dest.with_extension("snap.tmp");
        let mut out = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .await
            .map_err(write_error)?;
        tokio::io::copy(&mut file, &mut out)
            .await
            .map_err(write_error)?;
        out.flush().await.map_err(write_error)?;
        out.sync_all().await.map_err(write_error)?;
        drop((out, file));
        if let Some(received) = self.receiving.take() {
            let _ = std::fs::remove_file(received);
        }
        let (dir, m) = (self.dir.clone(), meta.clone());
        let tables = tokio::task::spawn_blocking(move || {
            // Read before it replaces anything: a damaged snapshot must not be kept.
            let tables = snapshot::load(&tmp).inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })?;
            std::fs::rename(&tmp, &dest).map_err(|e| {
                StateError::Storage(format!("{} → {}: {e}", tmp.display(), dest.display()))
            })?;
            if let Some(parent) = dest.parent() {
                sync_dir(parent)?;
            }
            commit_snapshot(&dir, &m)?;
            Ok::<_, StateError>(tables)
        })
        .await
        .map_err(write_error)?
        .map_err(write_error)?;
        self.applier.install(tables);
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let Some((meta, path)) = latest(&self.dir).map_err(read_error)? else {
            return Ok(None);
        };
        let file = tokio::fs::File::open(&path).await.map_err(read_error)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(file),
        }))
    }
}

#[cfg(test)]
mod tests;
