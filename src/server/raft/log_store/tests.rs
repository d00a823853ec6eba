use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, Vote};

use super::*;
use crate::server::raft::testing::{TempDir, TestConfig, TestStateMachine};

type Store = LogStore<TestConfig>;

struct Builder;

impl StoreBuilder<TestConfig, Store, TestStateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, Store, TestStateMachine), TestConfig> {
        let dir = TempDir::new("raft-log-suite");
        let store = Store::open(dir.path())
            .map_err(|e| StorageError::from(StorageIOError::write_logs(AnyError::error(e))))?;
        Ok((dir, store, TestStateMachine::default()))
    }
}

#[test]
fn passes_openraft_storage_suite() {
    if let Err(e) = Suite::test_all(Builder) {
        panic!("storage suite: {e}");
    }
}

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64, s: &str) -> Entry<TestConfig> {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(s.to_string()),
    }
}

fn payloads(entries: &[Entry<TestConfig>]) -> Vec<String> {
    entries
        .iter()
        .map(|e| match &e.payload {
            EntryPayload::Normal(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn entries_are_readable_before_their_flush() {
    let dir = TempDir::new("raft-log-pending");
    let mut store = Store::open(dir.path()).expect("open");
    store
        .blocking_append([entry(1, 1, "a")])
        .await
        .expect("append");
    let gate = store.gate();
    let mut reader = store.get_log_reader().await;
    let appending = tokio::spawn(async move {
        store
            .blocking_append([entry(1, 2, "b"), entry(1, 3, "c")])
            .await
            .map(|()| store)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = reader.try_get_log_entries(1..4).await.expect("read");
        if got.len() == 3 {
            assert_eq!(payloads(&got), ["a", "b", "c"]);
            break;
        }
        assert!(Instant::now() < deadline, "appended entries never readable");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        !appending.is_finished(),
        "the append was acknowledged while the writer was held"
    );
    gate.send(()).expect("release the writer");
    let mut store = tokio::time::timeout(Duration::from_secs(10), appending)
        .await
        .expect("flushed once released")
        .expect("task")
        .expect("append");
    drop(gate);
    let got = store.try_get_log_entries(2..).await.expect("read");
    assert_eq!(payloads(&got), ["b", "c"]);
    drop(reader);
    drop(store);
    // Acknowledged means on disk: a new store reads them from the file.
    let mut store = Store::open(dir.path()).expect("reopen");
    let got = store.try_get_log_entries(..).await.expect("read");
    assert_eq!(payloads(&got), ["a", "b", "c"]);
}

#[tokio::test]
async fn vote_committed_and_log_bounds_survive_a_restart() {
    let dir = TempDir::new("raft-log-restart");
    {
        let mut store = Store::open(dir.path()).expect("open");
        let entries: Vec<_> = (1..=10).map(|i| entry(1, i, &format!("w{i}"))).collect();
        store.blocking_append(entries).await.expect("append");
        store.save_vote(&Vote::new(2, 7)).await.expect("vote");
        store
            .save_committed(Some(log_id(1, 8)))
            .await
            .expect("commit");
        store.purge(log_id(1, 3)).await.expect("purge");
        store.truncate(log_id(1, 9)).await.expect("truncate");
        // A follower's log replaced from 9 on by a new leader's entries.
        store
            .blocking_append([entry(2, 9, "x9")])
            .await
            .expect("append");
    }
    let mut store = Store::open(dir.path()).expect("reopen");
    assert_eq!(
        store.read_vote().await.expect("vote"),
        Some(Vote::new(2, 7))
    );
    assert_eq!(
        store.read_committed().await.expect("committed"),
        Some(log_id(1, 8))
    );
    let state = store.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 3)));
    assert_eq!(state.last_log_id, Some(log_id(2, 9)));
    let got = store.try_get_log_entries(..).await.expect("read");
    assert_eq!(payloads(&got), ["w4", "w5", "w6", "w7", "w8", "x9"]);
}

#[tokio::test]
async fn a_committed_id_saved_last_survives_a_clean_shutdown() {
    let dir = TempDir::new("raft-log-committed");
    {
        let mut store = Store::open(dir.path()).expect("open");
        store
            .blocking_append([entry(1, 1, "a"), entry(1, 2, "b")])
            .await
            .expect("append");
        // Saved without an fsync of its own, and nothing durable follows it.
        store
            .save_committed(Some(log_id(1, 2)))
            .await
            .expect("commit");
    }
    let mut store = Store::open(dir.path()).expect("reopen");
    assert_eq!(
        store.read_committed().await.expect("committed"),
        Some(log_id(1, 2))
    );
}

#[tokio::test]
async fn purging_everything_leaves_the_purged_id_as_last() {
    let dir = TempDir::new("raft-log-purge-all");
    let mut store = Store::open(dir.path()).expect("open");
    let entries: Vec<_> = (1..=4).map(|i| entry(3, i, "w")).collect();
    store.blocking_append(entries).await.expect("append");
    store.purge(log_id(3, 4)).await.expect("purge");
    drop(store);
    let mut store = Store::open(dir.path()).expect("reopen");
    let state = store.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id, Some(log_id(3, 4)));
    assert_eq!(state.last_log_id, Some(log_id(3, 4)));
    assert!(
        store
            .try_get_log_entries(..)
            .await
            .expect("read")
            .is_empty()
    );
}

#[test]
fn the_directory_and_file_are_private() {
    let dir = TempDir::new("raft-log-mode");
    let raft_dir = dir.path().join("server/raft");
    drop(Store::open(&raft_dir).expect("open"));
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&raft_dir), 0o700);
    assert_eq!(mode(&raft_dir.join(LOG_FILE)), 0o600);
    // A file made by hand with a wider mode is narrowed at the next open.
    std::fs::set_permissions(
        raft_dir.join(LOG_FILE),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    drop(Store::open(&raft_dir).expect("reopen"));
    assert_eq!(mode(&raft_dir.join(LOG_FILE)), 0o600);
}

#[tokio::test]
async fn a_damaged_record_is_a_read_error_naming_the_file() {
    let dir = TempDir::new("raft-log-damaged");
    {
        let mut store = Store::open(dir.path()).expect("open");
        store
            .blocking_append([entry(1, 1, "a")])
            .await
            .expect("append");
    }
    {
        let db = Database::create(dir.path().join(LOG_FILE)).expect("db");
        let txn = db.begin_write().expect("txn");
        txn.open_table(ENTRIES)
            .expect("table")
            .insert(1, [9u8, 0, 0].as_slice())
            .expect("insert");
        txn.commit().expect("commit");
    }
    let mut store = Store::open(dir.path()).expect("reopen");
    let err = store
        .try_get_log_entries(..)
        .await
        .expect_err("a damaged record must not read as an entry");
    assert!(err.to_string().contains(LOG_FILE), "{err}");
}

/// Measures one append's wait for its fsync, one writer at a time (`cargo test --lib
/// fsync_per_append -- --ignored --nocapture`). It asserts nothing about speed.
#[tokio::test]
#[ignore]
async fn fsync_per_append_latency() {
    let dir = TempDir::new("raft-log-latency");
    let mut store = Store::open(dir.path()).expect("open");
    let payload = "x".repeat(2048);
    let mut took = Vec::new();
    for i in 1..=100 {
        let start = Instant::now();
        store
            .blocking_append([entry(1, i, &payload)])
            .await
            .expect("append");
        took.push(start.elapsed());
    }
    took.sort();
    let total: Duration = took.iter().sum();
    println!(
        "100 appends of 2 KiB, 1 writer: p50 {:?} p90 {:?} p99 {:?} max {:?} mean {:?}",
        took[49],
        took[89],
        took[98],
        took[99],
        total / 100
    );
    let got = store.try_get_log_entries(..).await.expect("read");
    assert_eq!(got.len(), 100);
}
