//! Where a service (or a check) is reached: Nomad's address modes resolved against the
//! allocation's ports and networks.

use crate::structs::Allocation;

/// `auto` (the default): a custom address if the service names one, else the host's.
pub const MODE_AUTO: &str = "auto";
/// The host IP and host port of the allocated port.
pub const MODE_HOST: &str = "host";

/// The `(address, port)` a service with `address` (custom, may be empty), `mode` and
/// `port_label` is reached at in `alloc`; `task` names the task whose own networks also
/// count (task services). A port of 0 means the service names no port.
pub fn resolve(
    address: &str,
    mode: &str,
    port_label: &str,
    alloc: &Allocation,
    task: Option<&str>,
) -> Result<(String, i64), String> {
    match mode {
        "" | MODE_AUTO if !address.is_empty() => {
            if port_label.is_empty() {
                return Ok((address.to_string(), 0));
            }
            if let Some((_, port)) = allocated_port(alloc, task, port_label) {
                return Ok((address.to_string(), port));
            }
            let port = port_label.parse::<i64>().map_err(|_| {
                format!("invalid port: {port_label:?}: not a valid port mapping or numeric port")
            })?;
            Ok((address.to_string(), port))
        }
        // Drivers here advertise no network of their own, so auto is host.
        "" | MODE_AUTO => resolve("", MODE_HOST, port_label, alloc, task),
        MODE_HOST => {
            if !address.is_empty() {
                return Err(format!(
                    "cannot use custom advertise address with {MODE_HOST:?} address mode"
                ));
            }
            if port_label.is_empty() {
                let nets = networks(alloc, task);
                return Ok(match nets.as_slice() {
                    [only] => (only.clone(), 0),
                    _ => (String::new(), 0),
                });
            }
            if let Some(found) = allocated_port(alloc, task, port_label) {
                return Ok(found);
            }
            let port = port_label
                .parse::<i64>()
                .map_err(|_| format!("invalid port {port_label:?}: port label not found"))?;
            if port <= 0 {
                return Err(format!("invalid port: {port_label:?}: port must be >0"));
            }
            Ok((String::new(), port))
        }
        "driver" => Err(r#"cannot use address_mode="driver": no driver network exists"#.into()),
        "alloc" | "alloc_ipv6" => {
            Err(r#"cannot use address_mode="alloc": no allocation network status reported"#.into())
        }
        other => Err(format!("invalid address mode {other:?}")),
    }
}

/// The host IP and host port allocated under `label`: the group's ports first, then the
/// task's own (legacy task networks).
fn allocated_port(alloc: &Allocation, task: Option<&str>, label: &str) -> Option<(String, i64)> {
    let shared = alloc
        .allocated_resources
        .as_ref()
        .and_then(|r| r.shared.ports.as_deref())
        .unwrap_or(&[]);
    if let Some(p) = shared.iter().find(|p| p.label == label) {
        return Some((p.host_ip.clone(), p.value));
    }
    let task_nets = task
        .map(|t| crate::client::taskenv::task_networks(alloc, t))
        .unwrap_or(&[]);
    let group_nets = alloc
        .allocated_resources
        .as_ref()
        .and_then(|r| r.shared.networks.as_deref())
        .map_or(&[][..], Vec::as_slice);
    task_nets.iter().chain(group_nets).find_map(|net| {
        net.all_ports()
            .find(|p| p.label == label)
            .map(|p| (net.ip.clone(), p.value))
    })
}

/// The IPs of the networks the service can be on.
fn networks(alloc: &Allocation, task: Option<&str>) -> Vec<String> {
    let task_nets = task
        .map(|t| crate::client::taskenv::task_networks(alloc, t))
        .unwrap_or(&[]);
    let group_nets = alloc
        .allocated_resources
        .as_ref()
        .and_then(|r| r.shared.networks.as_deref())
        .map_or(&[][..], Vec::as_slice);
    task_nets
        .iter()
        .chain(group_nets)
        .map(|n| n.ip.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::{AllocatedPortMapping, AllocatedResources};

    fn alloc() -> Allocation {
        let mut a = Allocation::default();
        let mut r = AllocatedResources::default();
        r.shared.ports = Some(vec![AllocatedPortMapping {
            label: "http".into(),
            value: 23456,
            to: 8080,
            host_ip: "127.0.0.1".into(),
        }]);
        a.allocated_resources = Some(r);
        a
    }

    #[test]
    fn host_mode_uses_the_host_port() {
        let a = alloc();
        assert_eq!(
            resolve("", "", "http", &a, None),
            Ok(("127.0.0.1".to_string(), 23456))
        );
        assert_eq!(
            resolve("", "host", "9000", &a, None),
            Ok((String::new(), 9000))
        );
        assert!(resolve("", "host", "nope", &a, None).is_err());
        assert!(resolve("", "host", "-3", &a, None).is_err());
    }

    #[test]
    fn a_custom_address_keeps_the_allocated_port() {
        let a = alloc();
        assert_eq!(
            resolve("svc.example", "auto", "http", &a, None),
            Ok(("svc.example".to_string(), 23456))
        );
        assert_eq!(
            resolve("svc.example", "", "", &a, None),
            Ok(("svc.example".to_string(), 0))
        );
        assert!(resolve("svc.example", "host", "http", &a, None).is_err());
    }

    #[test]
    fn driver_and_unknown_modes_are_refused() {
        let a = alloc();
        assert!(resolve("", "driver", "http", &a, None).is_err());
        assert!(resolve("", "bogus", "http", &a, None).is_err());
    }
}
