//! raw_exec configuration: the plugin block and the task `config` block.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use crate::driver::DriverError;

/// The `plugin "raw_exec" { config { ... } }` block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RawExecPluginConfig {
    /// The driver does nothing unless this is set (Nomad's default is false).
    #[serde(default)]
    pub enabled: bool,
    /// Globs (only `*` is special) of env var names removed from every task's environment.
    #[serde(default)]
    pub denied_envvars: Vec<String>,
}

const PLUGIN_KEYS: &[&str] = &["enabled", "denied_envvars"];
/// Nomad options not implemented yet: refused rather than silently ignored, since they are
/// security controls.
const PLUGIN_UNSUPPORTED: &[&str] = &["denied_host_uids", "denied_host_gids"];

impl RawExecPluginConfig {
    /// Parses the plugin block; null means all defaults (disabled).
    pub fn from_json(v: &Value) -> Result<Self, DriverError> {
        if v.is_null() {
            return Ok(Self::default());
        }
        check_keys(v, PLUGIN_KEYS, PLUGIN_UNSUPPORTED)?;
        serde_json::from_value(v.clone())
            .map_err(|e| DriverError::InvalidConfig(format!("raw_exec plugin config: {e}")))
    }
}

/// The task's `config { ... }` block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RawExecTaskConfig {
    /// Program to run; looked up in `local/`, the task dir, as an absolute path, then `$PATH`.
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Working directory; must be absolute. Default: the task dir.
    #[serde(default)]
    pub work_dir: Option<PathBuf>,
    /// Accepted for compatibility (`""`, `private`, `host`); raw_exec has no PID namespace.
    #[serde(default)]
    pub pid_mode: String,
    /// Accepted for compatibility (`""`, `private`, `host`); raw_exec has no IPC namespace.
    #[serde(default)]
    pub ipc_mode: String,
    /// Written to the task's `oom_score_adj`; must be ≥ 0.
    #[serde(default)]
    pub oom_score_adj: Option<i64>,
    /// More env var globs to remove, added to the plugin's list.
    #[serde(default)]
    pub denied_envvars: Vec<String>,
}

const TASK_KEYS: &[&str] = &[
    "command",
    "args",
    "work_dir",
    "pid_mode",
    "ipc_mode",
    "oom_score_adj",
    "denied_envvars",
];
/// Joining a foreign cgroup instead of the task cgroup is not implemented yet: refused.
const TASK_UNSUPPORTED: &[&str] = &["cgroup_v1_override", "cgroup_v2_override"];

impl RawExecTaskConfig {
    /// Parses and validates a task config block.
    pub fn from_json(v: &Value) -> Result<Self, DriverError> {
        check_keys(v, TASK_KEYS, TASK_UNSUPPORTED)?;
        let cfg: RawExecTaskConfig = serde_json::from_value(v.clone())
            .map_err(|e| DriverError::InvalidConfig(format!("raw_exec config: {e}")))?;
        check_command(&cfg.command, cfg.work_dir.as_deref())?;
        for (name, mode) in [("pid_mode", &cfg.pid_mode), ("ipc_mode", &cfg.ipc_mode)] {
            if !matches!(mode.as_str(), "" | "private" | "host") {
                return Err(DriverError::InvalidConfig(format!(
                    "{name} must be \"private\" or \"host\", got {mode:?}"
                )));
            }
        }
        if let Some(adj) = cfg.oom_score_adj
            && !(0..=1000).contains(&adj)
        {
            return Err(DriverError::InvalidConfig(format!(
                "oom_score_adj must be between 0 and 1000, got {adj}"
            )));
        }
        Ok(cfg)
    }
}

/// The checks every supervised driver makes of its `command` and `work_dir` options.
pub(crate) fn check_command(
    command: &str,
    work_dir: Option<&std::path::Path>,
) -> Result<(), DriverError> {
    if command.is_empty() {
        return Err(DriverError::InvalidConfig(
            "command is required and must not be empty".into(),
        ));
    }
    if let Some(dir) = work_dir
        && !dir.is_absolute()
    {
        return Err(DriverError::InvalidConfig(format!(
            "work_dir must be an absolute path: {}",
            dir.display()
        )));
    }
    Ok(())
}

/// Fails on a non-object, on unsupported keys and on unknown keys (naming all of them).
pub(crate) fn check_keys(
    v: &Value,
    known: &[&str],
    unsupported: &[&str],
) -> Result<(), DriverError> {
    let Some(obj) = v.as_object() else {
        return Err(DriverError::InvalidConfig(
            "config must be an object".into(),
        ));
    };
    let refused: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| unsupported.contains(k))
        .collect();
    if !refused.is_empty() {
        return Err(DriverError::InvalidConfig(format!(
            "unsupported options: {}",
            refused.join(", ")
        )));
    }
    let unknown: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(DriverError::InvalidConfig(format!(
            "unknown options: {}",
            unknown.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn task_config_rules() {
        let ok = RawExecTaskConfig::from_json(&json!({"command": "sh", "args": ["-c", "true"]}))
            .unwrap();
        assert_eq!(ok.args, vec!["-c", "true"]);
        let err = RawExecTaskConfig::from_json(&json!({"command": "x", "foo": 1, "bar": 2}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("foo") && err.contains("bar"), "{err}");
        assert!(RawExecTaskConfig::from_json(&json!({"args": []})).is_err());
        assert!(RawExecTaskConfig::from_json(&json!({"command": "x", "work_dir": "rel"})).is_err());
        assert!(
            RawExecTaskConfig::from_json(&json!({"command": "x", "cgroup_v2_override": "a"}))
                .is_err()
        );
        assert!(RawExecTaskConfig::from_json(&json!({"command": "x", "pid_mode": "host"})).is_ok());
        assert!(RawExecTaskConfig::from_json(&json!({"command": "x", "ipc_mode": "bad"})).is_err());
        assert!(
            RawExecTaskConfig::from_json(&json!({"command": "x", "oom_score_adj": -1})).is_err()
        );
    }

    #[test]
    fn plugin_config() {
        assert!(
            !RawExecPluginConfig::from_json(&Value::Null)
                .unwrap()
                .enabled
        );
        assert!(
            RawExecPluginConfig::from_json(&json!({"enabled": true}))
                .unwrap()
                .enabled
        );
        assert!(RawExecPluginConfig::from_json(&json!({"enabled": true, "x": 1})).is_err());
    }
}
