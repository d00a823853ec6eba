//! The checks of one allocation: one loop per check of each registered native service,
//! started when its service is registered and stopped when it is not. Each loop probes at
//! the check's interval and restarts the check's task when `check_restart`'s limit of
//! consecutive failures is reached after its grace. (Nomad refuses pass/fail thresholds on
//! its own checks, so every outcome shows as it is.)

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::services::build::{Owned, native_services, service_name};
use crate::client::services::{Running, address};
use crate::client::task_runner::TaskRunnerHandle;
use crate::structs::service::{CheckMode, CheckQueryResult, CheckStatus};
use crate::structs::{Allocation, CheckRestart, ServiceCheck};

use super::probe::{self, Probe};
use super::store::CheckStore;

/// Nomad's defaults when a check names no interval or timeout.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything one check loop needs, fixed while the check runs.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    pub id: String,
    pub group: String,
    /// The task of a task service, or the task a group service's check names.
    pub task: String,
    pub service: String,
    pub check: ServiceCheck,
    /// What to probe, or why it cannot be probed.
    pub probe: Result<Probe, String>,
    /// Restart `task` on repeated failures.
    pub restart: Option<CheckRestart>,
}

fn nanos(n: i64, default: Duration) -> Duration {
    match u64::try_from(n) {
        Ok(n) if n > 0 => Duration::from_nanos(n),
        _ => default,
    }
}

/// The probe of `check` of `service` in `alloc`: its address as Nomad resolves it (the
/// check's own address mode and port, else the service's).
fn probe_of(alloc: &Allocation, owned: &Owned<'_>, check: &ServiceCheck) -> Result<Probe, String> {
    let svc = owned.service;
    let mode = match check.address_mode.as_str() {
        "" if !svc.address.is_empty() => address::MODE_AUTO,
        "" => address::MODE_HOST,
        m => m,
    };
    let label = if check.port_label.is_empty() {
        &svc.port_label
    } else {
        &check.port_label
    };
    let (ip, port) = address::resolve(&svc.address, mode, label, alloc, owned.task)?;
    let host = if port > 0 {
        crate::client::taskenv::join_host_port(&ip, &port.to_string())
    } else {
        ip
    };
    match check.r#type.as_str() {
        "http" => {
            let scheme = if check.protocol.is_empty() {
                "http"
            } else {
                check.protocol.as_str()
            };
            let path = if check.path.starts_with('/') {
                check.path.clone()
            } else {
                format!("/{}", check.path)
            };
            let method = if check.method.is_empty() {
                "GET".to_string()
            } else {
                check.method.clone()
            };
            Ok(Probe::Http {
                url: format!("{scheme}://{host}{path}"),
                method,
                headers: headers(check),
                body: check.body.clone(),
            })
        }
        "tcp" => Ok(Probe::Tcp { addr: host }),
        other => Err(format!(
            "check type {other:?} is not supported for Nomad services (use http or tcp)"
        )),
    }
}

/// A check's `Header` (`{"Name": ["value", …]}`) as pairs.
fn headers(check: &ServiceCheck) -> Vec<(String, String)> {
    let Some(map) = check.header.as_deref().and_then(|v| v.as_object()) else {
        return Vec::new();
    };
    map.iter()
        .flat_map(|(k, vs)| {
            let values: Vec<String> = match vs {
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                serde_json::Value::String(s) => vec![s.clone()],
                _ => Vec::new(),
            };
            values.into_iter().map(move |v| (k.clone(), v))
        })
        .collect()
}

/// Nomad's ID of a check of an allocation: a hash of what identifies the check, so it stays
/// the same across agent restarts and changes when the check does.
pub fn check_id(alloc_id: &str, group: &str, c: &ServiceCheck) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    // Go's hashString writes the bytes only; durations as their decimal nanoseconds.
    for s in [
        alloc_id,
        group,
        &c.task_name,
        &c.name,
        &c.r#type,
        &c.port_label,
        &c.on_update,
        &c.address_mode,
    ] {
        ctx.update(s.as_bytes());
    }
    ctx.update(c.interval.to_string().as_bytes());
    ctx.update(c.timeout.to_string().as_bytes());
    for s in [&c.protocol, &c.path, &c.method] {
        ctx.update(s.as_bytes());
    }
    ctx.update(if c.tls_skip_verify {
        b"true" as &[u8]
    } else {
        b"false"
    });
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The checks that run while `running` holds: those of the registered services.
pub fn specs(alloc: &Allocation, running: &Running) -> Vec<CheckSpec> {
    let Some(group) = alloc.job.as_ref().and_then(|j| j.group(&alloc.task_group)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for owned in native_services(group) {
        let registered = match owned.task {
            None => running.group,
            Some(t) => running.tasks.iter().any(|r| r == t),
        };
        if !registered {
            continue;
        }
        let service = service_name(alloc, owned.task, owned.service);
        for check in owned.service.checks.iter().flatten() {
            let mut check = check.clone();
            let task = owned
                .task
                .map(str::to_string)
                .unwrap_or_else(|| check.task_name.clone());
            // A task service's check belongs to its task (Nomad hashes it that way).
            if check.task_name.is_empty() {
                check.task_name = owned.task.unwrap_or_default().to_string();
            }
            out.push(CheckSpec {
                id: check_id(&alloc.id, &alloc.task_group, &check),
                group: alloc.task_group.to_string(),
                task,
                service: service.clone(),
                probe: probe_of(alloc, &owned, &check),
                restart: check
                    .check_restart
                    .clone()
                    .or_else(|| owned.service.check_restart.clone()),
                check,
            });
        }
    }
    out
}

/// The running check loops of one allocation.
pub struct AllocChecks {
    alloc_id: String,
    store: CheckStore,
    tasks: Arc<BTreeMap<String, TaskRunnerHandle>>,
    /// Woken when a check's shown status changes (deployment health may follow).
    on_change: Arc<Notify>,
    running: HashMap<String, (CheckSpec, JoinHandle<()>)>,
}

impl AllocChecks {
    /// No checks yet for `alloc_id`, whose tasks `tasks` a failing check may restart;
    /// `on_change` is woken when a check's status changes.
    pub fn new(
        alloc_id: &str,
        store: CheckStore,
        tasks: Arc<BTreeMap<String, TaskRunnerHandle>>,
        on_change: Arc<Notify>,
    ) -> Self {
        AllocChecks {
            alloc_id: alloc_id.to_string(),
            store,
            tasks,
            on_change,
            running: HashMap::new(),
        }
    }

    /// Makes `specs` the checks that run: new ones start, changed ones restart, the rest
    /// stop. Results of checks that no longer exist are dropped.
    pub fn update(&mut self, specs: Vec<CheckSpec>) {
        let wanted: HashMap<String, CheckSpec> =
            specs.into_iter().map(|s| (s.id.clone(), s)).collect();
        self.running.retain(|id, (spec, handle)| {
            let keep = wanted.get(id) == Some(spec);
            if !keep {
                handle.abort();
            }
            keep
        });
        for (id, spec) in wanted {
            if self.running.contains_key(&id) {
                continue;
            }
            let handle = tokio::spawn(run_check(
                spec.clone(),
                self.alloc_id.clone(),
                self.store.clone(),
                self.tasks.clone(),
                self.on_change.clone(),
                self.store.http(),
            ));
            self.running.insert(id, (spec, handle));
        }
        let ids: Vec<String> = self.running.keys().cloned().collect();
        if !ids.is_empty() {
            self.store.retain(&self.alloc_id, &ids);
        }
    }

    /// Whether every running healthiness check currently shows success (readiness checks
    /// never make an allocation unhealthy).
    pub fn passing(&self) -> bool {
        let results = self.store.results(&self.alloc_id);
        self.running
            .values()
            .filter(|(spec, _)| CheckMode::of(&spec.check) == CheckMode::Healthiness)
            .all(|(spec, _)| {
                results
                    .get(&spec.id)
                    .is_some_and(|r| r.status == CheckStatus::Success)
            })
    }

    /// Stops every check and forgets their results (the allocation is gone).
    pub fn stop_all(&mut self) {
        for (_, (_, handle)) in self.running.drain() {
            handle.abort();
        }
        self.store.retain(&self.alloc_id, &[]);
    }
}

impl Drop for AllocChecks {
    fn drop(&mut self) {
        for (_, (_, handle)) in self.running.drain() {
            handle.abort();
        }
    }
}

async fn run_check(
    spec: CheckSpec,
    alloc_id: String,
    store: CheckStore,
    tasks: Arc<BTreeMap<String, TaskRunnerHandle>>,
    on_change: Arc<Notify>,
    http: reqwest::Client,
) {
    let interval = nanos(spec.check.interval, DEFAULT_INTERVAL);
    let timeout = nanos(spec.check.timeout, DEFAULT_TIMEOUT);
    let mut shown = match spec.check.initial_status.as_str() {
        "passing" => CheckStatus::Success,
        "critical" => CheckStatus::Failure,
        _ => CheckStatus::Pending,
    };
    let stamp = |mut r: CheckQueryResult| {
        r.id = spec.id.clone();
        r.mode = CheckMode::of(&spec.check);
        r.group = spec.group.clone();
        r.task = spec.task.clone();
        r.service = spec.service.clone();
        r.check = spec.check.name.clone();
        r
    };
    store.set(
        &alloc_id,
        stamp(CheckQueryResult {
            status: shown,
            timestamp: crate::structs::time::now_nanos() / 1_000_000_000,
            ..Default::default()
        }),
    );
    let mut unhealthy = 0i64;
    let mut counting_from = Instant::now();
    loop {
        let r = match &spec.probe {
            Ok(p) => probe::run(p, timeout, &http).await,
            Err(e) => CheckQueryResult {
                status: CheckStatus::Failure,
                output: e.clone(),
                timestamp: crate::structs::time::now_nanos() / 1_000_000_000,
                ..Default::default()
            },
        };
        let before = shown;
        shown = r.status;
        store.set(&alloc_id, stamp(r));
        if shown != before {
            on_change.notify_one();
        }

        if let Some(cr) = &spec.restart
            && cr.limit > 0
            && counting_from.elapsed() >= nanos(cr.grace, Duration::ZERO)
        {
            unhealthy = if shown == CheckStatus::Failure {
                unhealthy + 1
            } else {
                0
            };
            if unhealthy >= cr.limit {
                unhealthy = 0;
                counting_from = Instant::now();
                if let Some(task) = tasks.get(&spec.task) {
                    let reason = format!("healthcheck: check {:?} unhealthy", spec.check.name);
                    tracing::info!(alloc_id = %alloc_id, task = %spec.task, check = %spec.check.name, "restarting task: check unhealthy");
                    if let Err(e) = task.restart(&reason).await {
                        tracing::warn!(alloc_id = %alloc_id, task = %spec.task, error = %e, "check_restart could not restart the task");
                    }
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::{AllocatedPortMapping, AllocatedResources, Job};

    fn alloc(checks: serde_json::Value) -> Allocation {
        let job: Job = serde_json::from_value(serde_json::json!({
            "ID": "web",
            "TaskGroups": [{
                "Name": "g",
                "Services": [{"Name": "api", "PortLabel": "http", "Provider": "nomad",
                              "Checks": checks,
                              "CheckRestart": {"Limit": 3, "Grace": 1_000_000_000i64}}],
                "Tasks": [{"Name": "t", "Driver": "raw_exec"}]
            }]
        }))
        .unwrap();
        let mut r = AllocatedResources::default();
        r.shared.ports = Some(vec![AllocatedPortMapping {
            label: "http".into(),
            value: 31000,
            to: 0,
            host_ip: "127.0.0.1".into(),
        }]);
        Allocation {
            id: "a1".into(),
            job_id: "web".into(),
            task_group: "g".into(),
            job: Some(Arc::new(job)),
            allocated_resources: Some(r),
            ..Default::default()
        }
    }

    #[test]
    fn specs_resolve_probes_and_inherit_check_restart() {
        let a = alloc(serde_json::json!([
            {"Name": "alive", "Type": "http", "Path": "health", "Method": "HEAD",
             "Header": {"X-A": ["1", "2"]}, "TaskName": "t"},
            {"Name": "port", "Type": "tcp"},
            {"Name": "scripted", "Type": "script", "Command": "true"}
        ]));
        assert!(
            specs(&a, &Running::default()).is_empty(),
            "nothing registered, nothing checked"
        );
        let s = specs(
            &a,
            &Running {
                group: true,
                tasks: vec![],
            },
        );
        assert_eq!(s.len(), 3);
        let http = &s[0];
        assert_eq!(
            http.probe,
            Ok(Probe::Http {
                url: "http://127.0.0.1:31000/health".into(),
                method: "HEAD".into(),
                headers: vec![("X-A".into(), "1".into()), ("X-A".into(), "2".into())],
                body: String::new(),
            })
        );
        assert_eq!(http.task, "t");
        assert_eq!(http.restart.as_ref().map(|r| r.limit), Some(3));
        assert_eq!(
            s[1].probe,
            Ok(Probe::Tcp {
                addr: "127.0.0.1:31000".into()
            })
        );
        assert!(s[2].probe.is_err());
        assert_eq!(http.id.len(), 64, "a hex SHA-256");
        assert_ne!(http.id, s[1].id);
    }
}
