//! Turning a raw_exec `TaskConfig` into a supervisor launch spec.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::config::{RawExecPluginConfig, RawExecTaskConfig, glob_match};
use crate::driver::{DriverError, TaskConfig};
use crate::supervisor::SupervisorCommand;
use crate::supervisor::paths::{socket_path, state_dir};
use crate::supervisor::spec::{LaunchSpec, LogSpec, MAX_SOCKET_PATH};

/// How long a supervisor waits for `shutdown` after its task exited and its output closed.
pub const LINGER_MS: u64 = 5 * 60 * 1000;

/// A spec ready to launch, and where its files go.
#[derive(Debug)]
pub struct Prepared {
    /// The spec.
    pub spec: LaunchSpec,
    /// Where the spec is written.
    pub spec_path: PathBuf,
    /// The supervisor's own stderr.
    pub log_path: PathBuf,
}

/// Builds the spec and creates the directories it needs.
pub fn prepare(
    cfg: &TaskConfig,
    task: &RawExecTaskConfig,
    plugin: &RawExecPluginConfig,
    sv: &SupervisorCommand,
) -> Result<Prepared, DriverError> {
    let dir = state_dir(&cfg.task_dir, &cfg.id);
    std::fs::create_dir_all(&dir)
        .map_err(|e| DriverError::io(format!("creating {}", dir.display()), e))?;
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    std::fs::create_dir_all(&sv.socket_dir)
        .map_err(|e| DriverError::io(format!("creating {}", sv.socket_dir.display()), e))?;
    let _ = std::fs::set_permissions(&sv.socket_dir, std::fs::Permissions::from_mode(0o700));

    let sock = socket_path(&sv.socket_dir, &cfg.id, nonce());
    if sock.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(DriverError::Failed(format!(
            "supervisor socket dir {} is too long for a unix socket path",
            sv.socket_dir.display()
        )));
    }
    let command = resolve_command(&cfg.task_dir, &task.command)?;
    let max_size_mb = if cfg.logs.max_file_size_mb == 0 {
        10
    } else {
        cfg.logs.max_file_size_mb
    };
    let spec = LaunchSpec {
        task_id: cfg.id.clone(),
        command,
        args: task.args.clone(),
        env: filter_env(&cfg.env, &plugin.denied_envvars, &task.denied_envvars),
        cwd: task
            .work_dir
            .clone()
            .unwrap_or_else(|| cfg.task_dir.clone()),
        user: cfg.user.clone(),
        // Filled by the cgroup manager once it lands (see the report/README of rawexec).
        cgroup_procs: Vec::new(),
        oom_score_adj: task.oom_score_adj.map(|v| v as i32),
        oom_events: None,
        logs: LogSpec {
            dir: cfg.logs.dir.clone(),
            stdout_base: format!("{}.stdout", cfg.logs.prefix),
            stderr_base: format!("{}.stderr", cfg.logs.prefix),
            max_files: cfg.logs.max_files.max(1),
            max_file_size_bytes: max_size_mb * 1024 * 1024,
        },
        socket_path: sock,
        exit_record_path: dir.join("exit.json"),
        linger_ms: LINGER_MS,
    };
    spec.check()
        .map_err(|e| DriverError::InvalidConfig(e.to_string()))?;
    let spec_path = dir.join("spec.json");
    spec.store(&spec_path)
        .map_err(|e| DriverError::Failed(e.to_string()))?;
    Ok(Prepared {
        spec,
        spec_path,
        log_path: dir.join("supervisor.log"),
    })
}

fn nonce() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32) ^ u64::from(std::process::id())
}

/// The task env minus the denied globs (plugin and task lists).
fn filter_env(
    env: &BTreeMap<String, String>,
    plugin: &[String],
    task: &[String],
) -> BTreeMap<String, String> {
    env.iter()
        .filter(|(k, _)| !plugin.iter().chain(task).any(|g| glob_match(g, k)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Nomad's lookup: `<task>/local/<cmd>`, `<task>/<cmd>`, an absolute path, then `$PATH`.
/// A binary found inside the task dir gets `0555` added (artifacts often lack the x bit).
pub fn resolve_command(task_dir: &Path, cmd: &str) -> Result<PathBuf, DriverError> {
    let rel = cmd.trim_start_matches('/');
    for candidate in [task_dir.join("local").join(rel), task_dir.join(rel)] {
        if candidate.is_file() {
            ensure_executable(&candidate)?;
            return Ok(candidate);
        }
    }
    let p = Path::new(cmd);
    if p.is_absolute() && p.exists() {
        return Ok(p.to_path_buf());
    }
    if !cmd.contains('/')
        && let Some(path) = std::env::var_os("PATH")
    {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(cmd);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(DriverError::Failed(format!(
        "failed to find command {cmd:?} in the task dir or $PATH"
    )))
}

fn ensure_executable(path: &Path) -> Result<(), DriverError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| DriverError::io(format!("stat {}", path.display()), e))?;
    let mode = meta.permissions().mode();
    if mode & 0o555 != 0o555 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o555))
            .map_err(|e| DriverError::io(format!("chmod {}", path.display()), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lookup_order() {
        let dir = std::env::temp_dir().join(format!("yurt-rawexec-lookup-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("local")).unwrap();
        std::fs::write(dir.join("local/tool"), "#!/bin/sh\n").unwrap();
        let found = resolve_command(&dir, "tool").unwrap();
        assert_eq!(found, dir.join("local/tool"));
        let mode = std::fs::metadata(&found).unwrap().permissions().mode();
        assert_eq!(mode & 0o555, 0o555);
        assert_eq!(
            resolve_command(&dir, "sh").unwrap().file_name().unwrap(),
            "sh"
        );
        assert!(resolve_command(&dir, "no-such-binary-yurt").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn env_denylist() {
        let env: BTreeMap<String, String> = [("AWS_KEY", "1"), ("PATH", "/bin"), ("TOKEN", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let out = filter_env(&env, &["AWS_*".into()], &["TOKEN".into()]);
        assert_eq!(out.keys().collect::<Vec<_>>(), vec!["PATH"]);
    }
}
