//! Turning an exec `TaskConfig` into what the supervisor runs: the chroot built in the task
//! dir, the program resolved inside it, namespaces, capabilities and the in-chroot env.
//! Blocking (mounts, file checks).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::config::{ExecPluginConfig, ExecTaskConfig};
use crate::driver::{DriverError, TaskConfig};
use crate::isolation::user::DEFAULT_USER;
use crate::isolation::{ChrootSpec, build_chroot, task_capabilities};
use crate::rawexec::launch::ensure_executable;
use crate::supervisor::IsolationSpec;
use crate::supervisor_client::TaskCommand;

/// `$PATH` inside the chroot when the task env has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the task finds its directories inside the chroot (Nomad's values for chroot
/// isolation); set here too, so an exec task never sees host paths whatever the caller sent.
const IN_CHROOT_DIRS: [(&str, &str); 3] = [
    ("NOMAD_ALLOC_DIR", "/alloc"),
    ("NOMAD_TASK_DIR", "/local"),
    ("NOMAD_SECRETS_DIR", "/secrets"),
];

/// Builds the chroot in `cfg.task_dir` and returns what the supervisor runs in it.
pub fn task_command(
    cfg: &TaskConfig,
    task: &ExecTaskConfig,
    plugin: &ExecPluginConfig,
) -> Result<TaskCommand, DriverError> {
    let capabilities = task_capabilities(&plugin.allow_caps, &task.cap_add, &task.cap_drop)
        .map_err(|e| DriverError::InvalidConfig(e.to_string()))?;
    let isolation = IsolationSpec {
        root: cfg.task_dir.clone(),
        pid_mode: plugin.pid_mode(&task.pid_mode)?,
        ipc_mode: plugin.ipc_mode(&task.ipc_mode)?,
        capabilities: capabilities.0,
        no_pivot_root: plugin.no_pivot_root,
        hostname: None,
    };
    let mut chroot = ChrootSpec::new(&cfg.task_dir, Some(cfg.alloc_dir.join("alloc")));
    chroot.chroot_env = plugin.chroot_env.clone();
    build_chroot(&chroot).map_err(|e| {
        DriverError::Failed(format!(
            "building the chroot in {}: {e}",
            cfg.task_dir.display()
        ))
    })?;

    let mut env = cfg.env.clone();
    for (k, v) in IN_CHROOT_DIRS {
        env.insert(k.to_string(), v.to_string());
    }
    let path = env.get("PATH").map_or(DEFAULT_PATH, String::as_str);
    let command = resolve_in_chroot(&cfg.task_dir, &task.command, path)?;
    let user = if cfg.user.is_empty() {
        DEFAULT_USER.to_string()
    } else {
        cfg.user.clone()
    };
    Ok(TaskCommand {
        command,
        args: task.args.clone(),
        env,
        cwd: task.work_dir.clone().unwrap_or_else(|| PathBuf::from("/")),
        user,
        oom_score_adj: Some(0),
        isolation: Some(isolation),
    })
}

/// Nomad's lookup inside the chroot at `root`: `local/<cmd>`, `<cmd>` relative to the root,
/// then (for a bare name) each `$PATH` entry under the root. Returns the path *inside* the
/// chroot. Only executable regular files count; one found in the task's own dirs gets `0555`
/// added, as artifacts often lack the x bit.
pub fn resolve_in_chroot(root: &Path, cmd: &str, path: &str) -> Result<PathBuf, DriverError> {
    let rel = cmd.trim_start_matches('/');
    if rel.is_empty() || Path::new(rel).components().any(|c| c.as_os_str() == "..") {
        return Err(DriverError::InvalidConfig(format!(
            "command {cmd:?} is not a path inside the chroot"
        )));
    }
    if !cmd.starts_with('/') {
        for inside in [Path::new("/local").join(rel), Path::new("/").join(rel)] {
            let host = root.join(inside.strip_prefix("/").unwrap_or(&inside));
            if host.is_file() {
                ensure_executable(&host)?;
                return Ok(inside);
            }
        }
    }
    let inside = Path::new("/").join(rel);
    if cmd.starts_with('/') {
        if is_executable(&root.join(rel)) {
            return Ok(inside);
        }
    } else if !cmd.contains('/') {
        for dir in path.split(':').filter(|d| d.starts_with('/')) {
            let candidate = Path::new(dir).join(rel);
            let host = root.join(candidate.strip_prefix("/").unwrap_or(&candidate));
            if is_executable(&host) {
                return Ok(candidate);
            }
        }
    }
    Err(DriverError::Failed(format!(
        "failed to find executable {cmd:?} inside the chroot {} (PATH {path})",
        root.display()
    )))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_inside_the_chroot() {
        let root = std::env::temp_dir().join(format!("yurt-exec-lookup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("local")).unwrap();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("local/tool"), "#!/bin/sh\n").unwrap();
        std::fs::write(root.join("usr/bin/sh"), "").unwrap();
        std::fs::set_permissions(
            root.join("usr/bin/sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(root.join("usr/bin/noexec"), "").unwrap();
        let p = "/usr/bin:/bin";
        assert_eq!(
            resolve_in_chroot(&root, "tool", p).unwrap(),
            Path::new("/local/tool")
        );
        let mode = std::fs::metadata(root.join("local/tool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o555, 0o555);
        assert_eq!(
            resolve_in_chroot(&root, "sh", p).unwrap(),
            Path::new("/usr/bin/sh")
        );
        assert_eq!(
            resolve_in_chroot(&root, "/usr/bin/sh", p).unwrap(),
            Path::new("/usr/bin/sh")
        );
        assert!(resolve_in_chroot(&root, "noexec", p).is_err());
        assert!(resolve_in_chroot(&root, "/usr/bin/noexec", p).is_err());
        assert!(resolve_in_chroot(&root, "missing", p).is_err());
        assert!(resolve_in_chroot(&root, "../etc/passwd", p).is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
