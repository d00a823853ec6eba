use std::sync::Arc;
use std::time::Instant;

use openraft::storage::RaftStateMachine;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

use super::*;
use crate::server::raft::committer::{Identity, open_store};
use crate::server::raft::log_store::LogStore;
use crate::server::raft::migrate::MIGRATED_FILE;
use crate::server::raft::snapshot::tests::{canonical, populated};
use crate::server::raft::testing::TempDir;
use crate::server::raft::types::Proposal;
use crate::server::state::{Applied, Command, LEGACY_FILE};
use crate::structs::Namespace;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore<TypeConfig>, StateMachine, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore<TypeConfig>, StateMachine), StorageError<u64>> {
        let dir = TempDir::new("raft-sm-suite");
        let log = LogStore::open(dir.path()).map_err(write_error)?;
        let (sm, _) = StateMachine::open(&dir.path().join(SNAPSHOT_DIR), log.applied_log(), None)
            .map_err(write_error)?;
        Ok((dir, log, sm))
    }
}

#[test]
fn passes_openraft_storage_suite() {
    if let Err(e) = Suite::test_all(Builder) {
        panic!("storage suite: {e}");
    }
}

fn ns(name: &str) -> Request {
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({ "Name": name })).expect("namespace");
    Request::new(Command::NamespaceUpsert { ns })
}

/// A command every state refuses: the job has no versions.
fn refused() -> Request {
    Request::new(Command::JobStability {
        ns: "default".into(),
        id: "nope".into(),
        version: 0,
        stable: true,
    })
}

/// A command that writes nothing: unknown policy names are skipped.
fn no_op() -> Request {
    Request::new(Command::AclPolicyDelete {
        names: vec!["nope".into()],
    })
}

fn entry(term: u64, index: u64, reqs: Vec<Request>) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload: EntryPayload::Normal(Proposal {
            reqs: reqs.into_iter().map(Arc::new).collect(),
        }),
    }
}

fn open_sm(dir: &Path) -> (StateMachine, Applier, LogStore<TypeConfig>) {
    let log = LogStore::open(dir).expect("log");
    let (sm, applier) =
        StateMachine::open(&dir.join(SNAPSHOT_DIR), log.applied_log(), None).expect("sm");
    (sm, applier, log)
}

#[tokio::test]
async fn an_entry_applies_its_requests_in_order_at_its_index() {
    let dir = TempDir::new("raft-sm-apply");
    let (mut sm, applier, _log) = open_sm(dir.path());
    let before = applier.tables().index;
    let mut answers = sm
        .apply([entry(1, 7, vec![no_op(), ns("a"), refused(), ns("b")])])
        .await
        .expect("apply");
    assert_eq!(answers.len(), 1);
    let answers = std::mem::take(&mut answers[0].0);
    assert_eq!(answers.len(), 4);
    // Writing nothing leaves the index where it was; the writes share the entry's.
    assert!(matches!(answers[0], Ok((i, Applied::Deleted(0))) if i == before));
    assert!(matches!(answers[1], Ok((7, _))));
    assert!(
        matches!(&answers[2], Err(StateError::NotFound(_))),
        "{:?}",
        answers[2]
    );
    assert!(matches!(answers[3], Ok((7, _))));
    let t = applier.tables();
    assert_eq!(t.index, 7);
    for name in ["a", "b"] {
        let n = t.namespace(name).expect(name);
        assert_eq!((n.create_index, n.modify_index), (7, 7));
    }
    let (applied, _) = sm.applied_state().await.expect("applied");
    assert_eq!(applied.map(|l| l.index), Some(7));
}

#[tokio::test]
async fn snapshots_read_back_and_only_the_newest_two_are_kept() {
    let dir = TempDir::new("raft-sm-snap");
    let snaps = dir.path().join(SNAPSHOT_DIR);
    let expected = {
        let (mut sm, applier, _log) = open_sm(dir.path());
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            let index = 3 + i as u64;
            sm.apply([entry(2, index, vec![ns(name)])])
                .await
                .expect("apply");
            let snap = sm
                .get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .expect("build");
            assert_eq!(snap.meta.snapshot_id, format!("2-{index}"));
        }
        canonical(&applier.tables())
    };
    let mut kept: Vec<String> = std::fs::read_dir(&snaps)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        ["2-4.meta.json", "2-4.snap", "2-5.meta.json", "2-5.snap"]
    );
    let (mut sm, applier, _log) = open_sm(dir.path());
    assert_eq!(canonical(&applier.tables()), expected);
    let (applied, _) = sm.applied_state().await.expect("applied");
    assert_eq!(applied.map(|l| (l.leader_id.term, l.index)), Some((2, 5)));
    let current = sm.get_current_snapshot().await.expect("read");
    assert_eq!(current.map(|s| s.meta.snapshot_id), Some("2-5".into()));
}

#[tokio::test]
async fn a_damaged_received_snapshot_is_refused_and_not_kept() {
    let dir = TempDir::new("raft-sm-install");
    let (mut sm, applier, _log) = open_sm(dir.path());
    let mut file = sm.begin_receiving_snapshot().await.expect("begin");
    file.write_all(b"YURTSNAP not really").await.expect("write");
    let meta = SnapshotMeta {
        last_log_id: Some(LogId::new(CommittedLeaderId::new(3, 2), 40)),
        last_membership: StoredMembership::default(),
        snapshot_id: "3-40".into(),
    };
    let err = sm.install_snapshot(&meta, file).await.expect_err("damaged");
    assert!(err.to_string().contains("snapshot"), "{err}");
    assert_eq!(applier.tables().index, 1);
    assert!(sm.get_current_snapshot().await.expect("read").is_none());
    let left: Vec<_> = std::fs::read_dir(dir.path().join(SNAPSHOT_DIR))
        .expect("dir")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_reopened_store_has_every_acknowledged_write_and_indexes_move_on() {
    let dir = TempDir::new("raft-restart");
    let store = open_store(dir.path(), Identity::default(), None).expect("open");
    let mut last = store.latest_index();
    for i in 0..20 {
        let (index, _) = store.commit_blocking(ns(&format!("n{i}"))).expect("commit");
        assert!(index > last, "{index} after {last}");
        last = index;
    }
    let refused = store.commit_blocking(refused()).expect_err("refused");
    assert!(matches!(refused, StateError::NotFound(_)), "{refused:?}");
    let before = canonical(&store.snapshot());
    drop(store);
    let store = open_store(dir.path(), Identity::default(), None).expect("reopen");
    assert_eq!(canonical(&store.snapshot()), before);
    let (index, _) = store.commit_blocking(ns("later")).expect("commit");
    assert!(index > last, "{index} after {last}");
    assert!(
        store
            .write_blocking(|_| Ok(()))
            .expect_err("closures are not replicated")
            .to_string()
            .contains("commands only")
    );
}

#[test]
fn a_pre_raft_data_dir_is_migrated_at_its_index() {
    let dir = TempDir::new("raft-migrate");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let legacy = runtime.block_on(async {
        let store = populated(dir.path()).await;
        let tables = store.snapshot();
        drop(store);
        tables
    });
    let index = legacy.index;
    assert!(index > 1);
    let store = open_store(dir.path(), Identity::default(), None).expect("migrate");
    assert_eq!(canonical(&store.snapshot()), canonical(&legacy));
    assert!(!dir.path().join(LEGACY_FILE).exists());
    assert!(dir.path().join(MIGRATED_FILE).exists());
    let (written, _) = store.commit_blocking(ns("after")).expect("commit");
    assert!(written > index, "{written} after {index}");
    drop(store);
    // Started again, it is the migrated node, not a new migration.
    let store = open_store(dir.path(), Identity::default(), None).expect("reopen");
    assert!(store.snapshot().namespace("after").is_some());
    assert_eq!(store.latest_index(), written);
}

/// Commit latency of a one-node store, debug or release (`cargo test --lib
/// store_commit_latency -- --ignored --nocapture`). It prints; it asserts nothing about speed.
#[test]
#[ignore]
fn store_commit_latency() {
    let dir = TempDir::new("raft-store-latency");
    let store = Arc::new(open_store(dir.path(), Identity::default(), None).expect("open"));
    let description = "x".repeat(2048);
    for writers in [1usize, 16] {
        let per_writer = 800 / writers;
        let start = Instant::now();
        let threads: Vec<_> = (0..writers)
            .map(|w| {
                let store = store.clone();
                let description = description.clone();
                std::thread::spawn(move || {
                    let mut took = Vec::new();
                    let mut indexes = Vec::new();
                    for i in 0..per_writer {
                        let ns: Namespace = serde_json::from_value(serde_json::json!({
                            "Name": format!("w{writers}-{w}-{i}"),
                            "Description": description,
                        }))
                        .expect("namespace");
                        let t = Instant::now();
                        let (index, _) = store
                            .commit_blocking(Request::new(Command::NamespaceUpsert { ns }))
                            .expect("commit");
                        took.push(t.elapsed());
                        indexes.push(index);
                    }
                    (took, indexes)
                })
            })
            .collect();
        let mut took = Vec::new();
        let mut indexes = std::collections::BTreeSet::new();
        for t in threads {
            let (t, i) = t.join().expect("writer");
            took.extend(t);
            indexes.extend(i);
        }
        let elapsed = start.elapsed();
        took.sort();
        let n = took.len();
        println!(
            "store, 1 node, {writers} writers, {n} writes of 2 KiB: p50 {:?} p99 {:?} \
             {:.0} writes/s, {} log entries",
            took[n / 2],
            took[n * 99 / 100],
            n as f64 / elapsed.as_secs_f64(),
            indexes.len()
        );
    }
}

#[test]
fn the_requests_of_one_entry_publish_one_batch_of_events_at_its_index() {
    let broker = Arc::new(EventBroker::new(10));
    let applier = Applier::new(Tables::default(), Some(broker.clone()));
    let job: crate::structs::Job =
        serde_json::from_value(serde_json::json!({ "ID": "web", "Namespace": "default" }))
            .expect("job");
    let eval = || {
        Request::new(Command::EvalUpdate {
            evals: vec![crate::server::scheduler::testing::mock_eval(&job)],
        })
    };
    let answers = applier.apply_entry(5, [eval(), refused(), eval()]);
    assert_eq!(answers.len(), 3);
    assert!(answers[0].is_ok() && answers[1].is_err() && answers[2].is_ok());
    let backlog = broker.subscribe(0).backlog;
    assert_eq!(backlog.len(), 1, "one write, one batch");
    assert_eq!(backlog[0].index, 5);
    assert_eq!(backlog[0].events.len(), 2);
}
