//! The docker task driver: [`TaskDriver`] on top of the engine API.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bollard::auth::DockerCredentials;
use bollard::models::ContainerSummary;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, RemoveImageOptionsBuilder, StatsOptionsBuilder,
};
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;

use super::client::{Engine, failed, is_conflict, is_not_found};
use super::container::{self, KillError};
use super::fingerprint;
use super::handle::{DockerTask, HandleState};
use super::image::{Images, PullRequest};
use super::image_gc::{ImageRefs, Remover};
use super::logs::{self, Pump};
use super::plugin_config::PluginConfig;
use super::signals;
use super::spec::{self, LABEL_ALLOC_ID};
use super::stats;
use super::task_config::TaskOptions;
use crate::{
    DriverError, EventSink, ExitResult, Fingerprint, TaskConfig, TaskDriver, TaskHandle,
    TaskResourceUsage,
};

/// How long an exit waits for the log stream to deliver the container's last output.
const LOG_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Containers younger than this are never treated as dangling (see `remove_dangling`).
pub const DANGLING_CREATION_GRACE: Duration = Duration::from_secs(10);
/// Image removal attempts and their spacing (Nomad: 3 tries, 3 s apart).
const IMAGE_REMOVE_ATTEMPTS: u32 = 3;
const IMAGE_REMOVE_SPACING: Duration = Duration::from_secs(3);

/// The docker driver. Dropping it stops its background work but leaves containers running,
/// as an agent crash would; a new driver picks them up with `recover_task`.
pub struct DockerDriver {
    plugin: PluginConfig,
    engine: Arc<Engine>,
    images: Images,
    image_refs: ImageRefs,
    tasks: Mutex<HashMap<String, Arc<DockerTask>>>,
    detected: AtomicBool,
}

impl DockerDriver {
    /// A driver from the agent's `plugin "docker" { config {...} }` (JSON; null = defaults);
    /// `events` receives task events such as image pull progress.
    pub fn new(
        plugin_config: &serde_json::Value,
        events: Option<EventSink>,
    ) -> Result<Self, DriverError> {
        let plugin = PluginConfig::parse(plugin_config)?;
        let engine = Arc::new(Engine::new(&plugin.endpoint));
        let image_refs = ImageRefs::new(
            plugin.gc.image,
            plugin.gc.image_delay,
            image_remover(Arc::clone(&engine)),
        );
        Ok(DockerDriver {
            images: Images::new(Arc::clone(&engine), events),
            image_refs,
            engine,
            plugin,
            tasks: Mutex::new(HashMap::new()),
            detected: AtomicBool::new(false),
        })
    }

    /// The parsed plugin configuration.
    pub fn plugin_config(&self) -> &PluginConfig {
        &self.plugin
    }

    /// Force-removes containers carrying the alloc label whose alloc is not in `keep` and that
    /// this driver does not track; returns their IDs. Called by the agent after restoring.
    ///
    /// Containers younger than [`DANGLING_CREATION_GRACE`] are spared: one may belong to a
    /// start in progress that is not tracked yet.
    pub async fn remove_dangling(
        &self,
        keep: &HashSet<String>,
    ) -> Result<Vec<String>, DriverError> {
        self.remove_dangling_older_than(keep, DANGLING_CREATION_GRACE)
            .await
    }

    /// [`Self::remove_dangling`] with an explicit creation grace.
    pub async fn remove_dangling_older_than(
        &self,
        keep: &HashSet<String>,
        grace: Duration,
    ) -> Result<Vec<String>, DriverError> {
        self.sweep(keep, grace, None).await
    }

    /// [`Self::remove_dangling`] limited to containers whose `/alloc` is mounted from under
    /// `alloc_root`: agents sharing one engine (several on a host, tests) only remove their own.
    pub async fn remove_dangling_in(
        &self,
        keep: &HashSet<String>,
        alloc_root: &Path,
    ) -> Result<Vec<String>, DriverError> {
        self.sweep(keep, DANGLING_CREATION_GRACE, Some(alloc_root))
            .await
    }

    async fn sweep(
        &self,
        keep: &HashSet<String>,
        grace: Duration,
        alloc_root: Option<&Path>,
    ) -> Result<Vec<String>, DriverError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let grace = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
        let client = self.engine.client().await?;
        let filters = HashMap::from([("label", vec![LABEL_ALLOC_ID])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let listed = client
            .list_containers(Some(options))
            .await
            .map_err(|e| failed("Failed to list containers", &e))?;
        let tracked: HashSet<String> = self
            .lock_tasks()
            .values()
            .map(|t| t.state.container_id.clone())
            .collect();
        let mut removed = Vec::new();
        for summary in listed {
            let Some(id) = summary.id.clone() else {
                continue;
            };
            let alloc = summary
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_ALLOC_ID))
                .cloned()
                .unwrap_or_default();
            let young = summary
                .created
                .is_some_and(|c| now.saturating_sub(c) < grace);
            let foreign = alloc_root.is_some_and(|root| !mounts_alloc_from(&summary, root));
            if keep.contains(&alloc) || tracked.contains(&id) || young || foreign {
                continue;
            }
            tracing::info!(container = %id, alloc = %alloc, "removing dangling container");
            container::remove(&client, &id).await?;
            removed.push(id);
        }
        Ok(removed)
    }

    fn lock_tasks(&self) -> MutexGuard<'_, HashMap<String, Arc<DockerTask>>> {
        // The map is only inserted into and removed from; a poisoned lock holds valid data.
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn task(&self, task_id: &str) -> Result<Arc<DockerTask>, DriverError> {
        self.lock_tasks()
            .get(task_id)
            .cloned()
            .ok_or_else(|| DriverError::TaskNotFound(task_id.to_string()))
    }

    /// Starts log streaming and exit watching for a container and tracks it under `task_id`.
    fn track(
        &self,
        task_id: &str,
        state: HandleState,
        recovering: bool,
    ) -> Result<(), DriverError> {
        let (streams, cursor) = logs::prepare(&state.logs, &state.container_id, recovering)?;
        let (exit_tx, exit_rx) = watch::channel(None);
        let (logs_tx, mut logs_rx) = watch::channel(false);
        let pump = Pump {
            engine: Arc::clone(&self.engine),
            container_id: state.container_id.clone(),
            position_path: logs::position_path(&state.logs),
            streams,
            cursor,
        };
        let log_worker = tokio::spawn(pump.run(logs_tx));
        let engine = Arc::clone(&self.engine);
        let id = state.container_id.clone();
        let waiter = tokio::spawn(async move {
            let result = container::wait_exit(&engine, &id).await;
            // The log stream ends once the engine has sent the container's last output.
            let _ = tokio::time::timeout(LOG_DRAIN_TIMEOUT, logs_rx.wait_for(|done| *done)).await;
            exit_tx.send_replace(Some(result));
        });
        let task = Arc::new(DockerTask {
            state,
            exit: exit_rx,
            workers: Mutex::new(vec![log_worker, waiter]),
            last_cpu: Mutex::new(None),
        });
        self.lock_tasks().insert(task_id.to_string(), task);
        Ok(())
    }

    async fn create_and_start(
        &self,
        cfg: &TaskConfig,
        opts: &TaskOptions,
        image_id: &str,
    ) -> Result<TaskHandle, DriverError> {
        let body = spec::build(cfg, opts, &self.plugin)?;
        let client = self.engine.client().await?;
        let name = spec::container_name(cfg);
        let container_id = container::create(&client, &name, &body).await?;
        let state = HandleState {
            container_id: container_id.clone(),
            container_name: name,
            image: opts.image.clone(),
            image_id: image_id.to_string(),
            alloc_id: cfg.alloc_id.clone(),
            logs: cfg.logs.clone(),
        };
        let started = async {
            container::start(&client, &container_id).await?;
            let handle = state.to_handle(&cfg.id)?;
            self.track(&cfg.id, state, false)?;
            Ok(handle)
        }
        .await;
        if started.is_err()
            && let Err(e) = container::remove(&client, &container_id).await
        {
            tracing::warn!(container = %container_id, error = %e, "removing container after failed start");
        }
        started
    }

    async fn wait_exited(task: &DockerTask, timeout: Duration) -> bool {
        let mut rx = task.exit.clone();
        tokio::time::timeout(timeout, rx.wait_for(Option::is_some))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for DockerDriver {
    fn drop(&mut self) {
        for task in self.lock_tasks().values() {
            task.abort_workers();
        }
        self.image_refs.shutdown();
    }
}

/// Whether the container's `/alloc` bind comes from a directory under `alloc_root`.
fn mounts_alloc_from(summary: &ContainerSummary, alloc_root: &Path) -> bool {
    summary.mounts.iter().flatten().any(|m| {
        m.destination.as_deref() == Some("/alloc")
            && m.source
                .as_deref()
                .is_some_and(|src| Path::new(src).starts_with(alloc_root))
    })
}

/// Removes an unused image: forced, a few tries, quiet when it is gone or still in use.
fn image_remover(engine: Arc<Engine>) -> Remover {
    Arc::new(move |image_id: String| {
        let engine = Arc::clone(&engine);
        async move {
            for attempt in 1..=IMAGE_REMOVE_ATTEMPTS {
                let Ok(client) = engine.client().await else {
                    tokio::time::sleep(IMAGE_REMOVE_SPACING).await;
                    continue;
                };
                let options = RemoveImageOptionsBuilder::default().force(true).build();
                match client.remove_image(&image_id, Some(options), None).await {
                    Ok(_) => {
                        tracing::info!(image = %image_id, "removed unused image");
                        return;
                    }
                    Err(e) if is_not_found(&e) || is_conflict(&e) => return,
                    Err(e) => {
                        tracing::warn!(image = %image_id, attempt, error = %e, "removing unused image");
                        tokio::time::sleep(IMAGE_REMOVE_SPACING).await;
                    }
                }
            }
        }
        .boxed()
    })
}

fn credentials(opts: &TaskOptions) -> Option<DockerCredentials> {
    let auth = &opts.auth;
    if auth.username.is_empty() && auth.password.is_empty() {
        return None;
    }
    Some(DockerCredentials {
        username: Some(auth.username.clone()),
        password: Some(auth.password.clone()),
        serveraddress: (!auth.server_address.is_empty()).then(|| auth.server_address.clone()),
        ..Default::default()
    })
}

#[async_trait]
impl TaskDriver for DockerDriver {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn fingerprint(&self) -> Fingerprint {
        fingerprint::probe(&self.engine, &self.plugin, &self.detected).await
    }

    fn validate_config(&self, config: &serde_json::Value) -> Result<(), DriverError> {
        TaskOptions::parse(config, &self.plugin).map(|_| ())
    }

    async fn start_task(&self, cfg: &TaskConfig) -> Result<TaskHandle, DriverError> {
        let opts = TaskOptions::parse(&cfg.driver_config, &self.plugin)?;
        if self.lock_tasks().contains_key(&cfg.id) {
            return Err(DriverError::Failed(format!(
                "task with ID {:?} already started",
                cfg.id
            )));
        }
        // Build the request first: a config error should not cost a pull.
        spec::build(cfg, &opts, &self.plugin)?;
        let request = PullRequest {
            force: opts.force_pull,
            timeout: opts.pull_timeout(&self.plugin),
            activity_timeout: self.plugin.pull_activity_timeout,
            credentials: credentials(&opts),
        };
        let image_id = self.images.ensure(&cfg.id, &opts.image, &request).await?;
        self.image_refs.add(&image_id, &cfg.id);
        let started = self.create_and_start(cfg, &opts, &image_id).await;
        if started.is_err() {
            self.image_refs.remove(&image_id, &cfg.id);
        }
        started
    }

    async fn recover_task(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        let state = HandleState::from_handle(handle)?;
        if self.lock_tasks().contains_key(&handle.task_id) {
            return Ok(());
        }
        let client = self.engine.client().await?;
        match client.inspect_container(&state.container_id, None).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {
                return Err(DriverError::Failed(format!(
                    "container {} of task {} no longer exists",
                    state.container_id, handle.task_id
                )));
            }
            Err(e) => return Err(failed("Failed to inspect container", &e)),
        }
        // Unlike Nomad, recovered tasks hold their image so it is not collected under them.
        self.image_refs.add(&state.image_id, &handle.task_id);
        let image_id = state.image_id.clone();
        let tracked = self.track(&handle.task_id, state, true);
        if tracked.is_err() {
            self.image_refs.remove(&image_id, &handle.task_id);
        }
        tracked
    }

    async fn wait_task(&self, task_id: &str) -> Result<ExitResult, DriverError> {
        let task = self.task(task_id)?;
        let mut rx = task.exit.clone();
        let result = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| DriverError::Failed(format!("stopped waiting for task {task_id}")))?
            .clone();
        result.ok_or_else(|| DriverError::Failed(format!("no exit result for task {task_id}")))
    }

    async fn stop_task(
        &self,
        task_id: &str,
        timeout: Duration,
        signal: &str,
    ) -> Result<(), DriverError> {
        let task = self.task(task_id)?;
        if task.exited().is_some() {
            return Ok(());
        }
        let id = &task.state.container_id;
        if signal.is_empty() {
            // `docker stop`: the image's STOPSIGNAL or SIGTERM, SIGKILL after the timeout.
            return container::stop(&self.engine, id, timeout).await;
        }
        let signal = signals::parse(signal)?;
        let client = self.engine.client().await?;
        match container::kill(&client, id, signal).await {
            Ok(()) | Err(KillError::NotRunning) | Err(KillError::Gone) => {}
            Err(KillError::Engine(e)) => return Err(e),
        }
        if Self::wait_exited(&task, timeout).await {
            return Ok(());
        }
        container::stop(&self.engine, id, Duration::ZERO).await
    }

    async fn destroy_task(&self, task_id: &str, force: bool) -> Result<(), DriverError> {
        let task = self.task(task_id)?;
        let id = task.state.container_id.clone();
        if task.exited().is_none() {
            let client = self.engine.client().await?;
            if container::is_running(&client, &id).await? {
                if !force {
                    return Err(DriverError::Failed(
                        "must call StopTask for the given task before Destroy or set force to true"
                            .to_string(),
                    ));
                }
                container::stop(&self.engine, &id, Duration::ZERO).await?;
                // Give the log stream its last bytes before it is stopped.
                Self::wait_exited(&task, LOG_DRAIN_TIMEOUT).await;
            }
        }
        if self.plugin.gc.container {
            let client = self.engine.client().await?;
            container::remove(&client, &id).await?;
        }
        task.abort_workers();
        self.lock_tasks().remove(task_id);
        self.image_refs.remove(&task.state.image_id, task_id);
        logs::forget(&task.state.logs);
        Ok(())
    }

    async fn signal_task(&self, task_id: &str, signal: &str) -> Result<(), DriverError> {
        let task = self.task(task_id)?;
        let signal = signals::parse(signal)?;
        if task.exited().is_some() {
            return Err(DriverError::TaskNotRunning);
        }
        let client = self.engine.client().await?;
        let id = &task.state.container_id;
        if signal == "SIGNULL" {
            // Signal 0 only checks that the process exists; the engine refuses to send it.
            return match container::is_running(&client, id).await? {
                true => Ok(()),
                false => Err(DriverError::TaskNotRunning),
            };
        }
        match container::kill(&client, id, signal).await {
            Ok(()) => Ok(()),
            Err(KillError::NotRunning) | Err(KillError::Gone) => Err(DriverError::TaskNotRunning),
            Err(KillError::Engine(e)) => Err(e),
        }
    }

    async fn exec_task(
        &self,
        task_id: &str,
        req: crate::exec_session::ExecRequest,
    ) -> Result<crate::exec_session::ExecSession, DriverError> {
        let task = self.task(task_id)?;
        if task.exited().is_some() {
            return Err(DriverError::TaskNotRunning);
        }
        let client = self.engine.client().await?;
        super::alloc_exec::exec(client, &task.state.container_id, &req).await
    }

    async fn task_stats(&self, task_id: &str) -> Result<TaskResourceUsage, DriverError> {
        let task = self.task(task_id)?;
        if task.exited().is_some() {
            return Err(DriverError::TaskNotRunning);
        }
        let client = self.engine.client().await?;
        let options = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let mut stream = client.stats(&task.state.container_id, Some(options));
        let answer = match stream.next().await {
            Some(Ok(answer)) => answer,
            Some(Err(e)) if is_not_found(&e) => return Err(DriverError::TaskNotRunning),
            Some(Err(e)) => return Err(failed("Failed to read container stats", &e)),
            None => {
                return Err(DriverError::Failed(
                    "engine sent no container stats".to_string(),
                ));
            }
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let mut last = task.last_cpu.lock().unwrap_or_else(|p| p.into_inner());
        let (usage, sample) = stats::convert(&answer, *last, now);
        *last = Some(sample);
        Ok(usage)
    }
}
