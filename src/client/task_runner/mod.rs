//! One task runner per task: waits for its lifecycle gate, runs the prestart hooks, starts
//! the task through its driver, waits for it, and applies the restart policy and the kill
//! sequence, emitting Nomad's task events along the way.

mod artifact_hook;
mod dispatch_hook;
pub mod driver_config;
mod env_hook;
pub mod events;
mod kill;
pub mod restart;
mod restore;
mod state;
mod task_dir_hook;
mod template_hook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::structs::{Allocation, LIFECYCLE_POSTSTOP, Task, TaskEvent, TaskState, TaskStateName};
use yurt_drivers::{DriverError, ExitResult, TaskDriver};

use super::allocdir::AllocDir;
use super::state_db::{StateDb, TaskRecord};
use super::taskenv::NodeValues;
use crate::structs::time::is_zero;
use restart::{RestartDecision, RestartTracker};
use state::TaskShared;

/// Why a signal or restart request could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum TaskRunnerError {
    /// The task has no running instance.
    #[error("Task not running")]
    NotRunning,
    /// The driver refused.
    #[error(transparent)]
    Driver(#[from] DriverError),
}

/// How a kill is carried out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KillOpts {
    /// Skip the task's shutdown delay (the server set `NoShutdownDelay`).
    pub no_shutdown_delay: bool,
}

/// Everything a task runner is built from.
pub struct TaskRunnerConfig {
    /// The allocation (with its job).
    pub alloc: Arc<Allocation>,
    /// The task to run.
    pub task: Task,
    /// The allocation's directory.
    pub alloc_dir: AllocDir,
    /// The driver that runs the task.
    pub driver: Arc<dyn TaskDriver>,
    /// Node values for interpolation, shared by every task of the node.
    pub node: Arc<NodeValues>,
    /// Agent region.
    pub region: String,
    /// The agent's environment minus the denylist, shared by every task.
    pub host_env: Arc<BTreeMap<String, String>>,
    /// Durable state.
    pub db: Arc<dyn StateDb>,
    /// Upper bound of the kill timeout.
    pub max_kill_timeout: Duration,
    /// Poked on every task state change.
    pub on_change: Arc<Notify>,
    /// Opens when the lifecycle coordinator lets the task start.
    pub gate: watch::Receiver<bool>,
    /// What an earlier agent process persisted about the task; `Some` restores the runner
    /// (reattaching to a running task) instead of starting afresh.
    pub restore: Option<TaskRecord>,
    /// Becomes `true` once the servers have been contacted (a task that failed to restore
    /// waits for it before starting again).
    pub contacted: watch::Receiver<bool>,
    /// Limits on artifact downloads (`client.artifact`).
    pub artifact: Arc<crate::client::artifact::ArtifactConfig>,
    /// Where the task's templates read Nomad variables (None: nowhere; a template that
    /// reads one fails).
    pub vars: Option<Arc<dyn crate::client::template::VarSource>>,
}

struct RestartRequest {
    /// Also re-run a task that already finished (a restart of all tasks).
    force: bool,
    done: oneshot::Sender<()>,
}

/// The alloc runner's handle on a task runner.
#[derive(Clone)]
pub struct TaskRunnerHandle {
    task: Arc<Task>,
    shared: Arc<TaskShared>,
    driver: Arc<dyn TaskDriver>,
    kill_tx: Arc<watch::Sender<Option<KillOpts>>>,
    detach_tx: Arc<watch::Sender<bool>>,
    restart_tx: mpsc::UnboundedSender<RestartRequest>,
    done_rx: watch::Receiver<bool>,
}

/// The runner itself; consumed by [`TaskRunner::run`].
pub struct TaskRunner {
    cfg: TaskRunnerConfig,
    shared: Arc<TaskShared>,
    tracker: RestartTracker,
    kill_rx: watch::Receiver<Option<KillOpts>>,
    detach_rx: watch::Receiver<bool>,
    restart_rx: mpsc::UnboundedReceiver<RestartRequest>,
    done_tx: watch::Sender<bool>,
    task_dir_done: bool,
    /// Indexes of the task's artifacts already fetched; a restart does not fetch them again.
    artifacts_done: std::collections::BTreeSet<usize>,
    templates: template_hook::TemplateHook,
    /// What template change modes may do to the task.
    actions: ChangeActions,
    kill_error: Option<String>,
}

/// What a template watcher may do to its task: restart it, signal it, run a command in it,
/// or kill it. Holds only weak ends of the runner's channels, so it never keeps a finished
/// runner's channels open.
#[derive(Clone)]
pub(crate) struct ChangeActions {
    shared: Arc<TaskShared>,
    driver: Arc<dyn TaskDriver>,
    restart_tx: mpsc::WeakUnboundedSender<RestartRequest>,
    kill_tx: std::sync::Weak<watch::Sender<Option<KillOpts>>>,
}

impl ChangeActions {
    fn running_id(&self) -> Result<String, TaskRunnerError> {
        let st = self.shared.state();
        match self.shared.handle() {
            Some(h) if st.state == TaskStateName::Running => Ok(h.task_id),
            _ => Err(TaskRunnerError::NotRunning),
        }
    }

    /// Restarts the running task in place (no restart attempt used), after `ev`.
    pub(crate) async fn restart(&self, ev: TaskEvent) -> Result<(), TaskRunnerError> {
        self.running_id()?;
        let tx = self
            .restart_tx
            .upgrade()
            .ok_or(TaskRunnerError::NotRunning)?;
        self.shared.emit(ev);
        let (done, rx) = oneshot::channel();
        tx.send(RestartRequest { force: false, done })
            .map_err(|_| TaskRunnerError::NotRunning)?;
        rx.await.map_err(|_| TaskRunnerError::NotRunning)
    }

    /// Sends `signal` to the running task, after `ev`.
    pub(crate) async fn signal(&self, ev: TaskEvent, signal: &str) -> Result<(), TaskRunnerError> {
        let id = self.running_id()?;
        self.shared.emit(ev);
        self.driver.signal_task(&id, signal).await?;
        Ok(())
    }

    /// Runs `command` inside the running task; its exit code, or an error when it could
    /// not run or outlived `timeout` (it is then killed).
    pub(crate) async fn exec(
        &self,
        command: &str,
        args: &[String],
        timeout: Duration,
    ) -> Result<i32, TaskRunnerError> {
        use yurt_drivers::exec_session::{ExecInput, ExecOutput, ExecRequest};
        let id = self.running_id()?;
        let mut argv = vec![command.to_string()];
        argv.extend(args.iter().cloned());
        let mut session = self
            .driver
            .exec_task(
                &id,
                ExecRequest {
                    command: argv,
                    tty: false,
                    env: Default::default(),
                    tty_size: None,
                },
            )
            .await?;
        let _ = session.input.send(ExecInput::CloseStdin).await;
        let wait = async {
            while let Some(out) = session.output.recv().await {
                if let ExecOutput::Exited(res) = out {
                    return Ok(res.exit_code);
                }
            }
            Err(DriverError::Failed(
                "the command's output ended without an exit".into(),
            ))
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(res) => Ok(res?),
            Err(_) => Err(TaskRunnerError::Driver(DriverError::Failed(format!(
                "timed out after {}",
                super::util::go_duration(timeout)
            )))),
        }
    }

    /// Kills the task (it fails), after `ev`.
    pub(crate) fn kill(&self, ev: TaskEvent) {
        let Some(kill_tx) = self.kill_tx.upgrade() else {
            return;
        };
        self.shared.emit(ev);
        kill_tx.send_if_modified(|k| {
            if k.is_none() {
                *k = Some(KillOpts::default());
                true
            } else {
                false
            }
        });
    }
}

/// How the main loop ended.
enum Ending {
    /// The task is finished (dead).
    Finished,
    /// The agent is shutting down; the task keeps running untouched.
    Detached,
}

/// How waiting on a started task ended.
enum Waited {
    Exited(ExitResult),
    Detached,
}

impl TaskRunner {
    /// Creates the runner and its handle, emitting `Received` (or, when restoring, taking
    /// over the persisted state and events).
    pub fn new(cfg: TaskRunnerConfig) -> (TaskRunner, TaskRunnerHandle) {
        let shared = Arc::new(
            TaskShared::new(
                &cfg.alloc.id,
                &cfg.task.name,
                cfg.db.clone(),
                cfg.on_change.clone(),
            )
            .with_metric_labels(crate::client::gauges::task_labels(
                &cfg.alloc,
                &cfg.task.name,
            )),
        );
        let mut task_dir_done = false;
        match &cfg.restore {
            Some(TaskRecord {
                state: Some(state),
                handle,
            }) => {
                shared.restore(state.clone(), handle.clone());
                // Built (and announced) by the earlier process; don't announce it again.
                task_dir_done = cfg.alloc_dir.task_dir(&cfg.task.name).local_dir().is_dir();
            }
            _ => shared.emit(events::received()),
        }
        let job_type = cfg
            .alloc
            .job
            .as_ref()
            .map(|j| j.r#type.clone())
            .unwrap_or_default();
        let policy = cfg
            .task
            .restart_policy
            .clone()
            .or_else(|| cfg.alloc.group().and_then(|g| g.restart_policy.clone()))
            .unwrap_or_else(|| crate::structs::canonicalize::default_restart_policy(&job_type));
        let tracker = RestartTracker::new(&policy, &job_type, cfg.task.lifecycle.as_ref());
        let (kill_tx, kill_rx) = watch::channel(None);
        let (detach_tx, detach_rx) = watch::channel(false);
        let (restart_tx, restart_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = watch::channel(false);
        let kill_tx = Arc::new(kill_tx);
        let actions = ChangeActions {
            shared: shared.clone(),
            driver: cfg.driver.clone(),
            restart_tx: restart_tx.downgrade(),
            kill_tx: Arc::downgrade(&kill_tx),
        };
        let handle = TaskRunnerHandle {
            task: Arc::new(cfg.task.clone()),
            shared: shared.clone(),
            driver: cfg.driver.clone(),
            kill_tx,
            detach_tx: Arc::new(detach_tx),
            restart_tx,
            done_rx,
        };
        let runner = TaskRunner {
            cfg,
            shared,
            tracker,
            kill_rx,
            detach_rx,
            restart_rx,
            done_tx,
            task_dir_done,
            artifacts_done: Default::default(),
            templates: Default::default(),
            actions,
            kill_error: None,
        };
        (runner, handle)
    }

    /// Runs the task to completion (or until the agent detaches).
    pub async fn run(mut self) {
        let mut ending = match self.restore().await {
            restore::Restored::Start => self.main_loop(None).await,
            restore::Restored::Running(task_id) => {
                self.restore_templates();
                self.main_loop(Some(task_id)).await
            }
            restore::Restored::Ended(ending) => ending,
        };
        loop {
            match ending {
                Ending::Finished => {
                    if let Some(h) = self.shared.handle() {
                        // A live instance at this point means the loop was cut short; stop it.
                        let _ = self
                            .cfg
                            .driver
                            .stop_task(&h.task_id, self.kill_timeout(), self.kill_signal())
                            .await;
                        self.clear_handle(&h.task_id).await;
                    }
                    self.shared.update(TaskStateName::Dead, None);
                    self.done_tx.send_replace(true);
                    // A finished task (a prestart hook) may be asked to run again.
                    if self.wait_for_rerun().await {
                        self.done_tx.send_replace(false);
                        ending = self.main_loop(None).await;
                        continue;
                    }
                }
                Ending::Detached => {}
            }
            break;
        }
        self.templates.stop();
        self.done_tx.send_replace(true);
    }

    /// Like Nomad's task runner, a finished task stays restartable until the allocation is
    /// killed: a restart of all tasks (`AllTasks`) re-runs it. True when it must run again.
    async fn wait_for_rerun(&mut self) -> bool {
        loop {
            if self.killed() {
                return false;
            }
            tokio::select! {
                req = self.restart_rx.recv() => match req {
                    Some(req) if req.force => {
                        self.shared.update(TaskStateName::Pending, None);
                        let _ = req.done.send(());
                        return true;
                    }
                    // A plain restart of a dead task: dropping `done` answers "not running".
                    Some(_) => continue,
                    None => return false,
                },
                _ = self.kill_rx.wait_for(Option::is_some) => return false,
                _ = self.detach_rx.wait_for(|d| *d) => return false,
            }
        }
    }

    fn killed(&self) -> bool {
        self.kill_rx.borrow().is_some()
    }

    /// Starts the task and applies the restart policy after each exit; `resume` is the ID of
    /// an already running (reattached) instance to wait on first instead of starting one.
    async fn main_loop(&mut self, mut resume: Option<String>) -> Ending {
        loop {
            if let Some(task_id) = resume.take() {
                if let Some(ending) = self.wait_started(&task_id).await {
                    return ending;
                }
            } else if let Some(ending) = self.start_and_wait().await {
                return ending;
            }
            match self.tracker.decide() {
                RestartDecision::Killed => {
                    let err = self.kill_error.take();
                    self.shared.emit(events::killed(err.as_deref()));
                    return Ending::Finished;
                }
                RestartDecision::NotRestart { reason } => {
                    self.shared.emit(events::not_restarting(&reason));
                    return Ending::Finished;
                }
                RestartDecision::Terminated { reason } => {
                    tracing::debug!(task = %self.cfg.task.name, %reason, "task finished");
                    return Ending::Finished;
                }
                RestartDecision::Restart { delay, reason } => {
                    self.shared.update(
                        TaskStateName::Pending,
                        Some(events::restarting(delay, &reason)),
                    );
                    // Detach first: see `wait_or_kill`.
                    tokio::select! {
                        biased;
                        _ = self.detach_rx.wait_for(|d| *d) => return Ending::Detached,
                        _ = self.kill_rx.wait_for(Option::is_some) => return Ending::Finished,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Waits for the gate, runs prestart and starts the task, then waits for it; the outcome
    /// is left in the restart tracker. `Some` ends the run loop.
    async fn start_and_wait(&mut self) -> Option<Ending> {
        // Detach first: see `wait_or_kill`.
        tokio::select! {
            biased;
            _ = self.detach_rx.wait_for(|d| *d) => return Some(Ending::Detached),
            _ = self.kill_rx.wait_for(Option::is_some) => return Some(Ending::Finished),
            _ = self.cfg.gate.wait_for(|open| *open) => {}
        }
        if self.killed() {
            return Some(Ending::Finished);
        }
        let started = std::time::Instant::now();
        // Prestart may wait (for a template's variable): a kill or a detach ends the wait.
        let mut kill_rx = self.kill_rx.clone();
        let mut detach_rx = self.detach_rx.clone();
        let prestart = tokio::select! {
            biased;
            _ = detach_rx.wait_for(|d| *d) => return Some(Ending::Detached),
            _ = kill_rx.wait_for(Option::is_some) => return Some(Ending::Finished),
            p = self.prestart() => p,
        };
        tracing::debug!(target: "yurt::latency", step = "prestart done", alloc_id = %self.cfg.alloc.id, us = started.elapsed().as_micros() as u64);
        match prestart {
            Err((ev, recoverable)) => {
                self.shared.emit(ev);
                self.tracker.set_start_error(recoverable);
                None
            }
            Ok(task_cfg) => match self.start_task(task_cfg).await {
                Err(e) => {
                    self.shared.emit(events::driver_failure(&e.to_string()));
                    self.tracker
                        .set_start_error(matches!(e, DriverError::Failed(_)));
                    None
                }
                Ok(handle) => {
                    tracing::debug!(target: "yurt::latency", step = "driver started", alloc_id = %self.cfg.alloc.id, us = started.elapsed().as_micros() as u64);
                    let task_id = handle.task_id.clone();
                    self.shared.started(handle, events::started());
                    tracing::debug!(target: "yurt::latency", step = "running persisted", alloc_id = %self.cfg.alloc.id, us = started.elapsed().as_micros() as u64);
                    self.wait_started(&task_id).await
                }
            },
        }
    }

    /// Hands the config to the driver and frees it: it carries the task's whole environment,
    /// and kept in the waiting future it would stay allocated for as long as the task runs.
    async fn start_task(
        &self,
        task_cfg: yurt_drivers::TaskConfig,
    ) -> Result<yurt_drivers::TaskHandle, DriverError> {
        self.cfg.driver.start_task(&task_cfg).await
    }

    /// Waits for a started task to exit and records the exit (`Terminated`, restart
    /// tracker, handle cleared). `Some` ends the run loop (the agent detached).
    async fn wait_started(&mut self, task_id: &str) -> Option<Ending> {
        let res = match self.wait_or_kill(task_id).await {
            Waited::Exited(res) => res,
            Waited::Detached => return Some(Ending::Detached),
        };
        self.shared.end_run(events::terminated(&res));
        self.tracker.set_exit_result(res);
        self.destroy_driver_task(task_id).await;
        None
    }

    /// The variable source of the task's templates.
    fn var_source(&self) -> Arc<dyn crate::client::template::VarSource> {
        self.cfg
            .vars
            .clone()
            .unwrap_or_else(|| Arc::new(crate::client::template::source::NoServers))
    }

    /// Watches the templates of a task reattached after an agent restart.
    fn restore_templates(&mut self) {
        if self
            .cfg
            .task
            .templates
            .as_ref()
            .is_none_or(|t| t.is_empty())
        {
            return;
        }
        let task_dir = self.cfg.alloc_dir.task_dir(&self.cfg.task.name);
        let env = env_hook::build(&self.cfg);
        let source = self.var_source();
        template_hook::restore(
            &mut self.templates,
            template_hook::Inputs {
                shared: &self.shared,
                task: &self.cfg.task,
                env: &env,
                task_dir: task_dir.path(),
                alloc_dir: self.cfg.alloc_dir.path(),
                source,
                actions: self.actions.clone(),
                namespace: &self.cfg.alloc.namespace,
                region: &self.cfg.region,
            },
        );
    }

    /// Runs the prestart hooks and builds the driver config; on failure returns the event to
    /// emit and whether retrying could help.
    #[allow(clippy::result_large_err)] // built once per start; boxing buys nothing
    async fn prestart(&mut self) -> Result<yurt_drivers::TaskConfig, (TaskEvent, bool)> {
        let task_dir = self.cfg.alloc_dir.task_dir(&self.cfg.task.name);
        task_dir_hook::prestart(&self.shared, &task_dir, &mut self.task_dir_done)
            .map_err(|e| (events::hook_failed("task_dir", &e.to_string()), false))?;
        dispatch_hook::prestart(self.cfg.alloc.job.as_deref(), &self.cfg.task, &task_dir)
            .map_err(|e| (events::hook_failed("dispatch_payload", &e), false))?;
        let env = env_hook::build(&self.cfg);
        artifact_hook::prestart(
            &self.shared,
            &self.cfg.task,
            &env,
            task_dir.path(),
            &self.cfg.artifact,
            &mut self.artifacts_done,
        )
        .await
        // Like Nomad, every download failure is worth retrying under the restart policy.
        .map_err(|e| (events::artifact_failed(&e), true))?;
        let mut env = env;
        if self
            .cfg
            .task
            .templates
            .as_ref()
            .is_some_and(|t| !t.is_empty())
        {
            let source = self.var_source();
            let template_env = template_hook::prestart(
                &mut self.templates,
                template_hook::Inputs {
                    shared: &self.shared,
                    task: &self.cfg.task,
                    env: &env,
                    task_dir: task_dir.path(),
                    alloc_dir: self.cfg.alloc_dir.path(),
                    source,
                    actions: self.actions.clone(),
                    namespace: &self.cfg.alloc.namespace,
                    region: &self.cfg.region,
                },
            )
            .await
            // Like Nomad, a template that cannot render fails the task.
            .map_err(|ev| (ev, false))?;
            env.set_template_env(template_env);
        }
        let task_cfg =
            driver_config::build(&self.cfg.alloc, &self.cfg.task, &self.cfg.alloc_dir, &env);
        if let Err(e) = self.cfg.driver.validate_config(&task_cfg.driver_config) {
            let msg = e.to_string();
            let mut ev = TaskEvent::new(crate::structs::event::FAILED_VALIDATION)
                .detail("validation_error", msg.clone());
            ev.validation_error = msg;
            return Err((ev, false));
        }
        Ok(task_cfg)
    }

    /// Waits for the task to exit, carrying out kills and user restarts meanwhile.
    async fn wait_or_kill(&mut self, task_id: &str) -> Waited {
        let driver = self.cfg.driver.clone();
        let wait = driver.wait_task(task_id);
        tokio::pin!(wait);
        enum Next {
            Exit(Result<ExitResult, DriverError>),
            Kill(KillOpts),
            Restart(RestartRequest),
            Detach,
        }
        // A detaching alloc runner (agent shutdown) returns right after telling its tasks,
        // which closes their kill channels too: detach must win over that "kill", or a
        // task the agent means to leave running is stopped on the way out.
        let next = tokio::select! {
            biased;
            res = &mut wait => Next::Exit(res),
            _ = self.detach_rx.wait_for(|d| *d) => Next::Detach,
            opts = wait_kill(&mut self.kill_rx) => Next::Kill(opts),
            Some(req) = self.restart_rx.recv() => Next::Restart(req),
        };
        match next {
            Next::Exit(res) => Waited::Exited(exit_result(res)),
            Next::Kill(opts) => Waited::Exited(self.handle_kill(task_id, wait, opts).await),
            Next::Restart(req) => {
                let res = self.stop_for_restart(task_id, wait).await;
                self.tracker.set_restart_triggered();
                let _ = req.done.send(());
                Waited::Exited(res)
            }
            Next::Detach => Waited::Detached,
        }
    }

    async fn clear_handle(&mut self, task_id: &str) {
        self.shared.set_handle(None);
        self.destroy_driver_task(task_id).await;
    }

    async fn destroy_driver_task(&mut self, task_id: &str) {
        match self.cfg.driver.destroy_task(task_id, true).await {
            Ok(()) | Err(DriverError::TaskNotFound(_)) => {}
            Err(e) => tracing::warn!(task_id, error = %e, "destroying driver task"),
        }
    }

    fn kill_timeout(&self) -> Duration {
        let t = Duration::from_nanos(u64::try_from(self.cfg.task.kill_timeout).unwrap_or(0));
        let t = if t.is_zero() {
            Duration::from_secs(5)
        } else {
            t
        };
        t.min(self.cfg.max_kill_timeout)
    }

    /// The task's `kill_signal` as written: empty lets the driver pick its default, as Nomad
    /// passes it (raw_exec/exec: SIGINT; docker: the image's STOPSIGNAL or SIGTERM).
    fn kill_signal(&self) -> &str {
        &self.cfg.task.kill_signal
    }
}

async fn wait_kill(rx: &mut watch::Receiver<Option<KillOpts>>) -> KillOpts {
    match rx.wait_for(Option::is_some).await {
        Ok(opts) => opts.unwrap_or_default(),
        // The handle is gone, so nobody can ask for a kill: behave as a plain kill.
        Err(_) => KillOpts::default(),
    }
}

fn exit_result(res: Result<ExitResult, DriverError>) -> ExitResult {
    res.unwrap_or_else(|e| ExitResult {
        exit_code: 0,
        signal: 0,
        oom_killed: false,
        err: Some(e.to_string()),
    })
}

/// Where a task sits in the lifecycle coordinator's stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// `prestart`, not a sidecar: must finish successfully before main tasks start.
    PrestartEphemeral,
    /// `prestart` sidecar: must be running before main tasks start.
    PrestartSidecar,
    /// No lifecycle block.
    Main,
    /// `poststart`, not a sidecar.
    PoststartEphemeral,
    /// `poststart` sidecar.
    PoststartSidecar,
    /// `poststop`: runs after everything else is dead.
    Poststop,
}

impl Stage {
    /// The stage of `task`.
    pub fn of(task: &Task) -> Stage {
        match task.lifecycle.as_ref() {
            None => Stage::Main,
            Some(lc) => match (lc.hook.as_str(), lc.sidecar) {
                (crate::structs::LIFECYCLE_PRESTART, false) => Stage::PrestartEphemeral,
                (crate::structs::LIFECYCLE_PRESTART, true) => Stage::PrestartSidecar,
                (crate::structs::LIFECYCLE_POSTSTART, false) => Stage::PoststartEphemeral,
                (crate::structs::LIFECYCLE_POSTSTART, true) => Stage::PoststartSidecar,
                (LIFECYCLE_POSTSTOP, _) => Stage::Poststop,
                _ => Stage::Main,
            },
        }
    }
}

impl TaskRunnerHandle {
    /// The task's name.
    pub fn name(&self) -> &str {
        &self.task.name
    }

    /// The task definition.
    pub fn task(&self) -> &Task {
        &self.task
    }

    /// The task's lifecycle stage.
    pub fn stage(&self) -> Stage {
        Stage::of(&self.task)
    }

    /// Whether the task is the group's leader.
    pub fn is_leader(&self) -> bool {
        self.task.leader
    }

    /// Whether the task is a (prestart or poststart) sidecar.
    pub fn is_sidecar(&self) -> bool {
        self.task.lifecycle.as_ref().is_some_and(|l| l.sidecar)
    }

    /// Whether the task runs after all others are dead.
    pub fn is_poststop(&self) -> bool {
        self.stage() == Stage::Poststop
    }

    /// The current state.
    pub fn state(&self) -> TaskState {
        self.shared.state()
    }

    /// Appends an event (kill reasons from the alloc runner).
    pub fn emit_event(&self, ev: TaskEvent) {
        self.shared.emit(ev);
    }

    /// Whether the runner has finished.
    pub fn is_done(&self) -> bool {
        *self.done_rx.borrow()
    }

    /// Resolves when the runner has finished.
    pub async fn wait_done(&self) {
        let mut rx = self.done_rx.clone();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Asks the runner to kill the task, after appending `event` (normally `Killing`).
    pub fn request_kill(&self, event: Option<TaskEvent>, opts: KillOpts) {
        if let Some(ev) = event {
            self.shared.emit(ev);
        }
        self.kill_tx.send_if_modified(|k| {
            if k.is_none() {
                *k = Some(opts);
                true
            } else {
                false
            }
        });
    }

    /// Kills the task and waits until its runner is done.
    pub async fn kill(&self, event: Option<TaskEvent>, opts: KillOpts) {
        self.request_kill(event, opts);
        self.wait_done().await;
    }

    /// Stops managing the task without touching it (agent shutdown).
    pub fn detach(&self) {
        self.detach_tx.send_replace(true);
    }

    /// Sends `signal` to the running task, with a `Signaling` event.
    pub async fn signal(&self, signal: &str) -> Result<(), TaskRunnerError> {
        let handle = self.shared.handle().ok_or(TaskRunnerError::NotRunning)?;
        self.shared.emit(events::signaling(signal));
        self.driver.signal_task(&handle.task_id, signal).await?;
        Ok(())
    }

    /// Starts a command inside the running task through its driver (`alloc exec`).
    pub async fn exec(
        &self,
        req: yurt_drivers::exec_session::ExecRequest,
    ) -> Result<yurt_drivers::exec_session::ExecSession, TaskRunnerError> {
        let handle = self.shared.handle().ok_or(TaskRunnerError::NotRunning)?;
        Ok(self.driver.exec_task(&handle.task_id, req).await?)
    }

    /// Restarts the running task in place without using up a restart attempt.
    pub async fn restart(&self, reason: &str) -> Result<(), TaskRunnerError> {
        let st = self.shared.state();
        if st.state != TaskStateName::Running || self.shared.handle().is_none() {
            return Err(TaskRunnerError::NotRunning);
        }
        self.send_restart(reason, false).await
    }

    /// Restarts the task whether it runs or already finished (Nomad's `AllTasks`); a task
    /// that never started, or whose runner is gone, is "not running".
    pub async fn force_restart(&self, reason: &str) -> Result<(), TaskRunnerError> {
        let st = self.shared.state();
        let running = st.state == TaskStateName::Running && self.shared.handle().is_some();
        let finished = st.state == TaskStateName::Dead && !is_zero(&st.started_at);
        if !running && !finished {
            return Err(TaskRunnerError::NotRunning);
        }
        self.send_restart(reason, true).await
    }

    async fn send_restart(&self, reason: &str, force: bool) -> Result<(), TaskRunnerError> {
        self.shared.emit(events::restart_signaled(reason));
        let (tx, rx) = oneshot::channel();
        self.restart_tx
            .send(RestartRequest { force, done: tx })
            .map_err(|_| TaskRunnerError::NotRunning)?;
        rx.await.map_err(|_| TaskRunnerError::NotRunning)
    }

    /// Current resource usage of the running instance.
    pub async fn stats(&self) -> Result<yurt_drivers::TaskResourceUsage, TaskRunnerError> {
        let handle = self.shared.handle().ok_or(TaskRunnerError::NotRunning)?;
        Ok(self.driver.task_stats(&handle.task_id).await?)
    }

    /// The running instance's driver task ID (for exec and stats), if it runs.
    pub fn driver_task_id(&self) -> Option<String> {
        self.shared.handle().map(|h| h.task_id)
    }
}

#[cfg(test)]
pub(crate) mod test_driver;
#[cfg(test)]
mod tests;
