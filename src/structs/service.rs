//! Native service discovery (`provider = "nomad"`): the registrations clients make for the
//! services of their running allocations, the list shapes the HTTP API answers, and the
//! results of the health checks clients run for them.

use serde::{Deserialize, Serialize};

use super::de::{int, null_default as nd, uint};
use super::job::{Service, ServiceCheck};

/// The provider a service names to be registered by Nomad itself rather than Consul.
pub const PROVIDER_NOMAD: &str = "nomad";

/// Prefix of the IDs of services registered for allocation tasks and groups.
const SERVICE_ID_PREFIX: &str = "_nomad-task-";

/// One instance of a service: where an allocation serves it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceRegistration {
    #[serde(rename = "ID", deserialize_with = "nd")]
    pub id: String,
    #[serde(deserialize_with = "nd")]
    pub service_name: String,
    #[serde(deserialize_with = "nd")]
    pub namespace: String,
    #[serde(rename = "NodeID", deserialize_with = "nd")]
    pub node_id: String,
    #[serde(deserialize_with = "nd")]
    pub datacenter: String,
    #[serde(rename = "JobID", deserialize_with = "nd")]
    pub job_id: String,
    #[serde(rename = "AllocID", deserialize_with = "nd")]
    pub alloc_id: String,
    #[serde(deserialize_with = "nd")]
    pub tags: Vec<String>,
    #[serde(deserialize_with = "nd")]
    pub address: String,
    #[serde(deserialize_with = "int")]
    pub port: i64,
    #[serde(deserialize_with = "uint")]
    pub create_index: u64,
    #[serde(deserialize_with = "uint")]
    pub modify_index: u64,
}

impl ServiceRegistration {
    /// Nomad's ID of the registration of `service` by `owner` (the task, or the group for
    /// a group service) of allocation `alloc_id`.
    pub fn make_id(alloc_id: &str, owner: &str, service: &Service) -> String {
        format!(
            "{SERVICE_ID_PREFIX}{alloc_id}-{owner}-{}-{}",
            service.name, service.port_label
        )
    }

    /// Nomad refuses a registration whose address listens on every interface: nobody can
    /// reach it there.
    pub fn validate(&self) -> Result<(), String> {
        match self.address.parse::<core::net::IpAddr>() {
            Ok(ip) if ip.is_unspecified() => Err("invalid service registration address".into()),
            _ => Ok(()),
        }
    }

    /// True when the two describe the same instance (indexes aside).
    pub fn same_as(&self, other: &ServiceRegistration) -> bool {
        let bare = |r: &ServiceRegistration| ServiceRegistration {
            create_index: 0,
            modify_index: 0,
            ..r.clone()
        };
        bare(self) == bare(other)
    }
}

/// One service name in a `/v1/services` listing, with the union of its instances' tags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceRegistrationStub {
    pub service_name: String,
    pub tags: Vec<String>,
}

/// The services of one namespace in a `/v1/services` listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceRegistrationListStub {
    pub namespace: String,
    pub services: Vec<ServiceRegistrationStub>,
}

/// Groups registrations (sorted by namespace) into Nomad's listing: per namespace, each
/// service name once with the union of its tags, names and tags sorted.
pub fn list_stubs<'a>(
    regs: impl IntoIterator<Item = &'a ServiceRegistration>,
) -> Vec<ServiceRegistrationListStub> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut by_ns: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for r in regs {
        by_ns
            .entry(&r.namespace)
            .or_default()
            .entry(&r.service_name)
            .or_default()
            .extend(r.tags.iter().map(String::as_str));
    }
    by_ns
        .into_iter()
        .map(|(ns, names)| ServiceRegistrationListStub {
            namespace: ns.to_string(),
            services: names
                .into_iter()
                .map(|(name, tags)| ServiceRegistrationStub {
                    service_name: name.to_string(),
                    tags: tags.into_iter().map(str::to_string).collect(),
                })
                .collect(),
        })
        .collect()
}

/// How a check's result counts (Nomad's `CheckMode`): a readiness check (`on_update =
/// "ignore"`) never makes its allocation unhealthy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckMode {
    #[default]
    Healthiness,
    Readiness,
}

impl CheckMode {
    /// The mode of `check`.
    pub fn of(check: &ServiceCheck) -> Self {
        if check.on_update == "ignore" {
            CheckMode::Readiness
        } else {
            CheckMode::Healthiness
        }
    }
}

/// A check's outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Success,
    Failure,
    #[default]
    Pending,
}

/// The latest result of one check, as `/v1/client/allocation/:id/checks` answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CheckQueryResult {
    #[serde(rename = "ID")]
    pub id: String,
    pub mode: CheckMode,
    pub status: CheckStatus,
    #[serde(skip_serializing_if = "is_zero_code")]
    pub status_code: i64,
    pub output: String,
    /// Unix seconds.
    pub timestamp: i64,
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub task: String,
    pub service: String,
    pub check: String,
}

fn is_zero_code(c: &i64) -> bool {
    *c == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(id: &str, port: i64) -> ServiceRegistration {
        ServiceRegistration {
            id: id.into(),
            service_name: "web".into(),
            namespace: "default".into(),
            alloc_id: format!("alloc-{id}"),
            address: "127.0.0.1".into(),
            port,
            ..Default::default()
        }
    }

    #[test]
    fn ids_follow_nomads_format() {
        let svc = Service {
            name: "redis".into(),
            port_label: "db".into(),
            ..Default::default()
        };
        assert_eq!(
            ServiceRegistration::make_id("a1", "cache", &svc),
            "_nomad-task-a1-cache-redis-db"
        );
    }

    #[test]
    fn unspecified_addresses_are_refused() {
        let mut r = reg("a", 1);
        assert!(r.validate().is_ok());
        r.address = "0.0.0.0".into();
        assert!(r.validate().is_err());
        r.address = "::".into();
        assert!(r.validate().is_err());
    }

    #[test]
    fn listing_unions_tags_per_namespace() {
        let mut a = reg("a", 1);
        a.tags = vec!["x".into(), "y".into()];
        let mut b = reg("b", 2);
        b.tags = vec!["y".into(), "z".into()];
        let mut c = reg("c", 3);
        c.namespace = "prod".into();
        c.service_name = "db".into();
        let stubs = list_stubs([&a, &b, &c]);
        assert_eq!(stubs.len(), 2);
        assert_eq!(stubs[0].namespace, "default");
        assert_eq!(stubs[0].services[0].tags, vec!["x", "y", "z"]);
        assert_eq!(stubs[1].services[0].service_name, "db");
    }
}
