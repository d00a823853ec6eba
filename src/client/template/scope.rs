//! The functions that read the task's world (`env`, `file`, `nomadVar`, `nomadVarExists`,
//! `nomadVarList`). The engine calls plain functions, so what they read is put in a
//! thread-local scope for the length of one render. Like consul-template, a render never
//! waits: a function whose data has not been fetched yet records it as missing and returns
//! an empty value; the caller fetches what is missing and renders again.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use crate::gotemplate::{self, Func, FuncError, Options, TemplateError, Value};
use crate::structs::variable::{VariableDecrypted, VariableMetadata};

/// Something a template reads from the servers and is re-rendered for when it changes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dep {
    /// One variable (`nomadVar`, `nomadVarExists`).
    Var(String),
    /// The variables under a prefix (`nomadVarList`).
    List(String),
}

impl std::fmt::Display for Dep {
    /// The call that asked for it, for error messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dep::Var(p) => write!(f, "nomadVar {p:?}"),
            Dep::List(p) => write!(f, "nomadVarList {p:?}"),
        }
    }
}

impl Dep {
    /// consul-template's name for the dependency, as `Missing:` events show it.
    pub fn describe(&self, namespace: &str, region: &str) -> String {
        match self {
            Dep::Var(p) => format!("nomad.var.block({p}@{namespace}.{region})"),
            Dep::List(p) => format!("nomad.var.list({p}@{namespace}.{region})"),
        }
    }
}

/// A variable as fetched: its index and, when it exists, its items ready for templates.
/// The value is built once per fetched version so that ranging over it gives the same order
/// on every render (the engine's maps do not sort their keys).
#[derive(Debug, Clone)]
pub struct FetchedVar {
    pub index: u64,
    pub items: Option<(BTreeMap<String, String>, Value)>,
}

impl FetchedVar {
    pub fn new(index: u64, var: Option<VariableDecrypted>) -> FetchedVar {
        let items = var.map(|v| {
            let items: BTreeMap<String, String> = v.items.into_iter().collect();
            let value = Value::Map(
                items
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect::<HashMap<_, _>>(),
            );
            (items, value)
        });
        FetchedVar { index, items }
    }

    /// Whether the data differs from `other`'s (an index change alone is not a change).
    pub fn same_data(&self, other: &FetchedVar) -> bool {
        self.items.as_ref().map(|(i, _)| i) == other.items.as_ref().map(|(i, _)| i)
    }
}

/// A listing as fetched.
#[derive(Debug, Clone)]
pub struct FetchedList {
    pub index: u64,
    pub metas: Vec<VariableMetadata>,
}

/// Everything fetched from the servers so far.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub vars: HashMap<String, FetchedVar>,
    pub lists: HashMap<String, FetchedList>,
}

impl Fetched {
    /// Whether `dep` has been fetched at least once.
    pub fn has(&self, dep: &Dep) -> bool {
        match dep {
            Dep::Var(p) => self.vars.contains_key(p),
            Dep::List(p) => self.lists.contains_key(p),
        }
    }

    /// The index `dep` was last seen at (0: never).
    pub fn index(&self, dep: &Dep) -> u64 {
        match dep {
            Dep::Var(p) => self.vars.get(p).map_or(0, |v| v.index),
            Dep::List(p) => self.lists.get(p).map_or(0, |v| v.index),
        }
    }
}

/// What one template render may read.
pub struct Scope {
    pub env: Arc<BTreeMap<String, String>>,
    /// Where relative `file` paths start (the task dir).
    pub task_dir: PathBuf,
    /// What `file` may read (the alloc dir); None lifts the sandbox.
    pub sandbox: Option<PathBuf>,
    pub fetched: Arc<Fetched>,
    pub err_missing_key: bool,
}

/// What a render read from the servers.
#[derive(Debug, Default)]
pub struct Reads {
    /// Every dependency the template called for.
    pub used: BTreeSet<Dep>,
    /// Those it could not have: not fetched yet, or (`nomadVar`) not existing.
    pub missing: BTreeSet<Dep>,
}

struct Active {
    scope: Scope,
    reads: Reads,
}

thread_local! {
    static ACTIVE: RefCell<Option<Active>> = const { RefCell::new(None) };
}

/// Clears the thread's scope even if rendering unwinds.
struct Reset;

impl Drop for Reset {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.borrow_mut().take());
    }
}

/// The functions of this module together with the data-free helpers.
pub fn all_funcs() -> Vec<(&'static str, Func)> {
    let mut funcs: Vec<(&'static str, Func)> = vec![
        ("env", env as Func),
        ("envOrDefault", env_or_default),
        ("file", file),
        ("nomadVar", nomad_var),
        ("nomadVarExists", nomad_var_exists),
        ("nomadVarList", nomad_var_list),
    ];
    funcs.extend_from_slice(gotemplate::funcs::ALL);
    funcs
}

/// Renders `text` within `scope`; answers the output (or the error) and what it read.
pub fn render(
    text: &str,
    left: &str,
    right: &str,
    funcs: &[(&'static str, Func)],
    scope: Scope,
) -> (Result<String, TemplateError>, Reads) {
    ACTIVE.with(|a| {
        *a.borrow_mut() = Some(Active {
            scope,
            reads: Reads::default(),
        })
    });
    let reset = Reset;
    let opts = Options {
        left_delim: left,
        right_delim: right,
        funcs,
    };
    let out = gotemplate::render_with(text, Value::Nil, &opts);
    let reads = ACTIVE
        .with(|a| a.borrow_mut().take())
        .map(|a| a.reads)
        .unwrap_or_default();
    drop(reset);
    (out, reads)
}

fn with_active<T>(f: impl FnOnce(&mut Active) -> Result<T, FuncError>) -> Result<T, FuncError> {
    ACTIVE.with(|a| match a.borrow_mut().as_mut() {
        Some(active) => f(active),
        None => Err(FuncError::Generic(
            "this function is only available in task templates".into(),
        )),
    })
}

fn one_text(name: &str, args: &[Value]) -> Result<String, FuncError> {
    if args.len() != 1 {
        return Err(FuncError::ExactlyXArgs(name.into(), 1));
    }
    gotemplate::funcs::text(name, args, 0)
}

fn env(args: &[Value]) -> Result<Value, FuncError> {
    let name = one_text("env", args)?;
    with_active(|a| {
        Ok(Value::String(
            a.scope.env.get(&name).cloned().unwrap_or_default(),
        ))
    })
}

fn env_or_default(args: &[Value]) -> Result<Value, FuncError> {
    if args.len() != 2 {
        return Err(FuncError::ExactlyXArgs("envOrDefault".into(), 2));
    }
    let name = gotemplate::funcs::text("envOrDefault", args, 0)?;
    let default = gotemplate::funcs::text("envOrDefault", args, 1)?;
    with_active(|a| {
        Ok(Value::String(match a.scope.env.get(&name) {
            Some(v) if !v.is_empty() => v.clone(),
            _ => default,
        }))
    })
}

/// Reads a file; relative paths start at the task dir and nothing outside the alloc dir
/// may be read (Nomad's template sandbox).
fn file(args: &[Value]) -> Result<Value, FuncError> {
    let path = one_text("file", args)?;
    with_active(|a| {
        let p = super::dest::resolve(&a.scope.task_dir, a.scope.sandbox.as_deref(), &path)
            .and_then(|p| super::dest::check_real(&p, a.scope.sandbox.as_deref()).map(|()| p))
            .map_err(|e| FuncError::Generic(format!("file: {path:?}: {e}")))?;
        std::fs::read_to_string(&p)
            .map(Value::String)
            .map_err(|e| FuncError::Generic(format!("file: {path:?}: {e}")))
    })
}

fn var_path(name: &str, args: &[Value]) -> Result<String, FuncError> {
    let path = one_text(name, args)?;
    let path = path.trim().trim_matches('/').to_string();
    if path.is_empty() {
        return Err(FuncError::Generic(format!("{name}: empty variable path")));
    }
    if path.contains('@') {
        return Err(FuncError::Generic(format!(
            "{name}: {path:?}: reading another namespace or region (\"@\") is not supported; \
             a task reads the variables of its own namespace"
        )));
    }
    Ok(path)
}

/// The variable's items; while it is missing the template cannot render.
fn nomad_var(args: &[Value]) -> Result<Value, FuncError> {
    let path = var_path("nomadVar", args)?;
    with_active(|a| {
        let dep = Dep::Var(path.clone());
        a.reads.used.insert(dep.clone());
        match a
            .scope
            .fetched
            .vars
            .get(&path)
            .and_then(|v| v.items.as_ref())
        {
            Some((_, value)) => Ok(match (value, a.scope.err_missing_key) {
                // Go's missingkey=error: a struct-like value refuses unknown fields.
                (Value::Map(m), true) => Value::Object(m.clone()),
                (v, _) => v.clone(),
            }),
            None => {
                a.reads.missing.insert(dep);
                Ok(Value::Map(HashMap::new()))
            }
        }
    })
}

fn nomad_var_exists(args: &[Value]) -> Result<Value, FuncError> {
    let path = var_path("nomadVarExists", args)?;
    with_active(|a| {
        let dep = Dep::Var(path.clone());
        a.reads.used.insert(dep.clone());
        match a.scope.fetched.vars.get(&path) {
            Some(v) => Ok(Value::Bool(v.items.is_some())),
            None => {
                a.reads.missing.insert(dep);
                Ok(Value::Bool(false))
            }
        }
    })
}

fn nomad_var_list(args: &[Value]) -> Result<Value, FuncError> {
    let prefix = match args.len() {
        0 => String::new(),
        1 => gotemplate::funcs::text("nomadVarList", args, 0)?
            .trim()
            .trim_start_matches('/')
            .to_string(),
        _ => return Err(FuncError::AtLeastXArgs("nomadVarList".into(), 0)),
    };
    if prefix.contains('@') {
        return Err(FuncError::Generic(format!(
            "nomadVarList: {prefix:?}: listing another namespace or region (\"@\") is not supported"
        )));
    }
    with_active(|a| {
        let dep = Dep::List(prefix.clone());
        a.reads.used.insert(dep.clone());
        match a.scope.fetched.lists.get(&prefix) {
            Some(l) => Ok(Value::Array(l.metas.iter().map(meta_value).collect())),
            None => {
                a.reads.missing.insert(dep);
                Ok(Value::Array(Vec::new()))
            }
        }
    })
}

fn meta_value(m: &VariableMetadata) -> Value {
    let fields: HashMap<String, Value> = [
        ("Namespace", Value::String(m.namespace.clone())),
        ("Path", Value::String(m.path.clone())),
        ("CreateIndex", Value::from(m.create_index)),
        ("ModifyIndex", Value::from(m.modify_index)),
        ("CreateTime", Value::from(m.create_time)),
        ("ModifyTime", Value::from(m.modify_time)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Value::Object(fields)
}
