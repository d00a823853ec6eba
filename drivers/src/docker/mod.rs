//! The `docker` task driver: containers on the local Docker engine through its API (bollard).
//!
//! One file per job: the plugin and task configs, the create request, images and their GC,
//! container operations, log streaming with exactly-once resume, stats, signals, fingerprint.

mod alloc_exec;
mod blocks;
mod caps;
mod client;
mod container;
mod driver;
mod fingerprint;
mod handle;
mod host;
mod image;
mod image_gc;
mod logpos;
mod logs;
mod plugin_config;
mod progress;
mod signals;
mod spec;
mod stats;
mod task_config;

pub use driver::{DANGLING_CREATION_GRACE, DockerDriver};
pub use fingerprint::UNREACHABLE;
pub use handle::{HANDLE_VERSION, HandleState};
pub use image_gc::{ImageRefs, Remover};
pub use logpos::Checkpoint;
pub use logs::position_path;
pub use plugin_config::{DEFAULT_ENDPOINT, GcConfig, PluginConfig};
pub use spec::{
    LABEL_ALLOC_ID, LABEL_GROUP_NAME, LABEL_JOB_NAME, LABEL_NAMESPACE, LABEL_TASK_NAME,
    container_name,
};
pub use task_config::TaskOptions;
