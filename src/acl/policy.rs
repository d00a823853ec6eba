//! Nomad's ACL policy language, parsed from HCL or JSON into rules. A policy that does not
//! parse, or names an unknown block, key, policy or capability, is refused with a message
//! that says where.

use serde_json::{Map, Value};

use super::capability::{CapSet, Level, NsCap, VarCaps, add_implied, expand_namespace_policy};

/// Why a policy's rules were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The text is neither HCL nor JSON.
    #[error("Failed to parse ACL Policy: {0}")]
    Syntax(String),
    /// The text parsed but a rule is invalid; the message names the block.
    #[error("Invalid policy: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> PolicyError {
    PolicyError::Invalid(msg.into())
}

/// A `namespace "<glob>" { … }` block, expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRule {
    pub name: String,
    pub caps: CapSet,
    /// `variables { path "<glob>" { capabilities = […] } }`.
    pub variables: Vec<(String, VarCaps)>,
}

/// A `host_volume "<glob>" { … }` or `node_pool "<glob>" { … }` block: a level plus
/// fine-grained capabilities, kept by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedRule {
    pub name: String,
    pub level: Level,
    pub capabilities: Vec<String>,
}

/// The parsed rules of one policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub namespaces: Vec<NamespaceRule>,
    pub host_volumes: Vec<NamedRule>,
    pub node_pools: Vec<NamedRule>,
    pub agent: Level,
    pub node: Level,
    pub operator: Level,
    pub quota: Level,
    pub plugin: Level,
}

const LEVELS: &[Level] = &[Level::Deny, Level::Read, Level::Write];
const PLUGIN_LEVELS: &[Level] = &[Level::Deny, Level::Read, Level::List, Level::Write];
const OPERATOR_CAPS: &[&str] = &[
    "deny",
    "snapshot-save",
    "license-read",
    "keyring-rotate",
    "keyring-read",
    "keyring-delete",
];
const HOST_VOLUME_CAPS: &[&str] = &["deny", "mount-readonly", "mount-readwrite"];
const NODE_POOL_CAPS: &[&str] = &["delete", "deny", "read", "write"];

/// Parses policy rules written in HCL or JSON.
pub fn parse(rules: &str) -> Result<Policy, PolicyError> {
    let value = parse_text(rules)?;
    let Value::Object(root) = value else {
        return Err(invalid("the rules must be an object of blocks"));
    };
    let mut p = Policy::default();
    for (key, body) in &root {
        match key.as_str() {
            "namespace" => {
                for (name, body) in labelled(key, body)? {
                    p.namespaces.push(namespace_rule(&name, body)?);
                }
            }
            "host_volume" => {
                for (name, body) in labelled(key, body)? {
                    p.host_volumes
                        .push(named_rule(key, &name, body, HOST_VOLUME_CAPS)?);
                }
            }
            "node_pool" => {
                for (name, body) in labelled(key, body)? {
                    p.node_pools
                        .push(named_rule(key, &name, body, NODE_POOL_CAPS)?);
                }
            }
            "agent" => p.agent = simple_level(key, body, LEVELS, &[])?,
            "node" => p.node = simple_level(key, body, LEVELS, &[])?,
            "quota" => p.quota = simple_level(key, body, LEVELS, &[])?,
            "plugin" => p.plugin = simple_level(key, body, PLUGIN_LEVELS, &[])?,
            "operator" => p.operator = simple_level(key, body, LEVELS, OPERATOR_CAPS)?,
            other => return Err(invalid(format!("unknown block {other:?}"))),
        }
    }
    if p == Policy::default() {
        return Err(invalid("the rules grant nothing (no block)"));
    }
    Ok(p)
}

/// HCL, or JSON when the text is a JSON object (HCL has no top-level braces).
fn parse_text(rules: &str) -> Result<Value, PolicyError> {
    if rules.trim_start().starts_with('{') {
        return serde_json::from_str(rules).map_err(|e| PolicyError::Syntax(e.to_string()));
    }
    hcl::from_str(rules).map_err(|e| PolicyError::Syntax(e.to_string().trim().to_string()))
}

/// A labelled block: its label and body.
type Labelled<'a> = (String, &'a Map<String, Value>);

/// The `(label, body)` pairs of a labelled block kind; repeated labels come as arrays.
fn labelled<'a>(kind: &str, body: &'a Value) -> Result<Vec<Labelled<'a>>, PolicyError> {
    let mut out = Vec::new();
    for item in one_or_many(body) {
        let Value::Object(labels) = item else {
            return Err(invalid(format!(
                "{kind}: a {kind} block needs a name label"
            )));
        };
        for (label, bodies) in labels {
            for b in one_or_many(bodies) {
                let Value::Object(b) = b else {
                    return Err(invalid(format!("{kind} {label:?}: expected a block")));
                };
                out.push((label.clone(), b));
            }
        }
    }
    Ok(out)
}

fn one_or_many(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

fn string_field<'a>(
    at: &str,
    body: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, PolicyError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{at}: {key} must be a string"))),
    }
}

fn string_list(at: &str, body: &Map<String, Value>, key: &str) -> Result<Vec<String>, PolicyError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                _ => Err(invalid(format!("{at}: {key} must be a list of strings"))),
            })
            .collect(),
        Some(_) => Err(invalid(format!("{at}: {key} must be a list of strings"))),
    }
}

fn only_keys(at: &str, body: &Map<String, Value>, known: &[&str]) -> Result<(), PolicyError> {
    match body.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(invalid(format!("{at}: unknown key {k:?}"))),
        None => Ok(()),
    }
}

fn valid_name(name: &str, extra: &[char]) -> bool {
    (1..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*' || extra.contains(&c))
}

fn namespace_rule(name: &str, body: &Map<String, Value>) -> Result<NamespaceRule, PolicyError> {
    let at = format!("namespace {name:?}");
    if !valid_name(name, &[]) {
        return Err(invalid(format!("{at}: invalid namespace name")));
    }
    only_keys(&at, body, &["policy", "capabilities", "variables"])?;
    let mut caps = CapSet::EMPTY;
    for cap in string_list(&at, body, "capabilities")? {
        let c = NsCap::parse(&cap)
            .ok_or_else(|| invalid(format!("{at}: invalid namespace capability {cap:?}")))?;
        caps.insert(c);
    }
    if let Some(policy) = string_field(&at, body, "policy")?
        && !policy.is_empty()
    {
        let expanded = expand_namespace_policy(policy)
            .ok_or_else(|| invalid(format!("{at}: invalid namespace policy {policy:?}")))?;
        caps = caps.union(expanded);
    }
    add_implied(&mut caps);
    let variables = match body.get("variables") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => variables_rules(&at, v)?,
    };
    Ok(NamespaceRule {
        name: name.to_string(),
        caps,
        variables,
    })
}

fn variables_rules(at: &str, v: &Value) -> Result<Vec<(String, VarCaps)>, PolicyError> {
    let at = format!("{at}: variables");
    let mut out = Vec::new();
    for block in one_or_many(v) {
        let Value::Object(block) = block else {
            return Err(invalid(format!("{at}: expected a block")));
        };
        only_keys(&at, block, &["path"])?;
        let Some(paths) = block.get("path") else {
            continue;
        };
        for (path, body) in labelled("path", paths)? {
            let pat = format!("{at}: path {path:?}");
            if path.is_empty() {
                return Err(invalid(format!("{at}: a path block needs a path label")));
            }
            if path.starts_with('/') {
                return Err(invalid(format!("{pat}: cannot start with a leading '/'")));
            }
            only_keys(&pat, body, &["capabilities"])?;
            let mut caps = VarCaps::default();
            for cap in string_list(&pat, body, "capabilities")? {
                if !caps.add(&cap) {
                    return Err(invalid(format!(
                        "{pat}: invalid variable capability {cap:?}"
                    )));
                }
            }
            out.push((path, caps));
        }
    }
    if out.is_empty() {
        return Err(invalid(format!("{at}: no variable paths")));
    }
    Ok(out)
}

fn named_rule(
    kind: &str,
    name: &str,
    body: &Map<String, Value>,
    valid_caps: &[&str],
) -> Result<NamedRule, PolicyError> {
    let at = format!("{kind} {name:?}");
    if !valid_name(name, &['_']) {
        return Err(invalid(format!("{at}: invalid name")));
    }
    only_keys(&at, body, &["policy", "capabilities"])?;
    let level = match string_field(&at, body, "policy")? {
        None | Some("") => Level::None,
        Some(p) => {
            Level::parse(p, LEVELS).ok_or_else(|| invalid(format!("{at}: invalid policy {p:?}")))?
        }
    };
    let capabilities = string_list(&at, body, "capabilities")?;
    if let Some(bad) = capabilities
        .iter()
        .find(|c| !valid_caps.contains(&c.as_str()))
    {
        return Err(invalid(format!("{at}: invalid capability {bad:?}")));
    }
    Ok(NamedRule {
        name: name.to_string(),
        level,
        capabilities,
    })
}

/// `agent { policy = … }` and its kin. Operator capabilities other than deny grant
/// nothing yurt serves, so only their validity is checked.
fn simple_level(
    kind: &str,
    body: &Value,
    levels: &[Level],
    valid_caps: &[&str],
) -> Result<Level, PolicyError> {
    let mut level = Level::None;
    for b in one_or_many(body) {
        let Value::Object(b) = b else {
            return Err(invalid(format!("{kind}: expected a block")));
        };
        let keys: &[&str] = if valid_caps.is_empty() {
            &["policy"]
        } else {
            &["policy", "capabilities"]
        };
        only_keys(kind, b, keys)?;
        let caps = if valid_caps.is_empty() {
            Vec::new()
        } else {
            string_list(kind, b, "capabilities")?
        };
        if let Some(bad) = caps.iter().find(|c| !valid_caps.contains(&c.as_str())) {
            return Err(invalid(format!("{kind}: invalid capability {bad:?}")));
        }
        let this = match string_field(kind, b, "policy")? {
            Some(p) => Level::parse(p, levels)
                .ok_or_else(|| invalid(format!("{kind}: invalid policy {p:?}")))?,
            None if caps.iter().any(|c| c == "deny") => Level::Deny,
            None if !caps.is_empty() => Level::None,
            None => return Err(invalid(format!("{kind}: missing policy"))),
        };
        level = level.max_privilege(this);
    }
    Ok(level)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(rules: &str) -> String {
        parse(rules).unwrap_err().to_string()
    }

    #[test]
    fn hcl_and_json_give_the_same_rules() {
        let hcl = r#"
namespace "default" {
  policy = "read"
  capabilities = ["alloc-exec"]
}
node {
  policy = "write"
}
"#;
        let json = r#"{"namespace":{"default":{"policy":"read","capabilities":["alloc-exec"]}},
                       "node":{"policy":"write"}}"#;
        let a = parse(hcl).unwrap();
        assert_eq!(a, parse(json).unwrap());
        assert_eq!(a.node, Level::Write);
        let ns = &a.namespaces[0];
        assert!(ns.caps.contains(NsCap::ALLOC_EXEC));
        assert!(ns.caps.contains(NsCap::READ_JOB));
        assert!(!ns.caps.contains(NsCap::SUBMIT_JOB));
    }

    #[test]
    fn repeated_blocks_are_all_kept() {
        let p = parse(
            "namespace \"a\" {\n policy = \"read\"\n}\nnamespace \"a\" {\n policy = \"deny\"\n}\nnamespace \"b-*\" {\n policy = \"write\"\n}\n",
        )
        .unwrap();
        let names: Vec<_> = p.namespaces.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "a", "b-*"]);
    }

    #[test]
    fn variables_paths() {
        let p = parse(
            r#"
namespace "dev" {
  variables {
    path "app/*" {
      capabilities = ["read"]
    }
    path "secret" {
      capabilities = ["deny"]
    }
  }
}
"#,
        )
        .unwrap();
        let vars = &p.namespaces[0].variables;
        assert_eq!(vars.len(), 2);
        assert!(vars[0].1.read && vars[0].1.list, "read implies list");
        assert!(vars[1].1.deny);
    }

    #[test]
    fn errors_say_where() {
        assert!(err("namespace \"x\" { policy = }").starts_with("Failed to parse ACL Policy:"));
        assert!(err("namespace \"x\" { policy = }").contains("line 1"));
        assert_eq!(
            err("namespace \"default\" {\n policy = \"reed\"\n}"),
            "Invalid policy: namespace \"default\": invalid namespace policy \"reed\""
        );
        assert_eq!(
            err("namespace \"default\" {\n capabilities = [\"fly\"]\n}"),
            "Invalid policy: namespace \"default\": invalid namespace capability \"fly\""
        );
        assert_eq!(
            err("node {\n policy = \"scale\"\n}"),
            "Invalid policy: node: invalid policy \"scale\""
        );
        assert_eq!(
            err("nodes {\n policy = \"read\"\n}"),
            "Invalid policy: unknown block \"nodes\""
        );
        assert_eq!(
            err("namespace \"default\" {\n polcy = \"read\"\n}"),
            "Invalid policy: namespace \"default\": unknown key \"polcy\""
        );
        assert_eq!(
            err("namespace \"bad name\" {\n policy = \"read\"\n}"),
            "Invalid policy: namespace \"bad name\": invalid namespace name"
        );
        assert!(err("namespace \"d\" {\n variables {\n path \"/x\" {\n capabilities = [\"read\"]\n }\n }\n}").contains("leading '/'"));
        assert_eq!(
            err(""),
            "Invalid policy: the rules grant nothing (no block)"
        );
        assert!(err("{\"namespace\": ").starts_with("Failed to parse ACL Policy:"));
    }

    #[test]
    fn plugin_accepts_list_but_node_does_not() {
        assert_eq!(
            parse("plugin {\n policy = \"list\"\n}").unwrap().plugin,
            Level::List
        );
        assert!(parse("node {\n policy = \"list\"\n}").is_err());
        assert_eq!(
            parse("operator {\n capabilities = [\"deny\"]\n}")
                .unwrap()
                .operator,
            Level::Deny
        );
    }
}
