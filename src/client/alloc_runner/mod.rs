//! One alloc runner per allocation: builds the alloc dir, runs the group's task runners under
//! the lifecycle coordinator, applies leader / sibling-failure / sidecar kill rules, applies
//! server updates (stop), and reports the allocation's client status.

pub mod client_status;
pub mod coordinator;
pub mod health;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::structs::time::is_zero;
use crate::structs::{Allocation, Task, TaskState, TaskStateName};
use yurt_drivers::TaskDriver;

use super::allocdir::AllocDir;
use super::checks::{AllocChecks, CheckStore};
use super::services::{Running, ServiceSync, registrations};
use super::state_db::{StateDb, TaskRecord};
use super::status_sync::StatusSync;
use super::task_runner::{KillOpts, Stage, TaskRunner, TaskRunnerConfig, TaskRunnerHandle, events};
use super::taskenv::NodeValues;
use client_status::{client_status, is_terminal};
use coordinator::Coordinator;
use health::HealthTracker;

/// Why an allocation cannot be run at all.
#[derive(Debug, thiserror::Error)]
pub enum AllocRunnerError {
    /// The allocation came without its job.
    #[error("allocation {0} has no job")]
    NoJob(String),
    /// The job has no group of the allocation's name.
    #[error("task group {0:?} not found in job")]
    NoGroup(String),
    /// A task names a driver this client does not have.
    #[error("failed to find driver {driver:?} for task {task:?}")]
    NoDriver {
        /// The task.
        task: String,
        /// The driver it asked for.
        driver: String,
    },
}

/// Everything an alloc runner is built from.
pub struct AllocRunnerConfig {
    /// The allocation as the server sent it (with its job).
    pub alloc: Allocation,
    /// The client's alloc root.
    pub alloc_root: PathBuf,
    /// Drivers by name.
    pub drivers: BTreeMap<String, Arc<dyn TaskDriver>>,
    /// The node's values for interpolation (shared by every allocation of the node).
    pub node: Arc<NodeValues>,
    /// Agent region.
    pub region: String,
    /// The agent's environment minus the denylist, shared by every task.
    pub host_env: Arc<BTreeMap<String, String>>,
    /// Durable state.
    pub db: Arc<dyn StateDb>,
    /// Upper bound of kill timeouts.
    pub max_kill_timeout: Duration,
    /// Where status updates go.
    pub status: StatusSync,
    /// Where the allocation's service registrations go.
    pub services: ServiceSync,
    /// Where the results of its services' checks go.
    pub checks: CheckStore,
    /// Task records persisted by an earlier agent process, by task name: `Some` restores
    /// the allocation (reattaching to its tasks) instead of starting it.
    pub restore: Option<BTreeMap<String, TaskRecord>>,
    /// Becomes `true` once the servers have been contacted.
    pub contacted: watch::Receiver<bool>,
    /// Limits on task artifact downloads.
    pub artifact: Arc<crate::client::artifact::ArtifactConfig>,
    /// The servers, for task templates that read variables (None: no template may).
    pub servers: Option<crate::client::template::source::ServerAccess>,
}

enum Command {
    Update(Box<Allocation>),
    /// Close every lifecycle gate so restarted tasks re-run from prestart.
    ResetLifecycle(oneshot::Sender<()>),
    Destroy(oneshot::Sender<()>),
    Detach,
}

#[derive(Debug, Default)]
struct Shared {
    alloc: Mutex<Arc<Allocation>>,
    last_update: Mutex<Option<Allocation>>,
    finished_at: Mutex<Option<Instant>>,
    destroyed: Mutex<bool>,
}

/// The client's handle on a running allocation.
#[derive(Clone)]
pub struct AllocRunnerHandle {
    id: String,
    alloc_dir: AllocDir,
    shared: Arc<Shared>,
    tasks: Arc<BTreeMap<String, TaskRunnerHandle>>,
    cmd_tx: mpsc::UnboundedSender<Command>,
}

/// The runner; consumed by [`AllocRunner::run`].
pub struct AllocRunner {
    alloc: Arc<Allocation>,
    alloc_dir: AllocDir,
    tasks: Arc<BTreeMap<String, TaskRunnerHandle>>,
    runners: Vec<TaskRunner>,
    order: Vec<(String, Stage)>,
    coordinator: Coordinator,
    health: Option<HealthTracker>,
    on_change: Arc<Notify>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    db: Arc<dyn StateDb>,
    status: StatusSync,
    services: ServiceSync,
    checks: AllocChecks,
    /// The service address errors last logged, so a state change does not repeat them.
    service_errors: Vec<String>,
    max_kill_timeout: Duration,
    kill_issued: bool,
    restoring: bool,
}

/// A task's kill timeout capped by the client's maximum (Nomad's default is 5 s).
pub fn effective_kill_timeout(task: &Task, max: Duration) -> Duration {
    let t = Duration::from_nanos(u64::try_from(task.kill_timeout).unwrap_or(0));
    let t = if t.is_zero() {
        Duration::from_secs(5)
    } else {
        t
    };
    t.min(max)
}

impl AllocRunner {
    /// Creates the runner and its task runners (each emits `Received`).
    pub fn new(
        cfg: AllocRunnerConfig,
    ) -> Result<(AllocRunner, AllocRunnerHandle), AllocRunnerError> {
        let alloc = Arc::new(cfg.alloc);
        let job = alloc
            .job
            .clone()
            .ok_or_else(|| AllocRunnerError::NoJob(alloc.id.clone()))?;
        let group = job
            .group(&alloc.task_group)
            .ok_or_else(|| AllocRunnerError::NoGroup(alloc.task_group.to_string()))?;
        for task in group.tasks() {
            if !cfg.drivers.contains_key(&task.driver) {
                return Err(AllocRunnerError::NoDriver {
                    task: task.name.clone(),
                    driver: task.driver.clone(),
                });
            }
        }
        let alloc_dir = AllocDir::new(&cfg.alloc_root, &alloc.id);
        let restoring = cfg.restore.is_some();
        let coordinator = if restoring {
            Coordinator::restored()
        } else {
            Coordinator::new()
        };
        let on_change = Arc::new(Notify::new());
        let mut runners = Vec::new();
        let mut handles = BTreeMap::new();
        let mut order = Vec::new();
        for task in group.tasks() {
            let driver = match cfg.drivers.get(&task.driver) {
                Some(d) => d.clone(),
                None => continue,
            };
            let stage = Stage::of(task);
            let (runner, handle) = TaskRunner::new(TaskRunnerConfig {
                alloc: alloc.clone(),
                task: task.clone(),
                alloc_dir: alloc_dir.clone(),
                driver,
                node: cfg.node.clone(),
                region: cfg.region.clone(),
                host_env: cfg.host_env.clone(),
                db: cfg.db.clone(),
                max_kill_timeout: cfg.max_kill_timeout,
                on_change: on_change.clone(),
                gate: coordinator.gate(stage),
                restore: cfg
                    .restore
                    .as_ref()
                    .map(|r| r.get(&task.name).cloned().unwrap_or_default()),
                contacted: cfg.contacted.clone(),
                artifact: cfg.artifact.clone(),
                vars: cfg
                    .servers
                    .as_ref()
                    .map(|s| s.for_task(&alloc.id, &task.name)),
            });
            runners.push(runner);
            handles.insert(task.name.clone(), handle);
            order.push((task.name.clone(), stage));
        }
        let tasks = Arc::new(handles);
        let shared = Arc::new(Shared {
            alloc: Mutex::new(alloc.clone()),
            ..Default::default()
        });
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let handle = AllocRunnerHandle {
            id: alloc.id.clone(),
            alloc_dir: alloc_dir.clone(),
            shared: shared.clone(),
            tasks: tasks.clone(),
            cmd_tx,
        };
        let checks = AllocChecks::new(&alloc.id, cfg.checks, tasks.clone(), on_change.clone());
        let runner = AllocRunner {
            health: HealthTracker::for_alloc(&alloc, Instant::now()),
            alloc,
            alloc_dir,
            tasks,
            runners,
            order,
            coordinator,
            on_change,
            cmd_rx,
            shared,
            db: cfg.db,
            status: cfg.status,
            services: cfg.services,
            checks,
            service_errors: Vec::new(),
            max_kill_timeout: cfg.max_kill_timeout,
            kill_issued: false,
            restoring,
        };
        Ok((runner, handle))
    }

    /// Runs the allocation until it is destroyed or the agent detaches from it.
    pub async fn run(mut self) {
        let started = std::time::Instant::now();
        if let Err(e) = self.db.put_alloc(&self.alloc) {
            tracing::warn!(alloc_id = %self.alloc.id, error = %e, "persisting allocation");
        }
        tracing::debug!(target: "yurt::latency", step = "alloc persisted", alloc_id = %self.alloc.id, us = started.elapsed().as_micros() as u64);
        let all_dead = self
            .tasks
            .values()
            .all(|t| t.state().state == TaskStateName::Dead);
        let prerun_ok = if self.alloc.terminal() || (self.restoring && all_dead) {
            true
        } else {
            // A restored allocation whose directory vanished lost its tasks' files and logs;
            // Nomad fails it rather than silently starting over.
            let built = if self.restoring && !self.alloc_dir.path().is_dir() {
                Err(super::allocdir::AllocDirError::missing(
                    self.alloc_dir.path(),
                ))
            } else {
                self.alloc_dir.build()
            };
            match built {
                Ok(()) => true,
                Err(e) => {
                    let msg = format!("failed to setup alloc: {e}");
                    for t in self.tasks.values() {
                        let mut ev = events::setup_failure(&e.to_string());
                        ev.display_message = msg.clone();
                        ev.kill_reason = "Failed Restoring Task".into();
                        t.request_kill(Some(ev), KillOpts::default());
                    }
                    false
                }
            }
        };
        if prerun_ok && self.alloc.server_terminal() {
            // A stopped allocation never starts its (non-poststop) tasks.
            self.kill_issued = true;
            for t in self.tasks.values().filter(|t| !t.is_poststop()) {
                t.request_kill(None, KillOpts::default());
            }
        }
        for runner in std::mem::take(&mut self.runners) {
            tokio::spawn(runner.run());
        }
        self.handle_task_state_updates();

        let mut next_health_check: Option<Instant> = None;
        loop {
            let health_sleep = async {
                match next_health_check {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.on_change.notified() => {
                    next_health_check = self.handle_task_state_updates();
                }
                _ = health_sleep => {
                    next_health_check = self.handle_task_state_updates();
                }
                cmd = self.cmd_rx.recv() => match cmd {
                    Some(Command::Update(alloc)) => {
                        if self.handle_update(*alloc) {
                            next_health_check = self.handle_task_state_updates();
                        }
                        // A stop takes the services down before the tasks are killed.
                        self.sync_services();
                    }
                    Some(Command::ResetLifecycle(done)) => {
                        self.coordinator.reset();
                        let _ = done.send(());
                    }
                    Some(Command::Destroy(done)) => {
                        self.destroy().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(Command::Detach) | None => {
                        for t in self.tasks.values() {
                            t.detach();
                        }
                        return;
                    }
                },
            }
        }
    }

    fn stages_and_states(&self) -> Vec<(Stage, TaskState)> {
        self.order
            .iter()
            .filter_map(|(name, stage)| self.tasks.get(name).map(|t| (*stage, t.state())))
            .collect()
    }

    /// Nomad's task-state handler: kill rules, coordinator, health, client status.
    fn handle_task_state_updates(&mut self) -> Option<Instant> {
        let mut kill_event = None;
        let mut live = Vec::new();
        for (name, t) in self.tasks.iter() {
            if t.is_poststop() {
                continue;
            }
            let st = t.state();
            if st.state != TaskStateName::Dead {
                live.push(t.clone());
                continue;
            }
            if st.failed {
                if kill_event.is_none() {
                    kill_event = Some(events::sibling_failed(name));
                }
            } else if t.is_leader() {
                kill_event = Some(events::leader_dead());
            }
        }
        if !live.is_empty() {
            let has_sidecars = self
                .tasks
                .values()
                .any(|t| !t.is_poststop() && t.is_sidecar());
            if kill_event.is_none() && has_sidecars && live.iter().all(|t| t.is_sidecar()) {
                kill_event = Some(events::main_dead());
            }
            if let Some(ev) = kill_event
                && !self.kill_issued
            {
                self.kill_issued = true;
                for t in &live {
                    t.emit_event(ev.clone());
                }
                tokio::spawn(kill_tasks(
                    self.tasks.clone(),
                    self.max_kill_timeout,
                    KillOpts::default(),
                ));
            }
        }

        let staged = self.stages_and_states();
        self.coordinator.update(&staged);
        let next = self
            .health
            .as_mut()
            .and_then(|h| h.observe(&staged, self.checks.passing(), Instant::now()))
            .map(|d| Instant::now() + d);
        self.report();
        self.sync_services();
        next
    }

    /// Says which services the allocation has registered now: the group's while its main
    /// tasks run, each task's while it runs, none once a kill is under way (Nomad
    /// deregisters before it kills, so nobody is sent to a task that is going away).
    fn sync_services(&mut self) {
        let alloc = self
            .shared
            .alloc
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let running = if self.kill_issued || alloc.server_terminal() {
            Running::default()
        } else {
            let states: BTreeMap<String, TaskState> = self
                .tasks
                .iter()
                .map(|(n, t)| (n.clone(), t.state()))
                .collect();
            Running {
                group: client_status(&states).0 == crate::structs::AllocClientStatus::Running,
                tasks: states
                    .iter()
                    .filter(|(_, s)| s.state == TaskStateName::Running)
                    .map(|(n, _)| n.clone())
                    .collect(),
            }
        };
        self.checks.update(super::checks::specs(&alloc, &running));
        let (regs, errors) = registrations(&alloc, &running);
        if errors != self.service_errors {
            for e in &errors {
                tracing::warn!(alloc_id = %alloc.id, error = %e, "service not registered");
            }
            self.service_errors = errors;
        }
        self.services.set(&alloc.id, regs);
    }

    /// Builds the client's view of the allocation and queues it for the servers.
    fn report(&mut self) {
        let mut states: BTreeMap<String, TaskState> = self
            .tasks
            .iter()
            .map(|(n, t)| (n.clone(), t.state()))
            .collect();
        let (status, desc) = client_status(&states);
        let terminal = is_terminal(status);
        if terminal {
            let now = Utc::now();
            for st in states.values_mut() {
                if is_zero(&st.finished_at) {
                    st.finished_at = now;
                }
            }
        }
        let all_done = self
            .tasks
            .values()
            .all(|t| t.state().state == TaskStateName::Dead);
        {
            let mut fin = self
                .shared
                .finished_at
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if all_done && fin.is_none() {
                *fin = Some(Instant::now());
            }
        }
        let alloc = self
            .shared
            .alloc
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut deployment_status = self
            .health
            .as_ref()
            .and_then(HealthTracker::status)
            .or_else(|| alloc.deployment_status.clone());
        if status == crate::structs::AllocClientStatus::Failed
            && !alloc.deployment_id.is_empty()
            && deployment_status.as_ref().and_then(|d| d.healthy).is_none()
        {
            let mut ds = deployment_status.unwrap_or_default();
            ds.healthy = Some(false);
            ds.timestamp = Some(Utc::now());
            deployment_status = Some(ds);
        }
        let update = Allocation {
            id: alloc.id.clone(),
            node_id: alloc.node_id.clone(),
            task_states: Some(states),
            client_status: status,
            client_description: desc.to_string(),
            deployment_status,
            ..Default::default()
        };
        let mut last = self
            .shared
            .last_update
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.as_ref() != Some(&update) {
            *last = Some(update.clone());
            drop(last);
            self.status.push(update);
        }
    }

    /// Takes a newer version of the allocation; true when it joined another deployment
    /// (an in-place update), whose health is then judged afresh.
    fn handle_update(&mut self, alloc: Allocation) -> bool {
        if let Err(e) = self.db.put_alloc(&alloc) {
            tracing::warn!(alloc_id = %alloc.id, error = %e, "persisting allocation");
        }
        let terminal = alloc.server_terminal();
        // The server marked the allocation unknown while this client could not reach it,
        // and still wants it: say so on every task, which also sends the server what the
        // allocation really is now (an unchanged state would otherwise never be re-sent).
        if alloc.client_status == crate::structs::AllocClientStatus::Unknown && !terminal {
            for t in self.tasks.values() {
                t.emit_event(crate::structs::TaskEvent::new(
                    crate::structs::alloc::event::CLIENT_RECONNECTED,
                ));
            }
        }
        let opts = KillOpts {
            no_shutdown_delay: alloc.desired_transition.no_shutdown_delay.unwrap_or(false),
        };
        let mut shared = self.shared.alloc.lock().unwrap_or_else(|p| p.into_inner());
        let redeployed = shared.deployment_id != alloc.deployment_id;
        if redeployed {
            self.health = HealthTracker::for_alloc(&alloc, Instant::now());
        }
        *shared = Arc::new(alloc);
        drop(shared);
        if terminal && !self.kill_issued {
            self.kill_issued = true;
            tokio::spawn(kill_tasks(self.tasks.clone(), self.max_kill_timeout, opts));
        }
        redeployed
    }

    async fn destroy(&mut self) {
        self.kill_issued = true;
        let tasks = self.tasks.clone();
        let max = self.max_kill_timeout;
        let kill_all = async move {
            kill_tasks(tasks.clone(), max, KillOpts::default()).await;
            // Destroy does not wait for poststop tasks to run their course.
            for t in tasks.values().filter(|t| t.is_poststop()) {
                let ev = (t.state().state != TaskStateName::Dead)
                    .then(|| events::killing(effective_kill_timeout(t.task(), max)));
                t.kill(ev, KillOpts::default()).await;
            }
        };
        // Keep reporting task states while the kill runs.
        tokio::pin!(kill_all);
        loop {
            tokio::select! {
                _ = &mut kill_all => break,
                _ = self.on_change.notified() => { self.handle_task_state_updates(); }
            }
        }
        self.handle_task_state_updates();
        self.checks.stop_all();
        if let Err(e) = self.alloc_dir.destroy() {
            tracing::warn!(alloc_id = %self.alloc.id, error = %e, "removing alloc dir");
        }
        if let Err(e) = self.db.delete_alloc(&self.alloc.id) {
            tracing::warn!(alloc_id = %self.alloc.id, error = %e, "removing alloc state");
        }
        *self
            .shared
            .destroyed
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = true;
    }
}

/// Nomad's kill order: the leader first, then the other main tasks together, then
/// sidecars; poststop tasks are left to run. Each live task gets a `Killing` event.
pub async fn kill_tasks(
    tasks: Arc<BTreeMap<String, TaskRunnerHandle>>,
    max_kill_timeout: Duration,
    opts: KillOpts,
) {
    let kill = |t: &TaskRunnerHandle| {
        let t = t.clone();
        async move {
            let ev = (t.state().state != TaskStateName::Dead)
                .then(|| events::killing(effective_kill_timeout(t.task(), max_kill_timeout)));
            t.kill(ev, opts).await;
        }
    };
    for t in tasks.values().filter(|t| t.is_leader() && !t.is_poststop()) {
        kill(t).await;
    }
    let others: Vec<_> = tasks
        .values()
        .filter(|t| !t.is_leader() && !t.is_sidecar() && !t.is_poststop())
        .map(kill)
        .collect();
    futures::future::join_all(others).await;
    let sidecars: Vec<_> = tasks
        .values()
        .filter(|t| !t.is_leader() && t.is_sidecar() && !t.is_poststop())
        .map(kill)
        .collect();
    futures::future::join_all(sidecars).await;
}

impl AllocRunnerHandle {
    /// The allocation ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The allocation as last received from the server.
    pub fn alloc(&self) -> Arc<Allocation> {
        self.shared
            .alloc
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The allocation's directory.
    pub fn alloc_dir(&self) -> &AllocDir {
        &self.alloc_dir
    }

    /// The task runners by task name.
    pub fn tasks(&self) -> &BTreeMap<String, TaskRunnerHandle> {
        &self.tasks
    }

    /// One task runner.
    pub fn task(&self, name: &str) -> Option<&TaskRunnerHandle> {
        self.tasks.get(name)
    }

    /// The latest client view (task states, client status) the runner reported.
    pub fn client_view(&self) -> Option<Allocation> {
        self.shared
            .last_update
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// When every task became dead, if they all are.
    pub fn finished_at(&self) -> Option<Instant> {
        *self
            .shared
            .finished_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the runner has been destroyed (dir and state removed).
    pub fn is_destroyed(&self) -> bool {
        *self
            .shared
            .destroyed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Passes a newer version of the allocation from the server.
    pub fn update(&self, alloc: Allocation) {
        let _ = self.cmd_tx.send(Command::Update(Box::new(alloc)));
    }

    /// Kills every task, removes the alloc dir and state, and waits for all of it.
    pub async fn destroy(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd_tx.send(Command::Destroy(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Restarts every task, finished ones included, re-running the lifecycle from prestart
    /// (Nomad's `AllTasks`). Returns each task's outcome once its restart was applied.
    pub async fn restart_all(
        &self,
        reason: &str,
    ) -> Vec<(String, Result<(), super::task_runner::TaskRunnerError>)> {
        let (tx, rx) = oneshot::channel();
        // Gates must close before any task is stopped, or a restarted main task would start
        // again before the prestart tasks re-ran.
        if self.cmd_tx.send(Command::ResetLifecycle(tx)).is_ok() {
            let _ = rx.await;
        }
        let restarts = self
            .tasks
            .iter()
            .map(|(name, t)| async move { (name.clone(), t.force_restart(reason).await) });
        futures::future::join_all(restarts).await
    }

    /// Stops managing the allocation, leaving its tasks running (agent shutdown).
    pub fn detach(&self) {
        let _ = self.cmd_tx.send(Command::Detach);
    }
}
