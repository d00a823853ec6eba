//! Fills Nomad's defaults into a submitted job, the way a Nomad server does before it
//! validates and stores it.

use std::sync::Arc;

use super::job::*;

const SECOND: i64 = 1_000_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;

/// Default ephemeral disk size in MB.
pub const DEFAULT_DISK_MB: i64 = 300;
/// Default CPU in MHz.
pub const DEFAULT_CPU: i64 = 100;
/// Default memory in MB.
pub const DEFAULT_MEMORY_MB: i64 = 300;
/// Default kill timeout.
pub const DEFAULT_KILL_TIMEOUT: i64 = 5 * SECOND;
/// Default job priority.
pub const DEFAULT_PRIORITY: i64 = 50;

/// The restart policy a group gets when it names none, per job type.
pub fn default_restart_policy(job_type: &str) -> RestartPolicy {
    match job_type {
        JOB_TYPE_BATCH | JOB_TYPE_SYSBATCH => RestartPolicy {
            attempts: 3,
            interval: 24 * HOUR,
            delay: 15 * SECOND,
            mode: RESTART_MODE_FAIL.to_string(),
            render_templates: false,
        },
        _ => RestartPolicy {
            attempts: 2,
            interval: 30 * MINUTE,
            delay: 15 * SECOND,
            mode: RESTART_MODE_FAIL.to_string(),
            render_templates: false,
        },
    }
}

/// The reschedule policy a group gets when it names none; system jobs have none.
pub fn default_reschedule_policy(job_type: &str) -> Option<ReschedulePolicy> {
    match job_type {
        JOB_TYPE_SERVICE => Some(ReschedulePolicy {
            attempts: 0,
            interval: 0,
            delay: 30 * SECOND,
            delay_function: "exponential".to_string(),
            max_delay: HOUR,
            unlimited: true,
        }),
        JOB_TYPE_BATCH => Some(ReschedulePolicy {
            attempts: 1,
            interval: 24 * HOUR,
            delay: 5 * SECOND,
            delay_function: "constant".to_string(),
            max_delay: 0,
            unlimited: false,
        }),
        _ => None,
    }
}

fn default_group_update() -> UpdateStrategy {
    UpdateStrategy {
        stagger: 30 * SECOND,
        max_parallel: Some(1),
        health_check: "checks".to_string(),
        min_healthy_time: 10 * SECOND,
        healthy_deadline: 5 * MINUTE,
        progress_deadline: 10 * MINUTE,
        auto_revert: false,
        auto_promote: false,
        canary: 0,
    }
}

fn default_migrate() -> MigrateStrategy {
    MigrateStrategy {
        max_parallel: 1,
        health_check: "checks".to_string(),
        min_healthy_time: 10 * SECOND,
        healthy_deadline: 5 * MINUTE,
    }
}

/// Fills every unset field of `job` with Nomad's default. `region` is the server's region.
pub fn canonicalize_job(job: &mut Job, region: &str) {
    if job.region.is_empty() {
        job.region = if region.is_empty() {
            super::DEFAULT_REGION.to_string()
        } else {
            region.to_string()
        };
    }
    if job.namespace.is_empty() {
        job.namespace = super::DEFAULT_NAMESPACE.to_string();
    }
    if job.r#type.is_empty() {
        job.r#type = JOB_TYPE_SERVICE.to_string();
    }
    if job.priority == 0 {
        job.priority = DEFAULT_PRIORITY;
    }
    if job.name.is_empty() {
        job.name = job.id.clone();
    }
    if job.node_pool.is_empty() {
        job.node_pool = "default".to_string();
    }
    if job.datacenters.as_ref().is_none_or(|d| d.is_empty()) {
        job.datacenters = Some(vec!["*".to_string()]);
    }
    if let Some(p) = job.periodic.as_mut()
        && p.spec_type.is_empty()
    {
        p.spec_type = "cron".to_string();
    }
    if let Some(p) = job.parameterized_job.as_mut()
        && p.payload.is_empty()
    {
        p.payload = "optional".to_string();
    }
    // The job-level update block only carries the legacy stagger/max_parallel pair.
    let job_update = job.update.clone();
    let job_level = job.update.get_or_insert_with(UpdateStrategy::default);
    if job_level.stagger == 0 {
        job_level.stagger = 30 * SECOND;
    }
    if job_level.max_parallel.is_none() {
        job_level.max_parallel = Some(1);
    }

    let job_type = job.r#type.clone();
    for tg in job.task_groups.iter_mut().flatten() {
        canonicalize_group(tg, &job_type, job_update.as_ref());
    }
    canonicalize_scaling(job);
}

/// Replaces each group's submitted `scaling` block with the policy it stands for (defaults,
/// target, ID); a block that does not decode stays as sent for validation to refuse.
fn canonicalize_scaling(job: &mut Job) {
    let (ns, id) = (job.namespace.clone(), job.id.clone());
    for tg in job.task_groups.iter_mut().flatten() {
        let Some(raw) = tg.scaling.as_deref() else {
            continue;
        };
        let policy = super::ScalingPolicy::from_submitted(raw, &ns, &id, &tg.name, tg.count);
        if let Ok(v) = policy.and_then(|p| serde_json::to_value(p).map_err(|e| e.to_string())) {
            tg.scaling = Some(Box::new(v));
        }
    }
}

fn canonicalize_group(tg: &mut TaskGroup, job_type: &str, job_update: Option<&UpdateStrategy>) {
    let disk = tg.ephemeral_disk.get_or_insert_with(EphemeralDisk::default);
    if disk.size_mb == 0 {
        disk.size_mb = DEFAULT_DISK_MB;
    }

    let default_restart = default_restart_policy(job_type);
    match tg.restart_policy.as_mut() {
        None => tg.restart_policy = Some(default_restart.clone()),
        Some(rp) => {
            if rp.mode.is_empty() {
                rp.mode = default_restart.mode.clone();
            }
            if rp.interval == 0 {
                rp.interval = default_restart.interval;
            }
        }
    }

    match (
        tg.reschedule_policy.as_mut(),
        default_reschedule_policy(job_type),
    ) {
        (None, def) => tg.reschedule_policy = def,
        (Some(rp), Some(def)) => {
            if rp.delay_function.is_empty() {
                rp.delay_function = def.delay_function;
            }
            if rp.delay == 0 {
                rp.delay = def.delay;
            }
            if rp.max_delay == 0 && rp.delay_function != "constant" {
                rp.max_delay = def.max_delay;
            }
        }
        (Some(_), None) => {}
    }

    if job_type == JOB_TYPE_SERVICE || job_type == JOB_TYPE_SYSTEM {
        let mut update = default_group_update();
        for src in [job_update, tg.update.as_ref()].into_iter().flatten() {
            merge_update(&mut update, src);
        }
        tg.update = Some(update);
    } else {
        tg.update = None;
    }

    if job_type == JOB_TYPE_SERVICE {
        let mut migrate = default_migrate();
        if let Some(m) = tg.migrate.as_ref() {
            if m.max_parallel != 0 {
                migrate.max_parallel = m.max_parallel;
            }
            if !m.health_check.is_empty() {
                migrate.health_check = m.health_check.clone();
            }
            if m.min_healthy_time != 0 {
                migrate.min_healthy_time = m.min_healthy_time;
            }
            if m.healthy_deadline != 0 {
                migrate.healthy_deadline = m.healthy_deadline;
            }
        }
        tg.migrate = Some(migrate);
    } else {
        tg.migrate = None;
    }

    for net in tg.networks.iter_mut().flatten() {
        canonicalize_network(net);
    }

    let group_restart = tg.restart_policy.clone();
    for task in tg.tasks.iter_mut().flatten() {
        canonicalize_task(task, group_restart.as_ref());
    }
}

fn merge_update(dst: &mut UpdateStrategy, src: &UpdateStrategy) {
    if src.stagger != 0 {
        dst.stagger = src.stagger;
    }
    if src.max_parallel.is_some() {
        dst.max_parallel = src.max_parallel;
    }
    if !src.health_check.is_empty() {
        dst.health_check = src.health_check.clone();
    }
    if src.min_healthy_time != 0 {
        dst.min_healthy_time = src.min_healthy_time;
    }
    if src.healthy_deadline != 0 {
        dst.healthy_deadline = src.healthy_deadline;
    }
    if src.progress_deadline != 0 {
        dst.progress_deadline = src.progress_deadline;
    }
    dst.auto_revert |= src.auto_revert;
    dst.auto_promote |= src.auto_promote;
    if src.canary != 0 {
        dst.canary = src.canary;
    }
}

fn canonicalize_network(net: &mut NetworkResource) {
    for port in net.dynamic_ports.iter_mut().flatten() {
        if port.host_network.is_empty() {
            port.host_network = "default".to_string();
        }
    }
    for port in net.reserved_ports.iter_mut().flatten() {
        if port.host_network.is_empty() {
            port.host_network = "default".to_string();
        }
    }
}

fn canonicalize_task(task: &mut Task, group_restart: Option<&RestartPolicy>) {
    if task.kill_timeout == 0 {
        task.kill_timeout = DEFAULT_KILL_TIMEOUT;
    }
    let log = task.log_config.get_or_insert_with(LogConfig::default);
    if log.max_files == 0 {
        log.max_files = 10;
    }
    if log.max_file_size_mb == 0 {
        log.max_file_size_mb = 10;
    }
    let res = task.resources.get_or_insert_with(Resources::default);
    if res.cpu == 0 && res.cores == 0 {
        res.cpu = DEFAULT_CPU;
    }
    if res.memory_mb == 0 {
        res.memory_mb = DEFAULT_MEMORY_MB;
    }
    for net in res
        .networks
        .iter_mut()
        .flat_map(|n| Arc::make_mut(n).iter_mut())
    {
        canonicalize_network(net);
    }
    if task.restart_policy.is_none() {
        task.restart_policy = group_restart.cloned();
    }
    if let Some(l) = task.lifecycle.as_ref()
        && l.hook.is_empty()
    {
        task.lifecycle = None;
    }
    for t in task.templates.iter_mut().flatten() {
        if t.change_mode.is_empty() {
            t.change_mode = "restart".to_string();
        }
        if t.perms.is_empty() {
            t.perms = "0644".to_string();
        }
        if t.left_delim.is_empty() {
            t.left_delim = "{{".to_string();
        }
        if t.right_delim.is_empty() {
            t.right_delim = "}}".to_string();
        }
    }
    for a in task.artifacts.iter_mut().flatten() {
        if a.relative_dest.is_empty() {
            a.relative_dest = "local/".to_string();
        }
        if a.getter_mode.is_empty() {
            a.getter_mode = "any".to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal(job_type: &str) -> Job {
        serde_json::from_value(serde_json::json!({
            "ID": "example",
            "Type": job_type,
            "TaskGroups": [{"Name": "cache", "Tasks": [{"Name": "redis", "Driver": "raw_exec"}]}]
        }))
        .unwrap()
    }

    #[test]
    fn fills_job_defaults() {
        let mut job = minimal("");
        canonicalize_job(&mut job, "global");
        assert_eq!(job.region, "global");
        assert_eq!(job.namespace, "default");
        assert_eq!(job.r#type, "service");
        assert_eq!(job.priority, 50);
        assert_eq!(job.name, "example");
        assert_eq!(job.datacenters, Some(vec!["*".to_string()]));
        let u = job.update.as_ref().unwrap();
        assert_eq!((u.stagger, u.max_parallel), (30 * SECOND, Some(1)));
    }

    #[test]
    fn fills_group_and_task_defaults_for_service() {
        let mut job = minimal("service");
        canonicalize_job(&mut job, "global");
        let tg = &job.groups()[0];
        assert_eq!(tg.count, 1);
        assert_eq!(tg.ephemeral_disk.as_ref().unwrap().size_mb, 300);
        let rp = tg.restart_policy.as_ref().unwrap();
        assert_eq!(
            (rp.attempts, rp.interval, rp.delay, rp.mode.as_str()),
            (2, 30 * MINUTE, 15 * SECOND, "fail")
        );
        let rs = tg.reschedule_policy.as_ref().unwrap();
        assert!(rs.unlimited);
        assert_eq!(rs.delay_function, "exponential");
        assert_eq!(tg.update.as_ref().unwrap().health_check, "checks");
        assert_eq!(tg.migrate.as_ref().unwrap().max_parallel, 1);
        let t = &tg.tasks()[0];
        assert_eq!(t.kill_timeout, 5 * SECOND);
        let lc = t.log_config.as_ref().unwrap();
        assert_eq!((lc.max_files, lc.max_file_size_mb), (10, 10));
        let r = t.resources.as_ref().unwrap();
        assert_eq!((r.cpu, r.memory_mb), (100, 300));
        assert_eq!(t.restart_policy.as_ref(), Some(rp));
    }

    #[test]
    fn batch_defaults_differ() {
        let mut job = minimal("batch");
        canonicalize_job(&mut job, "global");
        let tg = &job.groups()[0];
        let rp = tg.restart_policy.as_ref().unwrap();
        assert_eq!((rp.attempts, rp.interval), (3, 24 * HOUR));
        let rs = tg.reschedule_policy.as_ref().unwrap();
        assert_eq!(
            (rs.attempts, rs.delay_function.as_str(), rs.unlimited),
            (1, "constant", false)
        );
        assert!(tg.update.is_none());
        assert!(tg.migrate.is_none());
    }

    #[test]
    fn system_has_no_reschedule_policy() {
        let mut job = minimal("system");
        canonicalize_job(&mut job, "global");
        assert!(job.groups()[0].reschedule_policy.is_none());
    }

    #[test]
    fn explicit_values_survive() {
        let mut job: Job = serde_json::from_value(serde_json::json!({
            "ID": "x", "Name": "named", "Priority": 70, "Datacenters": ["dc2"],
            "TaskGroups": [{"Name": "g", "Count": 0,
                "RestartPolicy": {"Attempts": 5, "Delay": 1000, "Mode": "delay"},
                "Update": {"MaxParallel": 3},
                "Tasks": [{"Name": "t", "Driver": "raw_exec", "KillTimeout": 7,
                    "Resources": {"CPU": 250, "MemoryMB": 64}}]}]
        }))
        .unwrap();
        canonicalize_job(&mut job, "global");
        assert_eq!((job.name.as_str(), job.priority), ("named", 70));
        assert_eq!(job.datacenters, Some(vec!["dc2".to_string()]));
        let tg = &job.groups()[0];
        assert_eq!(tg.count, 0);
        let rp = tg.restart_policy.as_ref().unwrap();
        assert_eq!(
            (rp.attempts, rp.delay, rp.mode.as_str(), rp.interval),
            (5, 1000, "delay", 30 * MINUTE)
        );
        assert_eq!(tg.update.as_ref().unwrap().max_parallel, Some(3));
        let t = &tg.tasks()[0];
        assert_eq!(t.kill_timeout, 7);
        let r = t.resources.as_ref().unwrap();
        assert_eq!((r.cpu, r.memory_mb), (250, 64));
    }

    #[test]
    fn an_explicit_max_parallel_of_zero_turns_deployments_off() {
        let canon = |v: serde_json::Value| {
            let mut job: Job = serde_json::from_value(v).unwrap();
            canonicalize_job(&mut job, "global");
            job.groups()[0].update.as_ref().unwrap().max_parallel
        };
        let group = |update: serde_json::Value| serde_json::json!({"ID": "j", "TaskGroups": [{"Name": "g", "Update": update}]});
        assert_eq!(canon(group(serde_json::json!({"MaxParallel": 0}))), Some(0));
        assert_eq!(canon(group(serde_json::json!({"Canary": 1}))), Some(1));
        assert_eq!(canon(group(serde_json::json!(null))), Some(1));
        let job_level = serde_json::json!({"ID": "j", "Update": {"MaxParallel": 0},
            "TaskGroups": [{"Name": "g", "Update": {"Canary": 1}}]});
        assert_eq!(canon(job_level), Some(0));
    }
}
