//! Driver fingerprints: `Node.Drivers` and the `driver.*` attributes.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;

use crate::structs::{DriverInfo, Node};
use yurt_drivers::{HealthState, TaskDriver};

/// Asks every driver for its fingerprint.
pub async fn driver_infos(
    drivers: &BTreeMap<String, Arc<dyn TaskDriver>>,
) -> BTreeMap<String, DriverInfo> {
    let mut out = BTreeMap::new();
    for (name, driver) in drivers {
        let fp = driver.fingerprint().await;
        let healthy = fp.health == HealthState::Healthy;
        let description = if healthy && fp.health_description.is_empty() {
            "Healthy".to_string()
        } else {
            fp.health_description
        };
        out.insert(
            name.clone(),
            DriverInfo {
                attributes: Some(fp.attributes),
                detected: fp.health != HealthState::Undetected,
                healthy,
                health_description: description,
                update_time: Some(Utc::now()),
            },
        );
    }
    out
}

/// Whether two fingerprints differ in anything but their timestamps.
pub fn changed(old: &BTreeMap<String, DriverInfo>, new: &BTreeMap<String, DriverInfo>) -> bool {
    let strip = |m: &BTreeMap<String, DriverInfo>| {
        m.iter()
            .map(|(k, v)| {
                let mut v = v.clone();
                v.update_time = None;
                (k.clone(), v)
            })
            .collect::<BTreeMap<_, _>>()
    };
    strip(old) != strip(new)
}

/// Puts the fingerprints on the node: `Drivers`, every driver attribute, and
/// `driver.<name> = "1"` for detected drivers (overriding the driver's own `true`).
pub fn apply(node: &mut Node, infos: &BTreeMap<String, DriverInfo>) {
    let attrs = node.attributes.get_or_insert_with(BTreeMap::new);
    // Every driver attribute comes from a fingerprint; drop the old ones so undetected
    // drivers disappear.
    attrs.retain(|k, _| !k.starts_with("driver."));
    for (name, info) in infos {
        if !info.detected {
            continue;
        }
        for (k, v) in info.attributes.iter().flatten() {
            attrs.insert(k.clone(), v.clone());
        }
        attrs.insert(format!("driver.{name}"), "1".into());
    }
    node.drivers = Some(infos.clone());
}
