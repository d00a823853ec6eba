//! Builds the `TaskConfig` a driver starts the task from.

use serde_json::Value;

use crate::structs::{Allocation, Task};
use yurt_drivers::{LogSink, PortMapping, TaskConfig, TaskResources};

use super::super::allocdir::AllocDir;
use super::super::taskenv::{TaskEnv, task_limits, task_networks};

/// Nomad's LogConfig defaults, for jobs submitted without them.
const DEFAULT_MAX_FILES: i64 = 10;
const DEFAULT_MAX_FILE_SIZE_MB: i64 = 10;

/// The driver-side task ID: `<alloc_id>/<task>`.
pub fn task_id(alloc_id: &str, task: &str) -> String {
    format!("{alloc_id}/{task}")
}

/// Everything the driver needs, with the task's config interpolated against `env`.
pub fn build(alloc: &Allocation, task: &Task, alloc_dir: &AllocDir, env: &TaskEnv) -> TaskConfig {
    let (cpu, mem, mem_max) = task_limits(alloc, task);
    let non_neg = |v: i64| u64::try_from(v).unwrap_or(0);
    let log = task.log_config.clone().unwrap_or_default();
    let max_files = if log.max_files > 0 {
        log.max_files
    } else {
        DEFAULT_MAX_FILES
    };
    let max_size = if log.max_file_size_mb > 0 {
        log.max_file_size_mb
    } else {
        DEFAULT_MAX_FILE_SIZE_MB
    };
    let raw_config = Value::Object(task.config.clone().unwrap_or_default());
    TaskConfig {
        id: task_id(&alloc.id, &task.name),
        name: task.name.clone(),
        alloc_id: alloc.id.clone(),
        job_name: alloc
            .job
            .as_ref()
            .map(|j| j.name.clone())
            .unwrap_or_else(|| alloc.job_id.to_string()),
        group_name: alloc.task_group.to_string(),
        namespace: alloc.namespace.to_string(),
        env: env.env().clone(),
        user: task.user.clone(),
        resources: TaskResources {
            cpu_mhz: non_neg(cpu),
            memory_mb: non_neg(mem),
            memory_max_mb: non_neg(mem_max),
            pids_limit: 0,
        },
        alloc_dir: alloc_dir.path().to_path_buf(),
        task_dir: alloc_dir.task_dir(&task.name).path().to_path_buf(),
        logs: LogSink {
            dir: alloc_dir.logs_dir(),
            prefix: task.name.clone(),
            max_files: u32::try_from(max_files).unwrap_or(u32::MAX),
            max_file_size_mb: non_neg(max_size),
        },
        ports: ports(alloc, &task.name),
        driver_config: env.interpolate_value(&raw_config),
    }
}

/// Group ports plus the task's own network ports.
fn ports(alloc: &Allocation, task: &str) -> Vec<PortMapping> {
    let port = |v: i64| u16::try_from(v).unwrap_or(0);
    let mut out: Vec<PortMapping> = alloc
        .allocated_resources
        .as_ref()
        .and_then(|r| r.shared.ports.as_ref())
        .into_iter()
        .flatten()
        .map(|p| PortMapping {
            label: p.label.clone(),
            host_ip: p.host_ip.clone(),
            value: port(p.value),
            to: port(p.to),
        })
        .collect();
    for net in task_networks(alloc, task) {
        for p in net.all_ports() {
            out.push(PortMapping {
                label: p.label.clone(),
                host_ip: net.ip.clone(),
                value: port(p.value),
                to: port(p.to),
            });
        }
    }
    out
}
