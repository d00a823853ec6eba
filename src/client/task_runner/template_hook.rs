//! Prestart hook `template`: renders the task's templates before the driver starts it (the
//! start waits until every template could be rendered) and merges the `env = true`
//! templates into its environment. Unless the templates are `once`, a watcher then
//! re-renders them whenever a variable they read changes and applies their change mode:
//! restart, signal, script or nothing, after a random splay — as Nomad's template manager
//! does, with its event texts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use tokio::task::JoinHandle;

use super::super::template::{ChangeMode, ChangeScript, Pass, Spec, TemplateSet, VarSource};
use super::state::TaskShared;
use super::{ChangeActions, TaskRunnerError};
use crate::structs::{Task, TaskEvent, event};

/// Nomad's `Template` event type (consul-template's name).
const TEMPLATE_EVENT: &str = "Template";
/// How many missing dependencies a `Missing:` event names before "and N more".
const MISSING_LIMIT: usize = 3;

/// The hook's state across the task's restarts: the templates render once per task runner;
/// restarts reuse what is on disk and the latest environment.
#[derive(Default)]
pub(crate) struct TemplateHook {
    env: Option<Arc<Mutex<BTreeMap<String, String>>>>,
    watcher: Option<JoinHandle<()>>,
}

impl TemplateHook {
    /// Stops watching (the task runner is done).
    pub(crate) fn stop(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
    }
}

impl Drop for TemplateHook {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Everything the hook needs from the task runner.
pub(crate) struct Inputs<'a> {
    pub shared: &'a Arc<TaskShared>,
    pub task: &'a Task,
    pub env: &'a super::super::taskenv::TaskEnv,
    pub task_dir: &'a Path,
    pub alloc_dir: &'a Path,
    pub source: Arc<dyn VarSource>,
    pub actions: ChangeActions,
    pub namespace: &'a str,
    pub region: &'a str,
}

/// `Killing` that fails the task, with `msg` (Nomad's `Template failed: …` family).
pub(crate) fn failed(msg: &str) -> TaskEvent {
    let mut ev = TaskEvent::new(event::KILLING)
        .detail("fails_task", "true")
        .detail("kill_reason", msg);
    ev.fails_task = true;
    ev.kill_reason = msg.to_string();
    ev.display_message = msg.to_string();
    ev
}

fn template_event(msg: &str) -> TaskEvent {
    let mut ev = TaskEvent::new(TEMPLATE_EVENT).detail("message", msg);
    ev.message = msg.to_string();
    ev.display_message = msg.to_string();
    ev
}

fn hook_message(msg: &str) -> TaskEvent {
    let mut ev = TaskEvent::new("Task hook message").detail("message", msg);
    ev.message = msg.to_string();
    ev.display_message = msg.to_string();
    ev
}

/// `Missing: a, b, c, and N more`, sorted, as Nomad words it.
fn missing_message(missing: &BTreeSet<String>) -> String {
    let mut names: Vec<String> = missing.iter().cloned().collect();
    if names.len() > MISSING_LIMIT {
        let more = names.len() - MISSING_LIMIT;
        names.truncate(MISSING_LIMIT);
        names.push(format!("and {more} more"));
    }
    format!("Missing: {}", names.join(", "))
}

/// The task's templates checked and ready to render; None when it has none.
fn build(inputs: &Inputs<'_>) -> Result<Option<(TemplateSet, bool)>, String> {
    let templates = inputs.task.templates.as_deref().unwrap_or_default();
    if templates.is_empty() {
        return Ok(None);
    }
    let specs = templates
        .iter()
        .map(|t| {
            Spec::new(t, inputs.task_dir, Some(inputs.alloc_dir), &|s| {
                inputs.env.replace(s)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if specs.iter().any(|s| s.once) && !specs.iter().all(|s| s.once) {
        return Err("All templates should have same Once value".into());
    }
    let once = specs.iter().all(|s| s.once);
    let set = TemplateSet::new(
        specs,
        inputs.env.env().clone(),
        inputs.task_dir.to_path_buf(),
        Some(inputs.alloc_dir.to_path_buf()),
        inputs.source.clone(),
    );
    Ok(Some((set, once)))
}

/// Renders until every template could be rendered, announcing what is missing meanwhile;
/// answers every template written on the way.
async fn first_render(
    set: &mut TemplateSet,
    shared: &TaskShared,
    namespace: &str,
    region: &str,
) -> Result<Pass, TaskEvent> {
    let mut reported = BTreeSet::new();
    let mut written = BTreeSet::new();
    loop {
        let pass = set
            .render()
            .await
            .map_err(|e| failed(&format!("Template failed: {e}")))?;
        written.extend(pass.written.iter().copied());
        if pass.missing.is_empty() {
            return Ok(Pass {
                missing: pass.missing,
                written: written.into_iter().collect(),
            });
        }
        let missing: BTreeSet<String> = pass
            .missing
            .iter()
            .map(|d| d.describe(namespace, region))
            .collect();
        if missing != reported {
            shared.emit(template_event(&missing_message(&missing)));
            reported = missing;
        }
        set.wait_for_change().await;
    }
}

fn env_failed(e: &str) -> TaskEvent {
    failed(&format!(
        "Template failed to read environment variables: {e}"
    ))
}

/// Renders the templates (the first time) and answers the variables they add to the task's
/// environment; the error is the event that fails the task.
pub(crate) async fn prestart(
    hook: &mut TemplateHook,
    inputs: Inputs<'_>,
) -> Result<BTreeMap<String, String>, TaskEvent> {
    if let Some(env) = &hook.env {
        return Ok(env.lock().unwrap_or_else(|p| p.into_inner()).clone());
    }
    let Some((mut set, once)) =
        build(&inputs).map_err(|e| failed(&format!("Template failed: {e}")))?
    else {
        return Ok(BTreeMap::new());
    };
    first_render(&mut set, inputs.shared, inputs.namespace, inputs.region).await?;
    let env = set.env_vars().map_err(|e| env_failed(&e))?;
    let shared_env = Arc::new(Mutex::new(env.clone()));
    hook.env = Some(shared_env.clone());
    if !once {
        let watcher = Watcher {
            set,
            env: shared_env,
            actions: inputs.actions,
            shared: inputs.shared.clone(),
        };
        hook.watcher = Some(tokio::spawn(watcher.run()));
    }
    Ok(env)
}

/// After an agent restart the task already runs: its templates are rendered in the
/// background and watched as usual. Output that differs from what is on disk is written and
/// its change mode applied, as Nomad does when a template renders under a running task.
pub(crate) fn restore(hook: &mut TemplateHook, inputs: Inputs<'_>) {
    let built = match build(&inputs) {
        Ok(Some(b)) => b,
        Ok(None) => return,
        Err(e) => {
            inputs
                .actions
                .kill(failed(&format!("Template failed: {e}")));
            return;
        }
    };
    let (mut set, once) = built;
    let env = Arc::new(Mutex::new(BTreeMap::new()));
    hook.env = Some(env.clone());
    let (namespace, region) = (inputs.namespace.to_string(), inputs.region.to_string());
    let actions = inputs.actions;
    let shared = inputs.shared.clone();
    hook.watcher = Some(tokio::spawn(async move {
        let pass = match first_render(&mut set, &shared, &namespace, &region).await {
            Ok(p) => p,
            Err(ev) => return actions.kill(ev),
        };
        match set.env_vars() {
            Ok(vars) => *env.lock().unwrap_or_else(|p| p.into_inner()) = vars,
            Err(e) => return actions.kill(env_failed(&e)),
        }
        let watcher = Watcher {
            set,
            env,
            actions,
            shared,
        };
        watcher.on_rendered(&pass).await;
        if !once {
            watcher.run().await;
        }
    }));
}

/// Re-renders on change and applies change modes, for as long as the task runner lives.
struct Watcher {
    set: TemplateSet,
    env: Arc<Mutex<BTreeMap<String, String>>>,
    actions: ChangeActions,
    shared: Arc<TaskShared>,
}

impl Watcher {
    async fn run(mut self) {
        loop {
            self.set.wait_for_change().await;
            self.quiesce().await;
            let pass = match self.set.render().await {
                Ok(p) => p,
                Err(e) => {
                    self.actions.kill(failed(&format!("Template failed: {e}")));
                    return;
                }
            };
            if pass.written.is_empty() {
                continue;
            }
            match self.set.env_vars() {
                Ok(env) => *self.env.lock().unwrap_or_else(|p| p.into_inner()) = env,
                Err(e) => {
                    self.actions.kill(env_failed(&e));
                    return;
                }
            }
            self.on_rendered(&pass).await;
        }
    }

    /// `Wait`: after a change, waits until nothing more changed for `min`, but no longer
    /// than `max` in all, so a burst of writes renders once.
    async fn quiesce(&mut self) {
        let bounds = self.set.specs().iter().filter_map(|s| s.wait).fold(
            None,
            |acc: Option<(Duration, Duration)>, (min, max)| match acc {
                None => Some((min, max)),
                Some((a, b)) => Some((a.max(min), b.max(max))),
            },
        );
        let Some((min, max)) = bounds else { return };
        let deadline = tokio::time::Instant::now() + max;
        loop {
            tokio::select! {
                _ = self.set.wait_for_change() => {}
                _ = tokio::time::sleep(min) => return,
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// Applies the change modes of the templates `pass` wrote.
    async fn on_rendered(&self, pass: &Pass) {
        let mut restart = false;
        let mut signals = BTreeSet::new();
        let mut scripts: Vec<ChangeScript> = Vec::new();
        let mut splay = Duration::ZERO;
        for &i in &pass.written {
            let Some(spec) = self.set.specs().get(i) else {
                continue;
            };
            match &spec.change {
                ChangeMode::Noop => continue,
                ChangeMode::Restart => restart = true,
                ChangeMode::Signal(s) => {
                    signals.insert(s.clone());
                }
                ChangeMode::Script(s) => scripts.push(s.clone()),
            }
            splay = splay.max(spec.splay);
        }
        if !restart && signals.is_empty() && scripts.is_empty() {
            return;
        }
        if !splay.is_zero() {
            let nanos = u64::try_from(splay.as_nanos()).unwrap_or(u64::MAX);
            let offset = rand::rng().random_range(0..nanos);
            tokio::time::sleep(Duration::from_nanos(offset)).await;
        }
        if restart {
            let mut ev = TaskEvent::new(event::RESTART_SIGNAL);
            ev.display_message = "Template with change_mode restart re-rendered".into();
            if let Err(e) = self.actions.restart(ev).await {
                tracing::debug!(error = %e, "template restart skipped");
            }
            return;
        }
        for sig in signals {
            let mut ev = TaskEvent::new(event::SIGNALING).detail("signal", sig.as_str());
            ev.task_signal = sig.clone();
            ev.display_message = "Template re-rendered".into();
            match self.actions.signal(ev, &sig).await {
                Ok(()) => {}
                Err(TaskRunnerError::NotRunning) => self.shared.emit(hook_message(&format!(
                    "Template skipped signal {sig}: task is not running"
                ))),
                Err(e) => {
                    self.actions.kill(failed(&format!(
                        "Template failed to send signals [{sig}]: {e}"
                    )));
                    return;
                }
            }
        }
        for script in scripts {
            self.run_script(&script).await;
        }
    }

    async fn run_script(&self, s: &ChangeScript) {
        match self.actions.exec(&s.command, &s.args, s.timeout).await {
            Ok(0) => self.shared.emit(hook_message(&format!(
                "Template successfully ran script {} with arguments: {:?}. Exit code: 0",
                s.command, s.args
            ))),
            Ok(code) => self.script_failed(
                s,
                &format!(
                    "Template ran script {} with arguments {:?} on change but it exited with code: {code}",
                    s.command, s.args
                ),
            ),
            Err(e) => self.script_failed(
                s,
                &format!(
                    "Template failed to run script {} with arguments {:?} on change: {e}",
                    s.command, s.args
                ),
            ),
        }
    }

    fn script_failed(&self, s: &ChangeScript, msg: &str) {
        let mut ev = TaskEvent::new("Task hook failed").detail("message", msg);
        ev.message = msg.to_string();
        ev.display_message = msg.to_string();
        self.shared.emit(ev);
        if s.fail_on_error {
            self.actions
                .kill(failed("Template script failed, task is being killed"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_lists_three_then_counts_the_rest() {
        let set = |n: usize| -> BTreeSet<String> { (0..n).map(|i| format!("d{i}")).collect() };
        assert_eq!(missing_message(&set(2)), "Missing: d0, d1");
        assert_eq!(missing_message(&set(5)), "Missing: d0, d1, d2, and 2 more");
    }
}
