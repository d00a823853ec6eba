//! Task runner behaviour against real processes: event sequences, restarts, kills.

use std::time::{Duration, Instant};

use crate::structs::*;

use super::super::testutil::{Harness, alloc, restart, task};
use crate::structs::{AllocClientStatus, TaskStateName};

fn detail(ev: &TaskEvent, key: &str) -> String {
    ev.details
        .as_ref()
        .and_then(|d| d.get(key).cloned())
        .unwrap_or_default()
}

#[tokio::test]
async fn successful_batch_task_event_sequence() {
    let mut t = task("hello", "echo hi from $NOMAD_TASK_NAME; exit 0");
    t.meta = Some([("my-key".to_string(), "v".to_string())].into());
    let h = Harness::start(alloc("batch", vec![t], restart(3, 100, "fail")));
    let view = h.wait_terminal(Duration::from_secs(10)).await;
    assert_eq!(
        h.events("hello"),
        vec!["Received", "Task Setup", "Started", "Terminated"]
    );
    let st = h.state("hello");
    assert_eq!(st.state, TaskStateName::Dead);
    assert!(!st.failed);
    assert_eq!(st.restarts, 0);
    assert!(!time::is_zero(&st.started_at) && !time::is_zero(&st.finished_at));
    let evs = st.events.unwrap();
    assert_eq!(evs[1].message, "Building Task Directory");
    assert_eq!(detail(&evs[3], "exit_code"), "0");
    assert_eq!(evs[3].display_message, "Exit Code: 0");
    assert_eq!(view.client_status, AllocClientStatus::Complete);
    assert_eq!(view.client_description, "All tasks have completed");

    // The process really ran, with the task environment.
    let log =
        std::fs::read_to_string(h.handle.alloc_dir().logs_dir().join("hello.stdout.0")).unwrap();
    assert_eq!(log, "hi from hello\n");
    let started = h.driver.started.lock().unwrap();
    let cfg = &started[0];
    assert_eq!(cfg.id, format!("{}/hello", view.id));
    assert_eq!(cfg.env["NOMAD_ALLOC_ID"], view.id);
    assert_eq!(cfg.env["NOMAD_META_my_key"], "v");
    assert_eq!(cfg.env["NOMAD_META_MY_KEY"], "v");
    assert_eq!(cfg.logs.prefix, "hello");
    assert_eq!(cfg.logs.max_files, 10);
    assert!(cfg.task_dir.join("local").is_dir());
}

#[tokio::test]
async fn failing_service_task_restarts_then_fails() {
    let h = Harness::start(alloc(
        "service",
        vec![task("bad", "exit 3")],
        restart(2, 100, "fail"),
    ));
    let view = h.wait_terminal(Duration::from_secs(10)).await;
    let st = h.state("bad");
    let evs = st.events.clone().unwrap();
    let types: Vec<_> = evs.iter().map(|e| e.r#type.as_str()).collect();
    // 11 events happened; the cap keeps the last 10.
    assert_eq!(
        types,
        vec![
            "Task Setup",
            "Started",
            "Terminated",
            "Restarting",
            "Started",
            "Terminated",
            "Restarting",
            "Started",
            "Terminated",
            "Not Restarting"
        ]
    );
    for ev in evs.iter().filter(|e| e.r#type == "Restarting") {
        let d = Duration::from_nanos(detail(ev, "start_delay").parse().unwrap());
        assert!(
            d >= Duration::from_millis(100) && d < Duration::from_millis(125),
            "{d:?}"
        );
        assert_eq!(detail(ev, "restart_reason"), "Restart within policy");
    }
    let last = evs.last().unwrap();
    assert_eq!(
        last.restart_reason,
        "Exceeded allowed attempts 2 in interval 30m0s and mode is \"fail\""
    );
    assert!(last.fails_task);
    assert_eq!(detail(&evs[2], "exit_code"), "3");
    assert!(st.failed);
    assert_eq!(st.restarts, 2);
    assert!(!time::is_zero(&st.last_restart));
    assert_eq!(view.client_status, AllocClientStatus::Failed);
    assert_eq!(view.client_description, "Failed tasks");
}

#[tokio::test]
async fn kill_sequence_sigkills_a_task_ignoring_sigint() {
    let mut t = task(
        "stubborn",
        "trap '' INT; echo trapped; while true; do sleep 0.05; done",
    );
    t.kill_timeout = 400_000_000;
    let a = alloc("service", vec![t], restart(2, 100, "fail"));
    let h = Harness::start(a.clone());
    h.wait_running("stubborn", Duration::from_secs(10)).await;
    h.wait_stdout("stubborn", "trapped", Duration::from_secs(10))
        .await;

    let mut stop = a.clone();
    stop.desired_status = AllocDesiredStatus::Stop;
    stop.alloc_modify_index = 2;
    let began = Instant::now();
    h.handle.update(stop);
    let view = h.wait_terminal(Duration::from_secs(10)).await;
    assert!(
        began.elapsed() >= Duration::from_millis(400),
        "SIGINT was ignored"
    );

    assert_eq!(
        h.events("stubborn"),
        vec![
            "Received",
            "Task Setup",
            "Started",
            "Killing",
            "Terminated",
            "Killed"
        ]
    );
    let st = h.state("stubborn");
    let evs = st.events.clone().unwrap();
    assert_eq!(detail(&evs[3], "kill_timeout"), "400ms");
    assert_eq!(
        evs[3].display_message,
        "Sent interrupt. Waiting 400ms before force killing"
    );
    assert_eq!(detail(&evs[4], "signal"), "9");
    assert_eq!(evs[5].display_message, "Task successfully killed");
    assert_eq!(st.state, TaskStateName::Dead);
    assert!(!st.failed);
    assert_eq!(view.client_status, AllocClientStatus::Complete);
}

#[tokio::test]
async fn shutdown_delay_and_kill_signal() {
    let mut t = task(
        "graceful",
        "trap 'exit 0' TERM; echo trapped; while true; do sleep 0.05; done",
    );
    t.shutdown_delay = 200_000_000;
    t.kill_signal = "SIGTERM".into();
    // Far beyond the prompt stop asserted below, so a slow machine cannot blur the two.
    t.kill_timeout = 10_000_000_000;
    let a = alloc("service", vec![t], restart(2, 100, "fail"));
    let h = Harness::start(a.clone());
    h.wait_running("graceful", Duration::from_secs(10)).await;
    h.wait_stdout("graceful", "trapped", Duration::from_secs(10))
        .await;
    let mut stop = a;
    stop.desired_status = AllocDesiredStatus::Stop;
    let began = Instant::now();
    h.handle.update(stop);
    h.wait_terminal(Duration::from_secs(10)).await;
    let took = began.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM handled promptly, not escalated after the 10 s kill timeout: {took:?}"
    );
    assert_eq!(
        h.events("graceful"),
        vec![
            "Received",
            "Task Setup",
            "Started",
            "Killing",
            "Waiting for shutdown delay",
            "Terminated",
            "Killed"
        ]
    );
    let evs = h.state("graceful").events.unwrap();
    assert_eq!(
        evs[4].display_message,
        "Waiting for shutdown_delay of 200ms before killing the task."
    );
    assert_eq!(detail(&evs[5], "exit_code"), "0");
}

#[tokio::test]
async fn driver_failure_and_validation() {
    // A config the driver rejects: Failed Validation, unrecoverable.
    let mut t = task("invalid", "true");
    t.config = Some(serde_json::Map::new());
    let h = Harness::start(alloc("batch", vec![t], restart(3, 100, "fail")));
    h.wait_terminal(Duration::from_secs(10)).await;
    assert_eq!(
        h.events("invalid"),
        vec![
            "Received",
            "Task Setup",
            "Failed Validation",
            "Not Restarting"
        ]
    );
    let st = h.state("invalid");
    assert!(st.failed);
    assert_eq!(
        st.events.unwrap()[3].restart_reason,
        "Error was unrecoverable"
    );
}

#[tokio::test]
async fn signal_and_user_restart() {
    let t = task(
        "svc",
        "trap 'echo got-usr1' USR1; echo trapped; while true; do sleep 0.05; done",
    );
    let h = Harness::start(alloc("service", vec![t], restart(0, 100, "fail")));
    h.wait_running("svc", Duration::from_secs(10)).await;
    h.wait_stdout("svc", "trapped", Duration::from_secs(10))
        .await;
    let tr = h.handle.task("svc").unwrap();
    tr.signal("SIGUSR1").await.unwrap();
    tr.restart("User requested task to restart").await.unwrap();
    h.wait_running("svc", Duration::from_secs(10)).await;
    let evs = h.state("svc").events.unwrap();
    let types: Vec<_> = evs.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "Received",
            "Task Setup",
            "Started",
            "Signaling",
            "Restart Signaled",
            "Terminated",
            "Restarting",
            "Started"
        ]
    );
    assert_eq!(detail(&evs[3], "signal"), "SIGUSR1");
    assert_eq!(evs[6].start_delay, 0);
    assert_eq!(evs[6].display_message, "Task restarting in 0s");
    // A user restart does not consume an attempt even with attempts = 0... but counts as a
    // restart in the state.
    assert_eq!(h.state("svc").restarts, 1);
    h.handle.destroy().await;
    assert!(!h.handle.alloc_dir().path().exists());
    assert!(matches!(
        tr.signal("SIGUSR1").await,
        Err(super::TaskRunnerError::NotRunning)
    ));
}

#[tokio::test]
async fn artifacts_are_fetched_before_start_and_not_again_on_restart() {
    let src = super::super::testutil::tempdir("artifact-src");
    std::fs::write(src.join("data.txt"), "from artifact").unwrap();
    let mut t = task("fetcher", "cat \"$NOMAD_TASK_DIR/data.txt\"; exit 1");
    t.artifacts = Some(vec![Artifact {
        getter_source: format!("file://{}/data.txt", src.display()),
        relative_dest: "local/".into(),
        getter_mode: "any".into(),
        ..Default::default()
    }]);
    let h = Harness::start(alloc("batch", vec![t], restart(1, 10, "fail")));
    h.wait_terminal(Duration::from_secs(20)).await;
    let events = h.events("fetcher");
    assert_eq!(
        events,
        vec![
            "Received",
            "Task Setup",
            "Downloading Artifacts",
            "Started",
            "Terminated",
            "Restarting",
            "Started",
            "Terminated",
            "Not Restarting"
        ]
    );
    let log =
        std::fs::read_to_string(h.handle.alloc_dir().logs_dir().join("fetcher.stdout.0")).unwrap();
    assert!(log.starts_with("from artifact"), "{log}");
}

#[tokio::test]
async fn a_failed_artifact_download_never_starts_the_task() {
    let mut t = task("nofetch", "exit 0");
    t.artifacts = Some(vec![Artifact {
        getter_source: "/nonexistent/yurt-artifact".into(),
        relative_dest: "local/".into(),
        ..Default::default()
    }]);
    let h = Harness::start(alloc("batch", vec![t], restart(0, 10, "fail")));
    h.wait_terminal(Duration::from_secs(20)).await;
    assert_eq!(
        h.events("nofetch"),
        vec![
            "Received",
            "Task Setup",
            "Downloading Artifacts",
            "Failed Artifact Download",
            "Not Restarting"
        ]
    );
    let st = h.state("nofetch");
    assert!(st.failed);
    let evs = st.events.unwrap();
    let err = detail(&evs[3], "download_error");
    assert!(
        err.starts_with("failed to download artifact \"/nonexistent/yurt-artifact\""),
        "{err}"
    );
    assert_eq!(evs[3].download_error, err);
}
