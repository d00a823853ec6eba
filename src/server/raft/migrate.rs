//! Moving a data dir from before Raft onto the log (docs/raft.md §3): the tables in
//! `state.redb`, at index N, become the snapshot `0-N` of a one-voter membership, and a log
//! whose last purged entry is N, so the node starts writing at N+1 and every index a client
//! holds stays behind the new ones. `state.redb` is kept as `state.redb.pre-raft` for a
//! downgrade.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use openraft::storage::RaftLogStorage;
use openraft::{CommittedLeaderId, LogId, Membership, SnapshotMeta, StoredMembership};
use uuid::Uuid;

use super::files::sync_dir;
use super::log_store::LogStore;
use super::state_machine::{SNAPSHOT_DIR, create_dir, save_snapshot};
use super::types::{ServerPeer, TypeConfig, node_id, server_id};
use crate::server::state::{LEGACY_FILE, StateError, read_legacy};

/// What `state.redb` is renamed to once migrated.
pub const MIGRATED_FILE: &str = "state.redb.pre-raft";

fn fail(what: &Path, e: impl std::fmt::Display) -> StateError {
    StateError::Storage(format!("migrating {}: {e}", what.display()))
}

/// Migrates `server_dir/state.redb` into `raft_dir` when there is one and `raft_dir` does not
/// exist yet; `me` names this server for the membership. A crash at any point leaves either
/// no `raft_dir` (the migration runs again) or a complete one (only the rename is left).
pub async fn migrate_if_needed(
    server_dir: &Path,
    raft_dir: &Path,
    me: impl Fn(&Uuid) -> ServerPeer,
) -> Result<(), StateError> {
    let legacy = server_dir.join(LEGACY_FILE);
    if !legacy.exists() {
        return Ok(());
    }
    if !raft_dir.exists() {
        migrate(server_dir, raft_dir, &me).await?;
    }
    std::fs::rename(&legacy, server_dir.join(MIGRATED_FILE)).map_err(|e| fail(&legacy, e))?;
    sync_dir(server_dir)?;
    Ok(())
}

async fn migrate(
    server_dir: &Path,
    raft_dir: &Path,
    me: &impl Fn(&Uuid) -> ServerPeer,
) -> Result<(), StateError> {
    let legacy = server_dir.join(LEGACY_FILE);
    let tables = {
        let dir = server_dir.to_path_buf();
        tokio::task::spawn_blocking(move || read_legacy(&dir))
            .await
            .map_err(|e| fail(&legacy, e))??
    };
    let tmp = raft_dir.with_extension("tmp");
    if tmp.exists() {
        // What a crash left half made.
        std::fs::remove_dir_all(&tmp).map_err(|e| fail(&tmp, e))?;
    }
    create_dir(&tmp)?;
    let uuid = server_id(&tmp)?;
    let id = node_id(&uuid);
    let index = tables.index.max(1);
    let last = LogId::new(CommittedLeaderId::new(0, id), index);
    let membership = Membership::new(
        vec![BTreeSet::from([id])],
        BTreeMap::from([(id, me(&uuid))]),
    );
    let meta = SnapshotMeta {
        last_log_id: Some(last),
        last_membership: StoredMembership::new(Some(last), membership),
        snapshot_id: format!("0-{index}"),
    };
    let snapshots = tmp.join(SNAPSHOT_DIR);
    create_dir(&snapshots)?;
    {
        let snapshots = snapshots.clone();
        tokio::task::spawn_blocking(move || save_snapshot(&snapshots, &tables, &meta))
            .await
            .map_err(|e| fail(&legacy, e))??;
    }
    {
        let mut log = LogStore::<TypeConfig>::open(&tmp).map_err(StateError::Storage)?;
        log.purge(last).await.map_err(|e| fail(&tmp, e))?;
        // Dropping the store closes the file once the purge is on disk.
    }
    sync_dir(&tmp)?;
    std::fs::rename(&tmp, raft_dir).map_err(|e| fail(raft_dir, e))?;
    sync_dir(server_dir)?;
    tracing::info!(index, from = %legacy.display(), "migrated the state onto the raft log");
    Ok(())
}
