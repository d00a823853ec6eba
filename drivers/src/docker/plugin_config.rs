//! The agent's `plugin "docker" { config { ... } }` block, with Nomad's defaults.

use std::time::Duration;

use serde::Deserialize;

use super::blocks;
use super::caps::NOMAD_DEFAULTS;
use crate::DriverError;
use crate::go_duration::parse_go_duration;

/// The default engine socket.
pub const DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";

/// Nomad plugin options yurt accepts but does not act on (they only log a warning).
const IGNORED_OPTIONS: &[&str] = &[
    "infra_image",
    "infra_image_pull_timeout",
    "auth",
    "tls",
    "extra_labels",
    "logging",
    "dangling_containers",
    "allowed_modes",
    "nvidia_runtime",
    "allow_runtimes",
    "container_exists_attempts",
    "disable_log_collection",
    "oom_score_adj",
    "windows_allow_insecure_container_admin",
];

/// Image and container garbage collection (`gc { ... }`).
#[derive(Debug, Clone, PartialEq)]
pub struct GcConfig {
    /// Remove images no task uses any more.
    pub image: bool,
    /// How long an unused image is kept before removal.
    pub image_delay: Duration,
    /// Remove containers when their task is destroyed.
    pub container: bool,
}

/// The docker driver's plugin configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// Engine address: `unix:///path`, `tcp://host:port` or `http://host:port`.
    pub endpoint: String,
    /// Tasks may set `privileged = true`.
    pub allow_privileged: bool,
    /// Tasks may bind host paths and use named volumes.
    pub volumes_enabled: bool,
    /// Capabilities tasks may add; everything else in docker's default set is dropped.
    pub allow_caps: Vec<String>,
    /// Garbage collection settings.
    pub gc: GcConfig,
    /// A pull with no progress for this long is cancelled.
    pub pull_activity_timeout: Duration,
    /// Default bound on a whole pull (tasks may override).
    pub image_pull_timeout: Duration,
    /// Ceiling and default for the tasks' pids limit (0 = none).
    pub pids_limit: i64,
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig {
            endpoint: DEFAULT_ENDPOINT.to_string(),
            allow_privileged: false,
            volumes_enabled: false,
            allow_caps: NOMAD_DEFAULTS.iter().map(|s| s.to_string()).collect(),
            gc: GcConfig {
                image: true,
                image_delay: Duration::from_secs(180),
                container: true,
            },
            pull_activity_timeout: Duration::from_secs(120),
            image_pull_timeout: Duration::from_secs(300),
            pids_limit: 0,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawVolumes {
    enabled: bool,
    #[allow(dead_code)] // accepted for compatibility; SELinux relabelling is not implemented
    selinuxlabel: String,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawGc {
    image: Option<bool>,
    image_delay: Option<String>,
    container: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawPlugin {
    endpoint: Option<String>,
    allow_privileged: bool,
    #[serde(deserialize_with = "blocks::one")]
    volumes: RawVolumes,
    allow_caps: Option<Vec<String>>,
    #[serde(deserialize_with = "blocks::one")]
    gc: RawGc,
    pull_activity_timeout: Option<String>,
    image_pull_timeout: Option<String>,
    pids_limit: i64,
}

const KNOWN_OPTIONS: &[&str] = &[
    "endpoint",
    "allow_privileged",
    "volumes",
    "allow_caps",
    "gc",
    "pull_activity_timeout",
    "image_pull_timeout",
    "pids_limit",
];

impl PluginConfig {
    /// Parses the plugin config (null or `{}` give the defaults); unknown options are errors.
    pub fn parse(value: &serde_json::Value) -> Result<Self, DriverError> {
        let invalid = |msg: String| DriverError::InvalidConfig(format!("docker plugin: {msg}"));
        let mut value = match value {
            serde_json::Value::Null => serde_json::Value::Object(Default::default()),
            serde_json::Value::Object(_) => value.clone(),
            other => return Err(invalid(format!("config must be an object, got {other}"))),
        };
        if let Some(obj) = value.as_object_mut() {
            let unknown: Vec<&String> = obj
                .keys()
                .filter(|k| {
                    !KNOWN_OPTIONS.contains(&k.as_str()) && !IGNORED_OPTIONS.contains(&k.as_str())
                })
                .collect();
            if !unknown.is_empty() {
                return Err(invalid(format!("unknown options {unknown:?}")));
            }
            for key in IGNORED_OPTIONS {
                if obj.remove(*key).is_some() {
                    tracing::warn!(
                        option = key,
                        "docker plugin option is not supported; ignored"
                    );
                }
            }
        }
        let raw: RawPlugin =
            serde_path_to_error::deserialize(value).map_err(|e| invalid(e.to_string()))?;

        let defaults = PluginConfig::default();
        let duration = |name: &str, v: Option<String>, default: Duration| match v {
            None => Ok(default),
            Some(s) => parse_go_duration(&s).map_err(|e| invalid(format!("{name}: {e}"))),
        };
        let pull_activity_timeout = duration(
            "pull_activity_timeout",
            raw.pull_activity_timeout,
            defaults.pull_activity_timeout,
        )?;
        // Nomad refuses anything under a minute: a slow registry would cancel every pull.
        if pull_activity_timeout < Duration::from_secs(60) {
            return Err(invalid(
                "pull_activity_timeout must be at least 1m".to_string(),
            ));
        }
        if raw.pids_limit < 0 {
            return Err(invalid("pids_limit must not be negative".to_string()));
        }
        let endpoint = raw.endpoint.unwrap_or(defaults.endpoint);
        if !(endpoint.starts_with("unix://")
            || endpoint.starts_with("tcp://")
            || endpoint.starts_with("http://"))
        {
            return Err(invalid(format!(
                "endpoint {endpoint:?}: only unix://, tcp:// and http:// are supported"
            )));
        }
        Ok(PluginConfig {
            endpoint,
            allow_privileged: raw.allow_privileged,
            volumes_enabled: raw.volumes.enabled,
            allow_caps: raw.allow_caps.unwrap_or(defaults.allow_caps),
            gc: GcConfig {
                image: raw.gc.image.unwrap_or(defaults.gc.image),
                image_delay: duration(
                    "gc.image_delay",
                    raw.gc.image_delay,
                    defaults.gc.image_delay,
                )?,
                container: raw.gc.container.unwrap_or(defaults.gc.container),
            },
            pull_activity_timeout,
            image_pull_timeout: duration(
                "image_pull_timeout",
                raw.image_pull_timeout,
                defaults.image_pull_timeout,
            )?,
            pids_limit: raw.pids_limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_match_nomad() {
        let c = PluginConfig::parse(&json!(null)).unwrap();
        assert_eq!(c, PluginConfig::default());
        assert_eq!(c.endpoint, "unix:///var/run/docker.sock");
        assert!(c.gc.image && c.gc.container);
        assert_eq!(c.gc.image_delay, Duration::from_secs(180));
        assert!(!c.allow_privileged && !c.volumes_enabled);
    }

    #[test]
    fn parses_blocks_in_both_shapes() {
        let c = PluginConfig::parse(&json!({
            "allow_privileged": true,
            "volumes": [{"enabled": true}],
            "gc": {"image": false, "image_delay": "10s"},
            "infra_image": "pause:3.3",
        }))
        .unwrap();
        assert!(c.allow_privileged && c.volumes_enabled && !c.gc.image);
        assert_eq!(c.gc.image_delay, Duration::from_secs(10));
    }

    #[test]
    fn unknown_option_is_named() {
        let err = PluginConfig::parse(&json!({"bogus": 1})).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        let err = PluginConfig::parse(&json!({"gc": {"imagee": true}})).unwrap_err();
        assert!(err.to_string().contains("imagee"), "{err}");
    }
}
