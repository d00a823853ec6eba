//! Fingerprinting this machine.

use std::collections::BTreeMap;
use std::sync::Arc;

use yurt_drivers::TaskDriver;

use super::super::config::ClientConfig;
use super::super::task_runner::test_driver::ShellDriver;
use super::super::testutil::tempdir;
use super::*;

#[tokio::test]
async fn produces_nomads_keys_with_plausible_values() {
    let dir = tempdir("fp");
    let cfg = ClientConfig {
        data_dir: dir.clone(),
        dev_mode: true,
        http_advertise_addr: "127.0.0.1:4646".into(),
        meta: BTreeMap::from([("rack".into(), "r1".into())]),
        ..Default::default()
    };
    let mut drivers: BTreeMap<String, Arc<dyn TaskDriver>> = BTreeMap::new();
    drivers.insert("shell".into(), Arc::new(ShellDriver::default()));
    let node = fingerprint_node(&cfg, &drivers).await.unwrap();
    let a = node.attributes.clone().unwrap();
    for key in [
        "cpu.arch",
        "cpu.numcores",
        "cpu.frequency",
        "cpu.totalcompute",
        "cpu.modelname",
        "cpu.reservablecores",
        "cpu.usablecompute",
        "memory.totalbytes",
        "kernel.name",
        "kernel.version",
        "kernel.arch",
        "os.name",
        "os.version",
        "os.signals",
        "unique.hostname",
        "unique.network.ip-address",
        "unique.storage.volume",
        "unique.storage.bytestotal",
        "unique.storage.bytesfree",
        "os.cgroups.version",
        "nomad.version",
        "nomad.revision",
        "nomad.advertise.address",
        "unique.advertise.address",
        "driver.shell",
        "driver.shell.version",
    ] {
        assert!(a.contains_key(key), "missing {key}");
    }
    let num = |k: &str| a[k].parse::<i64>().unwrap();
    assert!(num("cpu.numcores") >= 1);
    assert!(num("cpu.frequency") > 0);
    assert_eq!(
        num("cpu.totalcompute"),
        num("cpu.frequency") * num("cpu.numcores")
    );
    assert!(num("memory.totalbytes") > 64 * 1024 * 1024);
    assert!(num("unique.storage.bytestotal") > 0);
    assert_eq!(a["kernel.name"], "linux");
    assert!(["amd64", "arm64"].contains(&a["cpu.arch"].as_str()));
    assert_eq!(a["kernel.arch"], std::env::consts::ARCH);
    assert!(a["os.signals"].contains("SIGINT"));
    assert!(["1", "2"].contains(&a["os.cgroups.version"].as_str()));
    assert_eq!(a["nomad.version"], crate::version::NOMAD_COMPAT_VERSION);
    assert_eq!(a["driver.shell"], "1");
    assert_eq!(a["unique.network.ip-address"], "127.0.0.1");

    assert_eq!(node.status, crate::structs::NodeStatus::Initializing);
    assert_eq!(node.node_pool, "default");
    assert_eq!(node.datacenter, "dc1");
    assert_eq!(node.http_addr, "127.0.0.1:4646");
    assert_eq!(node.meta.as_ref().unwrap()["rack"], "r1");
    assert!(!node.name.is_empty());
    let res = node.node_resources.as_ref().unwrap();
    assert_eq!(res.cpu.cpu_shares, num("cpu.totalcompute"));
    assert!(res.memory.memory_mb > 64);
    assert!(res.disk.disk_mb > 0);
    let net = &res.networks.as_ref().unwrap()[0];
    assert_eq!(
        (net.mode.as_str(), net.device.as_str(), net.ip.as_str()),
        ("host", "lo", "127.0.0.1")
    );
    assert_eq!(net.cidr, "127.0.0.1/32");
    assert_eq!((res.min_dynamic_port, res.max_dynamic_port), (20000, 32000));
    let info = &node.drivers.as_ref().unwrap()["shell"];
    assert!(info.detected && info.healthy);
    assert_eq!(info.health_description, "Healthy");

    // The identity survives a restart.
    let again = fingerprint_node(&cfg, &drivers).await.unwrap();
    assert_eq!(
        (again.id, again.secret_id),
        (node.id.clone(), node.secret_id)
    );
    assert!(uuid::Uuid::parse_str(&node.id).is_ok());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn default_interface_has_an_address() {
    if let Some(dev) = network::default_route_interface() {
        assert!(network::pick(&dev).is_some(), "{dev}");
    }
    assert!(network::interface_addrs().iter().any(|a| a.device == "lo"));
}
