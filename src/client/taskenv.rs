//! The task environment (`NOMAD_*` variables, meta, ports, host env, `task.env`) and the
//! `${...}` interpolation of args, env values and driver config.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex};

use regex::{Captures, Regex};
use serde_json::Value;

use crate::structs::{Allocation, NetworkResource, Node, Task};

use super::allocdir::AllocDir;

/// Host environment variables never passed to tasks (Nomad's default `env.denylist`).
pub const DEFAULT_ENV_DENYLIST: &[&str] = &[
    "CONSUL_TOKEN",
    "CONSUL_HTTP_TOKEN",
    "CONSUL_HTTP_TOKEN_FILE",
    "NOMAD_TOKEN",
    "VAULT_TOKEN",
    "CONSUL_LICENSE",
    "NOMAD_LICENSE",
    "VAULT_LICENSE",
    "CONSUL_LICENSE_PATH",
    "NOMAD_LICENSE_PATH",
    "VAULT_LICENSE_PATH",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_METADATA_URL",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_OAUTH_ACCESS_TOKEN",
];

/// Prefixes whose keys are cleaned to `[A-Za-z0-9_.]` (labels and meta keys are user text).
const CLEANED_PREFIXES: &[&str] = &[
    "NOMAD_ADDR_",
    "NOMAD_IP_",
    "NOMAD_PORT_",
    "NOMAD_HOST_PORT_",
    "NOMAD_META_",
];

static VAR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"\$\{(?:env\["([^"]*)"\]|([a-zA-Z0-9_\-.]+))\}"#).expect("constant regex")
});

/// How the task sees its directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirMode {
    /// No filesystem isolation (raw_exec): host paths.
    Host,
    /// Chroot or container: `/alloc`, `/local`, `/secrets`.
    Isolated,
}

/// The node values `${node.*}`, `${attr.*}` and `${meta.*}` resolve to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeValues {
    values: BTreeMap<String, String>,
    datacenter: String,
}

impl NodeValues {
    /// The values of `node` in `region`.
    pub fn from_node(node: &Node, region: &str) -> Self {
        let mut values = BTreeMap::new();
        values.insert("node.unique.id".into(), node.id.clone());
        values.insert("node.unique.name".into(), node.name.clone());
        values.insert("node.datacenter".into(), node.datacenter.clone());
        values.insert("node.region".into(), region.to_string());
        values.insert("node.class".into(), node.node_class.clone());
        values.insert("node.pool".into(), node.node_pool.clone());
        for (k, v) in node.attributes.iter().flatten() {
            values.insert(format!("attr.{k}"), v.clone());
            values.insert(format!("node.attr.{k}"), v.clone());
        }
        for (k, v) in node.meta.iter().flatten() {
            values.insert(format!("meta.{k}"), v.clone());
            values.insert(format!("node.meta.{k}"), v.clone());
        }
        NodeValues {
            values,
            datacenter: node.datacenter.clone(),
        }
    }

    fn get(&self, key: &str) -> Option<&String> {
        self.values.get(key)
    }
}

/// One copy of the node values shared by every task while the node stays the same: each
/// task used to hold its own (a few KiB per task, two entries per node attribute).
#[derive(Debug, Default)]
pub struct SharedNodeValues(Mutex<Arc<NodeValues>>);

impl SharedNodeValues {
    /// The values of `node` in `region`: the shared copy when they have not changed.
    pub fn get(&self, node: &Node, region: &str) -> Arc<NodeValues> {
        let fresh = NodeValues::from_node(node, region);
        let mut shared = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if **shared != fresh {
            *shared = Arc::new(fresh);
        }
        shared.clone()
    }
}

/// What the environment is built from.
pub struct TaskEnvInput<'a> {
    /// The allocation the task belongs to (with its job).
    pub alloc: &'a Allocation,
    /// The task.
    pub task: &'a Task,
    /// The node's interpolation values.
    pub node: &'a Arc<NodeValues>,
    /// The agent's region.
    pub region: &'a str,
    /// The allocation's directory.
    pub alloc_dir: &'a AllocDir,
    /// Host paths or task-visible paths for the directory variables.
    pub dir_mode: DirMode,
    /// The agent's own environment to pass on (already filtered), or `None` for image
    /// drivers, which get none.
    pub host_env: Option<&'a BTreeMap<String, String>>,
}

/// A task's environment plus the node values used for interpolation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskEnv {
    env: BTreeMap<String, String>,
    node: Arc<NodeValues>,
}

impl TaskEnv {
    /// Builds the environment in Nomad's order; later steps override earlier ones.
    pub fn build(input: &TaskEnvInput<'_>) -> TaskEnv {
        let mut env = BTreeMap::new();
        let alloc = input.alloc;
        let task = input.task;
        let td = input.alloc_dir.task_dir(&task.name);

        match input.dir_mode {
            DirMode::Host => {
                env.insert(
                    "NOMAD_ALLOC_DIR".into(),
                    path(&input.alloc_dir.shared_dir()),
                );
                env.insert("NOMAD_TASK_DIR".into(), path(&td.local_dir()));
                env.insert("NOMAD_SECRETS_DIR".into(), path(&td.secrets_dir()));
            }
            DirMode::Isolated => {
                env.insert("NOMAD_ALLOC_DIR".into(), "/alloc".into());
                env.insert("NOMAD_TASK_DIR".into(), "/local".into());
                env.insert("NOMAD_SECRETS_DIR".into(), "/secrets".into());
            }
        }

        let (cpu, mem, mem_max) = task_limits(alloc, task);
        if mem > 0 {
            env.insert("NOMAD_MEMORY_LIMIT".into(), mem.to_string());
        }
        if mem_max > 0 {
            env.insert("NOMAD_MEMORY_MAX_LIMIT".into(), mem_max.to_string());
        }
        if cpu > 0 {
            env.insert("NOMAD_CPU_LIMIT".into(), cpu.to_string());
        }

        env.insert("NOMAD_ALLOC_ID".into(), alloc.id.clone());
        env.insert(
            "NOMAD_SHORT_ALLOC_ID".into(),
            crate::structs::short_id(&alloc.id).to_string(),
        );
        env.insert("NOMAD_ALLOC_NAME".into(), alloc.name.clone());
        env.insert("NOMAD_ALLOC_INDEX".into(), alloc.index().to_string());
        env.insert("NOMAD_TASK_NAME".into(), task.name.clone());
        env.insert("NOMAD_GROUP_NAME".into(), alloc.task_group.to_string());
        if let Some(job) = &alloc.job {
            env.insert("NOMAD_JOB_ID".into(), job.id.clone());
            env.insert("NOMAD_JOB_NAME".into(), job.name.clone());
            if !job.parent_id.is_empty() {
                env.insert("NOMAD_JOB_PARENT_ID".into(), job.parent_id.clone());
            }
        }
        env.insert("NOMAD_DC".into(), input.node.datacenter.clone());
        env.insert("NOMAD_REGION".into(), input.region.to_string());
        env.insert("NOMAD_NAMESPACE".into(), alloc.namespace.to_string());

        add_port_env(&mut env, alloc, &task.name);

        let mut out = TaskEnv {
            env,
            node: input.node.clone(),
        };

        for (k, v) in merged_meta(alloc, task) {
            let v = out.replace_node_first(&v);
            out.env.insert(format!("NOMAD_META_{k}"), v.clone());
            out.env
                .insert(format!("NOMAD_META_{}", k.to_uppercase()), v);
        }

        if let Some(host) = input.host_env {
            for (k, v) in host {
                if !out.env.contains_key(k) {
                    let v = out.replace_node_first(v);
                    out.env.insert(k.clone(), v);
                }
            }
        }

        for (k, v) in task.env.iter().flatten() {
            let v = out.replace_node_first(v);
            out.env.insert(k.clone(), v);
        }

        out.env = out
            .env
            .into_iter()
            .map(|(k, v)| {
                if CLEANED_PREFIXES.iter().any(|p| k.starts_with(p)) {
                    (clean_env_var(&k), v)
                } else {
                    (k, v)
                }
            })
            .collect();
        out
    }

    /// Adds what the task's `env = true` templates set; like Nomad, they override every
    /// other source.
    pub fn set_template_env(&mut self, vars: BTreeMap<String, String>) {
        self.env.extend(vars);
    }

    /// The variables to pass to the driver.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// Replaces every known `${...}` in `s`: the env first, then node values. Unknown
    /// references are left as written.
    pub fn replace(&self, s: &str) -> String {
        self.replace_with(s, false)
    }

    /// Interpolation used while the env is being built: node values win over the env.
    fn replace_node_first(&self, s: &str) -> String {
        self.replace_with(s, true)
    }

    fn replace_with(&self, s: &str, node_first: bool) -> String {
        if !s.contains("${") {
            return s.to_string();
        }
        VAR.replace_all(s, |caps: &Captures<'_>| {
            if let Some(name) = caps.get(1) {
                return self
                    .env
                    .get(name.as_str())
                    .cloned()
                    .unwrap_or_else(|| caps[0].to_string());
            }
            let name = caps.get(2).map(|m| m.as_str()).unwrap_or_default();
            let (first, second) = if node_first {
                (self.node.get(name), self.env.get(name))
            } else {
                (self.env.get(name), self.node.get(name))
            };
            first
                .or(second)
                .cloned()
                .unwrap_or_else(|| caps[0].to_string())
        })
        .into_owned()
    }

    /// Interpolates every string inside `v` (objects and arrays recursively; keys untouched).
    pub fn interpolate_value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.replace(s)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|i| self.interpolate_value(i)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.interpolate_value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// The agent's environment minus the denylist, the base of non-image tasks' environment.
pub fn filtered_host_env(denylist: &[&str]) -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| !denylist.contains(&k.as_str()))
        .collect()
}

/// Nomad's `CleanEnvVar`: bytes outside `[A-Za-z0-9_.]` (and a leading digit) become `_`.
pub fn clean_env_var(s: &str) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| match c {
            '_' | '.' | 'a'..='z' | 'A'..='Z' => c,
            '0'..='9' if i > 0 => c,
            _ => '_',
        })
        .collect()
}

/// CPU MHz, memory MB and memory max MB the task was given (allocated resources first, the
/// job's ask as a fallback for allocations from older servers).
pub fn task_limits(alloc: &Allocation, task: &Task) -> (i64, i64, i64) {
    if let Some(tr) = alloc
        .allocated_resources
        .as_ref()
        .and_then(|r| r.tasks.get(&task.name))
    {
        return (
            tr.cpu.cpu_shares,
            tr.memory.memory_mb,
            tr.memory.memory_max_mb,
        );
    }
    let r = task.resources();
    (r.cpu, r.memory_mb, r.memory_max_mb)
}

/// Job, group and task meta merged; the more specific level wins.
fn merged_meta(alloc: &Allocation, task: &Task) -> BTreeMap<String, String> {
    let mut meta = BTreeMap::new();
    if let Some(job) = &alloc.job {
        meta.extend(job.meta.clone().unwrap_or_default());
        if let Some(g) = job.group(&alloc.task_group) {
            meta.extend(g.meta.clone().unwrap_or_default());
        }
    }
    meta.extend(task.meta.clone().unwrap_or_default());
    meta
}

/// The task's own network ports (legacy task networks).
pub fn task_networks<'a>(alloc: &'a Allocation, task: &str) -> &'a [NetworkResource] {
    alloc
        .allocated_resources
        .as_ref()
        .and_then(|r| r.tasks.get(task))
        .and_then(|t| t.networks.as_deref())
        .map_or(&[], Vec::as_slice)
}

fn add_port_env(env: &mut BTreeMap<String, String>, alloc: &Allocation, task: &str) {
    for net in task_networks(alloc, task) {
        for p in net.all_ports() {
            let port = p.value.to_string();
            env.insert(format!("NOMAD_IP_{}", p.label), net.ip.clone());
            env.insert(format!("NOMAD_HOST_PORT_{}", p.label), port.clone());
            env.insert(
                format!("NOMAD_ADDR_{}", p.label),
                join_host_port(&net.ip, &port),
            );
            env.insert(format!("NOMAD_PORT_{}", p.label), port);
        }
    }
    let ports = alloc
        .allocated_resources
        .as_ref()
        .and_then(|r| r.shared.ports.as_deref())
        .unwrap_or(&[]);
    for p in ports {
        let host = p.value.to_string();
        let mapped = if p.to > 0 {
            p.to.to_string()
        } else {
            host.clone()
        };
        let addr = join_host_port(&p.host_ip, &host);
        env.insert(format!("NOMAD_HOST_IP_{}", p.label), p.host_ip.clone());
        env.insert(format!("NOMAD_HOST_PORT_{}", p.label), host);
        env.insert(format!("NOMAD_HOST_ADDR_{}", p.label), addr.clone());
        env.insert(format!("NOMAD_PORT_{}", p.label), mapped.clone());
        env.insert(format!("NOMAD_ALLOC_PORT_{}", p.label), mapped);
        env.insert(format!("NOMAD_IP_{}", p.label), p.host_ip.clone());
        env.insert(format!("NOMAD_ADDR_{}", p.label), addr);
    }
}

/// `ip:port`, with IPv6 addresses in brackets like Go's `net.JoinHostPort`.
pub fn join_host_port(ip: &str, port: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn path(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::{
        AllocatedPortMapping, AllocatedResources, AllocatedTaskResources, Job, Port, TaskGroup,
    };
    use std::sync::Arc;

    fn fixture() -> (Allocation, Task, Arc<NodeValues>) {
        let task = Task {
            name: "web".into(),
            driver: "raw_exec".into(),
            meta: Some(BTreeMap::from([("task-key".into(), "t".into())])),
            env: Some(BTreeMap::from([
                ("GREETING".into(), "hi ${NOMAD_TASK_NAME}".into()),
                ("ARCH".into(), "${attr.cpu.arch}".into()),
                ("UNKNOWN".into(), "${nope}".into()),
            ])),
            ..Default::default()
        };
        let group = TaskGroup {
            name: "cache".into(),
            meta: Some(BTreeMap::from([("group.key".into(), "g".into())])),
            tasks: Some(vec![task.clone()]),
            ..Default::default()
        };
        let job = Job {
            id: "example".into(),
            name: "example".into(),
            meta: Some(BTreeMap::from([
                ("foo".into(), "bar".into()),
                ("task-key".into(), "job".into()),
            ])),
            task_groups: Some(vec![group]),
            ..Default::default()
        };
        let mut tasks = BTreeMap::new();
        let mut tr = AllocatedTaskResources::default();
        tr.cpu.cpu_shares = 500;
        tr.memory.memory_mb = 256;
        tr.networks = Some(Arc::new(vec![NetworkResource {
            ip: "10.0.0.5".into(),
            dynamic_ports: Some(vec![Port {
                label: "legacy".into(),
                value: 23000,
                ..Default::default()
            }]),
            ..Default::default()
        }]));
        tasks.insert("web".to_string(), tr);
        let mut res = AllocatedResources {
            tasks: Arc::new(tasks.into_iter().collect()),
            ..Default::default()
        };
        res.shared.ports = Some(vec![
            AllocatedPortMapping {
                label: "http".into(),
                value: 25000,
                to: 8080,
                host_ip: "127.0.0.1".into(),
            },
            AllocatedPortMapping {
                label: "db-port".into(),
                value: 25001,
                to: 0,
                host_ip: "127.0.0.1".into(),
            },
        ]);
        let alloc = Allocation {
            id: "5456bd7a-9fc0-c0dd-6131-cbee77f57577".into(),
            name: "example.cache[3]".into(),
            namespace: "default".into(),
            task_group: "cache".into(),
            job: Some(Arc::new(job)),
            allocated_resources: Some(res),
            ..Default::default()
        };
        let node = Node {
            id: "node-1".into(),
            name: "host1".into(),
            datacenter: "dc1".into(),
            attributes: Some(BTreeMap::from([
                ("cpu.arch".into(), "amd64".into()),
                ("kernel.name".into(), "linux".into()),
            ])),
            meta: Some(BTreeMap::from([("foo".into(), "nodebar".into())])),
            ..Default::default()
        };
        (
            alloc,
            task,
            Arc::new(NodeValues::from_node(&node, "global")),
        )
    }

    fn build(mode: DirMode) -> TaskEnv {
        let (alloc, task, node) = fixture();
        let ad = AllocDir::new(std::path::Path::new("/data/alloc"), &alloc.id);
        TaskEnv::build(&TaskEnvInput {
            alloc: &alloc,
            task: &task,
            node: &node,
            region: "global",
            alloc_dir: &ad,
            dir_mode: mode,
            host_env: Some(&BTreeMap::from([
                ("PATH".into(), "/usr/bin".into()),
                ("NOMAD_TASK_NAME".into(), "host-must-not-win".into()),
            ])),
        })
    }

    #[test]
    fn nomad_variables() {
        let env = build(DirMode::Host);
        let e = env.env();
        assert_eq!(e["NOMAD_ALLOC_ID"], "5456bd7a-9fc0-c0dd-6131-cbee77f57577");
        assert_eq!(e["NOMAD_SHORT_ALLOC_ID"], "5456bd7a");
        assert_eq!(e["NOMAD_ALLOC_INDEX"], "3");
        assert_eq!(e["NOMAD_ALLOC_NAME"], "example.cache[3]");
        assert_eq!(e["NOMAD_TASK_NAME"], "web");
        assert_eq!(e["NOMAD_GROUP_NAME"], "cache");
        assert_eq!(e["NOMAD_JOB_ID"], "example");
        assert_eq!(e["NOMAD_JOB_NAME"], "example");
        assert!(!e.contains_key("NOMAD_JOB_PARENT_ID"));
        assert_eq!(e["NOMAD_DC"], "dc1");
        assert_eq!(e["NOMAD_REGION"], "global");
        assert_eq!(e["NOMAD_NAMESPACE"], "default");
        assert_eq!(e["NOMAD_CPU_LIMIT"], "500");
        assert_eq!(e["NOMAD_MEMORY_LIMIT"], "256");
        assert!(!e.contains_key("NOMAD_MEMORY_MAX_LIMIT"));
        assert_eq!(
            e["NOMAD_TASK_DIR"],
            "/data/alloc/5456bd7a-9fc0-c0dd-6131-cbee77f57577/web/local"
        );
        assert_eq!(
            e["NOMAD_ALLOC_DIR"],
            "/data/alloc/5456bd7a-9fc0-c0dd-6131-cbee77f57577/alloc"
        );
        assert_eq!(e["PATH"], "/usr/bin");

        let iso = build(DirMode::Isolated);
        assert_eq!(iso.env()["NOMAD_TASK_DIR"], "/local");
        assert_eq!(iso.env()["NOMAD_ALLOC_DIR"], "/alloc");
        assert_eq!(iso.env()["NOMAD_SECRETS_DIR"], "/secrets");
    }

    #[test]
    fn meta_in_both_casings_and_cleaned() {
        let env = build(DirMode::Host);
        let e = env.env();
        assert_eq!(e["NOMAD_META_foo"], "bar");
        assert_eq!(e["NOMAD_META_FOO"], "bar");
        // task meta wins over job meta; `-` is cleaned, `.` kept as Nomad does.
        assert_eq!(e["NOMAD_META_task_key"], "t");
        assert_eq!(e["NOMAD_META_TASK_KEY"], "t");
        assert_eq!(e["NOMAD_META_group.key"], "g");
        assert_eq!(e["NOMAD_META_GROUP.KEY"], "g");
    }

    #[test]
    fn port_variables() {
        let env = build(DirMode::Host);
        let e = env.env();
        assert_eq!(e["NOMAD_PORT_http"], "8080");
        assert_eq!(e["NOMAD_ALLOC_PORT_http"], "8080");
        assert_eq!(e["NOMAD_HOST_PORT_http"], "25000");
        assert_eq!(e["NOMAD_ADDR_http"], "127.0.0.1:25000");
        assert_eq!(e["NOMAD_HOST_ADDR_http"], "127.0.0.1:25000");
        assert_eq!(e["NOMAD_IP_http"], "127.0.0.1");
        assert_eq!(e["NOMAD_HOST_IP_http"], "127.0.0.1");
        assert_eq!(e["NOMAD_PORT_db_port"], "25001");
        assert_eq!(e["NOMAD_ALLOC_PORT_db-port"], "25001");
        assert_eq!(e["NOMAD_PORT_legacy"], "23000");
        assert_eq!(e["NOMAD_ADDR_legacy"], "10.0.0.5:23000");
        assert_eq!(join_host_port("::1", "80"), "[::1]:80");
    }

    #[test]
    fn interpolation() {
        let env = build(DirMode::Host);
        let e = env.env();
        assert_eq!(e["GREETING"], "hi web");
        assert_eq!(e["ARCH"], "amd64");
        assert_eq!(e["UNKNOWN"], "${nope}");
        assert_eq!(
            env.replace("${attr.kernel.name}/${node.unique.id}/${meta.foo}/${NOMAD_TASK_NAME}"),
            "linux/node-1/nodebar/web"
        );
        assert_eq!(
            env.replace("${nope} ${env[\"NOMAD_ALLOC_INDEX\"]}"),
            "${nope} 3"
        );
        assert_eq!(
            env.replace("${node.datacenter}-${node.region}"),
            "dc1-global"
        );
        let cfg = serde_json::json!({
            "command": "/bin/${NOMAD_TASK_NAME}",
            "args": ["${NOMAD_ALLOC_INDEX}", 7, {"x": "${attr.cpu.arch}"}],
            "n": true
        });
        assert_eq!(
            env.interpolate_value(&cfg),
            serde_json::json!({"command": "/bin/web", "args": ["3", 7, {"x": "amd64"}], "n": true})
        );
    }

    #[test]
    fn cleaning() {
        assert_eq!(clean_env_var("a-b.c"), "a_b.c");
        assert_eq!(clean_env_var("1ab"), "_ab");
        assert_eq!(clean_env_var("NOMAD_META_x y"), "NOMAD_META_x_y");
    }

    #[test]
    fn node_values_shared_until_the_node_changes() {
        let shared = SharedNodeValues::default();
        let mut node = Node {
            id: "n1".into(),
            attributes: Some(BTreeMap::from([("os.name".into(), "ubuntu".into())])),
            ..Default::default()
        };
        let a = shared.get(&node, "global");
        let b = shared.get(&node, "global");
        assert!(Arc::ptr_eq(&a, &b), "same node, one copy");
        assert_eq!(a.get("attr.os.name").map(String::as_str), Some("ubuntu"));
        node.attributes = Some(BTreeMap::from([("os.name".into(), "debian".into())]));
        let c = shared.get(&node, "global");
        assert!(!Arc::ptr_eq(&a, &c), "a changed node gets new values");
        assert_eq!(c.get("attr.os.name").map(String::as_str), Some("debian"));
        assert!(Arc::ptr_eq(&c, &shared.get(&node, "global")));
    }
}
