//! The whole client against an in-memory fake server: registration, heartbeats, the alloc
//! watcher and status sync.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::rpc::*;
use crate::structs::*;

use super::task_runner::test_driver::ShellDriver;
use super::testutil::{alloc, restart, task, tempdir, wait_for};
use super::*;
use crate::structs::{AllocClientStatus, NodeStatus};

#[derive(Default)]
pub(super) struct FakeServer {
    nodes: Mutex<BTreeMap<String, Node>>,
    registrations: AtomicUsize,
    heartbeats: AtomicUsize,
    pub(super) down: AtomicBool,
    allocs: Mutex<BTreeMap<String, Allocation>>,
    index: AtomicUsize,
    changed: Notify,
    updates: Mutex<Vec<Allocation>>,
    /// Service registrations by ID, as the client's syncs left them.
    pub(super) services: Mutex<BTreeMap<String, crate::structs::service::ServiceRegistration>>,
}

impl FakeServer {
    fn check(&self) -> Result<(), RpcError> {
        if self.down.load(Ordering::SeqCst) {
            Err(RpcError::Unavailable("down".into()))
        } else {
            Ok(())
        }
    }

    fn bump(&self) -> u64 {
        let i = self.index.fetch_add(1, Ordering::SeqCst) as u64 + 2;
        self.changed.notify_waiters();
        i
    }

    pub(super) fn put_alloc(&self, mut a: Allocation) {
        let idx = self.index.load(Ordering::SeqCst) as u64 + 2;
        a.alloc_modify_index = idx;
        a.modify_index = idx;
        self.allocs.lock().unwrap().insert(a.id.clone(), a);
        self.bump();
    }

    fn remove_alloc(&self, id: &str) {
        self.allocs.lock().unwrap().remove(id);
        self.bump();
    }

    fn forget_nodes(&self) {
        self.nodes.lock().unwrap().clear();
    }

    pub(super) fn last_update(&self, id: &str) -> Option<Allocation> {
        self.updates
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|a| a.id == id)
            .cloned()
    }

    fn response(&self) -> NodeUpdateResponse {
        NodeUpdateResponse {
            heartbeat_ttl: 200_000_000,
            ..Default::default()
        }
    }
}

#[async_trait]
impl ServerApi for FakeServer {
    async fn register_node(&self, node: Node) -> Result<NodeUpdateResponse, RpcError> {
        self.check()?;
        self.registrations.fetch_add(1, Ordering::SeqCst);
        self.nodes.lock().unwrap().insert(node.id.clone(), node);
        Ok(self.response())
    }

    async fn update_status(&self, req: NodeStatusRequest) -> Result<NodeUpdateResponse, RpcError> {
        self.check()?;
        if !self.nodes.lock().unwrap().contains_key(&req.node_id) {
            return Err(RpcError::NodeNotFound);
        }
        self.heartbeats.fetch_add(1, Ordering::SeqCst);
        Ok(self.response())
    }

    async fn get_client_allocs(
        &self,
        req: ClientAllocsRequest,
        wait: Duration,
    ) -> Result<ClientAllocs, RpcError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            self.check()?;
            let notified = self.changed.notified();
            let index = self.index.load(Ordering::SeqCst) as u64 + 1;
            if index > req.min_query_index || tokio::time::Instant::now() >= deadline {
                let allocs = self
                    .allocs
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(_, a)| *a.node_id == *req.node_id)
                    .map(|(id, a)| (id.clone(), a.alloc_modify_index))
                    .collect();
                return Ok(ClientAllocs { allocs, index });
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    async fn get_allocs(&self, req: GetAllocsRequest) -> Result<GetAllocsResponse, RpcError> {
        self.check()?;
        let allocs = self.allocs.lock().unwrap();
        Ok(GetAllocsResponse {
            allocs: req
                .alloc_ids
                .iter()
                .filter_map(|id| allocs.get(id).cloned())
                .collect(),
            index: self.index.load(Ordering::SeqCst) as u64 + 1,
        })
    }

    async fn update_allocs(&self, req: UpdateAllocsRequest) -> Result<WriteResponse, RpcError> {
        self.check()?;
        if !self.nodes.lock().unwrap().contains_key(&req.node_id) {
            return Err(RpcError::NodeNotFound);
        }
        self.updates.lock().unwrap().extend(req.alloc);
        Ok(WriteResponse { index: 1 })
    }

    async fn read_workload_var(
        &self,
        _req: WorkloadVarRequest,
    ) -> Result<WorkloadVarResponse, RpcError> {
        self.check()?;
        // The client tests run no templates that read variables.
        Err(RpcError::BadRequest(
            "the fake server holds no variables".into(),
        ))
    }

    async fn list_workload_vars(
        &self,
        _req: WorkloadVarRequest,
    ) -> Result<WorkloadVarListResponse, RpcError> {
        self.check()?;
        Err(RpcError::BadRequest(
            "the fake server holds no variables".into(),
        ))
    }

    async fn resolve_token(
        &self,
        _req: crate::rpc::ResolveTokenRequest,
    ) -> Result<crate::rpc::ResolvedToken, RpcError> {
        self.check()?;
        Ok(crate::rpc::ResolvedToken {
            management: true,
            ..Default::default()
        })
    }

    async fn sync_services(
        &self,
        req: crate::rpc::ServiceSyncRequest,
    ) -> Result<WriteResponse, RpcError> {
        self.check()?;
        let mut services = self.services.lock().unwrap();
        for key in req.delete {
            services.remove(&key.id);
        }
        for reg in req.upsert {
            services.insert(reg.id.clone(), reg);
        }
        Ok(WriteResponse { index: 1 })
    }
}

async fn start(
    server: Arc<FakeServer>,
) -> (Client, tokio::task::JoinHandle<()>, std::path::PathBuf) {
    let dir = tempdir("client");
    let (client, run) = start_in(server, &dir, Arc::new(ShellDriver::default())).await;
    (client, run, dir)
}

/// A client on `driver` with its data in `dir` (a second one on the same dir is the same
/// node after an agent restart).
pub(super) async fn start_in(
    server: Arc<FakeServer>,
    dir: &std::path::Path,
    driver: Arc<ShellDriver>,
) -> (Client, tokio::task::JoinHandle<()>) {
    let dir = dir.to_path_buf();
    let cfg = ClientConfig {
        data_dir: dir.clone(),
        dev_mode: true,
        timings: Timings {
            register_backoff_min: Duration::from_millis(20),
            register_backoff_max: Duration::from_millis(100),
            retry_backoff_min: Duration::from_millis(20),
            retry_backoff_max: Duration::from_millis(100),
            alloc_query_wait: Duration::from_secs(2),
            status_sync_tick: Duration::from_millis(20),
            status_sync_batch_ticks: 5,
        },
        ..Default::default()
    };
    let client = Client::new(cfg, server, vec![driver]).await.unwrap();
    let c = client.clone();
    let run = tokio::spawn(async move { c.run().await });
    (client, run)
}

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn registers_runs_reports_and_destroys_allocations() {
    let server = Arc::new(FakeServer::default());
    let (client, run, dir) = start(server.clone()).await;
    wait_for(LIMIT, || client.is_registered().then_some(())).await;
    let node = server.nodes.lock().unwrap()[&client.node_id()].clone();
    assert_eq!(node.status, NodeStatus::Initializing);
    assert_eq!(node.attr("driver.shell"), Some("1"));

    let mut a = alloc(
        "batch",
        vec![task("hello", "echo hi")],
        restart(0, 10, "fail"),
    );
    a.node_id = client.node_id().into();
    server.put_alloc(a.clone());
    let done = wait_for(LIMIT, || {
        server
            .last_update(&a.id)
            .filter(|u| u.client_status == AllocClientStatus::Complete)
    })
    .await;
    assert_eq!(*done.node_id, *client.node_id());
    assert!(done.job.is_none(), "updates are stripped");
    let types: Vec<_> = done.task_states.unwrap()["hello"]
        .events
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| e.r#type)
        .collect();
    assert_eq!(
        types,
        vec!["Received", "Task Setup", "Started", "Terminated"]
    );
    let alloc_dir = client
        .alloc(&a.id)
        .unwrap()
        .alloc_dir()
        .path()
        .to_path_buf();
    assert!(alloc_dir.join("alloc/logs/hello.stdout.0").exists());

    // Identical state is not sent again.
    let sent = server.updates.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.updates.lock().unwrap().len(), sent);

    // Heartbeats flow.
    wait_for(LIMIT, || {
        (server.heartbeats.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;

    // The server drops the allocation: it is destroyed locally.
    server.remove_alloc(&a.id);
    wait_for(LIMIT, || (!alloc_dir.exists()).then_some(())).await;
    assert!(client.alloc(&a.id).is_none());

    client.shutdown(ShutdownMode::KillAllocs);
    run.await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn stop_update_kills_the_task() {
    let server = Arc::new(FakeServer::default());
    let (client, run, dir) = start(server.clone()).await;
    wait_for(LIMIT, || client.is_registered().then_some(())).await;
    let mut a = alloc(
        "service",
        vec![task("web", "while true; do sleep 0.05; done")],
        restart(0, 10, "fail"),
    );
    a.node_id = client.node_id().into();
    server.put_alloc(a.clone());
    wait_for(LIMIT, || {
        server
            .last_update(&a.id)
            .filter(|u| u.client_status == AllocClientStatus::Running)
    })
    .await;
    // An unchanged AllocModifyIndex is not re-pulled; a stop with a bumped index is.
    let mut stop = a.clone();
    stop.desired_status = AllocDesiredStatus::Stop;
    server.put_alloc(stop);
    let done = wait_for(LIMIT, || {
        server
            .last_update(&a.id)
            .filter(|u| u.client_status == AllocClientStatus::Complete)
    })
    .await;
    let types: Vec<_> = done.task_states.unwrap()["web"]
        .events
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| e.r#type)
        .collect();
    assert_eq!(
        types,
        vec![
            "Received",
            "Task Setup",
            "Started",
            "Killing",
            "Terminated",
            "Killed"
        ]
    );
    client.shutdown(ShutdownMode::KillAllocs);
    run.await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn reregisters_when_forgotten_and_survives_server_outage() {
    let server = Arc::new(FakeServer::default());
    server.down.store(true, Ordering::SeqCst);
    let (client, run, dir) = start(server.clone()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!client.is_registered());
    server.down.store(false, Ordering::SeqCst);
    wait_for(LIMIT, || client.is_registered().then_some(())).await;
    assert_eq!(server.registrations.load(Ordering::SeqCst), 1);

    // The server loses the node: the next heartbeat gets NodeNotFound and re-registers.
    server.forget_nodes();
    wait_for(LIMIT, || {
        (server.registrations.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    assert!(server.nodes.lock().unwrap().contains_key(&client.node_id()));

    // An allocation the client cannot run is reported failed.
    let mut bad = alloc("batch", vec![task("x", "true")], restart(0, 10, "fail"));
    bad.node_id = client.node_id().into();
    Arc::make_mut(bad.job.as_mut().unwrap())
        .task_groups
        .as_mut()
        .unwrap()[0]
        .tasks
        .as_mut()
        .unwrap()[0]
        .driver = "nope".into();
    server.put_alloc(bad.clone());
    let failed = wait_for(LIMIT, || server.last_update(&bad.id)).await;
    assert_eq!(failed.client_status, AllocClientStatus::Failed);
    assert!(
        failed
            .client_description
            .starts_with("Unable to add allocation due to error: failed to find driver")
    );
    client.shutdown(ShutdownMode::Detach);
    run.await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn driver_events_become_driver_task_events() {
    let server = Arc::new(FakeServer::default());
    let (client, run, dir) = start(server.clone()).await;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    client.route_driver_events(rx);
    wait_for(LIMIT, || client.is_registered().then_some(())).await;
    let mut a = alloc(
        "service",
        vec![task("web", "sleep 30")],
        restart(0, 10, "fail"),
    );
    a.node_id = client.node_id().into();
    server.put_alloc(a.clone());
    let runner = wait_for(LIMIT, || client.alloc(&a.id)).await;
    let send = |task_id: String| {
        tx.send(yurt_drivers::DriverEvent {
            task_id,
            message: "Downloading image busybox:1".into(),
            annotations: BTreeMap::from([("image".to_string(), "busybox:1".to_string())]),
        })
        .unwrap();
    };
    // Unknown allocations and tasks are dropped quietly.
    send("no-such-alloc/web".into());
    send(format!("{}/no-such-task", a.id));
    send(format!("{}/web", a.id));
    let ev = wait_for(LIMIT, || {
        runner
            .task("web")?
            .state()
            .events?
            .into_iter()
            .find(|e| e.r#type == "Driver")
    })
    .await;
    assert_eq!(ev.driver_message, "Downloading image busybox:1");
    assert_eq!(ev.display_message, "Downloading image busybox:1");
    assert_eq!(ev.details.unwrap()["image"], "busybox:1");

    client.shutdown(ShutdownMode::KillAllocs);
    run.await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn ignores_allocations_already_terminal_on_the_server() {
    let server = Arc::new(FakeServer::default());
    let (client, run, dir) = start(server.clone()).await;
    wait_for(LIMIT, || client.is_registered().then_some(())).await;
    // Marked lost and stopped while this node was away; it never ran here.
    let mut lost = alloc(
        "service",
        vec![task("web", "sleep 5")],
        restart(0, 10, "fail"),
    );
    lost.node_id = client.node_id().into();
    lost.desired_status = AllocDesiredStatus::Stop;
    lost.client_status = AllocClientStatus::Lost;
    server.put_alloc(lost.clone());
    // A live one after it proves the watcher has seen both.
    let mut live = alloc("batch", vec![task("ok", "true")], restart(0, 10, "fail"));
    live.node_id = client.node_id().into();
    server.put_alloc(live.clone());
    wait_for(LIMIT, || {
        server
            .last_update(&live.id)
            .filter(|u| u.client_status == AllocClientStatus::Complete)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        client.alloc(&lost.id).is_none(),
        "no runner for a dead alloc"
    );
    assert!(
        server.last_update(&lost.id).is_none(),
        "the server's verdict is not overwritten"
    );
    client.shutdown(ShutdownMode::KillAllocs);
    run.await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}
