//! Restore across client restarts: a second client on the same data dir reattaches to the
//! tasks the first one left running, or restarts them once the servers are contacted.

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::structs::*;

use super::task_runner::test_driver::ShellDriver;
use super::tests::{FakeServer, start_in};
use super::testutil::{alloc, restart, task, tempdir, wait_for};
use super::*;
use crate::structs::{AllocClientStatus, TaskStateName};

const LIMIT: Duration = Duration::from_secs(10);

fn event_types(st: &TaskState) -> Vec<String> {
    st.events
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.r#type)
        .collect()
}

/// Runs a looping service task on a first client, detaches it, and returns the server, the
/// data dir, the allocation and the task's PID.
async fn first_agent() -> (Arc<FakeServer>, std::path::PathBuf, Allocation, i32) {
    let server = Arc::new(FakeServer::default());
    let dir = tempdir("restore");
    let driver = Arc::new(ShellDriver::default());
    let (client, run) = start_in(server.clone(), &dir, driver).await;
    wait_for(LIMIT, || client.is_registered().then_some(())).await;
    let mut a = alloc(
        "service",
        vec![task("web", "while true; do sleep 0.05; done")],
        restart(1, 10, "fail"),
    );
    a.node_id = client.node_id().into();
    server.put_alloc(a.clone());
    let runner = wait_for(LIMIT, || client.alloc(&a.id)).await;
    let web = runner.task("web").unwrap().clone();
    wait_for(LIMIT, || {
        (web.state().state == TaskStateName::Running).then_some(())
    })
    .await;
    let pid = client
        .inner
        .db
        .get_task(&a.id, "web")
        .unwrap()
        .and_then(|r| r.handle)
        .and_then(|h| h.state["pid"].as_i64())
        .unwrap() as i32;
    client.shutdown(ShutdownMode::Detach);
    run.await.unwrap();
    (server, dir, a, pid)
}

#[tokio::test]
async fn reattaches_to_running_task_without_new_events() {
    let (server, dir, a, pid) = first_agent().await;
    let driver = Arc::new(ShellDriver::default());
    let (client, run) = start_in(server.clone(), &dir, driver.clone()).await;
    let runner = wait_for(LIMIT, || client.alloc(&a.id)).await;
    let web = runner.task("web").unwrap().clone();
    let st = web.state();
    assert_eq!(st.state, TaskStateName::Running);
    assert_eq!(st.restarts, 0);
    assert_eq!(
        event_types(&st),
        vec!["Received", "Task Setup", "Started"],
        "no new events on reattach"
    );
    let running = wait_for(LIMIT, || {
        server
            .last_update(&a.id)
            .filter(|u| u.client_status == AllocClientStatus::Running)
    })
    .await;
    assert_eq!(event_types(&running.task_states.unwrap()["web"]).len(), 3);
    assert!(
        driver.started.lock().unwrap().is_empty(),
        "not started again"
    );

    // The restored runner still carries out a stop from the server.
    let mut stop = a.clone();
    stop.desired_status = AllocDesiredStatus::Stop;
    server.put_alloc(stop);
    let done = wait_for(LIMIT, || {
        server
            .last_update(&a.id)
            .filter(|u| u.client_status == AllocClientStatus::Complete)
    })
    .await;
    assert_eq!(
        event_types(&done.task_states.unwrap()["web"]),
        vec![
            "Received",
            "Task Setup",
            "Started",
            "Killing",
            "Terminated",
            "Killed"
        ]
    );
    assert!(nix::sys::signal::kill(Pid::from_raw(pid), None).is_err());
    client.shutdown(ShutdownMode::KillAllocs);
    run.await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn lost_task_restarts_only_after_server_contact() {
    let (server, dir, a, pid) = first_agent().await;
    // The task dies while no agent runs.
    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    wait_for(LIMIT, || {
        nix::sys::signal::kill(Pid::from_raw(pid), None)
            .is_err()
            .then_some(())
    })
    .await;
    server.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let driver = Arc::new(ShellDriver::default());
    let (client, run) = start_in(server.clone(), &dir, driver.clone()).await;
    let runner = wait_for(LIMIT, || client.alloc(&a.id)).await;
    let web = runner.task("web").unwrap().clone();
    wait_for(LIMIT, || {
        event_types(&web.state())
            .contains(&"Failed Restoring Task".to_string())
            .then_some(())
    })
    .await;
    assert_eq!(web.state().state, TaskStateName::Pending);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        driver.started.lock().unwrap().is_empty(),
        "no start before the servers answer"
    );

    server
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    wait_for(LIMIT, || {
        (web.state().state == TaskStateName::Running).then_some(())
    })
    .await;
    assert_eq!(driver.started.lock().unwrap().len(), 1);
    let types = event_types(&web.state());
    assert_eq!(
        &types[types.len() - 2..],
        ["Failed Restoring Task", "Started"]
    );
    client.shutdown(ShutdownMode::KillAllocs);
    run.await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn terminal_allocation_stays_terminal_and_unknown_state_is_dropped() {
    let server = Arc::new(FakeServer::default());
    let dir = tempdir("restore");
    let (client, run) = start_in(server.clone(), &dir, Arc::new(ShellDriver::default())).await;
    wait_for(LIMIT, || client.is_registered().then_some(())).await;
    let mut a = alloc(
        "batch",
        vec![task("once", "exit 0")],
        restart(0, 10, "fail"),
    );
    a.node_id = client.node_id().into();
    server.put_alloc(a.clone());
    wait_for(LIMIT, || {
        server
            .last_update(&a.id)
            .filter(|u| u.client_status == AllocClientStatus::Complete)
    })
    .await;
    // An allocation persisted without any task state (the agent died right after receiving it).
    let mut orphan = alloc("batch", vec![task("x", "true")], restart(0, 10, "fail"));
    orphan.node_id = client.node_id().into();
    client.inner.db.put_alloc(&orphan).unwrap();
    client.shutdown(ShutdownMode::Detach);
    run.await.unwrap();

    let driver = Arc::new(ShellDriver::default());
    let (client, run) = start_in(server.clone(), &dir, driver.clone()).await;
    let runner = wait_for(LIMIT, || client.alloc(&a.id)).await;
    let st = runner.task("once").unwrap().state();
    assert_eq!(st.state, TaskStateName::Dead);
    assert_eq!(
        event_types(&st),
        vec!["Received", "Task Setup", "Started", "Terminated"]
    );
    wait_for(LIMIT, || runner.finished_at()).await;
    assert!(client.alloc(&orphan.id).is_none());
    assert!(
        client
            .inner
            .db
            .get_allocs()
            .unwrap()
            .iter()
            .all(|x| x.id != orphan.id)
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(driver.started.lock().unwrap().is_empty());
    client.shutdown(ShutdownMode::KillAllocs);
    run.await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn missing_alloc_dir_fails_the_restored_allocation() {
    let (server, dir, a, pid) = first_agent().await;
    // The dir goes (with its tmpfs mounts) while the task process keeps running.
    super::allocdir::AllocDir::new(&dir.join("alloc"), &a.id)
        .destroy()
        .unwrap();
    let driver = Arc::new(ShellDriver::default());
    let (client, run) = start_in(server.clone(), &dir, driver.clone()).await;
    let failed = wait_for(LIMIT, || {
        server
            .last_update(&a.id)
            .filter(|u| u.client_status == AllocClientStatus::Failed)
    })
    .await;
    let st = &failed.task_states.unwrap()["web"];
    assert!(st.failed);
    assert!(event_types(st).contains(&"Setup Failure".to_string()));
    // The reattached task was killed, not left behind.
    wait_for(LIMIT, || {
        nix::sys::signal::kill(Pid::from_raw(pid), None)
            .is_err()
            .then_some(())
    })
    .await;
    assert!(driver.started.lock().unwrap().is_empty());
    client.shutdown(ShutdownMode::KillAllocs);
    run.await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}
