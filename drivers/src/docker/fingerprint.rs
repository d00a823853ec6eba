//! Health and node attributes of the docker driver, re-checked on every call.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::client::{Engine, message};
use super::plugin_config::PluginConfig;
use crate::{Fingerprint, HealthState};

/// A fingerprint never waits longer than this for the engine.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Nomad's description when the daemon does not answer.
pub const UNREACHABLE: &str = "Failed to connect to docker daemon";

/// Probes the engine; `detected` remembers an earlier success so a lost engine is Unhealthy
/// rather than Undetected, as in Nomad.
pub async fn probe(engine: &Engine, plugin: &PluginConfig, detected: &AtomicBool) -> Fingerprint {
    match tokio::time::timeout(PROBE_TIMEOUT, attributes(engine, plugin)).await {
        Ok(Ok(attributes)) => {
            detected.store(true, Ordering::Relaxed);
            Fingerprint {
                health: HealthState::Healthy,
                health_description: "Healthy".to_string(),
                attributes,
            }
        }
        Ok(Err(reason)) => lost(detected, reason),
        Err(_) => lost(detected, "engine did not answer in time".to_string()),
    }
}

fn lost(detected: &AtomicBool, reason: String) -> Fingerprint {
    tracing::debug!(%reason, "docker engine not reachable");
    let health = if detected.load(Ordering::Relaxed) {
        HealthState::Unhealthy
    } else {
        HealthState::Undetected
    };
    Fingerprint {
        health,
        health_description: UNREACHABLE.to_string(),
        attributes: BTreeMap::new(),
    }
}

async fn attributes(
    engine: &Engine,
    plugin: &PluginConfig,
) -> Result<BTreeMap<String, String>, String> {
    let client = engine.client().await.map_err(|e| e.to_string())?;
    let version = client.version().await.map_err(|e| message(&e))?;
    let info = client.info().await.map_err(|e| message(&e))?;
    let mut attrs = BTreeMap::new();
    attrs.insert("driver.docker".to_string(), "true".to_string());
    attrs.insert(
        "driver.docker.version".to_string(),
        version.version.unwrap_or_default(),
    );
    let os_type = info.os_type.or(version.os).unwrap_or_default();
    attrs.insert("driver.docker.os_type".to_string(), os_type);
    let mut runtimes: Vec<String> = info
        .runtimes
        .map(|r| r.into_keys().collect())
        .unwrap_or_default();
    runtimes.sort();
    attrs.insert("driver.docker.runtimes".to_string(), runtimes.join(","));
    // The bridge network may legitimately be absent (custom daemon config): skip the attribute.
    if let Ok(bridge) = client.inspect_network("bridge", None).await {
        let gateway = bridge
            .ipam
            .and_then(|ipam| ipam.config)
            .and_then(|configs| configs.into_iter().find_map(|c| c.gateway))
            .filter(|gw| !gw.is_empty());
        // Some engines leave the default bridge's gateway out of IPAM: it is the address of
        // the bridge interface itself.
        let gateway = gateway.or_else(|| {
            let name = bridge
                .options
                .as_ref()
                .and_then(|o| o.get("com.docker.network.bridge.name"))
                .map_or("docker0", String::as_str);
            interface_ipv4(name)
        });
        if let Some(gw) = gateway {
            attrs.insert("driver.docker.bridge_ip".to_string(), gw);
        }
    }
    if plugin.allow_privileged {
        attrs.insert(
            "driver.docker.privileged.enabled".to_string(),
            "true".to_string(),
        );
    }
    if plugin.volumes_enabled {
        attrs.insert(
            "driver.docker.volumes.enabled".to_string(),
            "true".to_string(),
        );
    }
    if plugin.pids_limit > 0 {
        attrs.insert(
            "driver.docker.pids.limit".to_string(),
            plugin.pids_limit.to_string(),
        );
    }
    Ok(attrs)
}

/// The first IPv4 address of a network interface.
fn interface_ipv4(name: &str) -> Option<String> {
    nix::ifaddrs::getifaddrs()
        .ok()?
        .filter(|ifa| ifa.interface_name == name)
        .find_map(|ifa| {
            let addr = ifa.address?;
            addr.as_sockaddr_in().map(|sin| sin.ip().to_string())
        })
}
