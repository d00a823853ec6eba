//! The task's `config { ... }` block for `driver = "docker"`: Nomad's option names and defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::blocks;
use super::caps;
use super::plugin_config::PluginConfig;
use crate::DriverError;
use crate::go_duration::parse_go_duration;

/// Registry credentials from the task's `auth { ... }` block.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Registry user.
    pub username: String,
    /// Registry password or token.
    pub password: String,
    /// Accepted and ignored, like Nomad.
    pub email: String,
    /// Registry address the credentials are for.
    pub server_address: String,
}

/// A `mount { ... }` block.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MountConfig {
    /// `volume` (default), `bind` or `tmpfs`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Path inside the container.
    pub target: String,
    /// Host path (bind), volume name (volume); empty for tmpfs.
    pub source: String,
    /// Mount read-only.
    pub readonly: bool,
    /// `bind_options { propagation }`.
    #[serde(deserialize_with = "blocks::one")]
    pub bind_options: BindOptions,
    /// `tmpfs_options { size, mode }`.
    #[serde(deserialize_with = "blocks::one")]
    pub tmpfs_options: TmpfsOptions,
    /// `volume_options { ... }`: accepted, passed through only as no_copy/labels.
    #[serde(deserialize_with = "blocks::one")]
    pub volume_options: VolumeOptions,
}

/// `bind_options` of a mount.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BindOptions {
    /// rprivate, private, rshared, shared, rslave, slave.
    pub propagation: String,
}

/// `tmpfs_options` of a mount.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TmpfsOptions {
    /// Size in bytes (0 = unlimited).
    pub size: i64,
    /// File mode of the tmpfs root.
    pub mode: i64,
}

/// `volume_options` of a mount.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VolumeOptions {
    /// Do not copy image content into a new volume.
    pub no_copy: bool,
    /// Labels set on a new volume.
    #[serde(deserialize_with = "blocks::map")]
    pub labels: BTreeMap<String, String>,
    /// Volume driver and options: accepted for compatibility, not implemented.
    pub driver_config: serde_json::Value,
}

/// A `devices` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceConfig {
    /// Device on the host (required).
    pub host_path: String,
    /// Path in the container (defaults to host_path).
    pub container_path: String,
    /// Cgroup permissions, letters r/w/m (default `rwm`).
    pub cgroup_permissions: String,
}

/// `healthchecks { disable }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthchecksConfig {
    /// Turn the image's HEALTHCHECK off.
    pub disable: bool,
}

/// The parsed task config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct TaskOptions {
    /// Image reference (required); `https://` prefix stripped.
    pub image: String,
    /// Command (Cmd = [command] + args).
    pub command: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Overrides the image entrypoint.
    pub entrypoint: Vec<String>,
    /// Labels of group network ports to publish.
    pub ports: Vec<String>,
    /// Legacy label → container port map.
    #[serde(deserialize_with = "blocks::map")]
    pub port_map: BTreeMap<String, u16>,
    /// Docker network mode.
    pub network_mode: String,
    /// Container hostname.
    pub hostname: String,
    /// Working directory (absolute).
    pub work_dir: String,
    /// Extra container labels.
    #[serde(deserialize_with = "blocks::map")]
    pub labels: BTreeMap<String, String>,
    /// `host:ip` entries for /etc/hosts.
    pub extra_hosts: Vec<String>,
    /// DNS servers.
    pub dns_servers: Vec<String>,
    /// DNS search domains.
    pub dns_search_domains: Vec<String>,
    /// DNS options.
    pub dns_options: Vec<String>,
    /// `src:dst[:mode]` binds.
    pub volumes: Vec<String>,
    /// Volume driver for named volumes.
    pub volume_driver: String,
    /// `mount` blocks (`mounts` is the pre-1.0 alias).
    #[serde(alias = "mounts", deserialize_with = "blocks::many")]
    pub mount: Vec<MountConfig>,
    /// Run privileged (needs allow_privileged).
    pub privileged: bool,
    /// Capabilities to add (within allow_caps).
    pub cap_add: Vec<String>,
    /// Capabilities to drop.
    pub cap_drop: Vec<String>,
    /// Always pull, even when the image is present.
    pub force_pull: bool,
    /// Bound on the pull ("5m" by default, from the plugin).
    pub image_pull_timeout: String,
    /// Registry credentials.
    #[serde(deserialize_with = "blocks::one")]
    pub auth: AuthConfig,
    /// Pull anonymously when credentials cannot be found.
    pub auth_soft_fail: bool,
    /// Hard memory limit in MiB (memory then becomes the reservation).
    pub memory_hard_limit: i64,
    /// Enforce the CPU as a CFS quota.
    pub cpu_hard_limit: bool,
    /// CFS period in µs for cpu_hard_limit.
    pub cpu_cfs_period: i64,
    /// Maximum number of processes.
    pub pids_limit: i64,
    /// `name = "soft[:hard]"` resource limits.
    #[serde(deserialize_with = "blocks::map")]
    pub ulimit: BTreeMap<String, String>,
    /// /dev/shm size in bytes.
    pub shm_size: i64,
    /// Run docker's init as PID 1.
    pub init: bool,
    /// Read-only root filesystem.
    pub readonly_rootfs: bool,
    /// Allocate a TTY.
    pub tty: bool,
    /// Keep stdin open.
    pub interactive: bool,
    /// Security options (`no-new-privileges`, `seccomp=...`).
    pub security_opt: Vec<String>,
    /// Namespaced sysctls.
    #[serde(deserialize_with = "blocks::map")]
    pub sysctl: BTreeMap<String, String>,
    /// Host devices to expose.
    #[serde(deserialize_with = "blocks::many")]
    pub devices: Vec<DeviceConfig>,
    /// Ignored: logs are always collected through the engine's log API.
    pub logging: serde_json::Value,
    /// OOM score adjustment of the container.
    pub oom_score_adj: i64,
    /// Supplementary groups.
    pub group_add: Vec<String>,
    /// Storage driver options.
    #[serde(deserialize_with = "blocks::map")]
    pub storage_opt: BTreeMap<String, String>,
    /// `healthchecks { disable = true }`.
    #[serde(deserialize_with = "blocks::one")]
    pub healthchecks: HealthchecksConfig,
    /// Ignored with a warning, like Nomad.
    pub cpuset_cpus: String,
    /// Accepted but unused, like Nomad.
    pub container_exists_attempts: i64,
}

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions {
            image: String::new(),
            command: String::new(),
            args: Vec::new(),
            entrypoint: Vec::new(),
            ports: Vec::new(),
            port_map: BTreeMap::new(),
            network_mode: String::new(),
            hostname: String::new(),
            work_dir: String::new(),
            labels: BTreeMap::new(),
            extra_hosts: Vec::new(),
            dns_servers: Vec::new(),
            dns_search_domains: Vec::new(),
            dns_options: Vec::new(),
            volumes: Vec::new(),
            volume_driver: String::new(),
            mount: Vec::new(),
            privileged: false,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            force_pull: false,
            image_pull_timeout: String::new(),
            auth: AuthConfig::default(),
            auth_soft_fail: false,
            memory_hard_limit: 0,
            cpu_hard_limit: false,
            cpu_cfs_period: 100_000,
            pids_limit: 0,
            ulimit: BTreeMap::new(),
            shm_size: 0,
            init: false,
            readonly_rootfs: false,
            tty: false,
            interactive: false,
            security_opt: Vec::new(),
            sysctl: BTreeMap::new(),
            devices: Vec::new(),
            logging: serde_json::Value::Null,
            oom_score_adj: 0,
            group_add: Vec::new(),
            storage_opt: BTreeMap::new(),
            healthchecks: HealthchecksConfig::default(),
            cpuset_cpus: String::new(),
            container_exists_attempts: 0,
        }
    }
}

/// Every option name the parser understands.
const KNOWN_OPTIONS: &[&str] = &[
    "image",
    "command",
    "args",
    "entrypoint",
    "ports",
    "port_map",
    "network_mode",
    "hostname",
    "work_dir",
    "labels",
    "extra_hosts",
    "dns_servers",
    "dns_search_domains",
    "dns_options",
    "volumes",
    "volume_driver",
    "mount",
    "mounts",
    "privileged",
    "cap_add",
    "cap_drop",
    "force_pull",
    "image_pull_timeout",
    "auth",
    "auth_soft_fail",
    "memory_hard_limit",
    "cpu_hard_limit",
    "cpu_cfs_period",
    "pids_limit",
    "ulimit",
    "shm_size",
    "init",
    "readonly_rootfs",
    "tty",
    "interactive",
    "security_opt",
    "sysctl",
    "devices",
    "logging",
    "oom_score_adj",
    "group_add",
    "storage_opt",
    "healthchecks",
    "cpuset_cpus",
    "container_exists_attempts",
];

/// Nomad options yurt recognizes but does not implement: refused by name rather than ignored,
/// so a job never silently runs differently from what it asked for.
const UNSUPPORTED_OPTIONS: &[&str] = &[
    "load",
    "network_aliases",
    "ipv4_address",
    "ipv6_address",
    "mac_address",
    "advertise_ipv6_address",
    "ipc_mode",
    "pid_mode",
    "uts_mode",
    "userns_mode",
    "cgroupns",
    "runtime",
    "isolation",
];

impl TaskOptions {
    /// Parses and validates a task config against the plugin config.
    pub fn parse(value: &serde_json::Value, plugin: &PluginConfig) -> Result<Self, DriverError> {
        let obj = value.as_object().ok_or_else(|| {
            DriverError::InvalidConfig("docker task config must be an object".to_string())
        })?;
        let unknown: Vec<&str> = obj
            .keys()
            .map(String::as_str)
            .filter(|k| !KNOWN_OPTIONS.contains(k))
            .collect();
        if !unknown.is_empty() {
            let (unsupported, unknown): (Vec<&str>, Vec<&str>) = unknown
                .into_iter()
                .partition(|k| UNSUPPORTED_OPTIONS.contains(k));
            let mut parts = Vec::new();
            if !unknown.is_empty() {
                parts.push(format!("unknown options: {}", unknown.join(", ")));
            }
            if !unsupported.is_empty() {
                parts.push(format!(
                    "options not supported by this driver: {}",
                    unsupported.join(", ")
                ));
            }
            return Err(DriverError::InvalidConfig(parts.join("; ")));
        }
        let mut opts: TaskOptions = serde_path_to_error::deserialize(value.clone())
            .map_err(|e| DriverError::InvalidConfig(format!("docker config: {e}")))?;
        opts.image = opts
            .image
            .trim()
            .strip_prefix("https://")
            .unwrap_or(opts.image.trim())
            .to_string();
        opts.validate(plugin)?;
        Ok(opts)
    }

    fn validate(&self, plugin: &PluginConfig) -> Result<(), DriverError> {
        let bad = |msg: String| Err(DriverError::InvalidConfig(msg));
        if self.image.is_empty() {
            return bad("image must be set".to_string());
        }
        if !self.command.is_empty() && self.command.trim() != self.command {
            return bad(format!(
                "command {:?} must not have surrounding whitespace",
                self.command
            ));
        }
        if !self.work_dir.is_empty() && !self.work_dir.starts_with('/') {
            return bad(format!("work_dir {:?} must be absolute", self.work_dir));
        }
        if self.privileged && !plugin.allow_privileged {
            return bad("Docker privileged mode is disabled on this Nomad agent".to_string());
        }
        if !self.ports.is_empty() && !self.port_map.is_empty() {
            return bad("port_map cannot be used with ports (group network ports)".to_string());
        }
        caps::delta(&plugin.allow_caps, &self.cap_add, &self.cap_drop)
            .map_err(DriverError::InvalidConfig)?;
        if !(0..=1_000_000).contains(&self.cpu_cfs_period) {
            return bad(format!(
                "cpu_cfs_period {} must be between 0 and 1000000",
                self.cpu_cfs_period
            ));
        }
        if self.memory_hard_limit < 0 {
            return bad("memory_hard_limit must not be negative".to_string());
        }
        if self.pids_limit < 0 {
            return bad("pids_limit must not be negative".to_string());
        }
        if plugin.pids_limit > 0 && self.pids_limit > plugin.pids_limit {
            return bad(format!(
                "pids_limit cannot be greater than nomad plugin config pids_limit: {}",
                plugin.pids_limit
            ));
        }
        if !self.image_pull_timeout.is_empty() {
            parse_go_duration(&self.image_pull_timeout)
                .map_err(|e| DriverError::InvalidConfig(format!("image_pull_timeout: {e}")))?;
        }
        for (name, value) in &self.ulimit {
            parse_ulimit(name, value).map_err(DriverError::InvalidConfig)?;
        }
        for device in &self.devices {
            if device.host_path.is_empty() {
                return bad("devices: host_path is required".to_string());
            }
            if !device
                .cgroup_permissions
                .chars()
                .all(|c| matches!(c, 'r' | 'w' | 'm'))
            {
                return bad(format!(
                    "devices: cgroup_permissions {:?} may only contain r, w and m",
                    device.cgroup_permissions
                ));
            }
        }
        self.validate_storage(plugin)
    }

    fn validate_storage(&self, plugin: &PluginConfig) -> Result<(), DriverError> {
        let bad = |msg: String| Err(DriverError::InvalidConfig(msg));
        if plugin.volumes_enabled {
            for m in &self.mount {
                check_mount_shape(m)?;
            }
            return Ok(());
        }
        // With volumes disabled, only paths relative to the task dir are allowed (checked to
        // stay inside the alloc dir at start), as in Nomad.
        if !self.volume_driver.is_empty() {
            return bad("volumes are not enabled; cannot use volume driver".to_string());
        }
        for v in &self.volumes {
            if v.split(':').next().is_some_and(|src| src.starts_with('/')) {
                return bad(format!(
                    "volumes are not enabled; cannot mount host paths: {v:?}"
                ));
            }
        }
        for m in &self.mount {
            check_mount_shape(m)?;
            match m.kind.as_str() {
                "tmpfs" => {}
                "bind" if !m.source.starts_with('/') => {}
                "bind" => {
                    return bad(format!(
                        "volumes are not enabled; cannot mount host path: {:?}",
                        m.source
                    ));
                }
                _ => {
                    return bad("volumes are not enabled; cannot use volume mounts".to_string());
                }
            }
        }
        Ok(())
    }

    /// The pull timeout: the task's own or the plugin's.
    pub fn pull_timeout(&self, plugin: &PluginConfig) -> Duration {
        parse_go_duration(&self.image_pull_timeout).unwrap_or(plugin.image_pull_timeout)
    }
}

fn check_mount_shape(m: &MountConfig) -> Result<(), DriverError> {
    let bad = |msg: String| Err(DriverError::InvalidConfig(msg));
    if m.target.is_empty() {
        return bad("mount: target is required".to_string());
    }
    match m.kind.as_str() {
        "" | "volume" | "bind" => Ok(()),
        "tmpfs" if m.source.is_empty() => Ok(()),
        "tmpfs" => bad("mount: tmpfs mounts take no source".to_string()),
        other => bad(format!(
            "mount: type {other:?} must be volume, bind or tmpfs"
        )),
    }
}

/// Parses a `ulimit` value: `"soft"` or `"soft:hard"`.
pub fn parse_ulimit(name: &str, value: &str) -> Result<(i64, i64), String> {
    if value.is_empty() {
        return Err(format!(
            "Malformed ulimit specification {name}: empty value"
        ));
    }
    let parse = |s: &str| {
        s.trim()
            .parse::<i64>()
            .map_err(|_| format!("Malformed ulimit specification {name}: {value:?}"))
    };
    match value.split_once(':') {
        Some((soft, hard)) => Ok((parse(soft)?, parse(hard)?)),
        None => {
            let v = parse(value)?;
            Ok((v, v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plugin() -> PluginConfig {
        PluginConfig::default()
    }

    #[test]
    fn minimal_config_gets_nomad_defaults() {
        let o = TaskOptions::parse(&json!({"image": "https://busybox:1"}), &plugin()).unwrap();
        assert_eq!(o.image, "busybox:1");
        assert_eq!(o.cpu_cfs_period, 100_000);
        assert!(!o.force_pull);
    }

    #[test]
    fn unknown_options_are_named() {
        let err = TaskOptions::parse(
            &json!({"image": "x", "imagee": 1, "frobnicate": true, "ipc_mode": "host"}),
            &plugin(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DriverError::InvalidConfig(_)));
        assert!(
            msg.contains("imagee") && msg.contains("frobnicate"),
            "{msg}"
        );
        assert!(msg.contains("ipc_mode"), "{msg}");
    }

    #[test]
    fn type_errors_name_the_field() {
        let err = TaskOptions::parse(&json!({"image": "x", "force_pull": "yes"}), &plugin())
            .unwrap_err()
            .to_string();
        assert!(err.contains("force_pull"), "{err}");
    }

    #[test]
    fn image_is_required() {
        assert!(TaskOptions::parse(&json!({"args": []}), &plugin()).is_err());
    }

    #[test]
    fn privileged_needs_plugin_permission() {
        let cfg = json!({"image": "x", "privileged": true});
        assert!(TaskOptions::parse(&cfg, &plugin()).is_err());
        let allowed = PluginConfig {
            allow_privileged: true,
            ..plugin()
        };
        assert!(TaskOptions::parse(&cfg, &allowed).is_ok());
    }

    #[test]
    fn host_volumes_need_plugin_permission() {
        let cfg = json!({"image": "x", "volumes": ["/etc:/host-etc"]});
        assert!(TaskOptions::parse(&cfg, &plugin()).is_err());
        let rel = json!({"image": "x", "volumes": ["local/data:/data"]});
        assert!(TaskOptions::parse(&rel, &plugin()).is_ok());
        let enabled = PluginConfig {
            volumes_enabled: true,
            ..plugin()
        };
        assert!(TaskOptions::parse(&cfg, &enabled).is_ok());
        let mount =
            json!({"image": "x", "mount": {"type": "volume", "target": "/d", "source": "v"}});
        assert!(TaskOptions::parse(&mount, &plugin()).is_err());
        assert!(TaskOptions::parse(&mount, &enabled).is_ok());
        let tmpfs = json!({"image": "x", "mount": [{"type": "tmpfs", "target": "/t"}]});
        assert!(TaskOptions::parse(&tmpfs, &plugin()).is_ok());
    }

    #[test]
    fn ulimits_and_devices_are_checked() {
        assert_eq!(parse_ulimit("nofile", "1024:2048"), Ok((1024, 2048)));
        assert_eq!(parse_ulimit("nofile", "1024"), Ok((1024, 1024)));
        assert!(parse_ulimit("nofile", "").is_err());
        let cfg = json!({"image": "x", "ulimit": {"nofile": ""}});
        assert!(TaskOptions::parse(&cfg, &plugin()).is_err());
        let cfg = json!({"image": "x", "devices": [{"host_path": "/dev/fuse", "cgroup_permissions": "rx"}]});
        assert!(TaskOptions::parse(&cfg, &plugin()).is_err());
    }

    #[test]
    fn relative_work_dir_and_padded_command_fail() {
        assert!(TaskOptions::parse(&json!({"image": "x", "work_dir": "rel"}), &plugin()).is_err());
        assert!(TaskOptions::parse(&json!({"image": "x", "command": " sh"}), &plugin()).is_err());
    }
}
