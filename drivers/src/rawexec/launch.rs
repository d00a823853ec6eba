//! Turning a raw_exec `TaskConfig` into what the supervisor runs.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::config::{RawExecPluginConfig, RawExecTaskConfig};
use crate::driver::{DriverError, TaskConfig};
use crate::glob::glob_match;
use crate::supervisor_client::TaskCommand;

/// What raw_exec runs: the command resolved on the host, the env minus the denylists, the
/// work dir (default: the task dir) and the task's user.
pub fn task_command(
    cfg: &TaskConfig,
    task: &RawExecTaskConfig,
    plugin: &RawExecPluginConfig,
) -> Result<TaskCommand, DriverError> {
    Ok(TaskCommand {
        command: resolve_command(&cfg.task_dir, &task.command)?,
        args: task.args.clone(),
        env: filter_env(&cfg.env, &plugin.denied_envvars, &task.denied_envvars),
        cwd: task
            .work_dir
            .clone()
            .unwrap_or_else(|| cfg.task_dir.clone()),
        user: cfg.user.clone(),
        oom_score_adj: task.oom_score_adj.map(|v| v as i32),
        isolation: None,
    })
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

/// Adds `0555` to a file that lacks any of those bits (artifacts often lack the x bit).
pub fn ensure_executable(path: &Path) -> Result<(), DriverError> {
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
