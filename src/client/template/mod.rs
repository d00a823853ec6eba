//! Task templates: consul-template's Go-template syntax rendered into the task's directory
//! from the task's environment, files and Nomad variables, and rendered again when a
//! variable they read changes. The supported functions are listed in `docs/templates.md`.
//!
//! A [`TemplateSet`] holds one task's templates. [`TemplateSet::render`] renders them all,
//! fetching what they read as they ask for it; [`TemplateSet::wait_for_change`] waits on
//! blocking queries for any of it to change. The task runner's template hook drives both and
//! applies each template's change mode.

pub mod dest;
pub mod envfile;
mod scope;
pub mod source;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;

pub use dest::FileMode;
pub use scope::Dep;
use scope::{Fetched, FetchedList, FetchedVar, Scope};
pub use source::{ServerVars, VarSource};

use crate::gotemplate::Func;
use crate::rpc::RpcError;
use crate::structs::Template;

/// How long one blocking query on a watched variable waits before it is asked again.
const WATCH_WAIT: Duration = Duration::from_secs(300);
/// Renders a template may take to fetch what it reads (a variable whose path comes from
/// another variable needs two).
const MAX_ROUNDS: usize = 8;

/// What happens to the task when a template's output changes.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeMode {
    Noop,
    Restart,
    Signal(String),
    Script(ChangeScript),
}

/// `change_mode = "script"`: a command run inside the task.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeScript {
    pub command: String,
    pub args: Vec<String>,
    pub timeout: Duration,
    pub fail_on_error: bool,
}

/// One template, checked and with its paths resolved.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The template text (embedded, or read from `SourcePath`).
    pub text: String,
    pub dest: PathBuf,
    pub mode: FileMode,
    pub left_delim: String,
    pub right_delim: String,
    pub envvars: bool,
    pub err_missing_key: bool,
    pub change: ChangeMode,
    pub splay: Duration,
    /// `Wait`: the quiet time after a change and the longest delay, before re-rendering.
    pub wait: Option<(Duration, Duration)>,
    pub once: bool,
}

fn nanos(v: Option<&serde_json::Value>) -> Duration {
    Duration::from_nanos(v.and_then(serde_json::Value::as_u64).unwrap_or(0))
}

impl Spec {
    /// Checks `t` and resolves its paths; `interpolate` applies the task's `${…}` values.
    /// Errors are Nomad's wording where Nomad has one.
    pub fn new(
        t: &Template,
        task_dir: &Path,
        sandbox: Option<&Path>,
        interpolate: &dyn Fn(&str) -> String,
    ) -> Result<Spec, String> {
        let dest = dest::resolve(task_dir, sandbox, &interpolate(&t.dest_path))
            .map_err(|_| "template destination path escapes alloc directory".to_string())?;
        let text = if t.embedded_tmpl.is_empty() && !t.source_path.is_empty() {
            let src = dest::resolve(task_dir, sandbox, &interpolate(&t.source_path))
                .map_err(|_| "template source path escapes alloc directory".to_string())?;
            dest::check_real(&src, sandbox)
                .map_err(|_| "template source path escapes alloc directory".to_string())?;
            std::fs::read_to_string(&src)
                .map_err(|e| format!("failed to read template source {}: {e}", src.display()))?
        } else {
            t.embedded_tmpl.clone()
        };
        let id = |v: Option<i64>, what: &str| -> Result<Option<u32>, String> {
            match v {
                None => Ok(None),
                Some(n) if n < 0 => Ok(None),
                Some(n) => u32::try_from(n)
                    .map(Some)
                    .map_err(|_| format!("template {what} {n} is out of range")),
            }
        };
        let mode = FileMode {
            perms: dest::parse_perms(&t.perms)?,
            uid: id(t.uid, "uid")?,
            gid: id(t.gid, "gid")?,
        };
        let change = match t.change_mode.as_str() {
            "" | "restart" => ChangeMode::Restart,
            "noop" => ChangeMode::Noop,
            "signal" if t.change_signal.is_empty() => {
                return Err("must specify a signal value when change mode is signal".into());
            }
            "signal" => ChangeMode::Signal(t.change_signal.to_uppercase()),
            "script" => {
                let cs = t
                    .change_script
                    .as_deref()
                    .ok_or("must specify a change script when change mode is script")?;
                let command = cs
                    .get("Command")
                    .and_then(|v| v.as_str())
                    .filter(|c| !c.is_empty())
                    .ok_or("change script must specify a command")?;
                let args = cs
                    .get("Args")
                    .and_then(|v| v.as_array())
                    .map(|a| {
                        a.iter()
                            .map(|v| interpolate(v.as_str().unwrap_or_default()))
                            .collect()
                    })
                    .unwrap_or_default();
                let timeout = match nanos(cs.get("Timeout")) {
                    d if d.is_zero() => Duration::from_secs(5),
                    d => d,
                };
                ChangeMode::Script(ChangeScript {
                    command: interpolate(command),
                    args,
                    timeout,
                    fail_on_error: cs
                        .get("FailOnError")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false),
                })
            }
            other => return Err(format!("invalid change mode {other:?}")),
        };
        let wait = match t.wait.as_deref() {
            Some(w) if w.is_object() => {
                let (min, max) = (nanos(w.get("Min")), nanos(w.get("Max")));
                let max = if max.is_zero() { min * 4 } else { max };
                if min > max {
                    return Err(format!(
                        "wait min {} is greater than max {}",
                        crate::client::util::go_duration(min),
                        crate::client::util::go_duration(max)
                    ));
                }
                (!min.is_zero() || !max.is_zero()).then_some((min, max))
            }
            _ => None,
        };
        Ok(Spec {
            text,
            dest,
            mode,
            left_delim: t.left_delim.clone(),
            right_delim: t.right_delim.clone(),
            envvars: t.envvars,
            err_missing_key: t.error_on_missing_key,
            change,
            splay: Duration::from_nanos(u64::try_from(t.splay).unwrap_or(0)),
            wait,
            once: t.once,
        })
    }
}

/// What one [`TemplateSet::render`] did.
#[derive(Debug, Default)]
pub struct Pass {
    /// What keeps some templates from rendering (variables that do not exist yet).
    pub missing: BTreeSet<Dep>,
    /// The templates whose file was written (their output changed).
    pub written: Vec<usize>,
}

/// One task's templates and what they have read.
pub struct TemplateSet {
    specs: Vec<Spec>,
    env: Arc<BTreeMap<String, String>>,
    task_dir: PathBuf,
    sandbox: Option<PathBuf>,
    source: Arc<dyn VarSource>,
    fetched: Arc<Fetched>,
    deps: BTreeSet<Dep>,
    funcs: Vec<(&'static str, Func)>,
}

/// A fresh answer to a query on one dependency.
enum Update {
    Var(String, FetchedVar),
    List(String, FetchedList),
}

impl TemplateSet {
    /// `env` is what `env` reads; `sandbox` (the alloc dir) bounds what `file` reads.
    pub fn new(
        specs: Vec<Spec>,
        env: BTreeMap<String, String>,
        task_dir: PathBuf,
        sandbox: Option<PathBuf>,
        source: Arc<dyn VarSource>,
    ) -> TemplateSet {
        TemplateSet {
            specs,
            env: Arc::new(env),
            task_dir,
            sandbox,
            source,
            fetched: Arc::default(),
            deps: BTreeSet::new(),
            funcs: scope::all_funcs(),
        }
    }

    /// The templates.
    pub fn specs(&self) -> &[Spec] {
        &self.specs
    }

    /// Renders every template, fetching what they read, and writes those whose output
    /// changed. A template that reads a variable that does not exist is left unwritten and
    /// its variable reported in [`Pass::missing`]. An error is a template that cannot render.
    pub async fn render(&mut self) -> Result<Pass, String> {
        for _ in 0..MAX_ROUNDS {
            let mut outputs = Vec::with_capacity(self.specs.len());
            let mut used = BTreeSet::new();
            let mut missing = BTreeSet::new();
            for (i, spec) in self.specs.iter().enumerate() {
                let scope = Scope {
                    env: self.env.clone(),
                    task_dir: self.task_dir.clone(),
                    sandbox: self.sandbox.clone(),
                    fetched: self.fetched.clone(),
                    err_missing_key: spec.err_missing_key,
                };
                let (out, reads) = scope::render(
                    &spec.text,
                    &spec.left_delim,
                    &spec.right_delim,
                    &self.funcs,
                    scope,
                );
                used.extend(reads.used);
                if !reads.missing.is_empty() {
                    // Rendered with placeholders: whatever it produced (or failed on) is
                    // not the template's real output.
                    missing.extend(reads.missing);
                    outputs.push(None);
                    continue;
                }
                let text = out.map_err(|e| format!("template {}: {e}", i + 1))?;
                outputs.push(Some(text));
            }
            let unfetched: Vec<Dep> = missing
                .iter()
                .filter(|d| !self.fetched.has(d))
                .cloned()
                .collect();
            if !unfetched.is_empty() {
                for dep in unfetched {
                    let update = fetch(self.source.clone(), dep.clone(), 0, Duration::ZERO)
                        .await
                        .map_err(|e| format!("{dep}: {e}"))?;
                    self.apply(update);
                }
                continue;
            }
            let mut pass = Pass {
                missing,
                written: Vec::new(),
            };
            for (i, (spec, out)) in self.specs.iter().zip(outputs).enumerate() {
                let Some(text) = out else { continue };
                if dest::write(&spec.dest, &text, spec.mode, self.sandbox.as_deref())
                    .map_err(|e| format!("failed writing template {}: {e}", i + 1))?
                {
                    pass.written.push(i);
                }
            }
            used.extend(pass.missing.iter().cloned());
            self.deps = used;
            return Ok(pass);
        }
        Err(format!(
            "template dependencies did not settle after {MAX_ROUNDS} renders"
        ))
    }

    /// Stores a fetched value; true when its data changed.
    fn apply(&mut self, update: Update) -> bool {
        let fetched = Arc::make_mut(&mut self.fetched);
        match update {
            Update::Var(path, new) => {
                let changed = fetched
                    .vars
                    .get(&path)
                    .is_none_or(|old| !old.same_data(&new));
                fetched.vars.insert(path, new);
                changed
            }
            Update::List(prefix, new) => {
                let changed = fetched
                    .lists
                    .get(&prefix)
                    .is_none_or(|old| old.metas != new.metas);
                fetched.lists.insert(prefix, new);
                changed
            }
        }
    }

    /// Waits until something the last render read changes (never, if it read nothing from
    /// the servers). Unreachable servers are retried with a growing pause.
    pub async fn wait_for_change(&mut self) {
        if self.deps.is_empty() {
            return std::future::pending().await;
        }
        let mut backoff = Duration::from_millis(500);
        loop {
            let queries: Vec<BoxFuture<'static, Result<Update, RpcError>>> = self
                .deps
                .iter()
                .map(|d| {
                    fetch(
                        self.source.clone(),
                        d.clone(),
                        self.fetched.index(d),
                        WATCH_WAIT,
                    )
                    .boxed()
                })
                .collect();
            let (first, _, _) = futures::future::select_all(queries).await;
            match first {
                Ok(update) => {
                    backoff = Duration::from_millis(500);
                    if self.apply(update) {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "template: reading variables failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// The variables the `env = true` templates set, read back from their files.
    pub fn env_vars(&self) -> Result<BTreeMap<String, String>, String> {
        let mut all = BTreeMap::new();
        for spec in self.specs.iter().filter(|s| s.envvars) {
            let text = std::fs::read_to_string(&spec.dest)
                .map_err(|e| format!("error opening env template: {e}"))?;
            let vars = envfile::parse(&text).map_err(|e| {
                format!("error parsing env template {:?}: {e}", spec.dest.display())
            })?;
            all.extend(vars);
        }
        Ok(all)
    }
}

async fn fetch(
    source: Arc<dyn VarSource>,
    dep: Dep,
    index: u64,
    wait: Duration,
) -> Result<Update, RpcError> {
    match dep {
        Dep::Var(path) => {
            let (index, var) = source.read(&path, index, wait).await?;
            Ok(Update::Var(path, FetchedVar::new(index, var)))
        }
        Dep::List(prefix) => {
            let (index, metas) = source.list(&prefix, index, wait).await?;
            Ok(Update::List(prefix, FetchedList { index, metas }))
        }
    }
}

#[cfg(test)]
mod tests;
