//! Search (`POST /v1/search`, `POST /v1/search/fuzzy`) as Nomad answers it: ID prefixes per
//! context, at most 20 per context with a truncation flag; and case-insensitive substring
//! matches of names (jobs with their groups, services, tasks, images and commands; allocations,
//! nodes, namespaces), best first, with the IDs of the objects they live in as `Scope`.
//! Both read one snapshot and see only what the caller's ACL lets it read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::acl::{Acl, NsCap, VarOp};
use crate::server::ServerError;
use crate::server::state::{Table, Tables, ns_key};
use crate::structs::de::null_default;
use crate::structs::{Job, Task};

/// Most IDs a prefix search returns per context (Nomad's `truncateLimit`).
pub const PREFIX_LIMIT: usize = 20;
/// Objects a fuzzy search looks at per context (Nomad's default `limit_query`).
pub const FUZZY_LIMIT_QUERY: usize = 20;
/// Matches a fuzzy search returns per context (Nomad's default `limit_results`).
pub const FUZZY_LIMIT_RESULTS: usize = 100;
/// Shortest fuzzy search text (Nomad's default `min_term_length`).
pub const FUZZY_MIN_TERM_LENGTH: usize = 2;

/// What a search looks through; the names are Nomad's `Context` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Context {
    Allocs,
    Deployments,
    Evals,
    Jobs,
    Namespaces,
    Nodes,
    /// Variables, by path.
    Vars,
    /// Fuzzy only: the parts of a job.
    Groups,
    Services,
    Tasks,
    Images,
    Commands,
    Classes,
}

/// The contexts this server holds objects of, in Nomad's order for `all`.
const SEARCHABLE: [Context; 7] = [
    Context::Allocs,
    Context::Jobs,
    Context::Nodes,
    Context::Evals,
    Context::Deployments,
    Context::Namespaces,
    Context::Vars,
];

impl Context {
    pub fn name(self) -> &'static str {
        match self {
            Context::Allocs => "allocs",
            Context::Deployments => "deployment",
            Context::Evals => "evals",
            Context::Jobs => "jobs",
            Context::Namespaces => "namespaces",
            Context::Nodes => "nodes",
            Context::Vars => "vars",
            Context::Groups => "groups",
            Context::Services => "services",
            Context::Tasks => "tasks",
            Context::Images => "images",
            Context::Commands => "commands",
            Context::Classes => "classes",
        }
    }

    /// The table whose index a result in this context reports.
    fn table(self) -> Table {
        match self {
            Context::Allocs => Table::Allocs,
            Context::Deployments => Table::Deployments,
            Context::Evals => Table::Evals,
            Context::Namespaces => Table::Namespaces,
            Context::Nodes => Table::Nodes,
            Context::Vars => Table::Variables,
            _ => Table::Jobs,
        }
    }

    /// `Context` of a request: one searchable context, or every one for `all`.
    fn expand(raw: &str) -> Result<Vec<Context>, ServerError> {
        if raw == "all" {
            return Ok(SEARCHABLE.to_vec());
        }
        SEARCHABLE
            .iter()
            .find(|c| c.name() == raw)
            .map(|c| vec![*c])
            .ok_or_else(|| {
                let names: Vec<&str> = SEARCHABLE.iter().map(|c| c.name()).collect();
                ServerError::BadRequest(format!(
                    "Context must be one of {names:?} or \"all\"; got {raw:?}"
                ))
            })
    }

    /// Whether `acl` may search this context in `ns` (Nomad's `filteredSearchContexts`).
    fn allowed(self, acl: &Acl, ns: &str) -> bool {
        match self {
            Context::Nodes => acl.allow_node_read(),
            Context::Namespaces => acl.allow_namespace(ns),
            // Each path is checked against the caller's variable rules instead.
            Context::Vars => true,
            _ => acl.allow_ns_op(ns, NsCap::READ_JOB),
        }
    }
}

/// `POST /v1/search`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SearchRequest {
    #[serde(deserialize_with = "null_default")]
    pub prefix: String,
    #[serde(deserialize_with = "null_default")]
    pub context: String,
    /// The namespace searched when `?namespace` is not given.
    pub namespace: Option<String>,
}

/// `POST /v1/search/fuzzy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FuzzySearchRequest {
    #[serde(deserialize_with = "null_default")]
    pub text: String,
    #[serde(deserialize_with = "null_default")]
    pub context: String,
    /// The namespace searched when `?namespace` is not given.
    pub namespace: Option<String>,
}

/// A search's answer: matches and truncation flags by context name.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SearchResponse<M> {
    pub matches: BTreeMap<&'static str, Vec<M>>,
    pub truncations: BTreeMap<&'static str, bool>,
    pub index: u64,
    pub last_contact: u64,
    pub known_leader: bool,
    pub next_token: String,
}

impl<M> SearchResponse<M> {
    fn new() -> Self {
        SearchResponse {
            matches: BTreeMap::new(),
            truncations: BTreeMap::new(),
            index: 0,
            last_contact: 0,
            known_leader: true,
            next_token: String::new(),
        }
    }
}

/// One fuzzy match: the matched name (an ID for prefix-only contexts) and the IDs of the
/// objects it belongs to, namespace first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FuzzyMatch {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Scope", skip_serializing_if = "Vec::is_empty")]
    pub scope: Vec<String>,
}

fn denied() -> ServerError {
    ServerError::Forbidden("Permission denied".into())
}

/// IDs in `ctx` starting with `prefix` that `acl` may read, in ID order (namespace first for
/// jobs), lazily: a search stops after the first 21.
fn ids_with_prefix<'a>(
    t: &'a Tables,
    acl: &'a Acl,
    ctx: Context,
    ns: &'a str,
    prefix: &'a str,
) -> Box<dyn Iterator<Item = String> + 'a> {
    let all_ns = ns == "*";
    let readable = move |obj_ns: &str| {
        (all_ns || obj_ns == ns) && (!all_ns || acl.allow_ns_op(obj_ns, NsCap::READ_JOB))
    };
    match ctx {
        Context::Jobs if all_ns => Box::new(
            t.jobs
                .iter()
                .filter(move |((jns, id), _)| id.starts_with(prefix) && readable(jns))
                .map(|((_, id), _)| id.clone()),
        ),
        Context::Jobs => Box::new(
            t.jobs
                .range(ns_key(ns, prefix)..)
                .take_while(move |((jns, id), _)| jns == ns && id.starts_with(prefix))
                .map(|((_, id), _)| id.clone()),
        ),
        Context::Allocs => Box::new(
            t.allocs
                .range::<_, str>((
                    std::ops::Bound::Included(prefix),
                    std::ops::Bound::Unbounded,
                ))
                .take_while(move |(id, _)| id.starts_with(prefix))
                .filter(move |(_, a)| readable(&a.namespace))
                .map(|(id, _)| id.to_string()),
        ),
        Context::Evals => Box::new(
            t.evals
                .range(prefix.to_string()..)
                .take_while(move |(id, _)| id.starts_with(prefix))
                .filter(move |(_, e)| readable(&e.namespace))
                .map(|(id, _)| id.clone()),
        ),
        Context::Deployments => Box::new(
            t.deployments
                .range(prefix.to_string()..)
                .take_while(move |(id, _)| id.starts_with(prefix))
                .filter(move |(_, d)| readable(&d.namespace))
                .map(|(id, _)| id.clone()),
        ),
        Context::Nodes => Box::new(
            t.nodes
                .range(prefix.to_string()..)
                .take_while(move |(id, _)| id.starts_with(prefix))
                .map(|(id, _)| id.clone()),
        ),
        Context::Namespaces => Box::new(
            t.namespaces
                .range(prefix.to_string()..)
                .take_while(move |(name, _)| name.starts_with(prefix))
                .filter(move |(name, _)| acl.allow_namespace(name))
                .map(|(name, _)| name.clone()),
        ),
        Context::Vars => Box::new(
            t.vars
                .with_prefix(ns, prefix)
                .into_iter()
                .filter(move |v| {
                    acl.allow_variable_op(&v.meta.namespace, &v.meta.path, VarOp::List)
                })
                .map(|v| v.meta.path.clone()),
        ),
        _ => Box::new(std::iter::empty()),
    }
}

/// The first [`PREFIX_LIMIT`] of `ids`, and whether there were more.
fn first_ids(mut ids: impl Iterator<Item = String>) -> (Vec<String>, bool) {
    let found: Vec<String> = ids.by_ref().take(PREFIX_LIMIT).collect();
    let more = found.len() == PREFIX_LIMIT && ids.next().is_some();
    (found, more)
}

/// A prefix search in namespace `ns` (`*` for every namespace the caller may read).
pub fn prefix_search(
    t: &Tables,
    acl: &Acl,
    ns: &str,
    req: &SearchRequest,
) -> Result<SearchResponse<String>, ServerError> {
    let asked = Context::expand(&req.context)?;
    if asked.len() == 1 && !asked[0].allowed(acl, ns) {
        return Err(denied());
    }
    let mut resp = SearchResponse::new();
    for ctx in asked.into_iter().filter(|c| c.allowed(acl, ns)) {
        let (ids, more) = first_ids(ids_with_prefix(t, acl, ctx, ns, &req.prefix));
        resp.matches.insert(ctx.name(), ids);
        resp.truncations.insert(ctx.name(), more);
        resp.index = resp.index.max(t.table_index(ctx.table()));
    }
    Ok(resp)
}

/// A candidate fuzzy match: where `text` starts in the name is its score.
struct Scored {
    ctx: Context,
    id: String,
    scope: Vec<String>,
    score: usize,
}

/// Where lower-case `text` occurs in `name`, ignoring case.
fn fuzzy_index(name: &str, text: &str) -> Option<usize> {
    name.to_lowercase().find(text)
}

fn scored(ctx: Context, name: &str, text: &str, scope: Vec<String>) -> Option<Scored> {
    fuzzy_index(name, text).map(|score| Scored {
        ctx,
        id: name.to_string(),
        scope,
        score,
    })
}

/// A task's driver setting a fuzzy search also matches: a docker image, an exec or
/// raw_exec command, a java class.
fn driver_setting(task: &Task) -> Option<(Context, &str)> {
    let (ctx, key) = match task.driver.as_str() {
        "docker" => (Context::Images, "image"),
        "exec" | "raw_exec" => (Context::Commands, "command"),
        "java" => (Context::Classes, "class"),
        _ => return None,
    };
    let value = task.config.as_ref()?.get(key)?.as_str()?;
    Some((ctx, value))
}

/// The matches in a job: its name, its groups, their services and tasks, the tasks'
/// services and driver settings.
fn job_matches(job: &Job, text: &str, out: &mut Vec<Scored>) {
    let ns = job.namespace.as_str();
    let scope = |parts: &[&str]| -> Vec<String> {
        std::iter::once(ns)
            .chain(parts.iter().copied())
            .map(str::to_string)
            .collect()
    };
    out.extend(scored(Context::Jobs, &job.name, text, scope(&[&job.id])));
    for group in job.groups() {
        let at_group = scope(&[&job.id]);
        out.extend(scored(Context::Groups, &group.name, text, at_group));
        for svc in group.services.iter().flatten() {
            let s = scope(&[&job.id, &group.name]);
            out.extend(scored(Context::Services, &svc.name, text, s));
        }
        for task in group.tasks.iter().flatten() {
            let at_task = scope(&[&job.id, &group.name, &task.name]);
            let s = scope(&[&job.id, &group.name]);
            out.extend(scored(Context::Tasks, &task.name, text, s));
            for svc in task.services.iter().flatten() {
                out.extend(scored(Context::Services, &svc.name, text, at_task.clone()));
            }
            if let Some((ctx, value)) = driver_setting(task) {
                out.extend(scored(ctx, value, text, at_task.clone()));
            }
        }
    }
}

/// The first [`FUZZY_LIMIT_QUERY`] objects of a fuzzy context that `acl` may read, and
/// whether more were left unexamined.
fn fuzzy_objects(t: &Tables, acl: &Acl, ctx: Context, ns: &str, text: &str) -> (Vec<Scored>, bool) {
    let all_ns = ns == "*";
    let readable = |obj_ns: &str| {
        if all_ns {
            acl.allow_ns_op(obj_ns, NsCap::READ_JOB)
        } else {
            obj_ns == ns
        }
    };
    let mut out = Vec::new();
    let more = match ctx {
        Context::Jobs => {
            let mut jobs = t.jobs.values().filter(|j| readable(&j.namespace));
            for job in jobs.by_ref().take(FUZZY_LIMIT_QUERY) {
                job_matches(job, text, &mut out);
            }
            jobs.next().is_some()
        }
        Context::Allocs => {
            let mut allocs = t.allocs.values().filter(|a| readable(&a.namespace));
            for a in allocs.by_ref().take(FUZZY_LIMIT_QUERY) {
                let scope = vec![a.namespace.to_string(), a.id.clone()];
                out.extend(scored(Context::Allocs, &a.name, text, scope));
            }
            allocs.next().is_some()
        }
        Context::Nodes => {
            let mut nodes = t.nodes.values();
            for n in nodes.by_ref().take(FUZZY_LIMIT_QUERY) {
                out.extend(scored(Context::Nodes, &n.name, text, vec![n.id.clone()]));
            }
            nodes.next().is_some()
        }
        Context::Namespaces => {
            let mut names = t.namespaces.keys().filter(|n| acl.allow_namespace(n));
            for n in names.by_ref().take(FUZZY_LIMIT_QUERY) {
                out.extend(scored(Context::Namespaces, n, text, Vec::new()));
            }
            names.next().is_some()
        }
        _ => false,
    };
    (out, more)
}

/// A fuzzy search in namespace `ns` (`*`: every namespace, each object checked against
/// the caller's ACL). Evaluations and deployments, which have only IDs, match by prefix.
pub fn fuzzy_search(
    t: &Tables,
    acl: &Acl,
    ns: &str,
    req: &FuzzySearchRequest,
) -> Result<SearchResponse<FuzzyMatch>, ServerError> {
    let asked = Context::expand(&req.context)?;
    let all_ns = ns == "*";
    if !all_ns && asked.len() == 1 && !asked[0].allowed(acl, ns) {
        return Err(denied());
    }
    if req.text.len() < FUZZY_MIN_TERM_LENGTH {
        return Err(ServerError::BadRequest(format!(
            "fuzzy search query must be at least {FUZZY_MIN_TERM_LENGTH} characters, got {}",
            req.text.len()
        )));
    }
    let text = req.text.to_lowercase();
    let contexts = asked.into_iter().filter(|c| all_ns || c.allowed(acl, ns));
    let mut resp = SearchResponse::new();
    for ctx in contexts {
        resp.index = resp.index.max(t.table_index(ctx.table()));
        if matches!(ctx, Context::Evals | Context::Deployments) {
            let (ids, more) = first_ids(ids_with_prefix(t, acl, ctx, ns, &req.text));
            let found = ids
                .into_iter()
                .map(|id| FuzzyMatch {
                    id,
                    scope: Vec::new(),
                })
                .collect();
            resp.matches.insert(ctx.name(), found);
            resp.truncations.insert(ctx.name(), more);
            continue;
        }
        resp.truncations.insert(ctx.name(), false);
        let (found, more) = fuzzy_objects(t, acl, ctx, ns, &text);
        let mut by_ctx: BTreeMap<Context, Vec<Scored>> = BTreeMap::new();
        for s in found {
            by_ctx.entry(s.ctx).or_default().push(s);
        }
        for (c, mut list) in by_ctx {
            list.sort_by(|a, b| (a.score, a.id.len(), &a.id).cmp(&(b.score, b.id.len(), &b.id)));
            let cut = list.len() > FUZZY_LIMIT_RESULTS;
            list.truncate(FUZZY_LIMIT_RESULTS);
            if cut || more {
                resp.truncations.insert(c.name(), true);
            }
            resp.matches.insert(
                c.name(),
                list.into_iter()
                    .map(|s| FuzzyMatch {
                        id: s.id,
                        scope: s.scope,
                    })
                    .collect(),
            );
        }
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::policy::parse;
    use crate::server::state::StateStore;
    use crate::structs::{Allocation, Namespace, Node};

    fn job(ns: &str, id: &str, name: &str) -> Job {
        let mut j: Job = serde_json::from_value(serde_json::json!({
            "ID": id, "Name": name, "Namespace": ns,
            "TaskGroups": [{"Name": "frontend", "Services": [{"Name": "web-svc"}], "Tasks": [
                {"Name": "nginx", "Driver": "docker", "Config": {"image": "nginx:1.25"}},
                {"Name": "sidecar", "Driver": "raw_exec", "Config": {"command": "/usr/bin/envoy"}}
            ]}]
        }))
        .unwrap();
        crate::structs::canonicalize::canonicalize_job(&mut j, "global");
        j
    }

    fn store() -> StateStore {
        let s = StateStore::in_memory();
        s.write_blocking(|t| {
            t.put_namespace(Namespace {
                name: "prod".into(),
                ..Default::default()
            })?;
            for i in 0..25 {
                t.put_job(job("default", &format!("web-{i:02}"), "web"), true)?;
            }
            t.put_job(job("prod", "web-prod", "payments"), true)?;
            t.put_node(Node {
                id: "f00d-1".into(),
                name: "worker-web-1".into(),
                ..Default::default()
            })?;
            t.put_alloc_server(Allocation {
                id: "abcd-1".into(),
                namespace: "prod".into(),
                job_id: "web-prod".into(),
                name: "web-prod.frontend[0]".into(),
                ..Default::default()
            })
        })
        .unwrap();
        s
    }

    fn search(ctx: &str, prefix: &str) -> SearchRequest {
        SearchRequest {
            prefix: prefix.into(),
            context: ctx.into(),
            namespace: None,
        }
    }

    #[test]
    fn a_prefix_search_returns_twenty_ids_per_context_and_says_it_cut() {
        let s = store();
        let snap = s.snapshot();
        let all = Acl::management();
        let r = prefix_search(&snap, &all, "default", &search("all", "web")).unwrap();
        assert_eq!(r.matches["jobs"].len(), PREFIX_LIMIT);
        assert_eq!(r.matches["jobs"][0], "web-00");
        assert!(r.truncations["jobs"]);
        assert!(r.matches["allocs"].is_empty(), "the alloc is in prod");
        assert!(!r.truncations["nodes"]);
        let r = prefix_search(&snap, &all, "*", &search("allocs", "ab")).unwrap();
        assert_eq!(r.matches["allocs"], vec!["abcd-1"]);
        assert_eq!(r.matches.len(), 1);
        assert!(r.index >= 2);
        let r = prefix_search(&snap, &all, "default", &search("nodes", "f00")).unwrap();
        assert_eq!(r.matches["nodes"], vec!["f00d-1"]);
        assert!(prefix_search(&snap, &all, "default", &search("bogus", "x")).is_err());
    }

    #[test]
    fn a_prefix_search_shows_only_what_the_token_reads() {
        let s = store();
        let snap = s.snapshot();
        let policy = parse(r#"namespace "default" { policy = "read" }"#).unwrap();
        let acl = Acl::from_policies([&policy]);
        assert!(matches!(
            prefix_search(&snap, &acl, "prod", &search("jobs", "web")),
            Err(ServerError::Forbidden(_))
        ));
        assert!(matches!(
            prefix_search(&snap, &acl, "default", &search("nodes", "f")),
            Err(ServerError::Forbidden(_))
        ));
        let r = prefix_search(&snap, &acl, "*", &search("all", "web")).unwrap();
        assert!(!r.matches.contains_key("nodes"), "no node:read");
        assert!(r.matches["jobs"].iter().all(|id| id != "web-prod"));
        let r = prefix_search(&snap, &acl, "default", &search("namespaces", "")).unwrap();
        assert_eq!(r.matches["namespaces"], vec!["default"]);
    }

    #[test]
    fn a_fuzzy_search_finds_names_inside_jobs_with_their_scope() {
        let s = store();
        let snap = s.snapshot();
        let all = Acl::management();
        let req = |text: &str| FuzzySearchRequest {
            text: text.into(),
            context: "all".into(),
            namespace: None,
        };
        let r = fuzzy_search(&snap, &all, "prod", &req("PAY")).unwrap();
        assert_eq!(
            r.matches["jobs"],
            vec![FuzzyMatch {
                id: "payments".into(),
                scope: vec!["prod".into(), "web-prod".into()]
            }]
        );
        let r = fuzzy_search(&snap, &all, "prod", &req("ngin")).unwrap();
        assert_eq!(r.matches["tasks"][0].id, "nginx");
        assert_eq!(
            r.matches["tasks"][0].scope,
            ["prod", "web-prod", "frontend"]
        );
        assert_eq!(r.matches["images"][0].id, "nginx:1.25");
        assert_eq!(
            r.matches["images"][0].scope,
            ["prod", "web-prod", "frontend", "nginx"]
        );
        let r = fuzzy_search(&snap, &all, "prod", &req("envoy")).unwrap();
        assert_eq!(r.matches["commands"][0].id, "/usr/bin/envoy");
        let r = fuzzy_search(&snap, &all, "prod", &req("svc")).unwrap();
        assert_eq!(
            r.matches["services"][0].scope,
            ["prod", "web-prod", "frontend"]
        );
        let r = fuzzy_search(&snap, &all, "*", &req("web")).unwrap();
        assert_eq!(r.matches["nodes"][0].scope, ["f00d-1"]);
        assert_eq!(r.matches["allocs"][0].scope, ["prod", "abcd-1"]);
        assert!(r.truncations["jobs"], "26 jobs, 20 looked at");
        assert!(fuzzy_search(&snap, &all, "prod", &req("w")).is_err());
    }

    #[test]
    fn a_fuzzy_search_across_namespaces_skips_what_the_token_cannot_read() {
        let s = store();
        let snap = s.snapshot();
        let policy = parse(r#"namespace "prod" { policy = "read" }"#).unwrap();
        let acl = Acl::from_policies([&policy]);
        let r = fuzzy_search(
            &snap,
            &acl,
            "*",
            &FuzzySearchRequest {
                text: "web".into(),
                context: "jobs".into(),
                namespace: None,
            },
        )
        .unwrap();
        let services = &r.matches["services"];
        assert_eq!(services.len(), 1, "{services:?}");
        assert_eq!(services[0].scope[0], "prod");
        assert!(!r.matches.contains_key("jobs"), "no job named web in prod");
    }
}
