//! exec configuration: the plugin block and the task `config` block.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use crate::driver::DriverError;
use crate::isolation::caps::NOMAD_EXEC_DEFAULT_CAPS;
use crate::isolation::{CapSet, NamespaceMode, default_chroot_env};
use crate::rawexec::config::{check_command, check_keys};

/// The `plugin "exec" { config { ... } }` block.
///
/// `chroot_env` is a client option in Nomad (`client { chroot_env = {...} }`); yurt reads it
/// here, next to the other exec settings. Like Nomad's, a given map replaces the default one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ExecPluginConfig {
    /// Capabilities a task may have (`cap_add` must stay within them); Nomad's default set.
    pub allow_caps: Vec<String>,
    /// MS_MOVE + chroot instead of pivot_root (for roots on a ramdisk).
    pub no_pivot_root: bool,
    /// PID namespace when the task does not say: `private` (default) or `host`.
    pub default_pid_mode: String,
    /// IPC namespace when the task does not say: `private` (default) or `host`.
    pub default_ipc_mode: String,
    /// Host path → path inside the task's chroot, bind-mounted read-only.
    pub chroot_env: BTreeMap<PathBuf, PathBuf>,
}

impl Default for ExecPluginConfig {
    fn default() -> Self {
        ExecPluginConfig {
            allow_caps: NOMAD_EXEC_DEFAULT_CAPS
                .iter()
                .map(|c| c.to_ascii_lowercase())
                .collect(),
            no_pivot_root: false,
            default_pid_mode: "private".into(),
            default_ipc_mode: "private".into(),
            chroot_env: default_chroot_env(),
        }
    }
}

const PLUGIN_KEYS: &[&str] = &[
    "allow_caps",
    "no_pivot_root",
    "default_pid_mode",
    "default_ipc_mode",
    "chroot_env",
];
/// Security controls not implemented yet: refused rather than silently ignored.
const PLUGIN_UNSUPPORTED: &[&str] = &["denied_host_uids", "denied_host_gids"];

impl ExecPluginConfig {
    /// Parses and validates the plugin block; null means all defaults.
    pub fn from_json(v: &Value) -> Result<Self, DriverError> {
        if v.is_null() {
            return Ok(Self::default());
        }
        check_keys(v, PLUGIN_KEYS, PLUGIN_UNSUPPORTED)?;
        let cfg: ExecPluginConfig = serde_json::from_value(v.clone())
            .map_err(|e| DriverError::InvalidConfig(format!("exec plugin config: {e}")))?;
        CapSet::parse_list(&cfg.allow_caps)
            .map_err(|e| DriverError::InvalidConfig(format!("allow_caps: {e}")))?;
        for (name, mode) in [
            ("default_pid_mode", &cfg.default_pid_mode),
            ("default_ipc_mode", &cfg.default_ipc_mode),
        ] {
            NamespaceMode::parse(mode, NamespaceMode::Private)
                .map_err(|e| DriverError::InvalidConfig(format!("{name}: {e}")))?;
        }
        for (host, task) in &cfg.chroot_env {
            if !host.is_absolute() || !task.is_absolute() {
                return Err(DriverError::InvalidConfig(format!(
                    "chroot_env paths must be absolute: {} -> {}",
                    host.display(),
                    task.display()
                )));
            }
        }
        Ok(cfg)
    }

    /// The PID namespace mode a task gets (its own value wins).
    pub fn pid_mode(&self, task: &str) -> Result<NamespaceMode, DriverError> {
        mode("pid_mode", task, &self.default_pid_mode)
    }

    /// The IPC namespace mode a task gets (its own value wins).
    pub fn ipc_mode(&self, task: &str) -> Result<NamespaceMode, DriverError> {
        mode("ipc_mode", task, &self.default_ipc_mode)
    }
}

fn mode(name: &str, task: &str, default: &str) -> Result<NamespaceMode, DriverError> {
    let default = NamespaceMode::parse(default, NamespaceMode::Private)
        .map_err(|e| DriverError::InvalidConfig(format!("default {name}: {e}")))?;
    NamespaceMode::parse(task, default)
        .map_err(|e| DriverError::InvalidConfig(format!("{name}: {e}")))
}

/// The task's `config { ... }` block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ExecTaskConfig {
    /// Program to run, resolved inside the chroot (`local/`, the task dir, then `$PATH`).
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// `private` or `host`; empty takes the plugin's `default_pid_mode`.
    #[serde(default)]
    pub pid_mode: String,
    /// `private` or `host`; empty takes the plugin's `default_ipc_mode`.
    #[serde(default)]
    pub ipc_mode: String,
    /// Capabilities to add (each must be in the plugin's `allow_caps`).
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// Capabilities to drop from the default set.
    #[serde(default)]
    pub cap_drop: Vec<String>,
    /// Working directory inside the chroot; must be absolute. Default `/`.
    #[serde(default)]
    pub work_dir: Option<PathBuf>,
}

const TASK_KEYS: &[&str] = &[
    "command", "args", "pid_mode", "ipc_mode", "cap_add", "cap_drop", "work_dir",
];

impl ExecTaskConfig {
    /// Parses and validates a task config block (capability names included; whether
    /// `cap_add` is allowed is checked at start against the plugin's `allow_caps`).
    pub fn from_json(v: &Value) -> Result<Self, DriverError> {
        check_keys(v, TASK_KEYS, &[])?;
        let cfg: ExecTaskConfig = serde_json::from_value(v.clone())
            .map_err(|e| DriverError::InvalidConfig(format!("exec config: {e}")))?;
        check_command(&cfg.command, cfg.work_dir.as_deref())?;
        for (name, m) in [("pid_mode", &cfg.pid_mode), ("ipc_mode", &cfg.ipc_mode)] {
            NamespaceMode::parse(m, NamespaceMode::Private)
                .map_err(|e| DriverError::InvalidConfig(format!("{name}: {e}")))?;
        }
        for (name, caps) in [("cap_add", &cfg.cap_add), ("cap_drop", &cfg.cap_drop)] {
            CapSet::parse_list(caps)
                .map_err(|e| DriverError::InvalidConfig(format!("{name}: {e}")))?;
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plugin_defaults_and_validation() {
        let d = ExecPluginConfig::from_json(&Value::Null).unwrap();
        assert_eq!(d.allow_caps.len(), 13);
        assert!(d.chroot_env.contains_key(&PathBuf::from("/usr")));
        assert_eq!(d.pid_mode("").unwrap(), NamespaceMode::Private);
        let c = ExecPluginConfig::from_json(&json!({
            "default_pid_mode": "host",
            "chroot_env": {"/usr": "/usr", "/etc/ssl": "/etc/ssl"}
        }))
        .unwrap();
        assert_eq!(c.chroot_env.len(), 2, "a given map replaces the default");
        assert_eq!(c.pid_mode("").unwrap(), NamespaceMode::Host);
        assert_eq!(c.pid_mode("private").unwrap(), NamespaceMode::Private);
        assert!(ExecPluginConfig::from_json(&json!({"default_ipc_mode": "bad"})).is_err());
        assert!(ExecPluginConfig::from_json(&json!({"allow_caps": ["bogus"]})).is_err());
        assert!(ExecPluginConfig::from_json(&json!({"chroot_env": {"usr": "/usr"}})).is_err());
        assert!(ExecPluginConfig::from_json(&json!({"denied_host_uids": "0"})).is_err());
        assert!(ExecPluginConfig::from_json(&json!({"colour": 1})).is_err());
    }

    #[test]
    fn task_config_rules() {
        let ok =
            ExecTaskConfig::from_json(&json!({"command": "sh", "cap_drop": ["chown"]})).unwrap();
        assert_eq!(ok.cap_drop, vec!["chown"]);
        assert!(ExecTaskConfig::from_json(&json!({"args": []})).is_err());
        assert!(ExecTaskConfig::from_json(&json!({"command": "x", "work_dir": "rel"})).is_err());
        assert!(ExecTaskConfig::from_json(&json!({"command": "x", "pid_mode": "pod"})).is_err());
        assert!(ExecTaskConfig::from_json(&json!({"command": "x", "cap_add": ["nope"]})).is_err());
        let err = ExecTaskConfig::from_json(&json!({"command": "x", "colour": 1}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
    }
}
