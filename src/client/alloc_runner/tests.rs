//! Alloc runner behaviour with real processes: leader, sibling failure, lifecycle order.

use std::time::Duration;

use crate::structs::*;

use super::super::testutil::{Harness, alloc, restart, task, wait_for};
use crate::structs::AllocClientStatus;

fn lifecycle(hook: &str, sidecar: bool) -> Option<Lifecycle> {
    Some(Lifecycle {
        hook: hook.into(),
        sidecar,
    })
}

const LOOP: &str = "while true; do sleep 0.05; done";

#[tokio::test]
async fn leader_exit_kills_the_others() {
    let mut leader = task("leader", "sleep 0.3; exit 0");
    leader.leader = true;
    let follower = task("follower", LOOP);
    let h = Harness::start(alloc(
        "batch",
        vec![leader, follower],
        restart(0, 100, "fail"),
    ));
    let view = h.wait_terminal(Duration::from_secs(10)).await;
    assert_eq!(
        h.events("follower"),
        vec![
            "Received",
            "Task Setup",
            "Started",
            "Leader Task Dead",
            "Killing",
            "Terminated",
            "Killed"
        ]
    );
    assert!(!h.state("follower").failed);
    assert_eq!(view.client_status, AllocClientStatus::Complete);
}

#[tokio::test]
async fn failed_task_kills_its_siblings() {
    let bad = task("bad", "sleep 0.3; exit 1");
    let good = task("good", LOOP);
    let h = Harness::start(alloc("batch", vec![bad, good], restart(0, 100, "fail")));
    let view = h.wait_terminal(Duration::from_secs(10)).await;
    let evs = h.state("good").events.unwrap();
    let sib = evs
        .iter()
        .find(|e| e.r#type == "Sibling Task Failed")
        .expect("sibling event");
    assert_eq!(sib.failed_sibling, "bad");
    assert_eq!(sib.details.as_ref().unwrap()["failed_sibling"], "bad");
    assert_eq!(sib.display_message, "Task's sibling \"bad\" failed");
    assert_eq!(
        h.events("bad"),
        vec![
            "Received",
            "Task Setup",
            "Started",
            "Terminated",
            "Not Restarting"
        ]
    );
    assert!(h.state("bad").failed && !h.state("good").failed);
    assert_eq!(view.client_status, AllocClientStatus::Failed);
}

#[tokio::test]
async fn lifecycle_order_and_main_tasks_dead() {
    let mut pre = task("pre", "sleep 0.2; echo ready > $NOMAD_ALLOC_DIR/data/pre");
    pre.lifecycle = lifecycle("prestart", false);
    let mut side = task("side", LOOP);
    side.lifecycle = lifecycle("prestart", true);
    // Main fails fast unless the prestart task finished before it started.
    let main = task("main", "test -f $NOMAD_ALLOC_DIR/data/pre && sleep 0.3");
    let mut post = task("post", "touch $NOMAD_ALLOC_DIR/data/post");
    post.lifecycle = lifecycle("poststart", false);
    let mut stop = task("stop", "touch $NOMAD_ALLOC_DIR/data/stop");
    stop.lifecycle = lifecycle("poststop", false);
    let h = Harness::start(alloc(
        "batch",
        vec![pre, side, main, post, stop],
        restart(0, 100, "fail"),
    ));
    let view = h.wait_terminal(Duration::from_secs(15)).await;
    assert_eq!(view.client_status, AllocClientStatus::Complete, "{view:#?}");

    let s = |n: &str| h.state(n);
    assert!(s("main").started_at >= s("pre").finished_at);
    assert!(s("main").started_at >= s("side").started_at);
    assert!(s("post").started_at >= s("main").started_at);
    // Poststop ran only after every other task was dead.
    for other in ["pre", "side", "main", "post"] {
        assert!(s("stop").started_at >= s(other).finished_at, "{other}");
    }
    // The sidecar outlived main and was killed because only sidecars remained.
    let side_events = h.events("side");
    assert!(
        side_events.contains(&"Main Tasks Dead".to_string()),
        "{side_events:?}"
    );
    assert!(side_events.ends_with(&["Killing".into(), "Terminated".into(), "Killed".into()]));
    for t in ["pre", "side", "main", "post", "stop"] {
        assert!(!s(t).failed, "{t}");
    }
    let data = h.handle.alloc_dir().shared_dir().join("data");
    assert!(data.join("post").exists() && data.join("stop").exists());
}

#[tokio::test]
async fn stopped_alloc_never_starts_and_destroy_cleans_up() {
    let mut a = alloc("service", vec![task("t", LOOP)], restart(0, 100, "fail"));
    a.desired_status = AllocDesiredStatus::Stop;
    let h = Harness::start(a);
    let view = h.wait_terminal(Duration::from_secs(10)).await;
    assert_eq!(h.events("t"), vec!["Received"]);
    assert_eq!(view.client_status, AllocClientStatus::Complete);
    let dir = h.handle.alloc_dir().path().to_path_buf();
    h.handle.destroy().await;
    assert!(h.handle.is_destroyed());
    assert!(!dir.exists());
}

#[tokio::test]
async fn deployment_health_from_task_states() {
    let mut a = alloc("service", vec![task("web", LOOP)], restart(0, 100, "fail"));
    a.deployment_id = "d1".into();
    let job = std::sync::Arc::make_mut(a.job.as_mut().unwrap());
    job.task_groups.as_mut().unwrap()[0].update = Some(UpdateStrategy {
        health_check: "checks".into(),
        min_healthy_time: 300_000_000,
        healthy_deadline: 60_000_000_000,
        ..Default::default()
    });
    let h = Harness::start(a);
    let healthy = wait_for(Duration::from_secs(10), || {
        h.handle
            .client_view()
            .and_then(|v| v.deployment_status)
            .and_then(|d| d.healthy)
    })
    .await;
    assert!(healthy);
    let started = h.state("web").started_at;
    let ts = h.handle.client_view().unwrap().deployment_status.unwrap();
    let after = ts.timestamp.unwrap() - started;
    assert!(after >= chrono::Duration::milliseconds(300), "{after:?}");
    h.handle.destroy().await;
}
