//! Namespaces as objects: what a namespace holds, how its name is checked, and which task
//! drivers and network modes its capabilities let a job use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::de::{null_default as nd, uint};
use super::job::Job;
use super::validate::ValidationErrors;

/// Description of the namespace every cluster has.
pub const DEFAULT_NAMESPACE_DESCRIPTION: &str = "Default shared namespace";
/// Longest description Nomad accepts.
pub const MAX_DESCRIPTION_LEN: usize = 256;
/// Longest name Nomad accepts.
pub const MAX_NAME_LEN: usize = 128;

/// A namespace (`GET /v1/namespace/:name`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Namespace {
    #[serde(deserialize_with = "nd")]
    pub name: String,
    #[serde(deserialize_with = "nd")]
    pub description: String,
    #[serde(deserialize_with = "nd")]
    pub quota: String,
    pub capabilities: Option<NamespaceCapabilities>,
    pub node_pool_configuration: Option<NamespaceNodePoolConfiguration>,
    pub meta: Option<BTreeMap<String, String>>,
    #[serde(deserialize_with = "uint")]
    pub create_index: u64,
    #[serde(deserialize_with = "uint")]
    pub modify_index: u64,
}

/// What jobs in a namespace may use; checked when a job is registered or planned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NamespaceCapabilities {
    pub enabled_task_drivers: Option<Vec<String>>,
    pub disabled_task_drivers: Option<Vec<String>>,
    pub enabled_network_modes: Option<Vec<String>>,
    pub disabled_network_modes: Option<Vec<String>>,
}

/// The node pools jobs of a namespace use by default and may use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NamespaceNodePoolConfiguration {
    #[serde(deserialize_with = "nd")]
    pub default: String,
    pub allowed: Option<Vec<String>>,
    pub denied: Option<Vec<String>>,
}

/// True for a name Nomad accepts: 1 to 128 ASCII letters, digits and dashes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Whether `item` is allowed by an enabled list (empty = everything) and a disabled list
/// (which wins).
fn allowed_by(enabled: &Option<Vec<String>>, disabled: &Option<Vec<String>>, item: &str) -> bool {
    let enabled = enabled.as_deref().unwrap_or_default();
    let disabled = disabled.as_deref().unwrap_or_default();
    (enabled.is_empty() || enabled.iter().any(|e| e == item)) && !disabled.iter().any(|d| d == item)
}

/// `"a"` or `["a" "b"]`, as Go prints a string or a list of strings with `%q`.
fn quoted_list(items: &[String]) -> String {
    if let [one] = items {
        return format!("{one:?}");
    }
    let inner: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", inner.join(" "))
}

impl Namespace {
    /// The namespace every cluster starts with.
    pub fn default_namespace() -> Self {
        Namespace {
            name: super::DEFAULT_NAMESPACE.to_string(),
            description: DEFAULT_NAMESPACE_DESCRIPTION.to_string(),
            create_index: 1,
            modify_index: 1,
            ..Namespace::default()
        }
    }

    /// Every problem with the namespace as a user wrote it.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = Vec::new();
        if !valid_name(&self.name) {
            errs.push(format!(
                "invalid name {:?}. Must match regex ^[a-zA-Z0-9-]{{1,{MAX_NAME_LEN}}}$",
                self.name
            ));
        }
        if self.description.len() > MAX_DESCRIPTION_LEN {
            errs.push(format!("description longer than {MAX_DESCRIPTION_LEN}"));
        }
        if let Some(np) = &self.node_pool_configuration
            && np.allowed.is_some()
            && np.denied.is_some()
        {
            errs.push(
                "invalid node pool configuration: only one of Allowed and Denied may be set"
                    .to_string(),
            );
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(errs))
        }
    }

    /// Refuses a job that uses a task driver or group network mode this namespace's
    /// capabilities do not allow, with Nomad's message.
    pub fn check_job(&self, job: &Job) -> Result<(), String> {
        let Some(caps) = &self.capabilities else {
            return Ok(());
        };
        let groups = job.task_groups.as_deref().unwrap_or_default();
        let drivers: Vec<String> = groups
            .iter()
            .flat_map(|g| g.tasks.as_deref().unwrap_or_default())
            .filter(|t| {
                !allowed_by(
                    &caps.enabled_task_drivers,
                    &caps.disabled_task_drivers,
                    &t.driver,
                )
            })
            .map(|t| t.driver.clone())
            .collect();
        if !drivers.is_empty() {
            let noun = if drivers.len() == 1 {
                "task driver"
            } else {
                "task drivers"
            };
            let verb = if drivers.len() == 1 { "is" } else { "are" };
            return Err(format!(
                "used {noun} {} {verb} not allowed in namespace {:?}",
                quoted_list(&drivers),
                self.name
            ));
        }
        let modes: Vec<String> = groups
            .iter()
            .flat_map(|g| g.networks.as_deref().unwrap_or_default())
            .map(|n| {
                if n.mode.is_empty() {
                    "host".to_string()
                } else {
                    n.mode.clone()
                }
            })
            .filter(|m| !allowed_by(&caps.enabled_network_modes, &caps.disabled_network_modes, m))
            .collect();
        if !modes.is_empty() {
            let noun = if modes.len() == 1 {
                "group network mode"
            } else {
                "group network modes"
            };
            let verb = if modes.len() == 1 { "is" } else { "are" };
            return Err(format!(
                "used {noun} {} {verb} not allowed in namespace {:?}",
                quoted_list(&modes),
                self.name
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(drivers: &[&str], modes: &[&str]) -> Job {
        let tasks: Vec<_> = drivers
            .iter()
            .enumerate()
            .map(|(i, d)| serde_json::json!({"Name": format!("t{i}"), "Driver": d}))
            .collect();
        let networks: Vec<_> = modes
            .iter()
            .map(|m| serde_json::json!({"Mode": m}))
            .collect();
        serde_json::from_value(serde_json::json!({"ID": "j", "TaskGroups": [
            {"Name": "g", "Tasks": tasks, "Networks": networks}]}))
        .expect("job")
    }

    fn ns(caps: serde_json::Value) -> Namespace {
        serde_json::from_value(serde_json::json!({"Name": "team", "Capabilities": caps}))
            .expect("namespace")
    }

    #[test]
    fn names_are_checked_as_nomad_does() {
        for good in ["a", "team-1", "ABC", &"x".repeat(128)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "a b", "a_b", "a.b", "é", "*", &"x".repeat(129)] {
            assert!(!valid_name(bad), "{bad}");
        }
        let err = Namespace {
            name: "bad name".into(),
            description: "d".repeat(257),
            ..Namespace::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(r#"invalid name "bad name". Must match regex ^[a-zA-Z0-9-]{1,128}$"#),
            "{err}"
        );
        assert!(err.contains("description longer than 256"), "{err}");
        assert!(err.starts_with("2 errors occurred:"), "{err}");
    }

    #[test]
    fn null_fields_are_absent() {
        let n: Namespace = serde_json::from_value(serde_json::json!({
            "Name": "a", "Description": null, "Meta": null, "Capabilities": null,
            "CreateIndex": null}))
        .unwrap();
        assert_eq!(n.description, "");
        assert!(n.capabilities.is_none() && n.meta.is_none());
    }

    #[test]
    fn drivers_and_network_modes_follow_the_capabilities() {
        let open = ns(serde_json::Value::Null);
        assert!(open.check_job(&job(&["raw_exec"], &["bridge"])).is_ok());

        let deny = ns(serde_json::json!({"DisabledTaskDrivers": ["raw_exec"]}));
        assert_eq!(
            deny.check_job(&job(&["exec", "raw_exec"], &[]))
                .unwrap_err(),
            r#"used task driver "raw_exec" is not allowed in namespace "team""#
        );
        assert!(deny.check_job(&job(&["exec"], &[])).is_ok());

        let only = ns(serde_json::json!({"EnabledTaskDrivers": ["docker"]}));
        assert_eq!(
            only.check_job(&job(&["exec", "raw_exec", "docker"], &[]))
                .unwrap_err(),
            r#"used task drivers ["exec" "raw_exec"] are not allowed in namespace "team""#
        );

        let nets = ns(serde_json::json!({"DisabledNetworkModes": ["host"]}));
        assert_eq!(
            nets.check_job(&job(&["exec"], &[""])).unwrap_err(),
            r#"used group network mode "host" is not allowed in namespace "team""#
        );
        assert!(nets.check_job(&job(&["exec"], &["bridge"])).is_ok());
    }
}
