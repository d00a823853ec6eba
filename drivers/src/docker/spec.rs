//! Turns a task into the engine's container create request (Nomad's `createContainerConfig`).

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use bollard::models::{
    ContainerCreateBody, DeviceMapping, HealthConfig, HostConfig, HostConfigLogConfig, Mount,
    MountBindOptions, MountBindOptionsPropagationEnum, MountTmpfsOptions, MountType,
    MountVolumeOptions, PortBinding, ResourcesUlimits,
};

use super::caps;
use super::host;
use super::plugin_config::PluginConfig;
use super::task_config::{MountConfig, TaskOptions, parse_ulimit};
use crate::{DriverError, TaskConfig};

/// Label carrying the allocation ID; also how dangling containers are recognized.
pub const LABEL_ALLOC_ID: &str = "com.hashicorp.nomad.alloc_id";
/// Label carrying the job name.
pub const LABEL_JOB_NAME: &str = "com.hashicorp.nomad.job_name";
/// Label carrying the task group name.
pub const LABEL_GROUP_NAME: &str = "com.hashicorp.nomad.task_group_name";
/// Label carrying the task name.
pub const LABEL_TASK_NAME: &str = "com.hashicorp.nomad.task_name";
/// Label carrying the namespace.
pub const LABEL_NAMESPACE: &str = "com.hashicorp.nomad.namespace";

const MIB: i64 = 1024 * 1024;

/// The container name Nomad uses: `<task>-<alloc_id>` with `/` made safe.
pub fn container_name(cfg: &TaskConfig) -> String {
    format!("{}-{}", cfg.name.replace('/', "_"), cfg.alloc_id)
}

/// The complete create request for `cfg`.
pub fn build(
    cfg: &TaskConfig,
    opts: &TaskOptions,
    plugin: &PluginConfig,
) -> Result<ContainerCreateBody, DriverError> {
    let mut host_config = HostConfig {
        binds: Some(binds(cfg, opts, plugin)?),
        mounts: non_empty(
            opts.mount
                .iter()
                .map(|m| mount(cfg, m))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        // Nomad's default: the engine keeps little, logs are streamed out as they come.
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".to_string()),
            config: Some(HashMap::from([
                ("max-file".to_string(), "2".to_string()),
                ("max-size".to_string(), "2m".to_string()),
            ])),
        }),
        network_mode: Some(if opts.network_mode.is_empty() {
            "default".to_string()
        } else {
            opts.network_mode.clone()
        }),
        privileged: Some(opts.privileged),
        readonly_rootfs: Some(opts.readonly_rootfs),
        init: opts.init.then_some(true),
        extra_hosts: non_empty(opts.extra_hosts.clone()),
        dns: non_empty(opts.dns_servers.clone()),
        dns_search: non_empty(opts.dns_search_domains.clone()),
        dns_options: non_empty(opts.dns_options.clone()),
        security_opt: non_empty(opts.security_opt.clone()),
        sysctls: (!opts.sysctl.is_empty()).then(|| opts.sysctl.clone().into_iter().collect()),
        storage_opt: (!opts.storage_opt.is_empty())
            .then(|| opts.storage_opt.clone().into_iter().collect()),
        group_add: non_empty(opts.group_add.clone()),
        shm_size: (opts.shm_size > 0).then_some(opts.shm_size),
        oom_score_adj: (opts.oom_score_adj != 0).then_some(opts.oom_score_adj),
        volume_driver: (!opts.volume_driver.is_empty()).then(|| opts.volume_driver.clone()),
        ulimits: non_empty(ulimits(opts)?),
        devices: non_empty(devices(opts)),
        ..Default::default()
    };
    let (cap_add, cap_drop) = caps::delta(&plugin.allow_caps, &opts.cap_add, &opts.cap_drop)
        .map_err(DriverError::InvalidConfig)?;
    host_config.cap_add = non_empty(cap_add);
    host_config.cap_drop = non_empty(cap_drop);
    apply_resources(&mut host_config, cfg, opts, plugin)?;

    let (exposed, bindings) = ports(cfg, opts)?;
    if !bindings.is_empty() {
        host_config.port_bindings = Some(bindings);
    }

    let cmd = if opts.command.is_empty() {
        non_empty(opts.args.clone())
    } else {
        Some(
            std::iter::once(opts.command.clone())
                .chain(opts.args.iter().cloned())
                .collect(),
        )
    };
    let mut labels: HashMap<String, String> = opts.labels.clone().into_iter().collect();
    for (key, value) in [
        (LABEL_ALLOC_ID, &cfg.alloc_id),
        (LABEL_JOB_NAME, &cfg.job_name),
        (LABEL_GROUP_NAME, &cfg.group_name),
        (LABEL_TASK_NAME, &cfg.name),
        (LABEL_NAMESPACE, &cfg.namespace),
    ] {
        labels.insert(key.to_string(), value.clone());
    }
    Ok(ContainerCreateBody {
        image: Some(opts.image.clone()),
        cmd,
        entrypoint: non_empty(opts.entrypoint.clone()),
        env: Some(cfg.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        user: (!cfg.user.is_empty()).then(|| cfg.user.clone()),
        hostname: (!opts.hostname.is_empty()).then(|| opts.hostname.clone()),
        working_dir: (!opts.work_dir.is_empty()).then(|| opts.work_dir.clone()),
        labels: Some(labels),
        tty: Some(opts.tty),
        open_stdin: Some(opts.interactive),
        stdin_once: Some(false),
        exposed_ports: non_empty(exposed),
        healthcheck: opts.healthchecks.disable.then(|| HealthConfig {
            test: Some(vec!["NONE".to_string()]),
            ..Default::default()
        }),
        host_config: Some(host_config),
        ..Default::default()
    })
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// Where the task env says the shared dirs appear, defaulting to Nomad's image paths.
fn target(cfg: &TaskConfig, var: &str, default: &str) -> String {
    cfg.env
        .get(var)
        .filter(|v| v.starts_with('/'))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn binds(
    cfg: &TaskConfig,
    opts: &TaskOptions,
    plugin: &PluginConfig,
) -> Result<Vec<String>, DriverError> {
    let alloc_target = target(cfg, "NOMAD_ALLOC_DIR", "/alloc");
    let shared = cfg.alloc_dir.join("alloc");
    let mut out = vec![
        format!("{}:{}", shared.display(), alloc_target),
        format!(
            "{}:{}",
            cfg.task_dir.join("local").display(),
            target(cfg, "NOMAD_TASK_DIR", "/local")
        ),
        format!(
            "{}:{}",
            cfg.task_dir.join("secrets").display(),
            target(cfg, "NOMAD_SECRETS_DIR", "/secrets")
        ),
        format!("{}:{}/logs:ro", shared.join("logs").display(), alloc_target),
    ];
    for volume in &opts.volumes {
        let mut parts = volume.splitn(2, ':');
        let src = parts.next().unwrap_or_default();
        let rest = parts.next().ok_or_else(|| {
            DriverError::InvalidConfig(format!("invalid docker volume {volume:?}: want src:dst"))
        })?;
        let resolved = if src.starts_with('/') {
            PathBuf::from(src)
        } else if !plugin.volumes_enabled || src.starts_with('.') || src.contains('/') {
            clean(&cfg.task_dir.join(src))
        } else {
            // With volumes enabled, a bare name is a named volume, not a path.
            PathBuf::from(src)
        };
        if !plugin.volumes_enabled && !resolved.starts_with(clean(&cfg.alloc_dir)) {
            return Err(DriverError::InvalidConfig(format!(
                "volumes are not enabled; cannot mount host paths: {volume:?}"
            )));
        }
        out.push(format!("{}:{rest}", resolved.display()));
    }
    Ok(out)
}

/// Lexically resolves `.` and `..` so containment checks cannot be escaped.
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn mount(cfg: &TaskConfig, m: &MountConfig) -> Result<Mount, DriverError> {
    let mut out = Mount {
        target: Some(m.target.clone()),
        read_only: Some(m.readonly),
        ..Default::default()
    };
    match m.kind.as_str() {
        "bind" => {
            let src = if m.source.starts_with('/') {
                PathBuf::from(&m.source)
            } else {
                clean(&cfg.task_dir.join(&m.source))
            };
            out.typ = Some(MountType::BIND);
            out.source = Some(src.display().to_string());
            if !m.bind_options.propagation.is_empty() {
                out.bind_options = Some(MountBindOptions {
                    propagation: Some(propagation(&m.bind_options.propagation)?),
                    ..Default::default()
                });
            }
        }
        "tmpfs" => {
            out.typ = Some(MountType::TMPFS);
            out.tmpfs_options = Some(MountTmpfsOptions {
                size_bytes: (m.tmpfs_options.size > 0).then_some(m.tmpfs_options.size),
                mode: (m.tmpfs_options.mode > 0).then_some(m.tmpfs_options.mode),
                ..Default::default()
            });
        }
        _ => {
            out.typ = Some(MountType::VOLUME);
            out.source = Some(m.source.clone());
            out.volume_options = Some(MountVolumeOptions {
                no_copy: Some(m.volume_options.no_copy),
                labels: (!m.volume_options.labels.is_empty())
                    .then(|| m.volume_options.labels.clone().into_iter().collect()),
                ..Default::default()
            });
        }
    }
    Ok(out)
}

fn propagation(mode: &str) -> Result<MountBindOptionsPropagationEnum, DriverError> {
    use MountBindOptionsPropagationEnum as P;
    Ok(match mode {
        "private" => P::PRIVATE,
        "rprivate" => P::RPRIVATE,
        "shared" => P::SHARED,
        "rshared" => P::RSHARED,
        "slave" => P::SLAVE,
        "rslave" => P::RSLAVE,
        other => {
            return Err(DriverError::InvalidConfig(format!(
                "mount: unknown bind propagation {other:?}"
            )));
        }
    })
}

fn ulimits(opts: &TaskOptions) -> Result<Vec<ResourcesUlimits>, DriverError> {
    opts.ulimit
        .iter()
        .map(|(name, value)| {
            let (soft, hard) = parse_ulimit(name, value).map_err(DriverError::InvalidConfig)?;
            Ok(ResourcesUlimits {
                name: Some(name.clone()),
                soft: Some(soft),
                hard: Some(hard),
            })
        })
        .collect()
}

fn devices(opts: &TaskOptions) -> Vec<DeviceMapping> {
    opts.devices
        .iter()
        .map(|d| DeviceMapping {
            path_on_host: Some(d.host_path.clone()),
            path_in_container: Some(if d.container_path.is_empty() {
                d.host_path.clone()
            } else {
                d.container_path.clone()
            }),
            cgroup_permissions: Some(if d.cgroup_permissions.is_empty() {
                "rwm".to_string()
            } else {
                d.cgroup_permissions.clone()
            }),
        })
        .collect()
}

/// Memory, CPU and pids limits (Nomad's `memoryLimits` and CPU share/quota rules).
fn apply_resources(
    hc: &mut HostConfig,
    cfg: &TaskConfig,
    opts: &TaskOptions,
    plugin: &PluginConfig,
) -> Result<(), DriverError> {
    let res = &cfg.resources;
    let soft = res.memory_mb as i64;
    let high = opts.memory_hard_limit.max(res.memory_max_mb as i64);
    let (memory, reservation) = if high == 0 {
        (soft, None)
    } else {
        (high, Some(soft))
    };
    if let Some(r) = reservation
        && r > memory
    {
        return Err(DriverError::InvalidConfig(format!(
            "memory reservation ({r} MiB) is greater than the hard limit ({memory} MiB)"
        )));
    }
    if memory > 0 {
        hc.memory = Some(memory * MIB);
        // No swap: the limit is the limit, as in Nomad.
        hc.memory_swap = Some(memory * MIB);
        hc.memory_swappiness = Some(0);
    }
    hc.memory_reservation = reservation.filter(|r| *r > 0).map(|r| r * MIB);

    let shares = (res.cpu_mhz as i64).max(2);
    hc.cpu_shares = Some(shares);
    if opts.cpu_hard_limit {
        let period = if opts.cpu_cfs_period > 0 {
            opts.cpu_cfs_period
        } else {
            100_000
        };
        let percent = res.cpu_mhz as f64 / host::total_compute_mhz();
        let quota = (percent * period as f64 * host::num_cpus() as f64) as i64;
        hc.cpu_period = Some(period);
        // The kernel refuses quotas under 1ms.
        hc.cpu_quota = Some(quota.max(1000));
    }

    let pids = [opts.pids_limit, plugin.pids_limit, res.pids_limit as i64]
        .into_iter()
        .find(|p| *p > 0);
    hc.pids_limit = pids;
    Ok(())
}

type Ports = (Vec<String>, HashMap<String, Option<Vec<PortBinding>>>);

/// Exposed ports and host bindings: `ports` labels (group network) or legacy `port_map`.
fn ports(cfg: &TaskConfig, opts: &TaskOptions) -> Result<Ports, DriverError> {
    let mut pairs: Vec<(String, u16, u16)> = Vec::new(); // (host ip, host port, container port)
    if !opts.ports.is_empty() {
        for label in &opts.ports {
            let port = cfg
                .ports
                .iter()
                .find(|p| &p.label == label)
                .ok_or_else(|| {
                    DriverError::InvalidConfig(format!(
                        "Port {label:?} not found, check network block"
                    ))
                })?;
            let to = if port.to == 0 { port.value } else { port.to };
            pairs.push((port.host_ip.clone(), port.value, to));
        }
    } else if !opts.port_map.is_empty() {
        for port in &cfg.ports {
            let to = opts
                .port_map
                .get(&port.label)
                .copied()
                .unwrap_or(port.value);
            pairs.push((port.host_ip.clone(), port.value, to));
        }
    }
    let mut exposed = Vec::new();
    let mut bindings = HashMap::new();
    for (host_ip, host_port, to) in pairs {
        for proto in ["tcp", "udp"] {
            let key = format!("{to}/{proto}");
            exposed.push(key.clone());
            bindings
                .entry(key)
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: (!host_ip.is_empty()).then(|| host_ip.clone()),
                    host_port: Some(host_port.to_string()),
                });
        }
    }
    exposed.sort();
    exposed.dedup();
    Ok((exposed, bindings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LogSink, PortMapping, TaskResources};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn task() -> TaskConfig {
        TaskConfig {
            id: "a1/web/x".into(),
            name: "web".into(),
            alloc_id: "a1".into(),
            job_name: "job".into(),
            group_name: "grp".into(),
            namespace: "default".into(),
            env: BTreeMap::from([("B".into(), "2".into()), ("A".into(), "1".into())]),
            user: String::new(),
            resources: TaskResources {
                cpu_mhz: 500,
                memory_mb: 64,
                memory_max_mb: 0,
                pids_limit: 0,
            },
            alloc_dir: "/data/alloc/a1".into(),
            task_dir: "/data/alloc/a1/web".into(),
            logs: LogSink {
                dir: "/data/alloc/a1/alloc/logs".into(),
                prefix: "web".into(),
                max_files: 2,
                max_file_size_mb: 1,
            },
            ports: vec![PortMapping {
                label: "http".into(),
                host_ip: "127.0.0.1".into(),
                value: 25000,
                to: 80,
            }],
            driver_config: json!({}),
        }
    }

    fn build_with(cfg: &TaskConfig, config: serde_json::Value) -> ContainerCreateBody {
        let plugin = PluginConfig::default();
        let opts = TaskOptions::parse(&config, &plugin).unwrap();
        build(cfg, &opts, &plugin).unwrap()
    }

    #[test]
    fn name_labels_env_binds() {
        let cfg = task();
        assert_eq!(container_name(&cfg), "web-a1");
        let body = build_with(
            &cfg,
            json!({"image": "img:1", "command": "sh", "args": ["-c", "x"], "labels": {"k": "v"}}),
        );
        assert_eq!(body.cmd.unwrap(), vec!["sh", "-c", "x"]);
        assert_eq!(body.env.unwrap(), vec!["A=1", "B=2"]);
        let labels = body.labels.unwrap();
        assert_eq!(labels[LABEL_ALLOC_ID], "a1");
        assert_eq!(labels[LABEL_TASK_NAME], "web");
        assert_eq!(labels[LABEL_GROUP_NAME], "grp");
        assert_eq!(labels["k"], "v");
        let hc = body.host_config.unwrap();
        let binds = hc.binds.unwrap();
        assert!(binds.contains(&"/data/alloc/a1/alloc:/alloc".to_string()));
        assert!(binds.contains(&"/data/alloc/a1/web/local:/local".to_string()));
        assert!(binds.contains(&"/data/alloc/a1/web/secrets:/secrets".to_string()));
        assert_eq!(hc.cap_drop.unwrap(), vec!["NET_RAW"]);
        assert_eq!(hc.cpu_shares, Some(500));
        assert_eq!(hc.memory, Some(64 * MIB));
        assert_eq!(hc.memory_reservation, None);
    }

    #[test]
    fn memory_hard_limit_makes_memory_the_reservation() {
        let cfg = task();
        let hc = build_with(&cfg, json!({"image": "x", "memory_hard_limit": 128}))
            .host_config
            .unwrap();
        assert_eq!(hc.memory, Some(128 * MIB));
        assert_eq!(hc.memory_reservation, Some(64 * MIB));
        let mut cfg = task();
        cfg.resources.memory_max_mb = 256;
        let hc = build_with(&cfg, json!({"image": "x"})).host_config.unwrap();
        assert_eq!(hc.memory, Some(256 * MIB));
        assert_eq!(hc.memory_swap, Some(256 * MIB));
    }

    #[test]
    fn ports_publish_allocated_host_ports() {
        let cfg = task();
        let body = build_with(&cfg, json!({"image": "x", "ports": ["http"]}));
        assert!(body.exposed_ports.unwrap().contains(&"80/tcp".to_string()));
        let bindings = body.host_config.unwrap().port_bindings.unwrap();
        let b = bindings["80/tcp"].as_ref().unwrap();
        assert_eq!(b[0].host_port.as_deref(), Some("25000"));
        assert_eq!(b[0].host_ip.as_deref(), Some("127.0.0.1"));
        let plugin = PluginConfig::default();
        let opts = TaskOptions::parse(&json!({"image": "x", "ports": ["nope"]}), &plugin).unwrap();
        assert!(build(&cfg, &opts, &plugin).is_err());
        // Legacy port_map maps each allocated port.
        let body = build_with(&cfg, json!({"image": "x", "port_map": {"http": 8080}}));
        assert!(
            body.exposed_ports
                .unwrap()
                .contains(&"8080/tcp".to_string())
        );
    }

    #[test]
    fn cpu_hard_limit_sets_quota_and_pids() {
        let cfg = task();
        let hc = build_with(
            &cfg,
            json!({"image": "x", "cpu_hard_limit": true, "pids_limit": 50}),
        )
        .host_config
        .unwrap();
        assert_eq!(hc.cpu_period, Some(100_000));
        assert!(hc.cpu_quota.unwrap() >= 1000);
        assert_eq!(hc.pids_limit, Some(50));
    }

    #[test]
    fn relative_volumes_stay_inside_the_alloc_dir() {
        let cfg = task();
        let body = build_with(
            &cfg,
            json!({"image": "x", "volumes": ["local/data:/data:ro"]}),
        );
        let binds = body.host_config.unwrap().binds.unwrap();
        assert!(binds.contains(&"/data/alloc/a1/web/local/data:/data:ro".to_string()));
        let plugin = PluginConfig::default();
        let opts = TaskOptions::parse(
            &json!({"image": "x", "volumes": ["../../../etc:/e"]}),
            &plugin,
        )
        .unwrap();
        assert!(build(&cfg, &opts, &plugin).is_err());
    }
}
