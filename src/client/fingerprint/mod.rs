//! Fingerprinting: builds the Node this client registers (attributes with Nomad's keys,
//! resources, drivers, identity), and re-fingerprints drivers periodically.

pub mod cpu;
pub mod drivers;
pub mod host;
pub mod identity;
pub mod memory;
pub mod network;
pub mod storage;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::structs::{
    NODE_ELIGIBLE, NetworkResource, Node, NodeDiskResources, NodeMemoryResources,
    NodeReservedResources, NodeResources, NodeStatus,
};
use yurt_drivers::TaskDriver;

use super::config::ClientConfig;
use super::node_state::NodeState;

/// The node could not be fingerprinted.
#[derive(Debug, thiserror::Error)]
pub enum FingerprintError {
    /// The persisted identity could not be read or written.
    #[error("node identity: {0}")]
    Identity(#[from] identity::IdentityError),
}

/// Fingerprints the machine and loads (or creates) the node identity.
pub async fn fingerprint_node(
    cfg: &ClientConfig,
    drivers: &BTreeMap<String, Arc<dyn TaskDriver>>,
) -> Result<Node, FingerprintError> {
    let (id, secret_id) = identity::load_or_create(&cfg.state_dir())?;
    let mut attrs = BTreeMap::new();
    host::attributes(&mut attrs);

    let cpu = cpu::detect();
    cpu.attributes(&mut attrs, cfg.cpu_total_compute);

    let mem_bytes = cfg
        .memory_total_mb
        .map_or_else(memory::total_bytes, |mb| mb * 1024 * 1024);
    attrs.insert("memory.totalbytes".into(), mem_bytes.to_string());

    let storage = storage::detect(&cfg.data_dir);
    attrs.insert("unique.storage.volume".into(), storage.volume.clone());
    attrs.insert(
        "unique.storage.bytestotal".into(),
        storage.bytes_total.to_string(),
    );
    attrs.insert(
        "unique.storage.bytesfree".into(),
        storage.bytes_free.to_string(),
    );

    let network = host_network(cfg);
    if let Some(net) = &network {
        attrs.insert("unique.network.ip-address".into(), net.ip.clone());
    }

    attrs.insert(
        "nomad.version".into(),
        crate::version::NOMAD_COMPAT_VERSION.into(),
    );
    attrs.insert(
        "nomad.revision".into(),
        option_env!("YURT_GIT_REVISION")
            .unwrap_or(crate::version::VERSION)
            .into(),
    );
    attrs.insert("nomad.service_discovery".into(), "true".into());
    attrs.insert(
        "nomad.advertise.address".into(),
        cfg.http_advertise_addr.clone(),
    );
    attrs.insert(
        "unique.advertise.address".into(),
        cfg.http_advertise_addr.clone(),
    );

    let name = cfg
        .node_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| {
            let h = host::hostname();
            if h.is_empty() { id.clone() } else { h }
        });
    let mut node = Node {
        id,
        secret_id,
        datacenter: cfg.datacenter.clone(),
        name,
        http_addr: cfg.http_advertise_addr.clone(),
        tls_enabled: cfg.http_tls,
        attributes: Some(attrs),
        node_resources: Some(NodeResources {
            cpu: cpu.resources(cfg.cpu_total_compute),
            memory: NodeMemoryResources {
                memory_mb: mem_bytes / (1024 * 1024),
            },
            disk: NodeDiskResources {
                disk_mb: storage.bytes_total / (1024 * 1024),
            },
            networks: network.map(|n| vec![n]),
            min_dynamic_port: cfg.min_dynamic_port,
            max_dynamic_port: cfg.max_dynamic_port,
            ..Default::default()
        }),
        reserved_resources: Some(NodeReservedResources::default()),
        meta: Some(cfg.meta.clone()),
        node_class: cfg.node_class.clone(),
        node_pool: if cfg.node_pool.is_empty() {
            "default".into()
        } else {
            cfg.node_pool.clone()
        },
        scheduling_eligibility: NODE_ELIGIBLE.into(),
        status: NodeStatus::Initializing,
        ..Default::default()
    };
    let infos = drivers::driver_infos(drivers).await;
    drivers::apply(&mut node, &infos);
    Ok(node)
}

/// The host network allocated ports are offered on: loopback in dev mode, else the
/// configured interface or the default route's.
fn host_network(cfg: &ClientConfig) -> Option<NetworkResource> {
    let device = match &cfg.network_interface {
        Some(d) if !d.is_empty() => d.clone(),
        _ if cfg.dev_mode => "lo".to_string(),
        _ => network::default_route_interface().unwrap_or_else(|| "lo".into()),
    };
    let addr = network::pick(&device);
    let ip = match &addr {
        Some(a) => a.ip.to_string(),
        None if device == "lo" => "127.0.0.1".into(),
        None => {
            tracing::warn!(%device, "no address on network interface");
            return None;
        }
    };
    let cidr = if ip.contains(':') {
        format!("{ip}/128")
    } else {
        format!("{ip}/32")
    };
    let speed = std::fs::read_to_string(format!("/sys/class/net/{device}/speed"))
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(cfg.network_speed_mbits);
    Some(NetworkResource {
        mode: "host".into(),
        device,
        ip,
        cidr,
        mbits: speed,
        ..Default::default()
    })
}

/// Re-fingerprints drivers every `interval`; any change updates the node and asks for a
/// re-registration.
pub async fn run_driver_fingerprinter(
    node: NodeState,
    drivers: BTreeMap<String, Arc<dyn TaskDriver>>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let infos = drivers::driver_infos(&drivers).await;
        let old = node.node().drivers.unwrap_or_default();
        if drivers::changed(&old, &infos) {
            tracing::info!("driver fingerprint changed; re-registering node");
            node.update_node(|n| drivers::apply(n, &infos));
            node.request_register(false);
        }
    }
}

#[cfg(test)]
mod tests;
