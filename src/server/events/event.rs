//! One state change as the event stream reports it: the changed object (shared with the
//! state tables, never copied on the write path), the write's event type, and the JSON
//! Nomad sends for it, which is built only when a subscriber reads it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeStruct, Serializer};

use crate::structs::acl::{AclPolicy, AclRole, AclToken};
use crate::structs::service::ServiceRegistration;
use crate::structs::{Allocation, Deployment, Evaluation, Job, Node};

/// Why objects changed: one per write, as Nomad names its event `Type`s (each is the
/// message type of the Raft entry that made the change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    NodeRegistration,
    NodeDeregistration,
    NodeEligibility,
    NodeDrain,
    /// A node's status changed (heartbeat missed, came back): Nomad's `NodeStreamEvent`.
    NodeEvent,
    NodePoolUpserted,
    NodePoolDeleted,
    DeploymentStatusUpdate,
    DeploymentPromotion,
    DeploymentAllocHealth,
    AllocationUpdated,
    AllocationUpdateDesiredStatus,
    EvaluationUpdated,
    JobRegistered,
    JobDeregistered,
    JobBatchDeregistered,
    PlanResult,
    AclTokenUpserted,
    AclTokenDeleted,
    AclPolicyUpserted,
    AclPolicyDeleted,
    AclRoleUpserted,
    AclRoleDeleted,
    ServiceRegistration,
    ServiceDeregistration,
    VariableUpdated,
}

impl EventType {
    /// The `Type` string Nomad sends.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::NodeRegistration => "NodeRegistration",
            EventType::NodeDeregistration => "NodeDeregistration",
            EventType::NodeEligibility => "NodeEligibility",
            EventType::NodeDrain => "NodeDrain",
            EventType::NodeEvent => "NodeStreamEvent",
            EventType::NodePoolUpserted => "NodePoolUpserted",
            EventType::NodePoolDeleted => "NodePoolDeleted",
            EventType::DeploymentStatusUpdate => "DeploymentStatusUpdate",
            EventType::DeploymentPromotion => "DeploymentPromotion",
            EventType::DeploymentAllocHealth => "DeploymentAllocHealth",
            EventType::AllocationUpdated => "AllocationUpdated",
            EventType::AllocationUpdateDesiredStatus => "AllocationUpdateDesiredStatus",
            EventType::EvaluationUpdated => "EvaluationUpdated",
            EventType::JobRegistered => "JobRegistered",
            EventType::JobDeregistered => "JobDeregistered",
            EventType::JobBatchDeregistered => "JobBatchDeregistered",
            EventType::PlanResult => "PlanResult",
            EventType::AclTokenUpserted => "ACLTokenUpserted",
            EventType::AclTokenDeleted => "ACLTokenDeleted",
            EventType::AclPolicyUpserted => "ACLPolicyUpserted",
            EventType::AclPolicyDeleted => "ACLPolicyDeleted",
            EventType::AclRoleUpserted => "ACLRoleUpserted",
            EventType::AclRoleDeleted => "ACLRoleDeleted",
            EventType::ServiceRegistration => "ServiceRegistration",
            EventType::ServiceDeregistration => "ServiceDeregistration",
            EventType::VariableUpdated => "VariableUpdated",
        }
    }
}

/// The topics events are published under (Nomad's `Topic` strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Job,
    Evaluation,
    Allocation,
    Deployment,
    Node,
    AclToken,
    AclPolicy,
    AclRole,
    Service,
}

impl Topic {
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Job => "Job",
            Topic::Evaluation => "Evaluation",
            Topic::Allocation => "Allocation",
            Topic::Deployment => "Deployment",
            Topic::Node => "Node",
            Topic::AclToken => "ACLToken",
            Topic::AclPolicy => "ACLPolicy",
            Topic::AclRole => "ACLRole",
            Topic::Service => "Service",
        }
    }
}

/// The object a change wrote (its state after the write), or removed (its state before).
#[derive(Debug, Clone)]
pub enum Object {
    Job(Arc<Job>),
    Evaluation(Arc<Evaluation>),
    Allocation(Arc<Allocation>),
    Deployment(Arc<Deployment>),
    Node(Arc<Node>),
    AclToken(Arc<AclToken>),
    AclPolicy(Arc<AclPolicy>),
    AclRole(Arc<AclRole>),
    Service(Arc<ServiceRegistration>),
}

impl Object {
    pub fn topic(&self) -> Topic {
        match self {
            Object::Job(_) => Topic::Job,
            Object::Evaluation(_) => Topic::Evaluation,
            Object::Allocation(_) => Topic::Allocation,
            Object::Deployment(_) => Topic::Deployment,
            Object::Node(_) => Topic::Node,
            Object::AclToken(_) => Topic::AclToken,
            Object::AclPolicy(_) => Topic::AclPolicy,
            Object::AclRole(_) => Topic::AclRole,
            Object::Service(_) => Topic::Service,
        }
    }

    /// The event's `Key`: the object's ID (a policy's name, a token's accessor).
    pub fn key(&self) -> &str {
        match self {
            Object::Job(j) => &j.id,
            Object::Evaluation(e) => &e.id,
            Object::Allocation(a) => &a.id,
            Object::Deployment(d) => &d.id,
            Object::Node(n) => &n.id,
            Object::AclToken(t) => &t.accessor_id,
            Object::AclPolicy(p) => &p.name,
            Object::AclRole(r) => &r.id,
            Object::Service(s) => &s.id,
        }
    }

    /// The object's namespace; empty for objects that have none (nodes, ACL objects).
    pub fn namespace(&self) -> &str {
        match self {
            Object::Job(j) => &j.namespace,
            Object::Evaluation(e) => &e.namespace,
            Object::Allocation(a) => &a.namespace,
            Object::Deployment(d) => &d.namespace,
            Object::Service(s) => &s.namespace,
            Object::Node(_) | Object::AclToken(_) | Object::AclPolicy(_) | Object::AclRole(_) => "",
        }
    }

    /// The event's `FilterKeys`: related IDs a subscription's key may match too (an
    /// allocation's job and deployment, a role's name); None where Nomad sends `null`.
    pub fn filter_keys(&self) -> Option<[&str; 2]> {
        match self {
            Object::Evaluation(e) => Some([&e.job_id, &e.deployment_id]),
            Object::Allocation(a) => Some([&a.job_id, &a.deployment_id]),
            Object::Service(s) => Some([&s.job_id, &s.service_name]),
            _ => None,
        }
    }

    /// A single filter key (a deployment's job, a role's name), when the object has one.
    fn single_filter_key(&self) -> Option<&str> {
        match self {
            Object::Deployment(d) => Some(&d.job_id),
            Object::AclRole(r) => Some(&r.name),
            _ => None,
        }
    }

    /// Whether `key` is the event's key or one of its filter keys.
    pub fn matches_key(&self, key: &str) -> bool {
        self.key() == key
            || self.filter_keys().is_some_and(|k| k.contains(&key))
            || self.single_filter_key() == Some(key)
    }

    /// The event type of a change to this object when its write named none: what the
    /// writes that usually change it are.
    fn default_type(&self, deleted: bool) -> EventType {
        match (self, deleted) {
            (Object::Job(_), false) => EventType::JobRegistered,
            (Object::Job(_), true) => EventType::JobDeregistered,
            (Object::Evaluation(_), _) => EventType::EvaluationUpdated,
            (Object::Allocation(_), _) => EventType::AllocationUpdated,
            (Object::Deployment(_), _) => EventType::DeploymentStatusUpdate,
            (Object::Node(_), false) => EventType::NodeRegistration,
            (Object::Node(_), true) => EventType::NodeDeregistration,
            (Object::AclToken(_), false) => EventType::AclTokenUpserted,
            (Object::AclToken(_), true) => EventType::AclTokenDeleted,
            (Object::AclPolicy(_), false) => EventType::AclPolicyUpserted,
            (Object::AclPolicy(_), true) => EventType::AclPolicyDeleted,
            (Object::AclRole(_), false) => EventType::AclRoleUpserted,
            (Object::AclRole(_), true) => EventType::AclRoleDeleted,
            (Object::Service(_), false) => EventType::ServiceRegistration,
            (Object::Service(_), true) => EventType::ServiceDeregistration,
        }
    }
}

/// One change of one write.
#[derive(Debug, Clone)]
pub struct Event {
    pub ty: EventType,
    pub object: Object,
    /// The object was removed (its payload carries `"Deleted": true` for a job).
    pub deleted: bool,
}

impl Event {
    /// The event for a change, typed by its write's type when the write named one. ACL
    /// objects and service registrations always name their own type (a registration
    /// removed by an allocation update is still a `ServiceDeregistration`).
    pub fn new(object: Object, deleted: bool, write_type: Option<EventType>) -> Self {
        let own = matches!(
            object,
            Object::AclToken(_) | Object::AclPolicy(_) | Object::AclRole(_) | Object::Service(_)
        );
        let ty = match write_type {
            Some(t) if !own => t,
            _ => object.default_type(deleted),
        };
        Event {
            ty,
            object,
            deleted,
        }
    }
}

/// One event per object: an object a write changed twice (a job registered, then its
/// status recomputed) shows in its first place with its last state, as Nomad reports a
/// transaction's changes.
pub fn latest_per_object(events: Vec<&Event>) -> Vec<&Event> {
    if events.len() < 2 {
        return events;
    }
    let mut slot: HashMap<(Topic, &str), usize> = HashMap::with_capacity(events.len());
    let mut out: Vec<&Event> = Vec::with_capacity(events.len());
    for e in events {
        match slot.entry((e.object.topic(), e.object.key())) {
            Entry::Occupied(at) => out[*at.get()] = e,
            Entry::Vacant(v) => {
                v.insert(out.len());
                out.push(e);
            }
        }
    }
    out
}

/// The events of one write, published under its index.
#[derive(Debug, Clone, Default)]
pub struct EventBatch {
    pub index: u64,
    pub events: Vec<Event>,
}

/// An event as Nomad encodes it, with the index of its write.
pub struct EventJson<'a> {
    pub event: &'a Event,
    pub index: u64,
}

impl Serialize for EventJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let o = &self.event.object;
        let mut st = s.serialize_struct("Event", 7)?;
        st.serialize_field("Topic", o.topic().as_str())?;
        st.serialize_field("Type", self.event.ty.as_str())?;
        st.serialize_field("Key", o.key())?;
        st.serialize_field("Namespace", o.namespace())?;
        match (o.filter_keys(), o.single_filter_key()) {
            (Some(keys), _) => st.serialize_field("FilterKeys", &keys)?,
            (None, Some(key)) => st.serialize_field("FilterKeys", &[key])?,
            (None, None) => st.serialize_field("FilterKeys", &Option::<()>::None)?,
        }
        st.serialize_field("Index", &self.index)?;
        st.serialize_field(
            "Payload",
            &Payload {
                object: o,
                deleted: self.event.deleted,
            },
        )?;
        st.end()
    }
}

/// `{"Job": …}`, `{"Allocation": …}`, …: the object as Nomad's events carry it. Secrets
/// never leave (node and token secrets are blanked, as Nomad's `Sanitize` does) and an
/// allocation comes without its job, which would make every allocation event carry a
/// whole job.
struct Payload<'a> {
    object: &'a Object,
    deleted: bool,
}

impl Serialize for Payload<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self.object {
            Object::Job(j) => {
                m.serialize_entry("Job", j.as_ref())?;
                if self.deleted {
                    m.serialize_entry("Deleted", &true)?;
                }
            }
            Object::Evaluation(e) => m.serialize_entry("Evaluation", e.as_ref())?,
            Object::Allocation(a) => {
                let stripped = Allocation {
                    job: None,
                    ..a.as_ref().clone()
                };
                m.serialize_entry("Allocation", &stripped)?;
            }
            Object::Deployment(d) => m.serialize_entry("Deployment", d.as_ref())?,
            Object::Node(n) => {
                let clean = Node {
                    secret_id: String::new(),
                    ..n.as_ref().clone()
                };
                m.serialize_entry("Node", &clean)?;
            }
            Object::AclToken(t) => {
                let clean = AclToken {
                    secret_id: String::new(),
                    ..t.as_ref().clone()
                };
                m.serialize_entry("ACLToken", &clean)?;
            }
            Object::AclPolicy(p) => m.serialize_entry("ACLPolicy", p.as_ref())?,
            Object::AclRole(r) => m.serialize_entry("ACLRole", r.as_ref())?,
            Object::Service(r) => m.serialize_entry("Service", r.as_ref())?,
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(e: &Event, index: u64) -> serde_json::Value {
        serde_json::to_value(EventJson { event: e, index }).unwrap()
    }

    #[test]
    fn an_allocation_event_has_nomads_shape_without_the_job() {
        let alloc = Allocation {
            id: "a1".into(),
            namespace: "prod".into(),
            job_id: "web".into(),
            deployment_id: "d1".into(),
            job: Some(Arc::new(Job::default())),
            ..Default::default()
        };
        let e = Event::new(
            Object::Allocation(Arc::new(alloc)),
            false,
            Some(EventType::PlanResult),
        );
        let v = json(&e, 42);
        assert_eq!(v["Topic"], "Allocation");
        assert_eq!(v["Type"], "PlanResult");
        assert_eq!(v["Key"], "a1");
        assert_eq!(v["Namespace"], "prod");
        assert_eq!(v["FilterKeys"], serde_json::json!(["web", "d1"]));
        assert_eq!(v["Index"], 42);
        assert_eq!(v["Payload"]["Allocation"]["ID"], "a1");
        assert!(v["Payload"]["Allocation"]["Job"].is_null());
    }

    #[test]
    fn a_service_event_has_nomads_shape_and_names_its_own_type() {
        let reg = ServiceRegistration {
            id: "_nomad-task-a1-web-api-http".into(),
            service_name: "api".into(),
            namespace: "prod".into(),
            job_id: "web".into(),
            port: 8080,
            ..Default::default()
        };
        let reg = Arc::new(reg);
        // A registration removed by an allocation update is still a deregistration.
        let gone = Event::new(
            Object::Service(reg.clone()),
            true,
            Some(EventType::AllocationUpdated),
        );
        let v = json(&gone, 7);
        assert_eq!(v["Topic"], "Service");
        assert_eq!(v["Type"], "ServiceDeregistration");
        assert_eq!(v["Key"], "_nomad-task-a1-web-api-http");
        assert_eq!(v["Namespace"], "prod");
        assert_eq!(v["FilterKeys"], serde_json::json!(["web", "api"]));
        assert_eq!(v["Payload"]["Service"]["Port"], 8080);
        let added = Event::new(Object::Service(reg), false, None);
        assert_eq!(json(&added, 8)["Type"], "ServiceRegistration");
        assert!(
            added.object.matches_key("api"),
            "a service name is a filter key"
        );
    }

    #[test]
    fn secrets_never_reach_a_payload() {
        let token = AclToken {
            accessor_id: "acc".into(),
            secret_id: "very-secret".into(),
            ..Default::default()
        };
        let node = Node {
            id: "n1".into(),
            secret_id: "node-secret".into(),
            ..Default::default()
        };
        for (obj, what) in [
            (Object::AclToken(Arc::new(token)), "ACLToken"),
            (Object::Node(Arc::new(node)), "Node"),
        ] {
            let text = serde_json::to_string(&EventJson {
                event: &Event::new(obj, false, None),
                index: 1,
            })
            .unwrap();
            assert!(!text.contains("secret\""), "{what}: {text}");
            assert!(
                text.contains(&format!("\"Payload\":{{\"{what}\"")),
                "{text}"
            );
        }
    }

    #[test]
    fn acl_objects_keep_their_own_type_and_a_deleted_job_says_so() {
        let token = Event::new(
            Object::AclToken(Arc::new(AclToken::default())),
            true,
            Some(EventType::JobRegistered),
        );
        assert_eq!(token.ty, EventType::AclTokenDeleted);
        let job = Event::new(
            Object::Job(Arc::new(Job {
                id: "web".into(),
                ..Default::default()
            })),
            true,
            Some(EventType::JobDeregistered),
        );
        let v = json(&job, 3);
        assert_eq!(v["Type"], "JobDeregistered");
        assert_eq!(v["Payload"]["Deleted"], true);
        assert!(v["FilterKeys"].is_null());
    }

    #[test]
    fn an_object_changed_twice_keeps_its_first_place_and_last_state() {
        let job = |v: i64| {
            Event::new(
                Object::Job(Arc::new(Job {
                    id: "web".into(),
                    version: v,
                    ..Default::default()
                })),
                false,
                None,
            )
        };
        let eval = Event::new(
            Object::Evaluation(Arc::new(Evaluation::default())),
            false,
            None,
        );
        let (first, second) = (job(1), job(2));
        let out = latest_per_object(vec![&first, &eval, &second]);
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[0].object, Object::Job(j) if j.version == 2));
        assert!(matches!(out[1].object, Object::Evaluation(_)));
    }

    #[test]
    fn keys_match_the_key_and_the_filter_keys() {
        let alloc = Object::Allocation(Arc::new(Allocation {
            id: "a1".into(),
            job_id: "web".into(),
            ..Default::default()
        }));
        assert!(alloc.matches_key("a1"));
        assert!(alloc.matches_key("web"));
        assert!(!alloc.matches_key("api"));
        let role = Object::AclRole(Arc::new(AclRole {
            id: "r1".into(),
            name: "ops".into(),
            ..Default::default()
        }));
        assert!(role.matches_key("ops"));
    }
}
