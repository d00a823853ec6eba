//! The agent's side of the docker driver: building it from `plugin "docker"` and removing the
//! containers of allocations this client no longer knows.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use yurt_drivers::EventSink;
use yurt_drivers::docker::DockerDriver;

use super::config::AgentConfig;
use super::runtime::AgentError;
use crate::client::Client;

/// How often dangling containers are looked for after the first pass (Nomad's default period).
const SWEEP_PERIOD: Duration = Duration::from_secs(300);
/// How often the sweeper checks whether the client has registered yet.
const REGISTERED_POLL: Duration = Duration::from_millis(200);

/// The docker driver from `plugin "docker" { config {...} }`, with Nomad's defaults when the
/// block is absent (docker is enabled by default); pull events go to `events`.
pub fn driver(config: &AgentConfig, events: EventSink) -> Result<Arc<DockerDriver>, AgentError> {
    let null = serde_json::Value::Null;
    let plugin = config.plugin_config("docker").unwrap_or(&null);
    DockerDriver::new(plugin, Some(events))
        .map(Arc::new)
        .map_err(|source| AgentError::Plugin {
            name: "docker".into(),
            source,
        })
}

/// Removes containers of allocations the client does not know, once the client has restored
/// its allocations and registered, then every [`SWEEP_PERIOD`]. Only containers whose alloc
/// dir lies under this client's alloc root are candidates, so agents sharing an engine leave
/// each other's containers alone.
pub async fn sweep_dangling(docker: Arc<DockerDriver>, client: Client, alloc_root: PathBuf) {
    while !client.is_registered() {
        tokio::time::sleep(REGISTERED_POLL).await;
    }
    loop {
        let keep: HashSet<String> = client.allocs().iter().map(|a| a.id().to_string()).collect();
        match docker.remove_dangling_in(&keep, &alloc_root).await {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(containers = ?removed, "removed dangling docker containers");
            }
            Ok(_) => {}
            // An absent engine is the fingerprint's business; try again next period.
            Err(e) => tracing::debug!(error = %e, "looking for dangling docker containers"),
        }
        tokio::time::sleep(SWEEP_PERIOD).await;
    }
}
