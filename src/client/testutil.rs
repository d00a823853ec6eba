//! Builders and a harness shared by the client's tests.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::structs::*;
use yurt_drivers::TaskDriver;

use super::alloc_runner::{AllocRunner, AllocRunnerConfig, AllocRunnerHandle};
use super::state_db::JsonStateDb;
use super::status_sync::StatusSync;
use super::task_runner::test_driver::ShellDriver;
use super::taskenv::NodeValues;
use crate::structs::{AllocClientStatus, TaskStateName};

/// A fresh temp dir.
pub fn tempdir(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("yurt-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// A `shell` task running `command`.
pub fn task(name: &str, command: &str) -> Task {
    let mut config = serde_json::Map::new();
    config.insert("command".into(), serde_json::Value::String(command.into()));
    Task {
        name: name.into(),
        driver: "shell".into(),
        config: Some(config),
        kill_timeout: 2_000_000_000,
        ..Default::default()
    }
}

/// A restart policy with a short delay.
pub fn restart(attempts: i64, delay_ms: i64, mode: &str) -> RestartPolicy {
    RestartPolicy {
        attempts,
        interval: 1800 * 1_000_000_000,
        delay: delay_ms * 1_000_000,
        mode: mode.into(),
        render_templates: false,
    }
}

/// An allocation of a one-group job of `job_type` with `tasks`.
pub fn alloc(job_type: &str, tasks: Vec<Task>, policy: RestartPolicy) -> Allocation {
    let group = TaskGroup {
        name: "g".into(),
        tasks: Some(tasks),
        restart_policy: Some(policy),
        ..Default::default()
    };
    let job = Job {
        id: "j".into(),
        name: "j".into(),
        namespace: "default".into(),
        r#type: job_type.into(),
        task_groups: Some(vec![group]),
        ..Default::default()
    };
    Allocation {
        id: generate_uuid(),
        name: "j.g[0]".into(),
        namespace: "default".into(),
        node_id: "node-1".into(),
        job_id: "j".into(),
        task_group: "g".into(),
        job: Some(Arc::new(job)),
        desired_status: AllocDesiredStatus::Run,
        client_status: AllocClientStatus::Pending,
        alloc_modify_index: 1,
        ..Default::default()
    }
}

/// An alloc runner on the shell driver in a temp dir.
pub struct Harness {
    /// The runner's handle.
    pub handle: AllocRunnerHandle,
    /// The driver (records started configs).
    pub driver: Arc<ShellDriver>,
    /// Temp data dir.
    pub dir: PathBuf,
}

impl Harness {
    /// Starts `alloc`.
    pub fn start(alloc: Allocation) -> Harness {
        let dir = tempdir("ar");
        let driver = Arc::new(ShellDriver::default());
        let status = StatusSync::new();
        let mut drivers: BTreeMap<String, Arc<dyn TaskDriver>> = BTreeMap::new();
        drivers.insert("shell".into(), driver.clone());
        let (runner, handle) = AllocRunner::new(AllocRunnerConfig {
            alloc,
            alloc_root: dir.join("alloc"),
            drivers,
            node: Arc::new(NodeValues::from_node(
                &Node {
                    id: "node-1".into(),
                    datacenter: "dc1".into(),
                    ..Default::default()
                },
                "global",
            )),
            region: "global".into(),
            host_env: Arc::new(BTreeMap::from([("PATH".into(), "/usr/bin:/bin".into())])),
            db: Arc::new(JsonStateDb::open(dir.join("state")).unwrap()),
            max_kill_timeout: Duration::from_secs(30),
            status,
            services: Default::default(),
            checks: Default::default(),
            restore: None,
            contacted: tokio::sync::watch::Sender::new(true).subscribe(),
            artifact: Default::default(),
            servers: None,
        })
        .unwrap();
        tokio::spawn(runner.run());
        Harness {
            handle,
            driver,
            dir,
        }
    }

    /// The state of task `name`.
    pub fn state(&self, name: &str) -> TaskState {
        self.handle.task(name).unwrap().state()
    }

    /// Event types of task `name`.
    pub fn events(&self, name: &str) -> Vec<String> {
        self.state(name)
            .events
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.r#type)
            .collect()
    }

    /// Waits until every task is dead and the runner reported a terminal status.
    pub async fn wait_terminal(&self, limit: Duration) -> Allocation {
        wait_for(limit, || {
            self.handle
                .client_view()
                .filter(|a| {
                    a.client_status == AllocClientStatus::Complete
                        || a.client_status == AllocClientStatus::Failed
                })
                .filter(|_| self.handle.tasks().values().all(|t| t.is_done()))
        })
        .await
    }

    /// Waits until task `name`'s first stdout file holds `text`: a script says it is ready
    /// (e.g. its trap is installed) by printing it, which "running" alone does not show.
    pub async fn wait_stdout(&self, name: &str, text: &str, limit: Duration) {
        let path = self
            .handle
            .alloc_dir()
            .logs_dir()
            .join(format!("{name}.stdout.0"));
        wait_for(limit, || {
            std::fs::read_to_string(&path)
                .ok()
                .filter(|s| s.contains(text))
                .map(|_| ())
        })
        .await
    }

    /// Waits until task `name` is running.
    pub async fn wait_running(&self, name: &str, limit: Duration) {
        wait_for(limit, || {
            (self.state(name).state == TaskStateName::Running).then_some(())
        })
        .await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `f` every 10 ms until it yields, panicking after `limit`.
pub async fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("condition not met within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
