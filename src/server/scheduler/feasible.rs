//! Feasibility: may a task group run on a node at all, regardless of free resources?
//!
//! Static checks (datacenter, node pool, readiness, drivers, constraints) depend only on
//! the node and the job, so the scheduler evaluates them once per node and group. The
//! distinct_hosts / distinct_property checks depend on where the job's allocations are,
//! including the ones proposed earlier in the same plan, and are kept incrementally.

use std::collections::{HashMap, HashSet};

use regex::Regex;
use yurt_drivers::glob::glob_match;

use super::version::{VersionConstraints, VersionMode};
use crate::structs::{Affinity, Constraint, Job, Node, TaskGroup};

/// Filter reason for a node that lacks a healthy driver a task needs (Nomad's wording).
pub const FILTER_MISSING_DRIVERS: &str = "missing drivers";
/// Operand of the distinct hosts constraint.
pub const DISTINCT_HOSTS: &str = "distinct_hosts";
/// Operand of the distinct property constraint.
pub const DISTINCT_PROPERTY: &str = "distinct_property";

/// Resolves a constraint target against a node: `${attr.X}`, `${meta.X}`, the `${node.*}`
/// fields, or the literal text. `None` means the node has no such value.
pub fn resolve_target<'a>(target: &'a str, node: &'a Node) -> Option<&'a str> {
    let Some(inner) = target.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
        return Some(target);
    };
    match inner {
        "node.unique.id" => Some(&node.id),
        "node.datacenter" => Some(&node.datacenter),
        "node.unique.name" => Some(&node.name),
        "node.class" => Some(&node.node_class),
        "node.pool" => Some(if node.node_pool.is_empty() {
            "default"
        } else {
            &node.node_pool
        }),
        _ => {
            if let Some(key) = inner.strip_prefix("attr.") {
                node.attr(key)
            } else if let Some(key) = inner.strip_prefix("meta.") {
                node.meta_value(key)
            } else {
                None
            }
        }
    }
}

/// True when the node's datacenter matches one of the job's patterns (none means `*`).
pub fn datacenter_matches(patterns: Option<&[String]>, dc: &str) -> bool {
    match patterns {
        None | Some([]) => true,
        Some(ps) => ps.iter().any(|p| glob_match(p, dc)),
    }
}

/// True when a node in `node_pool` serves a job of `job_pool` (`all` serves every pool).
pub fn node_pool_matches(job_pool: &str, node_pool: &str) -> bool {
    let norm = |p: &str| if p.is_empty() { "default" } else { p }.to_string();
    job_pool == "all" || norm(job_pool) == norm(node_pool)
}

/// True when the node belongs to the set a job is placed on: ready, right datacenter and pool.
pub fn node_serves_job(job: &Job, node: &Node) -> bool {
    node.ready()
        && datacenter_matches(job.datacenters.as_deref(), &node.datacenter)
        && node_pool_matches(&job.node_pool, &node.node_pool)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operand {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Regexp,
    SetAll,
    SetAny,
    Version,
    Semver,
    IsSet,
    IsNotSet,
    DistinctHosts,
    DistinctProperty,
    Unknown,
}

impl Operand {
    fn parse(s: &str) -> Operand {
        match s {
            "=" | "==" | "is" => Operand::Eq,
            "!=" | "not" => Operand::Ne,
            "<" => Operand::Lt,
            "<=" => Operand::Le,
            ">" => Operand::Gt,
            ">=" => Operand::Ge,
            "regexp" => Operand::Regexp,
            "set_contains" | "set_contains_all" => Operand::SetAll,
            "set_contains_any" => Operand::SetAny,
            "version" => Operand::Version,
            "semver" => Operand::Semver,
            "is_set" => Operand::IsSet,
            "is_not_set" => Operand::IsNotSet,
            DISTINCT_HOSTS => Operand::DistinctHosts,
            DISTINCT_PROPERTY => Operand::DistinctProperty,
            _ => Operand::Unknown,
        }
    }
}

/// A constraint (or affinity) prepared for checking many nodes: regexes and version
/// constraints with a literal right side are compiled once.
#[derive(Debug, Clone)]
pub struct Checker {
    l_target: String,
    r_target: String,
    op: Operand,
    regex: Option<Regex>,
    version: Option<VersionConstraints>,
    /// Nomad's printed form (`"${attr.kernel.name} = linux"`), the ConstraintFiltered key.
    pub label: String,
}

impl Checker {
    /// Prepares a constraint.
    pub fn new(c: &Constraint) -> Checker {
        Checker::build(&c.l_target, &c.operand, &c.r_target)
    }

    /// Prepares an affinity's match condition (its weight is handled by the ranker).
    pub fn from_affinity(a: &Affinity) -> Checker {
        Checker::build(&a.l_target, &a.operand, &a.r_target)
    }

    fn build(l: &str, operand: &str, r: &str) -> Checker {
        let op = Operand::parse(operand);
        let literal_r = !r.starts_with("${");
        let regex = (op == Operand::Regexp && literal_r)
            .then(|| Regex::new(r).ok())
            .flatten();
        let version = match op {
            Operand::Version if literal_r => VersionConstraints::parse(r, VersionMode::Lenient),
            Operand::Semver if literal_r => VersionConstraints::parse(r, VersionMode::Semver),
            _ => None,
        };
        Checker {
            l_target: l.to_string(),
            r_target: r.to_string(),
            op,
            regex,
            version,
            label: format!("{l} {operand} {r}"),
        }
    }

    /// True for distinct_hosts / distinct_property, which need placement state.
    pub fn is_distinct(&self) -> bool {
        matches!(self.op, Operand::DistinctHosts | Operand::DistinctProperty)
    }

    /// True when the targets name a per-node unique value (defeats class-based caching).
    pub fn uses_unique(&self) -> bool {
        self.l_target.contains("unique.") || self.r_target.contains("unique.")
    }

    /// Checks the node. Distinct operands pass here; they are checked with placement state.
    pub fn matches(&self, node: &Node) -> bool {
        let l = resolve_target(&self.l_target, node);
        let r = resolve_target(&self.r_target, node);
        match self.op {
            Operand::Eq => l.is_some() && l == r,
            Operand::Ne => l != r,
            Operand::Lt | Operand::Le | Operand::Gt | Operand::Ge => match (l, r) {
                (Some(l), Some(r)) => check_order(self.op, l, r),
                _ => false,
            },
            Operand::IsSet => l.is_some(),
            Operand::IsNotSet => l.is_none(),
            Operand::Regexp => match (l, r) {
                (Some(l), Some(r)) => match &self.regex {
                    Some(re) => re.is_match(l),
                    None => Regex::new(r).is_ok_and(|re| re.is_match(l)),
                },
                _ => false,
            },
            Operand::SetAll | Operand::SetAny => match (l, r) {
                (Some(l), Some(r)) => check_set(self.op == Operand::SetAll, l, r),
                _ => false,
            },
            Operand::Version | Operand::Semver => match (l, r) {
                (Some(l), Some(r)) => match &self.version {
                    Some(vc) => vc.matches_str(l),
                    None => {
                        let mode = if self.op == Operand::Semver {
                            VersionMode::Semver
                        } else {
                            VersionMode::Lenient
                        };
                        VersionConstraints::parse(r, mode).is_some_and(|vc| vc.matches_str(l))
                    }
                },
                _ => false,
            },
            Operand::DistinctHosts | Operand::DistinctProperty => true,
            Operand::Unknown => false,
        }
    }
}

/// Checks one constraint against a node (compiles it; prefer [`Checker`] for many nodes).
pub fn check_constraint(c: &Constraint, node: &Node) -> bool {
    Checker::new(c).matches(node)
}

/// Orders numerically when both sides parse as numbers, lexically otherwise.
fn check_order(op: Operand, l: &str, r: &str) -> bool {
    use std::cmp::Ordering;
    let ord = if let (Ok(a), Ok(b)) = (l.parse::<i64>(), r.parse::<i64>()) {
        a.cmp(&b)
    } else if let (Ok(a), Ok(b)) = (l.parse::<f64>(), r.parse::<f64>()) {
        match a.partial_cmp(&b) {
            Some(o) => o,
            None => return false,
        }
    } else {
        l.cmp(r)
    };
    match op {
        Operand::Lt => ord == Ordering::Less,
        Operand::Le => ord != Ordering::Greater,
        Operand::Gt => ord == Ordering::Greater,
        Operand::Ge => ord != Ordering::Less,
        _ => false,
    }
}

/// `set_contains`: every comma-separated right value is in the left list; `_any`: one is.
fn check_set(all: bool, l: &str, r: &str) -> bool {
    let have: HashSet<&str> = l.split(',').map(str::trim).collect();
    let mut want = r.split(',').map(str::trim);
    if all {
        want.all(|w| have.contains(w))
    } else {
        want.any(|w| have.contains(w))
    }
}

/// Whether a distinct constraint applies to the whole job or to one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistinctScope {
    /// Not constrained.
    None,
    /// No two allocations of the same group on a node.
    Group,
    /// No two allocations of the job on a node.
    Job,
}

/// The static feasibility of one task group: drivers and constraints at every level.
#[derive(Debug, Clone)]
pub struct GroupFeasibility {
    job_checks: Vec<Checker>,
    drivers: Vec<String>,
    group_checks: Vec<Checker>,
    /// Where distinct_hosts applies.
    pub distinct_hosts: DistinctScope,
    /// The distinct_property constraints with their scope (true = job level).
    pub distinct_properties: Vec<(Constraint, bool)>,
}

impl GroupFeasibility {
    /// Prepares the checks of `tg` in `job` (job constraints first, as Nomad orders them).
    pub fn new(job: &Job, tg: &TaskGroup) -> GroupFeasibility {
        let mut distinct_hosts = DistinctScope::None;
        let mut distinct_properties = Vec::new();
        let mut job_checks = Vec::new();
        for c in job.constraints.iter().flatten() {
            match c.operand.as_str() {
                DISTINCT_HOSTS => distinct_hosts = DistinctScope::Job,
                DISTINCT_PROPERTY => distinct_properties.push((c.clone(), true)),
                _ => job_checks.push(Checker::new(c)),
            }
        }
        let mut group_checks = Vec::new();
        for c in tg.constraints.iter().flatten() {
            match c.operand.as_str() {
                DISTINCT_HOSTS => {
                    if distinct_hosts == DistinctScope::None {
                        distinct_hosts = DistinctScope::Group;
                    }
                }
                DISTINCT_PROPERTY => distinct_properties.push((c.clone(), false)),
                _ => group_checks.push(Checker::new(c)),
            }
        }
        let mut drivers: Vec<String> = Vec::new();
        for t in tg.tasks() {
            if !t.driver.is_empty() && !drivers.contains(&t.driver) {
                drivers.push(t.driver.clone());
            }
            // Distinct operands are rejected at task level by validation; skip them anyway.
            let task_checks = t.constraints.iter().flatten().map(Checker::new);
            group_checks.extend(task_checks.filter(|c| !c.is_distinct()));
        }
        GroupFeasibility {
            job_checks,
            drivers,
            group_checks,
            distinct_hosts,
            distinct_properties,
        }
    }

    /// Checks drivers and constraints; `Err` carries the ConstraintFiltered key.
    pub fn check(&self, node: &Node) -> Result<(), &str> {
        if let Some(c) = self.job_checks.iter().find(|c| !c.matches(node)) {
            return Err(&c.label);
        }
        if !self.drivers.iter().all(|d| node.driver_healthy(d)) {
            return Err(FILTER_MISSING_DRIVERS);
        }
        if let Some(c) = self.group_checks.iter().find(|c| !c.matches(node)) {
            return Err(&c.label);
        }
        Ok(())
    }

    /// True when a constraint names a per-node unique value.
    pub fn escapes_class(&self) -> bool {
        self.job_checks
            .iter()
            .chain(&self.group_checks)
            .any(Checker::uses_unique)
    }
}

/// Live allocations of the job being scheduled, counted per node index: existing ones not
/// stopped by the plan plus the plan's placements. Feeds distinct_hosts and anti-affinity.
#[derive(Debug, Clone, Default)]
pub struct JobCollocation {
    job: Vec<u32>,
    groups: HashMap<String, Vec<u32>>,
}

impl JobCollocation {
    /// Empty counts for `num_nodes` nodes.
    pub fn new(num_nodes: usize) -> JobCollocation {
        JobCollocation {
            job: vec![0; num_nodes],
            groups: HashMap::new(),
        }
    }

    /// Records an allocation of `group` on node `idx`.
    pub fn add(&mut self, idx: usize, group: &str) {
        if let Some(n) = self.job.get_mut(idx) {
            *n += 1;
        }
        let len = self.job.len();
        let per = self
            .groups
            .entry(group.to_string())
            .or_insert_with(|| vec![0; len]);
        if let Some(n) = per.get_mut(idx) {
            *n += 1;
        }
    }

    /// Forgets an allocation of `group` on node `idx` (one the plan replaces).
    pub fn remove(&mut self, idx: usize, group: &str) {
        if let Some(n) = self.job.get_mut(idx) {
            *n = n.saturating_sub(1);
        }
        if let Some(n) = self.groups.get_mut(group).and_then(|v| v.get_mut(idx)) {
            *n = n.saturating_sub(1);
        }
    }

    /// Allocations of the whole job on node `idx`.
    pub fn job_on(&self, idx: usize) -> u32 {
        self.job.get(idx).copied().unwrap_or(0)
    }

    /// Allocations of `group` on node `idx`.
    pub fn group_on(&self, idx: usize, group: &str) -> u32 {
        self.groups
            .get(group)
            .and_then(|v| v.get(idx))
            .copied()
            .unwrap_or(0)
    }

    /// The distinct_hosts check for `group` on node `idx`.
    pub fn distinct_hosts_ok(&self, scope: DistinctScope, idx: usize, group: &str) -> bool {
        match scope {
            DistinctScope::None => true,
            DistinctScope::Group => self.group_on(idx, group) == 0,
            DistinctScope::Job => self.job_on(idx) == 0,
        }
    }
}

/// One distinct_property constraint with the use count of each property value.
#[derive(Debug, Clone)]
pub struct DistinctProperty {
    target: String,
    limit: u64,
    /// The group it is scoped to; `None` for a job-level constraint.
    group: Option<String>,
    counts: HashMap<String, u64>,
}

impl DistinctProperty {
    /// Prepares the constraint; `group` is `None` when it was set at job level.
    pub fn new(c: &Constraint, group: Option<&str>) -> DistinctProperty {
        // RTarget defaults to 1 and validation refuses anything but a positive integer.
        let limit = c
            .r_target
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or(1);
        DistinctProperty {
            target: c.l_target.clone(),
            limit,
            group: group.map(str::to_string),
            counts: HashMap::new(),
        }
    }

    /// Counts a live allocation of `group` on `node`.
    pub fn add(&mut self, node: &Node, group: &str) {
        if self.group.as_deref().is_some_and(|g| g != group) {
            return;
        }
        if let Some(v) = resolve_target(&self.target, node) {
            *self.counts.entry(v.to_string()).or_insert(0) += 1;
        }
    }

    /// Forgets a live allocation of `group` on `node` (one the plan replaces).
    pub fn remove(&mut self, node: &Node, group: &str) {
        if self.group.as_deref().is_some_and(|g| g != group) {
            return;
        }
        if let Some(n) = resolve_target(&self.target, node).and_then(|v| self.counts.get_mut(v)) {
            *n = n.saturating_sub(1);
        }
    }

    /// May one more allocation go to `node`? `Err` is the filter reason.
    pub fn check(&self, node: &Node) -> Result<(), String> {
        let Some(v) = resolve_target(&self.target, node) else {
            return Err(format!(
                "{DISTINCT_PROPERTY}: missing property {}",
                self.target
            ));
        };
        let used = self.counts.get(v).copied().unwrap_or(0);
        if used >= self.limit {
            return Err(format!(
                "{DISTINCT_PROPERTY}: {}={v} used by {used} allocs",
                self.target
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::structs::{DriverInfo, Task};

    fn node() -> Node {
        let attrs = [
            ("kernel.name", "linux"),
            ("cpu.numcores", "8"),
            ("nomad.version", "1.6.2"),
            ("os.version", "22.04"),
            ("unique.hostname", "h1"),
            ("tags", "ssd, gpu,fast"),
            ("arch", "amd64"),
        ];
        Node {
            id: "node-1".into(),
            name: "n1".into(),
            datacenter: "dc1".into(),
            node_class: "large".into(),
            status: crate::structs::NodeStatus::Ready,
            scheduling_eligibility: "eligible".into(),
            attributes: Some(
                attrs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            meta: Some(BTreeMap::from([("rack".to_string(), "r1".to_string())])),
            drivers: Some(BTreeMap::from([
                (
                    "exec".to_string(),
                    DriverInfo {
                        detected: true,
                        healthy: true,
                        ..Default::default()
                    },
                ),
                (
                    "docker".to_string(),
                    DriverInfo {
                        detected: true,
                        healthy: false,
                        ..Default::default()
                    },
                ),
            ])),
            ..Default::default()
        }
    }

    fn c(l: &str, op: &str, r: &str) -> bool {
        check_constraint(
            &Constraint {
                l_target: l.into(),
                r_target: r.into(),
                operand: op.into(),
            },
            &node(),
        )
    }

    #[test]
    fn equality_operands() {
        for op in ["=", "==", "is"] {
            assert!(c("${attr.kernel.name}", op, "linux"));
            assert!(!c("${attr.kernel.name}", op, "windows"));
        }
        for op in ["!=", "not"] {
            assert!(c("${attr.kernel.name}", op, "windows"));
            assert!(!c("${attr.kernel.name}", op, "linux"));
        }
        // A missing attribute equals nothing but differs from every value.
        assert!(!c("${attr.missing}", "=", "x"));
        assert!(c("${attr.missing}", "!=", "x"));
    }

    #[test]
    fn targets() {
        assert!(c("${node.unique.id}", "=", "node-1"));
        assert!(c("${node.unique.name}", "=", "n1"));
        assert!(c("${node.datacenter}", "=", "dc1"));
        assert!(c("${node.class}", "=", "large"));
        assert!(c("${node.pool}", "=", "default"));
        assert!(c("${meta.rack}", "=", "r1"));
        assert!(c("${attr.arch}", "=", "${attr.arch}"));
        assert!(!c("${unknown.thing}", "is_set", ""));
    }

    #[test]
    fn ordering_is_numeric_when_both_are_numbers() {
        assert!(c("${attr.cpu.numcores}", ">", "4"));
        // Lexically "8" > "16", numerically not.
        assert!(c("${attr.cpu.numcores}", "<", "16"));
        assert!(c("${attr.cpu.numcores}", "<=", "8"));
        assert!(c("${attr.cpu.numcores}", ">=", "8"));
        assert!(c("${attr.os.version}", ">", "20.04"));
        // Lexical fallback.
        assert!(c("${attr.kernel.name}", ">", "darwin"));
        assert!(!c("${attr.kernel.name}", "<", "darwin"));
        assert!(!c("${attr.missing}", "<", "z"));
    }

    #[test]
    fn regexp_and_sets() {
        assert!(c("${attr.kernel.name}", "regexp", "^lin"));
        assert!(!c("${attr.kernel.name}", "regexp", "^win"));
        assert!(!c("${attr.kernel.name}", "regexp", "(unclosed"));
        assert!(c("${attr.tags}", "set_contains", "ssd,gpu"));
        assert!(c("${attr.tags}", "set_contains_all", "fast"));
        assert!(!c("${attr.tags}", "set_contains", "ssd,arm"));
        assert!(c("${attr.tags}", "set_contains_any", "arm, gpu"));
        assert!(!c("${attr.tags}", "set_contains_any", "arm,x"));
    }

    #[test]
    fn version_semver_and_presence() {
        assert!(c("${attr.nomad.version}", "version", ">= 1.2, < 2.0"));
        assert!(!c("${attr.nomad.version}", "version", "< 1.6"));
        assert!(c("${attr.nomad.version}", "semver", ">= 1.6.0, < 1.7"));
        assert!(!c("${attr.nomad.version}", "semver", "~> 1.6"));
        assert!(!c("${attr.missing}", "version", ">= 1.0"));
        assert!(c("${meta.rack}", "is_set", ""));
        assert!(!c("${meta.nope}", "is_set", ""));
        assert!(c("${meta.nope}", "is_not_set", ""));
        assert!(!c("${attr.kernel.name}", "bogus_op", "linux"));
    }

    #[test]
    fn datacenter_globs_and_pools() {
        let pats = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(datacenter_matches(Some(&pats(&["*"])), "dc1"));
        assert!(datacenter_matches(None, "anything"));
        assert!(datacenter_matches(Some(&pats(&["dc*"])), "dc7"));
        assert!(!datacenter_matches(Some(&pats(&["dc*"])), "eu1"));
        assert!(datacenter_matches(Some(&pats(&["us-*-1"])), "us-east-1"));
        assert!(!datacenter_matches(Some(&pats(&["us-*-1"])), "us-east-2"));
        assert!(datacenter_matches(Some(&pats(&["eu1", "dc1"])), "dc1"));
        assert!(node_pool_matches("default", ""));
        assert!(node_pool_matches("all", "gpu"));
        assert!(!node_pool_matches("default", "gpu"));
    }

    fn job_with(driver: &str, constraints: Vec<Constraint>) -> Job {
        Job {
            id: "j".into(),
            task_groups: Some(vec![TaskGroup {
                name: "g".into(),
                constraints: Some(constraints),
                tasks: Some(vec![Task {
                    name: "t".into(),
                    driver: driver.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn drivers_must_be_detected_and_healthy() {
        let n = node();
        let job = job_with("exec", vec![]);
        assert!(
            GroupFeasibility::new(&job, &job.groups()[0])
                .check(&n)
                .is_ok()
        );
        let job = job_with("docker", vec![]);
        let f = GroupFeasibility::new(&job, &job.groups()[0]);
        assert_eq!(f.check(&n), Err(FILTER_MISSING_DRIVERS));
        let job = job_with("qemu", vec![]);
        let f = GroupFeasibility::new(&job, &job.groups()[0]);
        assert_eq!(f.check(&n), Err(FILTER_MISSING_DRIVERS));
    }

    #[test]
    fn filter_reason_is_nomads_constraint_string() {
        let job = job_with(
            "exec",
            vec![Constraint {
                l_target: "${attr.kernel.name}".into(),
                r_target: "windows".into(),
                operand: "=".into(),
            }],
        );
        let f = GroupFeasibility::new(&job, &job.groups()[0]);
        assert_eq!(f.check(&node()), Err("${attr.kernel.name} = windows"));
    }

    #[test]
    fn distinct_property_limits_per_value() {
        let con = Constraint {
            l_target: "${meta.rack}".into(),
            r_target: "2".into(),
            operand: DISTINCT_PROPERTY.into(),
        };
        let mut dp = DistinctProperty::new(&con, None);
        let n = node();
        assert!(dp.check(&n).is_ok());
        dp.add(&n, "g");
        assert!(dp.check(&n).is_ok());
        dp.add(&n, "other");
        assert!(dp.check(&n).unwrap_err().contains("r1 used by 2"));
        let mut other = n.clone();
        other.meta = None;
        assert!(dp.check(&other).unwrap_err().contains("missing property"));
    }

    #[test]
    fn distinct_hosts_scopes() {
        let mut col = JobCollocation::new(3);
        col.add(1, "web");
        assert!(col.distinct_hosts_ok(DistinctScope::Group, 1, "db"));
        assert!(!col.distinct_hosts_ok(DistinctScope::Group, 1, "web"));
        assert!(!col.distinct_hosts_ok(DistinctScope::Job, 1, "db"));
        assert!(col.distinct_hosts_ok(DistinctScope::Job, 0, "db"));
        assert!(col.distinct_hosts_ok(DistinctScope::None, 1, "web"));
    }
}
