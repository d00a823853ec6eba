use std::sync::Arc;

use super::*;
use crate::structs::{AllocClientStatus, AllocDesiredStatus, EvalStatus, JobStatus, NodeStatus};
use crate::structs::{Allocation, Evaluation, Job, Node};

fn job(id: &str) -> Job {
    let mut j: Job = serde_json::from_value(serde_json::json!({
        "ID": id,
        "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "raw_exec"}]}]
    }))
    .unwrap();
    crate::structs::canonicalize::canonicalize_job(&mut j, "global");
    j
}

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("yurt-state-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn writes_bump_one_index_and_the_touched_watches() {
    let s = StateStore::in_memory();
    let mut jobs = s.watch(Table::Jobs);
    let nodes = s.watch(Table::Nodes);
    let (idx, _) = s.write_blocking(|t| t.put_job(job("a"), true)).unwrap();
    assert_eq!(idx, 2);
    assert!(jobs.has_changed().unwrap());
    assert_eq!(*jobs.borrow_and_update(), 2);
    assert!(!nodes.has_changed().unwrap());
    let (idx2, _) = s
        .write_blocking(|t| {
            t.put_node(Node {
                id: "n1".into(),
                ..Default::default()
            })
        })
        .unwrap();
    assert_eq!(idx2, 3);
    let snap = s.snapshot();
    assert_eq!(snap.table_index(Table::Jobs), 2);
    assert_eq!(snap.table_index(Table::Nodes), 3);
    let j = snap.job("default", "a").unwrap();
    assert_eq!((j.create_index, j.modify_index), (2, 2));
    assert_eq!(j.status, Some(JobStatus::Pending));
}

#[test]
fn failed_writes_change_nothing() {
    let s = StateStore::in_memory();
    let r: Result<(u64, ()), _> = s.write_blocking(|t| {
        t.put_job(job("a"), true)?;
        Err(StateError::Conflict("no".into()))
    });
    assert!(r.is_err());
    assert!(s.snapshot().job("default", "a").is_none());
    assert_eq!(s.latest_index(), 1);
}

#[test]
fn versions_are_capped_newest_first() {
    let s = StateStore::in_memory();
    for v in 0..8 {
        let mut j = job("a");
        j.version = v;
        s.write_blocking(|t| t.put_job(j, true)).unwrap();
    }
    let versions = s.snapshot().job_versions("default", "a");
    assert_eq!(versions.len(), JOB_TRACKED_VERSIONS);
    assert_eq!(versions[0].version, 7);
    assert_eq!(versions[5].version, 2);
}

#[test]
fn job_status_follows_allocs_and_evals() {
    let s = StateStore::in_memory();
    let (_, j) = s.write_blocking(|t| t.put_job(job("a"), true)).unwrap();
    s.write_blocking(|t| {
        t.put_eval(Evaluation {
            id: "e1".into(),
            namespace: "default".into(),
            job_id: "a".into(),
            status: EvalStatus::Pending,
            ..Default::default()
        })
    })
    .unwrap();
    assert_eq!(
        s.snapshot().job("default", "a").unwrap().status,
        Some(JobStatus::Pending)
    );
    s.write_blocking(|t| {
        t.put_alloc_server(Allocation {
            id: "a1".into(),
            namespace: "default".into(),
            job_id: "a".into(),
            node_id: "n1".into(),
            job: Some(j.clone()),
            desired_status: AllocDesiredStatus::Run,
            client_status: AllocClientStatus::Pending,
            ..Default::default()
        })
    })
    .unwrap();
    assert_eq!(
        s.snapshot().job("default", "a").unwrap().status,
        Some(JobStatus::Running)
    );
    let mut done = (*s.snapshot().alloc("a1").unwrap()).clone();
    done.client_status = AllocClientStatus::Complete;
    s.write_blocking(|t| t.put_alloc_client(done)).unwrap();
    let snap = s.snapshot();
    // The eval is still pending, so the job is pending rather than dead.
    assert_eq!(
        snap.job("default", "a").unwrap().status,
        Some(JobStatus::Pending)
    );
    let a = snap.alloc("a1").unwrap();
    assert!(a.modify_index > a.alloc_modify_index);
    assert_eq!(snap.allocs_by_node("n1").len(), 1);
}

#[test]
fn survives_reopen_with_same_indexes() {
    let dir = tmpdir("reopen");
    {
        let s = StateStore::open(&dir).unwrap();
        let (_, j) = s.write_blocking(|t| t.put_job(job("web"), true)).unwrap();
        for i in 0..3 {
            s.write_blocking(|t| {
                t.put_alloc_server(Allocation {
                    id: format!("alloc-{i}"),
                    namespace: "default".into(),
                    job_id: "web".into(),
                    node_id: "n1".into(),
                    name: format!("web.g[{i}]"),
                    job: Some(j.clone()),
                    desired_status: AllocDesiredStatus::Run,
                    client_status: AllocClientStatus::Running,
                    ..Default::default()
                })
            })
            .unwrap();
        }
        s.write_blocking(|t| {
            t.put_node(Node {
                id: "n1".into(),
                status: NodeStatus::Ready,
                ..Default::default()
            })
        })
        .unwrap();
    }
    let before_index = 6;
    let s = StateStore::open(&dir).unwrap();
    let snap = s.snapshot();
    assert_eq!(snap.index, before_index);
    assert_eq!(snap.table_index(Table::Nodes), 6);
    assert_eq!(snap.table_index(Table::Allocs), 5);
    let a = snap.alloc("alloc-2").unwrap();
    assert_eq!(a.create_index, 5);
    assert_eq!(a.job.as_ref().unwrap().id, "web");
    assert_eq!(snap.allocs_by_job("default", "web").len(), 3);
    assert_eq!(snap.job_versions("default", "web").len(), 1);
    assert_eq!(
        snap.job("default", "web").unwrap().status,
        Some(JobStatus::Running)
    );
    // The next write continues after the restored index.
    let (idx, _) = s.write_blocking(|t| t.put_job(job("other"), true)).unwrap();
    assert_eq!(idx, 7);
    drop(s);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_write_leaves_nothing_on_disk() {
    let dir = tmpdir("abort");
    {
        let s = StateStore::open(&dir).unwrap();
        // The job's record is already streamed to the writer when the closure fails.
        let r: Result<(u64, ()), StateError> = s.write_blocking(|t| {
            t.put_job(job("half"), true)?;
            Err(StateError::Conflict("refused after a put".into()))
        });
        assert!(matches!(r, Err(StateError::Conflict(_))));
        assert!(s.snapshot().job("default", "half").is_none());
        // A write that changes nothing is aborted too; the next real one still commits.
        s.write_blocking(|_| Ok(())).unwrap();
        let (idx, _) = s.write_blocking(|t| t.put_job(job("whole"), true)).unwrap();
        assert_eq!(idx, 2);
    }
    let s = StateStore::open(&dir).unwrap();
    let snap = s.snapshot();
    assert!(
        snap.job("default", "half").is_none(),
        "aborted write reached disk"
    );
    assert!(snap.job("default", "whole").is_some());
    assert_eq!(snap.index, 2);
    drop(s);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Holds every disk commit until the test gives its verdict, so a test decides which writes
/// share a commit and whether it fails.
struct Gate {
    started: tokio::sync::mpsc::UnboundedReceiver<()>,
    verdict: std::sync::mpsc::Sender<Result<(), StateError>>,
    /// Records the committer has put into a redb transaction so far.
    applied: Arc<std::sync::atomic::AtomicUsize>,
}

impl Gate {
    /// A store under `dir` whose commits wait for the gate. A commit given no verdict within
    /// 5 s goes ahead, so a test that wrongly blocks fails instead of hanging.
    fn open(dir: &std::path::Path) -> (Arc<StateStore>, Gate) {
        let (started_tx, started) = tokio::sync::mpsc::unbounded_channel();
        let (verdict, verdict_rx) = std::sync::mpsc::channel();
        let hook = Box::new(move || {
            let _ = started_tx.send(());
            verdict_rx
                .recv_timeout(std::time::Duration::from_secs(5))
                .unwrap_or(Ok(()))
        });
        let applied = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let store = StateStore::open_with_hook(dir, hook, applied.clone()).unwrap();
        let gate = Gate {
            started,
            verdict,
            applied,
        };
        (Arc::new(store), gate)
    }

    fn applied(&self) -> usize {
        self.applied.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until a commit is in flight.
    async fn started(&mut self) {
        tokio::time::timeout(std::time::Duration::from_secs(10), self.started.recv())
            .await
            .expect("a commit started")
            .expect("gate open");
    }

    fn finish(&self, verdict: Result<(), StateError>) {
        self.verdict.send(verdict).unwrap();
    }

    /// True when no further commit started.
    fn idle(&mut self) -> bool {
        self.started.try_recv().is_err()
    }
}

type WriteTask = tokio::task::JoinHandle<Result<(u64, ()), StateError>>;

fn put_job_task(s: &Arc<StateStore>, id: &str) -> WriteTask {
    let (s, id) = (s.clone(), id.to_string());
    tokio::spawn(async move { s.write(|t| t.put_job(job(&id), true).map(drop)).await })
}

/// Waits until writes up to `index` are applied (queued for a commit, maybe not durable).
async fn applied(s: &StateStore, index: u64) {
    for _ in 0..1000 {
        if s.shared.head.lock().await.index >= index {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    panic!("writes up to {index} were never applied");
}

fn reopen_jobs(dir: &std::path::Path) -> (u64, Vec<String>) {
    let s = StateStore::open(dir).unwrap();
    let snap = s.snapshot();
    let mut ids: Vec<String> = snap.jobs.values().map(|j| j.id.clone()).collect();
    ids.sort();
    (snap.index, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_one_commit_and_all_survive_reopen() {
    let dir = tmpdir("group");
    let (s, mut gate) = Gate::open(&dir);
    let mut jobs_watch = s.watch(Table::Jobs);
    let first = put_job_task(&s, "w-00");
    gate.started().await;
    // 49 writers arrive while the first commit is in flight.
    let rest: Vec<WriteTask> = (1..50)
        .map(|i| put_job_task(&s, &format!("w-{i:02}")))
        .collect();
    applied(&s, 51).await;
    // Applied is not visible: readers and watches see only durable writes.
    assert!(s.snapshot().job("default", "w-00").is_none());
    assert_eq!(s.latest_index(), 1);
    assert!(!jobs_watch.has_changed().unwrap());
    assert!(
        !first.is_finished(),
        "answered before its write was durable"
    );

    gate.finish(Ok(()));
    assert_eq!(first.await.unwrap().unwrap().0, 2);
    // The 49 others are made durable by a single second commit.
    gate.started().await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(rest.iter().all(|t| !t.is_finished()));
    gate.finish(Ok(()));
    let mut answers = Vec::new();
    for t in rest {
        answers.push(t.await.unwrap().unwrap().0);
    }
    let snap = s.snapshot();
    let mut indexes = Vec::new();
    for (i, index) in (1..50).zip(answers) {
        // Each write's index is the one it was applied at.
        let stored = snap.job("default", &format!("w-{i:02}")).unwrap();
        assert_eq!(stored.create_index, index);
        indexes.push(index);
    }
    indexes.sort();
    assert_eq!(indexes, (3..=51).collect::<Vec<u64>>(), "one index each");
    assert!(gate.idle(), "two commits for fifty writes");
    assert_eq!(snap.index, 51);
    assert_eq!(*jobs_watch.borrow_and_update(), 51);
    assert_eq!(snap.jobs.len(), 50);
    drop(s);

    let (index, ids) = reopen_jobs(&dir);
    assert_eq!(index, 51);
    assert_eq!(ids.len(), 50);
    assert_eq!((ids[0].as_str(), ids[49].as_str()), ("w-00", "w-49"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_closure_leaves_the_rest_of_its_group_alone() {
    let dir = tmpdir("group-closure");
    let (s, mut gate) = Gate::open(&dir);
    let a = put_job_task(&s, "a");
    gate.started().await;
    let b = put_job_task(&s, "b");
    applied(&s, 3).await;
    let refused = s
        .write(|t| {
            t.put_job(job("refused"), true)?;
            Err::<(), _>(StateError::Conflict("no".into()))
        })
        .await;
    assert!(matches!(refused, Err(StateError::Conflict(_))));
    let d = put_job_task(&s, "d");
    applied(&s, 4).await;
    gate.finish(Ok(()));
    gate.started().await;
    gate.finish(Ok(()));
    assert_eq!(a.await.unwrap().unwrap().0, 2);
    // The refused write took no index: the next one follows directly.
    assert_eq!(b.await.unwrap().unwrap().0, 3);
    assert_eq!(d.await.unwrap().unwrap().0, 4);
    assert!(s.snapshot().job("default", "refused").is_none());
    drop(s);
    assert_eq!(
        reopen_jobs(&dir),
        (4, vec!["a".to_string(), "b".into(), "d".into()])
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_fails_its_group_and_the_writes_built_on_it() {
    let dir = tmpdir("group-fail");
    let (s, mut gate) = Gate::open(&dir);
    let mut jobs_watch = s.watch(Table::Jobs);
    let a = put_job_task(&s, "a");
    gate.started().await;
    let b = put_job_task(&s, "b");
    let c = put_job_task(&s, "c");
    applied(&s, 4).await;
    gate.finish(Ok(()));
    assert_eq!(a.await.unwrap().unwrap().0, 2);
    jobs_watch.borrow_and_update();
    // b and c commit together; d arrives during that commit and builds on them.
    gate.started().await;
    let d = put_job_task(&s, "d");
    applied(&s, 5).await;
    gate.finish(Err(StateError::Storage("disk full".into())));
    for t in [b, c] {
        let err = t.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
    }
    let err = d.await.unwrap().unwrap_err();
    assert!(matches!(err, StateError::Storage(_)), "{err}");
    let snap = s.snapshot();
    assert_eq!(snap.index, 2);
    assert!(snap.job("default", "b").is_none());
    assert!(!jobs_watch.has_changed().unwrap());
    // The next write starts again from the durable state.
    let e = put_job_task(&s, "e");
    gate.started().await;
    gate.finish(Ok(()));
    assert_eq!(e.await.unwrap().unwrap().0, 3);
    assert_eq!(s.snapshot().job("default", "e").unwrap().create_index, 3);
    drop(s);
    assert_eq!(reopen_jobs(&dir), (3, vec!["a".to_string(), "e".into()]));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A current_thread runtime has one thread: if a write blocked it while waiting for the
/// disk, nothing else could run until the commit was done.
#[tokio::test(flavor = "current_thread")]
async fn waiting_for_the_disk_does_not_block_the_runtime() {
    let dir = tmpdir("async");
    let (s, mut gate) = Gate::open(&dir);
    let write = put_job_task(&s, "slow");
    gate.started().await;
    let reader = {
        let s = s.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            s.snapshot().job("default", "slow").is_none()
        })
    };
    assert!(
        reader.await.unwrap(),
        "the reader saw a write not yet durable"
    );
    assert!(!write.is_finished());
    // A write that changes nothing, but read the pending one, waits for it too.
    let noop = {
        let s = s.clone();
        tokio::spawn(async move {
            s.write(|t| Ok(t.tables().job("default", "slow").is_some()))
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(
        !noop.is_finished(),
        "answered from a write that is not durable"
    );
    gate.finish(Ok(()));
    assert_eq!(write.await.unwrap().unwrap().0, 2);
    assert_eq!(noop.await.unwrap().unwrap(), (2, true));
    assert!(gate.idle(), "a write that changes nothing commits nothing");
    drop(s);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A write refused because of a pending write (a stale plan, a conflict) is answered only once
/// that write is durable: a caller that retries on a fresh snapshot then sees what refused it,
/// instead of retrying on the same stale state until its attempts run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_waits_for_the_pending_write_it_rests_on() {
    let dir = tmpdir("refusal");
    let (s, mut gate) = Gate::open(&dir);
    let write = put_job_task(&s, "first");
    gate.started().await;
    applied(&s, 2).await;
    let refused = {
        let s = s.clone();
        tokio::spawn(async move {
            let r: Result<(u64, ()), StateError> = s
                .write(|t| match t.tables().job("default", "first") {
                    Some(_) => Err(StateError::Conflict("first exists".into())),
                    None => Ok(()),
                })
                .await;
            (r, s.snapshot().job("default", "first").is_some())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        !refused.is_finished(),
        "refused before the write it rests on was durable"
    );
    gate.finish(Ok(()));
    assert_eq!(write.await.unwrap().unwrap().0, 2);
    let (r, seen) = refused.await.unwrap();
    assert!(matches!(r, Err(StateError::Conflict(_))), "{r:?}");
    assert!(
        seen,
        "after the refusal the snapshot holds the write it rests on"
    );
    assert!(gate.idle(), "a refusal commits nothing");
    drop(s);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A write's records go into the open redb transaction while its closure still runs. When
/// the closure then fails, the committer puts every one of them back (a new record removed,
/// an overwritten one restored), while a write that waited behind it lands in that same
/// transaction and commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_failing_after_streaming_leaves_none_of_its_records() {
    let dir = tmpdir("streamed-abort");
    let (s, mut gate) = Gate::open(&dir);
    let first = put_job_task(&s, "a");
    gate.started().await;
    gate.finish(Ok(()));
    assert_eq!(first.await.unwrap().unwrap().0, 2);
    let applied_before = gate.applied();

    let (waiter_tx, waiter_rx) = std::sync::mpsc::channel::<WriteTask>();
    let refused = {
        let (s, gate_applied) = (s.clone(), gate.applied.clone());
        tokio::task::spawn_blocking(move || {
            s.write_blocking(|t| {
                let mut changed = job("a");
                changed.priority = 99;
                t.put_job(changed, true)?;
                t.put_job(job("refused"), true)?;
                let streamed = t.batch.records;
                // Another write queues behind this one while it runs.
                let waiter = {
                    let _runtime = tokio::runtime::Handle::current().enter();
                    put_job_task(&s, "c")
                };
                let _ = waiter_tx.send(waiter);
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while gate_applied.load(std::sync::atomic::Ordering::SeqCst)
                    < applied_before + streamed
                {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the records were not streamed while the closure ran"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                Err::<(), _>(StateError::Conflict("refused after streaming".into()))
            })
        })
    };
    let r = refused.await.unwrap();
    assert!(matches!(r, Err(StateError::Conflict(_))), "{r:?}");
    let waiter = waiter_rx.recv().unwrap();
    // One commit holds what was put back and the write that waited.
    gate.started().await;
    gate.finish(Ok(()));
    assert_eq!(waiter.await.unwrap().unwrap().0, 3);
    assert!(gate.idle(), "one commit");
    let snap = s.snapshot();
    assert_eq!(snap.job("default", "a").unwrap().priority, 50);
    assert!(snap.job("default", "refused").is_none());
    drop(s);

    let reopened = StateStore::open(&dir).unwrap();
    let snap = reopened.snapshot();
    assert_eq!(snap.index, 3);
    let a = snap.job("default", "a").expect("a survives");
    assert_eq!(
        (a.priority, a.modify_index),
        (50, 2),
        "a restored as it was"
    );
    assert!(snap.job("default", "refused").is_none());
    assert_eq!(snap.job_versions("default", "refused").len(), 0);
    assert!(snap.job("default", "c").is_some());
    drop(reopened);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn allocations_are_counted_into_their_deployment() {
    use crate::structs::{AllocDeploymentStatus, Deployment, DeploymentState};
    let s = StateStore::in_memory();
    let j = job("dep");
    let mut d = Deployment::new(&j, 50, 0);
    d.task_groups.insert(
        "g".into(),
        DeploymentState {
            progress_deadline: 60_000_000_000,
            desired_total: 2,
            ..Default::default()
        },
    );
    let id = d.id.clone();
    let alloc = |healthy: Option<bool>, canary: bool| Allocation {
        id: "a1".into(),
        namespace: "default".into(),
        job_id: "dep".into(),
        task_group: "g".into(),
        deployment_id: id.clone(),
        deployment_status: Some(AllocDeploymentStatus {
            healthy,
            canary,
            timestamp: Some(chrono::Utc::now()),
            modify_index: 0,
        }),
        modify_time: crate::structs::time::now_nanos(),
        ..Default::default()
    };
    s.write_blocking(|t| {
        t.put_deployment(d)?;
        t.put_alloc_server(alloc(None, true))
    })
    .unwrap();
    let g = |s: &StateStore| s.snapshot().deployment(&id).unwrap().task_groups["g"].clone();
    let placed = g(&s);
    assert_eq!(placed.placed_allocs, 1);
    assert_eq!(placed.placed_canaries, Some(vec!["a1".to_string()]));
    assert!(!crate::structs::time::is_zero(&placed.require_progress_by));

    let (idx, _) = s
        .write_blocking(|t| t.put_alloc_client(alloc(Some(true), true)))
        .unwrap();
    let healthy = g(&s);
    assert_eq!((healthy.placed_allocs, healthy.healthy_allocs), (1, 1));
    assert!(healthy.require_progress_by >= placed.require_progress_by);
    let stamp = |s: &StateStore| {
        s.snapshot()
            .alloc("a1")
            .unwrap()
            .deployment_status
            .clone()
            .unwrap()
            .modify_index
    };
    assert_eq!(stamp(&s), idx);
    // The client repeating its verdict changes neither the counts nor the verdict's index.
    s.write_blocking(|t| t.put_alloc_client(alloc(Some(true), true)))
        .unwrap();
    assert_eq!(g(&s).healthy_allocs, 1);
    assert_eq!(stamp(&s), idx);
    // Healthy to unhealthy moves the count over.
    s.write_blocking(|t| t.put_alloc_client(alloc(Some(false), true)))
        .unwrap();
    let bad = g(&s);
    assert_eq!((bad.healthy_allocs, bad.unhealthy_allocs), (0, 1));
}

#[test]
fn a_write_that_only_changes_a_deployment_is_committed() {
    use crate::structs::{Deployment, DeploymentStatus, DeploymentStatusUpdate};
    let dir = tmpdir("deployment-only");
    let d = Deployment::new(&job("dep"), 50, 0);
    let id = d.id.clone();
    {
        let s = StateStore::open(&dir).unwrap();
        s.write_blocking(|t| t.put_deployment(d)).unwrap();
        let update = DeploymentStatusUpdate {
            deployment_id: id.clone(),
            status: DeploymentStatus::Paused,
            status_description: "Deployment is paused".into(),
        };
        let (idx, _) = s
            .write_blocking(|t| t.update_deployment_status(&update))
            .unwrap();
        let stored = s.snapshot().deployment(&id).unwrap();
        assert_eq!(
            (stored.status, stored.modify_index),
            (DeploymentStatus::Paused, idx)
        );
    }
    let s = StateStore::open(&dir).unwrap();
    assert_eq!(
        s.snapshot().deployment(&id).unwrap().status,
        DeploymentStatus::Paused
    );
    let _ = std::fs::remove_dir_all(&dir);
}

mod events {
    use super::*;
    use crate::server::events::{EventBroker, EventType, Object};

    fn broker() -> Arc<EventBroker> {
        Arc::new(EventBroker::new(16))
    }

    #[tokio::test]
    async fn a_durable_write_publishes_its_events_once_visible_with_its_index() {
        let dir = tmpdir("events");
        let b = broker();
        let s = Arc::new(StateStore::open_with(&dir, Some(b.clone())).unwrap());
        let mut live = b.subscribe(0).live;
        let (index, ()) = s
            .write(|t| {
                t.set_event_type(EventType::JobRegistered);
                t.put_job(job("web"), true)?;
                t.put_eval(Evaluation {
                    id: "e1".into(),
                    namespace: "default".into(),
                    job_id: "web".into(),
                    ..Default::default()
                })?;
                Ok(())
            })
            .await
            .unwrap();
        let batch = live.recv().await.unwrap();
        assert_eq!(batch.index, index);
        assert!(s.snapshot().index >= index, "published before visible");
        let kinds: Vec<(&str, EventType)> = batch
            .events
            .iter()
            .map(|e| (e.object.topic().as_str(), e.ty))
            .collect();
        // The job is recorded again when its status is recomputed; the stream shows it once.
        assert_eq!(kinds[0], ("Job", EventType::JobRegistered));
        assert!(kinds.contains(&("Evaluation", EventType::JobRegistered)));

        let refused: Result<(u64, ()), _> = s
            .write(|t| {
                t.put_job(job("api"), true)?;
                Err(StateError::Conflict("no".into()))
            })
            .await;
        assert!(refused.is_err());
        s.write(|t| {
            t.delete_job("default", "web");
            Ok(())
        })
        .await
        .unwrap();
        let next = live.recv().await.unwrap();
        assert_eq!(next.index, index + 1, "the refused write published nothing");
        assert_eq!(next.events[0].ty, EventType::JobDeregistered);
        assert!(next.events[0].deleted);
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_store_without_a_broker_records_nothing_and_writes_without_a_type_get_the_usual_one() {
        let s = StateStore::in_memory();
        assert!(s.events().is_none());
        let b = broker();
        let s = StateStore::in_memory_with(Some(b.clone()));
        s.write_blocking(|t| {
            t.put_node(Node {
                id: "n1".into(),
                secret_id: "s".into(),
                ..Default::default()
            })
        })
        .unwrap();
        let backlog = b.subscribe(0).backlog;
        assert_eq!(backlog.len(), 1);
        let e = &backlog[0].events[0];
        assert_eq!(e.ty, EventType::NodeRegistration);
        assert!(matches!(&e.object, Object::Node(n) if n.id == "n1"));
    }
}
