//! Test harness for the Raft pieces: a small type config and an in-memory state machine that
//! records the strings it applies. It stands in for the state store's state machine (step 3 of
//! docs/raft.md §8) so the log store and the transport can be tested on their own.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, BasicNode, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// Commands and responses are strings; the node address is a `BasicNode`.
    pub TestConfig
);

/// A directory removed when the test is done with it.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        TempDir(std::env::temp_dir().join(format!("yurt-{tag}-{}", uuid::Uuid::new_v4())))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the state machine holds, and what its snapshots contain.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Data {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    /// Every normal entry's string, in log order.
    writes: Vec<String>,
}

#[derive(Default)]
struct State {
    data: Data,
    current: Option<(SnapshotMeta<u64, BasicNode>, Vec<u8>)>,
    snapshots_built: u64,
}

/// The state machine; clones share one state, so a test keeps a handle to read it.
#[derive(Clone, Default)]
pub struct TestStateMachine {
    state: Arc<Mutex<State>>,
}

impl TestStateMachine {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The strings applied so far, in log order.
    pub fn writes(&self) -> Vec<String> {
        self.state().data.writes.clone()
    }
}

fn snapshot_error(e: impl std::fmt::Display) -> StorageError<u64> {
    StorageIOError::write_snapshot(None, AnyError::error(e)).into()
}

impl RaftSnapshotBuilder<TestConfig> for TestStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TestConfig>, StorageError<u64>> {
        let mut state = self.state();
        let bytes = serde_json::to_vec(&state.data).map_err(snapshot_error)?;
        state.snapshots_built += 1;
        let meta = SnapshotMeta {
            last_log_id: state.data.last_applied,
            last_membership: state.data.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                state.data.last_applied.map_or(0, |id| id.index),
                state.snapshots_built
            ),
        };
        state.current = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TestConfig> for TestStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let state = self.state();
        Ok((state.data.last_applied, state.data.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<String>, StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<TestConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut state = self.state();
        let mut out = Vec::new();
        for entry in entries {
            state.data.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => out.push(String::new()),
                EntryPayload::Normal(s) => {
                    state.data.writes.push(s.clone());
                    out.push(s);
                }
                EntryPayload::Membership(m) => {
                    state.data.membership = StoredMembership::new(Some(entry.log_id), m);
                    out.push(String::new());
                }
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let bytes = snapshot.into_inner();
        let mut data: Data = serde_json::from_slice(&bytes).map_err(snapshot_error)?;
        data.last_applied = meta.last_log_id;
        data.membership = meta.last_membership.clone();
        let mut state = self.state();
        state.data = data;
        state.current = Some((meta.clone(), bytes));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TestConfig>>, StorageError<u64>> {
        Ok(self.state().current.clone().map(|(meta, bytes)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}
