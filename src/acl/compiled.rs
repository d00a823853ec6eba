//! A token's policies compiled into the one object every check asks: [`Acl`].

use std::collections::HashMap;

use yurt_drivers::glob::glob_match;

use super::capability::{CapSet, Level, NsCap, VarCaps, VarOp};
use super::policy::Policy;

/// The namespace value meaning "every namespace the token may see".
pub const ALL_NAMESPACES: &str = "*";

/// What a caller may do. Built once per token from its policies; immutable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    management: bool,
    namespaces: HashMap<String, CapSet>,
    /// Glob rules, checked when no exact rule names the namespace.
    wildcard_namespaces: Vec<(String, CapSet)>,
    /// `(namespace, path)` → capabilities; exact and glob rules apart, as for namespaces.
    variables: HashMap<(String, String), VarCaps>,
    wildcard_variables: Vec<(String, VarCaps)>,
    host_volumes: Vec<(String, Level)>,
    agent: Level,
    node: Level,
    operator: Level,
    plugin: Level,
}

impl Acl {
    /// The ACL of a management token (and of every caller when ACLs are off): allows all.
    pub fn management() -> Acl {
        Acl {
            management: true,
            ..Acl::default()
        }
    }

    /// The ACL that allows nothing (a token without policies).
    pub fn deny_all() -> Acl {
        Acl::default()
    }

    /// Compiles a set of policies; grants add up, and a deny on a rule replaces the rest.
    pub fn from_policies<'a>(policies: impl IntoIterator<Item = &'a Policy>) -> Acl {
        let mut acl = Acl::default();
        let mut wild_ns: HashMap<String, CapSet> = HashMap::new();
        let mut wild_vars: HashMap<String, VarCaps> = HashMap::new();
        for p in policies {
            for ns in &p.namespaces {
                let glob = ns.name.contains('*');
                let slot = if glob {
                    wild_ns.entry(ns.name.clone()).or_default()
                } else {
                    acl.namespaces.entry(ns.name.clone()).or_default()
                };
                slot.merge(ns.caps);
                for (path, caps) in &ns.variables {
                    if glob || path.contains('*') {
                        wild_vars
                            .entry(var_key(&ns.name, path))
                            .or_default()
                            .merge(*caps);
                    } else {
                        acl.variables
                            .entry((ns.name.clone(), path.clone()))
                            .or_default()
                            .merge(*caps);
                    }
                }
            }
            for hv in &p.host_volumes {
                let level = hv_level(hv.level, &hv.capabilities);
                match acl.host_volumes.iter_mut().find(|(n, _)| *n == hv.name) {
                    Some((_, l)) => *l = l.max_privilege(level),
                    None => acl.host_volumes.push((hv.name.clone(), level)),
                }
            }
            acl.agent = acl.agent.max_privilege(p.agent);
            acl.node = acl.node.max_privilege(p.node);
            acl.operator = acl.operator.max_privilege(p.operator);
            acl.plugin = acl.plugin.max_privilege(p.plugin);
        }
        acl.wildcard_namespaces = sorted(wild_ns);
        acl.wildcard_variables = sorted(wild_vars);
        acl
    }

    /// True for a management token.
    pub fn is_management(&self) -> bool {
        self.management
    }

    /// Whether `cap` is granted in namespace `ns`; for `ns = "*"`, whether any namespace
    /// grants it (the caller then filters what it returns per namespace).
    pub fn allow_ns_op(&self, ns: &str, cap: NsCap) -> bool {
        if self.management {
            return true;
        }
        if ns == ALL_NAMESPACES && self.any_namespace(|c| !c.is_deny() && c.contains(cap)) {
            return true;
        }
        self.namespace_caps(ns)
            .is_some_and(|c| !c.is_deny() && c.contains(cap))
    }

    /// Whether any capability at all is granted in `ns` (what a namespace listing shows).
    pub fn allow_namespace(&self, ns: &str) -> bool {
        if self.management {
            return true;
        }
        if ns == ALL_NAMESPACES && self.any_namespace(|c| !c.is_empty() && !c.is_deny()) {
            return true;
        }
        self.namespace_caps(ns)
            .is_some_and(|c| !c.is_empty() && !c.is_deny())
    }

    /// The capabilities that apply to `ns`: its exact rule, else the closest glob.
    fn namespace_caps(&self, ns: &str) -> Option<CapSet> {
        if let Some(c) = self.namespaces.get(ns) {
            return Some(*c);
        }
        closest_glob(&self.wildcard_namespaces, ns, |a, b| {
            let mut m = a;
            m.merge(b);
            m
        })
    }

    fn any_namespace(&self, f: impl Fn(CapSet) -> bool) -> bool {
        self.namespaces.values().any(|c| f(*c))
            || self.wildcard_namespaces.iter().any(|(_, c)| f(*c))
    }

    /// Whether `op` is granted on the variable at `path` in `ns`.
    pub fn allow_variable_op(&self, ns: &str, path: &str, op: VarOp) -> bool {
        if self.management {
            return true;
        }
        if let Some(c) = self.variables.get(&(ns.to_string(), path.to_string())) {
            return c.allows(op);
        }
        closest_glob(&self.wildcard_variables, &var_key(ns, path), |mut a, b| {
            a.merge(b);
            a
        })
        .is_some_and(|c| c.allows(op))
    }

    /// Whether the host volume `name` may be mounted (read-only when `!write`).
    pub fn allow_host_volume(&self, name: &str, write: bool) -> bool {
        if self.management {
            return true;
        }
        let exact = self
            .host_volumes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, l)| *l);
        let level = exact.or_else(|| {
            let globs: Vec<_> = self
                .host_volumes
                .iter()
                .filter(|(n, _)| n.contains('*'))
                .cloned()
                .collect();
            closest_glob(&globs, name, Level::max_privilege)
        });
        level.is_some_and(|l| {
            if write {
                l.allows_write()
            } else {
                l.allows_read()
            }
        })
    }

    pub fn allow_agent_read(&self) -> bool {
        self.management || self.agent.allows_read()
    }

    pub fn allow_agent_write(&self) -> bool {
        self.management || self.agent.allows_write()
    }

    pub fn allow_node_read(&self) -> bool {
        self.management || self.node.allows_read()
    }

    pub fn allow_node_write(&self) -> bool {
        self.management || self.node.allows_write()
    }

    pub fn allow_operator_read(&self) -> bool {
        self.management || self.operator.allows_read()
    }

    pub fn allow_operator_write(&self) -> bool {
        self.management || self.operator.allows_write()
    }

    /// `plugin { policy = "list" }` is enough to list plugins.
    pub fn allow_plugin_list(&self) -> bool {
        self.management || matches!(self.plugin, Level::List | Level::Read | Level::Write)
    }

    pub fn allow_plugin_read(&self) -> bool {
        self.management || self.plugin.allows_read()
    }
}

fn var_key(ns: &str, path: &str) -> String {
    format!("{ns}\0{path}")
}

fn hv_level(level: Level, caps: &[String]) -> Level {
    caps.iter().fold(level, |l, c| {
        l.max_privilege(match c.as_str() {
            "deny" => Level::Deny,
            "mount-readwrite" => Level::Write,
            "mount-readonly" => Level::Read,
            _ => Level::None,
        })
    })
}

fn sorted<T>(m: HashMap<String, T>) -> Vec<(String, T)> {
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The grant of the glob closest to `name`: the matching glob that leaves the fewest
/// characters to its wildcards (Nomad counts `len(name) - len(glob) + stars`). Globs equally
/// close are merged with `merge`, so a deny among them wins.
fn closest_glob<T: Copy>(
    globs: &[(String, T)],
    name: &str,
    merge: impl Fn(T, T) -> T,
) -> Option<T> {
    let mut best: Option<(usize, T)> = None;
    for (glob, grant) in globs {
        if !glob_match(glob, name) {
            continue;
        }
        let stars = glob.matches('*').count();
        let difference = (name.len() + stars).saturating_sub(glob.len());
        best = match best {
            Some((d, g)) if d < difference => Some((d, g)),
            Some((d, g)) if d == difference => Some((d, merge(g, *grant))),
            _ => Some((difference, *grant)),
        };
    }
    best.map(|(_, g)| g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::policy::parse;

    fn acl(rules: &[&str]) -> Acl {
        let policies: Vec<Policy> = rules.iter().map(|r| parse(r).unwrap()).collect();
        Acl::from_policies(&policies)
    }

    fn ns(name: &str, body: &str) -> String {
        format!("namespace \"{name}\" {{\n{body}\n}}\n")
    }

    #[test]
    fn shorthand_policies_expand() {
        let read = acl(&[&ns("default", "policy = \"read\"")]);
        for c in [NsCap::LIST_JOBS, NsCap::READ_JOB, NsCap::READ_JOB_SCALING] {
            assert!(read.allow_ns_op("default", c), "read grants {c}");
        }
        for c in [
            NsCap::SUBMIT_JOB,
            NsCap::ALLOC_EXEC,
            NsCap::READ_LOGS,
            NsCap::SCALE_JOB,
        ] {
            assert!(!read.allow_ns_op("default", c), "read does not grant {c}");
        }
        let write = acl(&[&ns("default", "policy = \"write\"")]);
        for c in [
            NsCap::SUBMIT_JOB,
            NsCap::ALLOC_EXEC,
            NsCap::READ_LOGS,
            NsCap::READ_FS,
            NsCap::ALLOC_LIFECYCLE,
            NsCap::DISPATCH_JOB,
            NsCap::READ_JOB,
        ] {
            assert!(write.allow_ns_op("default", c), "write grants {c}");
        }
        // alloc-node-exec is never part of a shorthand: it must be asked for by name.
        assert!(!write.allow_ns_op("default", NsCap::ALLOC_NODE_EXEC));
        let scale = acl(&[&ns("default", "policy = \"scale\"")]);
        assert!(scale.allow_ns_op("default", NsCap::SCALE_JOB));
        assert!(scale.allow_ns_op("default", NsCap::READ_JOB));
        assert!(!scale.allow_ns_op("default", NsCap::LIST_JOBS));
        assert!(!scale.allow_ns_op("default", NsCap::SUBMIT_JOB));
        let list = acl(&[&ns("default", "capabilities = [\"list-jobs\"]")]);
        assert!(list.allow_ns_op("default", NsCap::LIST_JOBS));
        assert!(!list.allow_ns_op("default", NsCap::READ_JOB));
        assert!(
            !read.allow_ns_op("other", NsCap::READ_JOB),
            "no rule, no grant"
        );
    }

    #[test]
    fn deny_replaces_grants_across_policies() {
        let a = acl(&[
            &ns("default", "policy = \"write\""),
            &ns("default", "policy = \"deny\""),
        ]);
        assert!(!a.allow_ns_op("default", NsCap::READ_JOB));
        assert!(!a.allow_namespace("default"));
        let b = acl(&[
            &ns("default", "policy = \"deny\""),
            &ns("default", "policy = \"write\""),
        ]);
        assert!(!b.allow_ns_op("default", NsCap::READ_JOB), "deny sticks");
        let c = acl(&[
            &ns("default", "policy = \"read\""),
            &ns("default", "capabilities = [\"alloc-exec\"]"),
        ]);
        assert!(c.allow_ns_op("default", NsCap::ALLOC_EXEC), "grants add up");
        assert!(c.allow_ns_op("default", NsCap::READ_JOB));
    }

    #[test]
    fn most_specific_glob_wins() {
        let a = acl(&[&format!(
            "{}{}{}",
            ns("*", "policy = \"read\""),
            ns("prod-*", "policy = \"deny\""),
            ns("prod-api", "policy = \"write\"")
        )]);
        assert!(a.allow_ns_op("dev", NsCap::READ_JOB));
        assert!(!a.allow_ns_op("dev", NsCap::SUBMIT_JOB));
        assert!(
            !a.allow_ns_op("prod-web", NsCap::READ_JOB),
            "prod-* beats *"
        );
        assert!(
            a.allow_ns_op("prod-api", NsCap::SUBMIT_JOB),
            "exact beats globs"
        );
        let b = acl(&[&format!(
            "{}{}",
            ns("team-*", "policy = \"read\""),
            ns("team-a*", "policy = \"write\"")
        )]);
        assert!(b.allow_ns_op("team-abc", NsCap::SUBMIT_JOB));
        assert!(!b.allow_ns_op("team-xyz", NsCap::SUBMIT_JOB));
    }

    #[test]
    fn deny_wins_between_equally_close_globs() {
        let a = acl(&[&format!(
            "{}{}",
            ns("a-*", "policy = \"write\""),
            ns("*-b", "policy = \"deny\"")
        )]);
        assert!(!a.allow_ns_op("a-b", NsCap::READ_JOB));
        assert!(a.allow_ns_op("a-c", NsCap::READ_JOB));
    }

    #[test]
    fn all_namespaces_asks_any() {
        let a = acl(&[&ns("qa", "policy = \"read\"")]);
        assert!(a.allow_ns_op("*", NsCap::LIST_JOBS));
        assert!(!a.allow_ns_op("*", NsCap::SUBMIT_JOB));
        assert!(a.allow_namespace("*"));
        assert!(!Acl::deny_all().allow_namespace("*"));
    }

    #[test]
    fn management_allows_all_and_empty_allows_nothing() {
        let m = Acl::management();
        assert!(m.allow_ns_op("anything", NsCap::ALLOC_NODE_EXEC));
        assert!(m.allow_node_write() && m.allow_agent_write() && m.allow_operator_write());
        assert!(m.allow_variable_op("x", "y", VarOp::Destroy));
        let none = Acl::deny_all();
        assert!(!none.allow_ns_op("default", NsCap::LIST_JOBS));
        assert!(!none.allow_node_read() && !none.allow_agent_read() && !none.allow_operator_read());
    }

    #[test]
    fn node_agent_operator_plugin_levels() {
        let a = acl(&[
            "node {\n policy = \"read\"\n}\nagent {\n policy = \"write\"\n}\nplugin {\n policy = \"list\"\n}\n",
        ]);
        assert!(a.allow_node_read() && !a.allow_node_write());
        assert!(a.allow_agent_read() && a.allow_agent_write());
        assert!(a.allow_plugin_list() && !a.allow_plugin_read());
        assert!(!a.allow_operator_read());
        let d = acl(&[
            "node {\n policy = \"write\"\n}\n",
            "node {\n policy = \"deny\"\n}\n",
        ]);
        assert!(!d.allow_node_read(), "deny wins over write");
    }

    #[test]
    fn variables_paths_and_globs() {
        let a = acl(&[&ns(
            "dev",
            "variables {\n path \"app/*\" {\n capabilities = [\"read\"]\n }\n path \"app/secret\" {\n capabilities = [\"deny\"]\n }\n path \"*\" {\n capabilities = [\"list\"]\n }\n }",
        )]);
        assert!(a.allow_variable_op("dev", "app/db", VarOp::Read));
        assert!(!a.allow_variable_op("dev", "app/db", VarOp::Write));
        assert!(!a.allow_variable_op("dev", "app/secret", VarOp::Read));
        assert!(a.allow_variable_op("dev", "other", VarOp::List));
        assert!(!a.allow_variable_op("dev", "other", VarOp::Read));
        assert!(!a.allow_variable_op("prod", "app/db", VarOp::Read));
    }

    #[test]
    fn host_volumes() {
        let a = acl(&[
            "host_volume \"data-*\" {\n policy = \"read\"\n}\nhost_volume \"data-rw\" {\n capabilities = [\"mount-readwrite\"]\n}\n",
        ]);
        assert!(a.allow_host_volume("data-x", false));
        assert!(!a.allow_host_volume("data-x", true));
        assert!(a.allow_host_volume("data-rw", true));
        assert!(!a.allow_host_volume("logs", false));
    }
}
