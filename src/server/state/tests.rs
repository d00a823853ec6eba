use super::*;
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
    let (idx, _) = s.write(|t| t.put_job(job("a"), true)).unwrap();
    assert_eq!(idx, 2);
    assert!(jobs.has_changed().unwrap());
    assert_eq!(*jobs.borrow_and_update(), 2);
    assert!(!nodes.has_changed().unwrap());
    let (idx2, _) = s
        .write(|t| {
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
    assert_eq!(j.status, "pending");
}

#[test]
fn failed_writes_change_nothing() {
    let s = StateStore::in_memory();
    let r: Result<(u64, ()), _> = s.write(|t| {
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
        s.write(|t| t.put_job(j, true)).unwrap();
    }
    let versions = s.snapshot().job_versions("default", "a");
    assert_eq!(versions.len(), JOB_TRACKED_VERSIONS);
    assert_eq!(versions[0].version, 7);
    assert_eq!(versions[5].version, 2);
}

#[test]
fn job_status_follows_allocs_and_evals() {
    let s = StateStore::in_memory();
    let (_, j) = s.write(|t| t.put_job(job("a"), true)).unwrap();
    s.write(|t| {
        t.put_eval(Evaluation {
            id: "e1".into(),
            namespace: "default".into(),
            job_id: "a".into(),
            status: "pending".into(),
            ..Default::default()
        })
    })
    .unwrap();
    assert_eq!(s.snapshot().job("default", "a").unwrap().status, "pending");
    s.write(|t| {
        t.put_alloc_server(Allocation {
            id: "a1".into(),
            namespace: "default".into(),
            job_id: "a".into(),
            node_id: "n1".into(),
            job: Some(j.clone()),
            desired_status: "run".into(),
            client_status: "pending".into(),
            ..Default::default()
        })
    })
    .unwrap();
    assert_eq!(s.snapshot().job("default", "a").unwrap().status, "running");
    let mut done = (*s.snapshot().alloc("a1").unwrap()).clone();
    done.client_status = "complete".into();
    s.write(|t| t.put_alloc_client(done)).unwrap();
    let snap = s.snapshot();
    // The eval is still pending, so the job is pending rather than dead.
    assert_eq!(snap.job("default", "a").unwrap().status, "pending");
    let a = snap.alloc("a1").unwrap();
    assert!(a.modify_index > a.alloc_modify_index);
    assert_eq!(snap.allocs_by_node("n1").len(), 1);
}

#[test]
fn survives_reopen_with_same_indexes() {
    let dir = tmpdir("reopen");
    {
        let s = StateStore::open(&dir).unwrap();
        let (_, j) = s.write(|t| t.put_job(job("web"), true)).unwrap();
        for i in 0..3 {
            s.write(|t| {
                t.put_alloc_server(Allocation {
                    id: format!("alloc-{i}"),
                    namespace: "default".into(),
                    job_id: "web".into(),
                    node_id: "n1".into(),
                    name: format!("web.g[{i}]"),
                    job: Some(j.clone()),
                    desired_status: "run".into(),
                    client_status: "running".into(),
                    ..Default::default()
                })
            })
            .unwrap();
        }
        s.write(|t| {
            t.put_node(Node {
                id: "n1".into(),
                status: "ready".into(),
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
    assert_eq!(snap.job("default", "web").unwrap().status, "running");
    // The next write continues after the restored index.
    let (idx, _) = s.write(|t| t.put_job(job("other"), true)).unwrap();
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
        let r: Result<(u64, ()), StateError> = s.write(|t| {
            t.put_job(job("half"), true)?;
            Err(StateError::Conflict("refused after a put".into()))
        });
        assert!(matches!(r, Err(StateError::Conflict(_))));
        assert!(s.snapshot().job("default", "half").is_none());
        // A write that changes nothing is aborted too; the next real one still commits.
        s.write(|_| Ok(())).unwrap();
        let (idx, _) = s.write(|t| t.put_job(job("whole"), true)).unwrap();
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
