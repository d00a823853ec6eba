//! Validation of a canonicalized job: every problem is collected and named.

use std::collections::HashSet;
use std::fmt;

use super::job::*;

/// The problems found in a job, in Nomad's multi-error format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<String>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        let noun = if n == 1 { "error" } else { "errors" };
        writeln!(f, "{n} {noun} occurred:")?;
        for e in &self.0 {
            writeln!(f, "\t* {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

const CONSTRAINT_OPERANDS: &[&str] = &[
    "=",
    "==",
    "is",
    "!=",
    "not",
    "<",
    "<=",
    ">",
    ">=",
    "regexp",
    "set_contains",
    "set_contains_all",
    "set_contains_any",
    "version",
    "semver",
    "is_set",
    "is_not_set",
    "distinct_hosts",
    "distinct_property",
];

/// Checks a canonicalized job; `Err` lists every offending field.
pub fn validate_job(job: &Job) -> Result<(), ValidationErrors> {
    let mut errs = Vec::new();
    if job.id.is_empty() {
        errs.push("Missing job ID".to_string());
    } else if job.id.contains(' ') {
        errs.push("Job ID contains a space".to_string());
    } else if job.id.contains('\0') {
        errs.push("Job ID contains a null character".to_string());
    }
    if job.name.is_empty() {
        errs.push("Missing job name".to_string());
    } else if job.name.contains('\0') {
        errs.push("Job Name contains a null character".to_string());
    }
    if job.namespace.is_empty() {
        errs.push("Job must be in a namespace".to_string());
    }
    match job.r#type.as_str() {
        JOB_TYPE_SERVICE | JOB_TYPE_BATCH | JOB_TYPE_SYSTEM | JOB_TYPE_SYSBATCH => {}
        "" => errs.push("Missing job type".to_string()),
        other => errs.push(format!("Invalid job type: {other:?}")),
    }
    if !(1..=100).contains(&job.priority) {
        errs.push(format!(
            "Job priority must be between [1, 100]; got Priority {}",
            job.priority
        ));
    }
    for (i, dc) in job.datacenters.iter().flatten().enumerate() {
        if dc.is_empty() {
            errs.push(format!("Job datacenter {} must be non-empty string", i + 1));
        }
    }
    for c in job.constraints.iter().flatten() {
        if let Err(e) = validate_constraint(c) {
            errs.push(format!(
                "Constraint {c_str} validation failed: {e}",
                c_str = constraint_str(c)
            ));
        }
    }
    if let Some(p) = job.parameterized_job.as_ref()
        && !matches!(p.payload.as_str(), "optional" | "required" | "forbidden")
    {
        errs.push(format!(
            "ParameterizedJob.Payload: unknown payload requirement: {:?}",
            p.payload
        ));
    }
    if let Some(p) = job.periodic.as_ref().filter(|p| p.enabled) {
        if p.spec.is_empty() && p.specs.as_ref().is_none_or(|s| s.is_empty()) {
            errs.push("Periodic.Spec: must specify a spec".to_string());
        }
        if p.spec_type != "cron" {
            errs.push(format!(
                "Periodic.SpecType: unknown periodic spec type {:?}",
                p.spec_type
            ));
        }
    }

    let groups = job.groups();
    if groups.is_empty() {
        errs.push("Missing job task groups".to_string());
    }
    let mut seen = HashSet::new();
    for (i, tg) in groups.iter().enumerate() {
        if tg.name.is_empty() {
            errs.push(format!("Job task group {} missing name", i + 1));
        } else if !seen.insert(tg.name.as_str()) {
            errs.push(format!("Job task group {} redefines '{}'", i + 1, tg.name));
        }
        for e in validate_group(tg, &job.r#type) {
            errs.push(format!(
                "Task group {} validation failed: {e}",
                display_name(&tg.name, i)
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errs))
    }
}

fn display_name(name: &str, idx: usize) -> String {
    if name.is_empty() {
        format!("{}", idx + 1)
    } else {
        name.to_string()
    }
}

fn constraint_str(c: &Constraint) -> String {
    format!("'{} {} {}'", c.l_target, c.operand, c.r_target)
}

/// Checks one constraint's operand and targets.
pub fn validate_constraint(c: &Constraint) -> Result<(), String> {
    if !CONSTRAINT_OPERANDS.contains(&c.operand.as_str()) {
        return Err(format!("Unknown constraint type {:?}", c.operand));
    }
    match c.operand.as_str() {
        "distinct_hosts" => Ok(()),
        "distinct_property" => {
            if c.l_target.is_empty() {
                return Err("Distinct property must have an LTarget".to_string());
            }
            if !c.r_target.is_empty() && c.r_target.parse::<u64>().map_or(true, |n| n == 0) {
                return Err(format!(
                    "Distinct property RTarget must be a positive integer: {:?}",
                    c.r_target
                ));
            }
            Ok(())
        }
        "regexp" => regex::Regex::new(&c.r_target)
            .map(|_| ())
            .map_err(|e| format!("Regular expression failed to compile: {e}")),
        "version" | "semver" => {
            if c.r_target.is_empty() {
                Err("Version constraint must have an RTarget".to_string())
            } else {
                Ok(())
            }
        }
        "is_set" | "is_not_set" => {
            if c.l_target.is_empty() {
                Err("No LTarget provided but is required by constraint".to_string())
            } else {
                Ok(())
            }
        }
        _ => {
            if c.l_target.is_empty() {
                Err("No LTarget provided but is required by constraint".to_string())
            } else if c.r_target.is_empty()
                && !matches!(c.operand.as_str(), "=" | "==" | "is" | "!=" | "not")
            {
                Err("No RTarget provided but is required by constraint".to_string())
            } else {
                Ok(())
            }
        }
    }
}

fn validate_group(tg: &TaskGroup, job_type: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if tg.count < 0 {
        errs.push(format!(
            "Task group count can't be negative; got Count {}",
            tg.count
        ));
    }
    if job_type == JOB_TYPE_SYSTEM && tg.count > 1 {
        errs.push(format!(
            "Job task group {} has count {}. Count cannot exceed 1 with system scheduler",
            tg.name, tg.count
        ));
    }
    let tasks = tg.tasks();
    if tasks.is_empty() {
        errs.push("Missing tasks for task group".to_string());
    }
    if let Some(raw) = tg.scaling.as_deref() {
        match serde_json::from_value::<super::ScalingPolicy>(raw.clone()) {
            Ok(p) => errs.extend(p.problems(tg.count)),
            Err(e) => errs.push(format!("Scaling policy invalid: {e}")),
        }
    }
    for c in tg.constraints.iter().flatten() {
        if let Err(e) = validate_constraint(c) {
            errs.push(format!(
                "Constraint {} validation failed: {e}",
                constraint_str(c)
            ));
        }
    }
    if let Some(rp) = tg.restart_policy.as_ref() {
        if rp.attempts < 0 {
            errs.push("RestartPolicy.Attempts must be non-negative".to_string());
        }
        if rp.delay < 0 {
            errs.push("RestartPolicy.Delay must be non-negative".to_string());
        }
        if !matches!(rp.mode.as_str(), RESTART_MODE_DELAY | RESTART_MODE_FAIL) {
            errs.push(format!(
                "RestartPolicy.Mode: unsupported restart mode: {:?}",
                rp.mode
            ));
        }
        if rp.interval > 0 && rp.attempts > 0 && rp.delay.saturating_mul(rp.attempts) > rp.interval
        {
            errs.push(format!(
                "RestartPolicy: Nomad can't restart the TaskGroup {} times in an interval of {}s with a delay of {}s",
                rp.attempts,
                rp.interval / 1_000_000_000,
                rp.delay / 1_000_000_000
            ));
        }
    }
    if let Some(rp) = tg.reschedule_policy.as_ref() {
        if !matches!(
            rp.delay_function.as_str(),
            "constant" | "exponential" | "fibonacci"
        ) {
            errs.push(format!(
                "ReschedulePolicy.DelayFunction: invalid delay function {:?}, must be one of [constant exponential fibonacci]",
                rp.delay_function
            ));
        }
        if rp.attempts < 0 || rp.delay < 0 || rp.interval < 0 {
            errs.push(
                "ReschedulePolicy: attempts, delay and interval must be non-negative".to_string(),
            );
        }
    }
    let disk_mb = tg.ephemeral_disk.as_ref().map(|d| d.size_mb).unwrap_or(0);
    if disk_mb <= 0 {
        errs.push(format!(
            "EphemeralDisk.SizeMB: minimum DiskMB value is 10; got {disk_mb}"
        ));
    }
    let mut seen = HashSet::new();
    let mut leaders = 0;
    let mut ports = HashSet::new();
    for net in tg.networks.iter().flatten() {
        for p in net.all_ports() {
            if !ports.insert(p.label.clone()) {
                errs.push(format!("Port label {:?} already in use", p.label));
            }
            if !(0..=65535).contains(&p.value) || !(-1..=65535).contains(&p.to) {
                errs.push(format!("Port {:?} is out of range", p.label));
            }
        }
    }
    for (i, task) in tasks.iter().enumerate() {
        if task.name.is_empty() {
            errs.push(format!("Task {} missing name", i + 1));
        } else if !seen.insert(task.name.as_str()) {
            errs.push(format!("Task {} redefines '{}'", i + 1, task.name));
        }
        if task.leader {
            leaders += 1;
        }
        for e in validate_task(task, disk_mb) {
            errs.push(format!(
                "Task {} validation failed: {e}",
                display_name(&task.name, i)
            ));
        }
    }
    if leaders > 1 {
        errs.push("Only one task may be marked as leader".to_string());
    }
    errs.extend(super::validate_services::nomad_service_errors(
        tg.services.as_deref().unwrap_or(&[]),
    ));
    errs
}

fn validate_task(task: &Task, disk_mb: i64) -> Vec<String> {
    let mut errs = Vec::new();
    if task.name.contains('/') {
        errs.push("Task name cannot include slashes".to_string());
    }
    if task.driver.is_empty() {
        errs.push("Missing task driver".to_string());
    }
    if task.kill_timeout < 0 {
        errs.push("KillTimeout must be a positive value".to_string());
    }
    if task.shutdown_delay < 0 {
        errs.push("ShutdownDelay must be a positive value".to_string());
    }
    if let Some(r) = task.resources.as_ref() {
        if r.cpu < 1 && r.cores == 0 {
            errs.push(format!(
                "Resources.CPU: minimum CPU value is 1; got {}",
                r.cpu
            ));
        }
        if r.memory_mb < 10 {
            errs.push(format!(
                "Resources.MemoryMB: minimum MemoryMB value is 10; got {}",
                r.memory_mb
            ));
        }
        if r.memory_max_mb != 0 && r.memory_max_mb < r.memory_mb {
            errs.push(format!(
                "Resources.MemoryMaxMB: MemoryMaxMB value ({}) should be larger than MemoryMB value ({})",
                r.memory_max_mb, r.memory_mb
            ));
        }
    }
    if let Some(lc) = task.log_config.as_ref() {
        if lc.max_files < 1 {
            errs.push(format!(
                "LogConfig.MaxFiles: minimum number of files is 1; got {}",
                lc.max_files
            ));
        }
        if lc.max_file_size_mb < 1 {
            errs.push(format!(
                "LogConfig.MaxFileSizeMB: minimum file size is 1MB; got {}",
                lc.max_file_size_mb
            ));
        }
        let log_usage = lc.max_files.saturating_mul(lc.max_file_size_mb);
        if !lc.disabled && log_usage >= disk_mb {
            errs.push(format!(
                "LogConfig: log storage ({log_usage} MB) must be less than requested disk capacity ({disk_mb} MB)"
            ));
        }
    }
    if let Some(l) = task.lifecycle.as_ref()
        && !matches!(
            l.hook.as_str(),
            LIFECYCLE_PRESTART | LIFECYCLE_POSTSTART | LIFECYCLE_POSTSTOP
        )
    {
        errs.push(format!("Lifecycle.Hook: invalid hook {:?}", l.hook));
    }
    for c in task.constraints.iter().flatten() {
        if matches!(c.operand.as_str(), "distinct_hosts" | "distinct_property") {
            errs.push(format!(
                "Constraint {} validation failed: {} constraint can only be set at the job or group level",
                constraint_str(c),
                c.operand
            ));
        } else if let Err(e) = validate_constraint(c) {
            errs.push(format!(
                "Constraint {} validation failed: {e}",
                constraint_str(c)
            ));
        }
    }
    for (i, t) in task.templates.iter().flatten().enumerate() {
        if t.source_path.is_empty() && t.embedded_tmpl.is_empty() {
            errs.push(format!(
                "Template {}: must specify a source path or embedded template",
                i + 1
            ));
        }
        if t.dest_path.is_empty() {
            errs.push(format!("Template {}: must specify a destination", i + 1));
        }
        if t.change_mode == "signal" && t.change_signal.is_empty() {
            errs.push(format!(
                "Template {}: must specify a signal value when change mode is signal",
                i + 1
            ));
        }
    }
    for (i, a) in task.artifacts.iter().flatten().enumerate() {
        if a.getter_source.is_empty() {
            errs.push(format!("Artifact {}: source must be specified", i + 1));
        }
    }
    errs.extend(super::validate_services::nomad_service_errors(
        task.services.as_deref().unwrap_or(&[]),
    ));
    errs
}

#[cfg(test)]
mod tests {
    use super::super::canonicalize::canonicalize_job;
    use super::*;
    use serde_json::json;

    fn job(v: serde_json::Value) -> Job {
        let mut j: Job = serde_json::from_value(v).unwrap();
        canonicalize_job(&mut j, "global");
        j
    }

    fn ok_job() -> serde_json::Value {
        json!({"ID": "web", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "raw_exec"}]}]})
    }

    fn errors(v: serde_json::Value) -> Vec<String> {
        validate_job(&job(v)).err().map(|e| e.0).unwrap_or_default()
    }

    #[test]
    fn accepts_a_minimal_job() {
        assert!(validate_job(&job(ok_job())).is_ok());
    }

    #[test]
    fn names_each_offending_field() {
        let e = errors(json!({"Priority": 101, "Type": "nope"}));
        assert!(e.iter().any(|m| m == "Missing job ID"), "{e:?}");
        assert!(e.iter().any(|m| m.contains("Invalid job type")), "{e:?}");
        assert!(e.iter().any(|m| m.contains("priority")), "{e:?}");
        assert!(e.iter().any(|m| m == "Missing job task groups"), "{e:?}");
    }

    #[test]
    fn rejects_negative_count_and_duplicates() {
        let e = errors(json!({"ID": "x", "TaskGroups": [
            {"Name": "g", "Count": -1, "Tasks": [{"Name": "t", "Driver": "raw_exec"}, {"Name": "t", "Driver": "raw_exec"}]},
            {"Name": "g", "Tasks": [{"Name": "u"}]}
        ]}));
        assert!(
            e.iter().any(|m| m.contains("count can't be negative")),
            "{e:?}"
        );
        assert!(e.iter().any(|m| m.contains("redefines 't'")), "{e:?}");
        assert!(e.iter().any(|m| m.contains("redefines 'g'")), "{e:?}");
        assert!(
            e.iter()
                .any(|m| m.contains("Task u validation failed: Missing task driver")),
            "{e:?}"
        );
    }

    #[test]
    fn rejects_log_config_larger_than_disk() {
        let e = errors(
            json!({"ID": "x", "TaskGroups": [{"Name": "g", "EphemeralDisk": {"SizeMB": 50},
            "Tasks": [{"Name": "t", "Driver": "raw_exec", "LogConfig": {"MaxFiles": 10, "MaxFileSizeMB": 10}}]}]}),
        );
        assert!(
            e.iter().any(|m| m.contains(
                "log storage (100 MB) must be less than requested disk capacity (50 MB)"
            )),
            "{e:?}"
        );
    }

    #[test]
    fn rejects_bad_constraints() {
        let e = errors(
            json!({"ID": "x", "Constraints": [{"LTarget": "${attr.a}", "Operand": "~~"},
            {"LTarget": "${attr.a}", "RTarget": "(", "Operand": "regexp"}],
            "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "raw_exec"}]}]}),
        );
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("Unknown constraint type"));
        assert!(e[1].contains("Regular expression failed to compile"));
    }

    #[test]
    fn display_is_nomads_multierror() {
        let e = ValidationErrors(vec!["a".into(), "b".into()]);
        assert_eq!(e.to_string(), "2 errors occurred:\n\t* a\n\t* b\n");
    }
}
