//! Prestart hook `env`: the task's environment, built fresh on every start so it follows
//! node attribute changes.

use super::super::taskenv::{DirMode, TaskEnv, TaskEnvInput};
use super::TaskRunnerConfig;

/// How a driver isolates the filesystem, which decides the directory variables and whether
/// the agent's environment is inherited.
pub(crate) fn isolation(driver: &str) -> (DirMode, bool) {
    match driver {
        "docker" => (DirMode::Isolated, false),
        "exec" => (DirMode::Isolated, true),
        _ => (DirMode::Host, true),
    }
}

/// Builds the environment of the task in `cfg`.
pub(crate) fn build(cfg: &TaskRunnerConfig) -> TaskEnv {
    let (dir_mode, inherit) = isolation(&cfg.task.driver);
    TaskEnv::build(&TaskEnvInput {
        alloc: &cfg.alloc,
        task: &cfg.task,
        node: &cfg.node,
        region: &cfg.region,
        alloc_dir: &cfg.alloc_dir,
        dir_mode,
        host_env: inherit.then_some(&*cfg.host_env),
    })
}
