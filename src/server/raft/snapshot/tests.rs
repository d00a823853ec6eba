use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use super::*;
use crate::server::raft::testing::TempDir;
use crate::server::scheduler::testing::{mock_eval, mock_node};
use crate::server::state::StateStore;
use crate::structs::acl::{AclPolicy, AclRole, AclToken, OneTimeToken};
use crate::structs::keyring::RootKeyMeta;
use crate::structs::variable::{VariableEncrypted, VariableMetadata};
use crate::structs::{
    AllocClientStatus, AllocDesiredStatus, Allocation, Deployment, Job, JobSubmission, Namespace,
    ScalingEvent, SchedulerConfiguration,
};

fn job(id: &str, count: i64) -> Job {
    let mut j: Job = serde_json::from_value(serde_json::json!({
        "ID": id,
        "TaskGroups": [{"Name": "g", "Count": count, "Tasks": [{"Name": "t", "Driver": "raw_exec"}]}]
    }))
    .expect("job");
    crate::structs::canonicalize::canonicalize_job(&mut j, "global");
    j
}

/// Every part of the tables, in an order that does not depend on how they were built: the
/// records, the maps' contents, and the secondary indexes the restore rebuilds.
pub(crate) fn canonical(t: &Tables) -> String {
    let mut out = String::new();
    for_each_record(t, |kind, key, value| {
        let _ = writeln!(out, "{kind:?} {key:?} {}", String::from_utf8_lossy(value));
        Ok(())
    })
    .expect("records");
    let _ = writeln!(out, "index {} {:?}", t.index, t.table_index);
    let _ = writeln!(out, "jobs {:?}", t.jobs);
    let _ = writeln!(out, "versions {:?}", t.job_versions);
    let _ = writeln!(out, "allocs {:?}", t.allocs);
    let by_node: BTreeMap<_, _> = t.allocs_by_node.iter().collect();
    let by_job: BTreeMap<_, _> = t.allocs_by_job.iter().collect();
    let evals_by_job: BTreeMap<_, _> = t.evals_by_job.iter().collect();
    let _ = writeln!(out, "indexes {by_node:?} {by_job:?} {evals_by_job:?}");
    let _ = writeln!(out, "nodes {:?} evals {:?}", t.nodes, t.evals);
    let _ = writeln!(out, "deployments {:?}", t.deployments);
    let _ = writeln!(out, "scaling {:?}", t.scaling_events);
    let _ = writeln!(out, "namespaces {:?}", t.namespaces);
    let _ = writeln!(out, "submissions {:?}", t.job_submissions);
    let _ = writeln!(out, "scheduler {:?}", t.scheduler_config);
    let _ = writeln!(out, "vars {:?}", t.vars);
    let _ = writeln!(
        out,
        "acl {:?} {:?} {:?} {}",
        t.acl.policies, t.acl.tokens, t.acl.roles, t.acl.bootstrap_index
    );
    for tok in t.acl.tokens.values() {
        let found = t
            .acl
            .token_by_secret(&tok.secret_id)
            .map(|f| f.accessor_id.clone());
        let _ = writeln!(out, "secret of {} -> {found:?}", tok.accessor_id);
    }
    let mut one_time: Vec<String> = t
        .acl
        .one_time_tokens()
        .map(|o| {
            let found = t.acl.one_time_by_secret(&o.one_time_secret_id).is_some();
            format!("{} {} {found}", o.one_time_secret_id, o.accessor_id)
        })
        .collect();
    one_time.sort();
    let _ = writeln!(out, "one-time {one_time:?}");
    let mut keys: Vec<_> = t.alloc_job_keys.iter().collect();
    keys.sort();
    let _ = writeln!(out, "alloc job keys {keys:?}");
    out
}

/// A store holding every kind of object, written the way the server writes them.
pub(crate) async fn populated(dir: &Path) -> StateStore {
    let store = StateStore::open(dir).expect("open");
    let web = store
        .write(|t| {
            let web = t.put_job(job("web", 2), true)?;
            t.put_job_submission(JobSubmission {
                source: "job \"web\" {}".into(),
                format: "hcl2".into(),
                namespace: "default".into(),
                job_id: "web".into(),
                version: 0,
                ..JobSubmission::default()
            })?;
            Ok(web)
        })
        .await
        .expect("job")
        .1;
    // A second version, so versions and the allocations' job copies differ.
    let web2 = store
        .write(|t| {
            let mut j = (*web).clone();
            j.version = 1;
            j.job_modify_index = t.index();
            t.put_job(j, true)
        })
        .await
        .expect("job v1")
        .1;
    store
        .write(|t| {
            let mut n1 = mock_node("n1", 4000, 8192);
            n1.name = "node-1".into();
            t.put_node(n1)?;
            t.put_node(mock_node("n2", 2000, 4096))?;
            t.put_eval(mock_eval(&web2))?;
            let mut dep = Deployment::new(&web2, 50, 0);
            dep.id = "dep-1".into();
            t.put_deployment(dep)?;
            for (i, (job, node)) in [(&web, "n1"), (&web2, "n1"), (&web2, "n2")]
                .into_iter()
                .enumerate()
            {
                t.put_alloc_server(Allocation {
                    id: format!("alloc-{i}"),
                    namespace: "default".into(),
                    job_id: "web".into(),
                    node_id: node.into(),
                    name: format!("web.g[{i}]"),
                    task_group: "g".into(),
                    job: Some(job.clone()),
                    desired_status: AllocDesiredStatus::Run,
                    client_status: AllocClientStatus::Running,
                    ..Default::default()
                })?;
            }
            t.add_scaling_event(
                "default",
                "web",
                "g",
                ScalingEvent {
                    message: "scaled".into(),
                    count: Some(2),
                    ..ScalingEvent::default()
                },
            )?;
            t.put_namespace(Namespace {
                name: "prod".into(),
                description: "production".into(),
                ..Namespace::default()
            })?;
            t.put_scheduler_config(SchedulerConfiguration::default())?;
            Ok(())
        })
        .await
        .expect("objects");
    store
        .write(|t| {
            t.put_root_key(RootKeyMeta::new_active("k1".into(), 1), false)?;
            t.put_variable(VariableEncrypted {
                meta: VariableMetadata::bare("default", "app/db"),
                data: vec![7, 8, 9],
                key_id: "k1".into(),
            })?;
            t.put_acl_policy(AclPolicy {
                name: "readers".into(),
                rules: "node { policy = \"read\" }".into(),
                ..AclPolicy::default()
            })?;
            t.put_acl_token(AclToken {
                accessor_id: "acc-1".into(),
                secret_id: "sec-1".into(),
                r#type: "client".into(),
                policies: vec!["readers".into()],
                ..AclToken::default()
            })?;
            t.put_acl_role(AclRole {
                id: "role-1".into(),
                name: "ops".into(),
                ..AclRole::default()
            })?;
            t.put_one_time_token(OneTimeToken {
                one_time_secret_id: "ott-1".into(),
                accessor_id: "acc-1".into(),
                ..OneTimeToken::default()
            })?;
            t.set_acl_bootstrapped()
        })
        .await
        .expect("acl and variables");
    store
}

#[tokio::test]
async fn tables_round_trip_through_a_snapshot() {
    let dir = TempDir::new("raft-snapshot");
    let store = populated(dir.path()).await;
    let original = store.snapshot();
    drop(store);
    // What today's start-up restore makes of the same state.
    let restored = StateStore::open(dir.path()).expect("reopen").snapshot();

    let mut bytes = Vec::new();
    let count = write(&original, &mut bytes).expect("write");
    assert!(count > 20, "{count} records");
    let loaded = read(bytes.as_slice()).expect("read");

    let want = canonical(&original);
    for needle in [
        "alloc-2", "dep-1", "app/db", "acc-1", "ott-1", "role-1", "prod",
    ] {
        assert!(want.contains(needle), "the fixture lacks {needle}");
    }
    assert_eq!(canonical(&loaded), want);
    assert_eq!(canonical(&restored), want);
    // Allocations point at their own job version, shared with each other.
    let a0 = loaded.alloc("alloc-0").expect("alloc-0");
    let a1 = loaded.alloc("alloc-1").expect("alloc-1");
    let a2 = loaded.alloc("alloc-2").expect("alloc-2");
    assert_eq!(a0.job.as_ref().map(|j| j.version), Some(0));
    assert_eq!(a1.job.as_ref().map(|j| j.version), Some(1));
    assert!(Arc::ptr_eq(
        a1.job.as_ref().expect("job"),
        a2.job.as_ref().expect("job")
    ));
    assert_eq!(loaded.job_versions("default", "web").len(), 2);
    assert_eq!(
        loaded
            .acl
            .token_by_secret("sec-1")
            .map(|t| t.accessor_id.clone()),
        Some("acc-1".to_string())
    );
}

#[tokio::test]
async fn a_saved_snapshot_loads_from_its_file() {
    let dir = TempDir::new("raft-snapshot-file");
    let store = populated(&dir.path().join("state")).await;
    let original = store.snapshot();
    let path = dir.path().join("1-10.snap");
    save(&original, &path).expect("save");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!path.with_extension("snap.tmp").exists());
    let loaded = load(&path).expect("load");
    assert_eq!(canonical(&loaded), canonical(&original));
}

#[tokio::test]
async fn a_torn_or_damaged_file_is_refused_naming_it() {
    let dir = TempDir::new("raft-snapshot-torn");
    let store = populated(&dir.path().join("state")).await;
    let mut bytes = Vec::new();
    write(&store.snapshot(), &mut bytes).expect("write");
    let path = dir.path().join("2-20.snap");
    let refused = |content: &[u8], why: &str| {
        std::fs::write(&path, content).expect("write file");
        let err = load(&path).expect_err(why).to_string();
        assert!(err.contains("2-20.snap"), "{why}: {err}");
        err
    };
    // Cut anywhere: inside the header, a record, or the trailer.
    for cut in [
        0,
        5,
        12,
        40,
        bytes.len() / 2,
        bytes.len() - 13,
        bytes.len() - 1,
    ] {
        let err = refused(&bytes[..cut], &format!("cut at {cut}"));
        assert!(err.contains("truncated"), "cut at {cut}: {err}");
    }
    // One flipped bit in a value that still decodes (a digit of the meta record "index",
    // which follows its key): only the checksum sees it.
    let at = bytes
        .windows(5)
        .position(|w| w == b"index")
        .expect("the index record");
    let mut damaged = bytes.clone();
    assert!(damaged[at + 5].is_ascii_digit());
    damaged[at + 5] ^= 0x01;
    let err = refused(&damaged, "a flipped bit");
    assert!(err.contains("checksum"), "{err}");
    // A damaged length.
    let mut damaged = bytes.clone();
    damaged[12..16].copy_from_slice(&u32::MAX.wrapping_sub(1).to_le_bytes());
    let err = refused(&damaged, "a damaged length");
    assert!(err.contains("damaged"), "{err}");
    let mut longer = bytes.clone();
    longer.push(0);
    let err = refused(&longer, "bytes after the trailer");
    assert!(err.contains("after the trailer"), "{err}");
    let err = refused(b"not a snapshot at all", "a foreign file");
    assert!(err.contains("magic"), "{err}");
    let err = load(&dir.path().join("missing.snap")).expect_err("a missing file");
    assert!(err.to_string().contains("missing.snap"), "{err}");
}

#[test]
fn records_out_of_kind_order_are_refused() {
    let mut r = Restorer::default();
    r.add(
        Kind::Allocs,
        "a1",
        br#"{"Alloc":{"ID":"a1"},"JobKey":null}"#,
    )
    .expect("an allocation");
    let err = r
        .add(Kind::Jobs, "default\0web", br#"{"ID":"web"}"#)
        .expect_err("a job after the allocations");
    assert!(err.to_string().contains("out of order"), "{err}");
}

/// Size and time of a snapshot of 100 000 allocations (`cargo test --release --lib
/// snapshot_of_100k -- --ignored --nocapture`; a debug build's times say little). It prints;
/// it asserts only that the tables come back.
#[tokio::test]
#[ignore]
async fn snapshot_of_100k_allocs() {
    let store = StateStore::in_memory();
    let web = store
        .write(|t| t.put_job(job("web", 100_000), true))
        .await
        .expect("job")
        .1;
    for batch in 0..20 {
        store
            .write(|t| {
                for i in batch * 5000..(batch + 1) * 5000 {
                    t.put_alloc_server(Allocation {
                        id: uuid::Uuid::new_v4().to_string(),
                        namespace: "default".into(),
                        job_id: "web".into(),
                        node_id: format!("node-{}", i % 1000).into(),
                        name: format!("web.g[{i}]"),
                        task_group: "g".into(),
                        job: Some(web.clone()),
                        desired_status: AllocDesiredStatus::Run,
                        client_status: AllocClientStatus::Running,
                        ..Default::default()
                    })?;
                }
                Ok(())
            })
            .await
            .expect("allocs");
    }
    let tables = store.snapshot();
    let start = std::time::Instant::now();
    let mut bytes = Vec::new();
    let count = write(&tables, &mut bytes).expect("write");
    let built = start.elapsed();
    let start = std::time::Instant::now();
    let loaded = read(bytes.as_slice()).expect("read");
    let read_took = start.elapsed();
    println!(
        "100k allocs: {count} records, {} MiB, written in {built:?}, read in {read_took:?}",
        bytes.len() >> 20
    );
    assert_eq!(loaded.allocs.len(), 100_000);
}
