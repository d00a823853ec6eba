//! The registrations an allocation should have right now: its group's `provider = "nomad"`
//! services while the allocation runs, and each task's while that task runs.

use crate::structs::service::{PROVIDER_NOMAD, ServiceRegistration};
use crate::structs::{Allocation, Service, TaskGroup};

use super::address;

/// Whether a group's or a task's services should be registered now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Running {
    /// The allocation's group services: its main tasks run and nothing is stopping it.
    pub group: bool,
    /// The tasks whose services are registered: each is running and not being killed.
    pub tasks: Vec<String>,
}

/// A service of the allocation together with who owns it.
#[derive(Debug, Clone)]
pub struct Owned<'a> {
    /// The task, for a task service; None for a group service.
    pub task: Option<&'a str>,
    pub service: &'a Service,
}

/// Every native service of the allocation's group and tasks.
pub fn native_services(group: &TaskGroup) -> Vec<Owned<'_>> {
    let group_services = group.services.iter().flatten().map(|s| Owned {
        task: None,
        service: s,
    });
    let task_services = group.tasks().iter().flat_map(|t| {
        t.services.iter().flatten().map(move |s| Owned {
            task: Some(t.name.as_str()),
            service: s,
        })
    });
    group_services
        .chain(task_services)
        .filter(|o| o.service.provider == PROVIDER_NOMAD)
        .collect()
}

/// The name a service registers under: Nomad's `${JOB}`, `${TASKGROUP}`, `${TASK}` and
/// `${BASE}` replaced (the default name is `${BASE}`).
pub fn service_name(alloc: &Allocation, task: Option<&str>, service: &Service) -> String {
    let task = task.unwrap_or("");
    let base = format!("{}-{}-{}", alloc.job_id, alloc.task_group, task);
    let name = if service.name.is_empty() {
        "${BASE}"
    } else {
        service.name.as_str()
    };
    name.replace("${JOB}", &alloc.job_id)
        .replace("${TASKGROUP}", &alloc.task_group)
        .replace("${TASK}", task)
        .replace("${BASE}", &base)
}

/// The registrations `alloc` should have given what runs; node ID and datacenter are left
/// for the sync to fill in. A service whose address cannot be resolved is left out and
/// reported in the second list.
pub fn registrations(
    alloc: &Allocation,
    running: &Running,
) -> (Vec<ServiceRegistration>, Vec<String>) {
    let Some(group) = alloc.job.as_ref().and_then(|j| j.group(&alloc.task_group)) else {
        return (Vec::new(), Vec::new());
    };
    let canary = alloc.deployment_status.as_ref().is_some_and(|d| d.canary);
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for Owned { task, service } in native_services(group) {
        let wanted = match task {
            None => running.group,
            Some(t) => running.tasks.iter().any(|r| r == t),
        };
        if !wanted {
            continue;
        }
        let name = service_name(alloc, task, service);
        let (ip, port) = match address::resolve(
            &service.address,
            &service.address_mode,
            &service.port_label,
            alloc,
            task,
        ) {
            Ok(found) => found,
            Err(e) => {
                errors.push(format!("unable to get address for service {name:?}: {e}"));
                continue;
            }
        };
        let tags = match &service.canary_tags {
            Some(ct) if canary && !ct.is_empty() => ct.clone(),
            _ => service.tags.clone().unwrap_or_default(),
        };
        let named = Service {
            name: name.clone(),
            ..service.clone()
        };
        out.push(ServiceRegistration {
            id: ServiceRegistration::make_id(&alloc.id, task.unwrap_or(&alloc.task_group), &named),
            service_name: name,
            namespace: alloc.namespace.to_string(),
            job_id: alloc.job_id.to_string(),
            alloc_id: alloc.id.clone(),
            tags,
            address: ip,
            port,
            ..Default::default()
        });
    }
    (out, errors)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::structs::{AllocatedPortMapping, AllocatedResources, Job};

    fn alloc() -> Allocation {
        let job: Job = serde_json::from_value(serde_json::json!({
            "ID": "web", "Namespace": "default",
            "TaskGroups": [{
                "Name": "front",
                "Services": [{"Name": "web-http", "PortLabel": "http", "Provider": "nomad",
                              "Tags": ["a", "b"]},
                             {"Name": "consul-one", "PortLabel": "http", "Provider": "consul"}],
                "Tasks": [{"Name": "server", "Driver": "raw_exec",
                           "Services": [{"PortLabel": "http", "Provider": "nomad"}]}]
            }]
        }))
        .unwrap();
        let mut r = AllocatedResources::default();
        r.shared.ports = Some(vec![AllocatedPortMapping {
            label: "http".into(),
            value: 25000,
            to: 0,
            host_ip: "127.0.0.1".into(),
        }]);
        Allocation {
            id: "a1".into(),
            namespace: "default".into(),
            job_id: "web".into(),
            task_group: "front".into(),
            job: Some(Arc::new(job)),
            allocated_resources: Some(r),
            ..Default::default()
        }
    }

    #[test]
    fn group_and_task_services_follow_what_runs() {
        let a = alloc();
        let (none, _) = registrations(&a, &Running::default());
        assert!(none.is_empty());
        let (group, errors) = registrations(
            &a,
            &Running {
                group: true,
                tasks: vec![],
            },
        );
        assert!(errors.is_empty());
        assert_eq!(
            group.len(),
            1,
            "the consul service is not Nomad's to register"
        );
        let g = &group[0];
        assert_eq!(g.id, "_nomad-task-a1-front-web-http-http");
        assert_eq!((g.address.as_str(), g.port), ("127.0.0.1", 25000));
        assert_eq!(g.tags, vec!["a", "b"]);
        let (both, _) = registrations(
            &a,
            &Running {
                group: true,
                tasks: vec!["server".into()],
            },
        );
        assert_eq!(both.len(), 2);
        let t = both.iter().find(|r| r.id.contains("-server-")).unwrap();
        assert_eq!(t.service_name, "web-front-server");
        assert_eq!(t.id, "_nomad-task-a1-server-web-front-server-http");
    }

    #[test]
    fn an_unknown_port_is_reported_not_registered() {
        let mut a = alloc();
        let mut job = (**a.job.as_ref().unwrap()).clone();
        job.task_groups.as_mut().unwrap()[0]
            .services
            .as_mut()
            .unwrap()[0]
            .port_label = "missing".into();
        a.job = Some(Arc::new(job));
        let (regs, errors) = registrations(
            &a,
            &Running {
                group: true,
                tasks: vec![],
            },
        );
        assert!(regs.is_empty());
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("port label not found"), "{errors:?}");
    }
}
