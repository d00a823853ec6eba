//! What a subscriber asked for (topics with keys, namespaces) and whether its ACL lets it
//! ask, as Nomad decides both.

use std::collections::BTreeMap;

use super::event::Event;
use crate::acl::{Acl, NsCap};

/// The topic and key meaning "everything".
pub const ALL: &str = "*";

/// A subscription's filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Topic → keys (`*` for every key).
    topics: BTreeMap<String, Vec<String>>,
    /// The namespaces whose namespaced events pass; events without one always pass.
    namespaces: Vec<String>,
}

/// A `topic` parameter that is not `Topic` or `Topic:Key`.
#[derive(Debug, thiserror::Error)]
#[error("Invalid topic query: error parsing topics: Invalid key value pair for topic, topic: {0}")]
pub struct BadTopic(String);

/// The subscriber's token may not read one of the topics in one of the namespaces.
#[derive(Debug, thiserror::Error)]
#[error("Permission denied")]
pub struct Denied;

impl Filter {
    /// Parses `topic` parameters (`Job`, `Job:web`, `*`); none means every topic.
    pub fn parse<'a>(topics: impl IntoIterator<Item = &'a str>) -> Result<Self, BadTopic> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in topics {
            let (topic, key) = match t.split(':').collect::<Vec<_>>()[..] {
                [topic] => (topic, ALL),
                [topic, key] => (topic, key),
                _ => return Err(BadTopic(t.to_string())),
            };
            out.entry(topic.to_string())
                .or_default()
                .push(key.to_string());
        }
        if out.is_empty() {
            out.insert(ALL.to_string(), vec![ALL.to_string()]);
        }
        Ok(Filter {
            topics: out,
            namespaces: Vec::new(),
        })
    }

    /// Checks that `acl` may read every requested topic in every namespace the
    /// subscription covers (`namespace`, or all of `existing` for `*`) and keeps those
    /// namespaces as the filter's. A namespace created later is not covered, as in Nomad.
    pub fn authorize(
        mut self,
        acl: &Acl,
        namespace: &str,
        existing: impl IntoIterator<Item = String>,
    ) -> Result<Self, Denied> {
        self.namespaces = if namespace == ALL {
            existing.into_iter().collect()
        } else {
            vec![namespace.to_string()]
        };
        self.check(acl)?;
        Ok(self)
    }

    /// Whether `acl` still allows what this filter was authorized for (its token's
    /// policies may have changed since).
    pub fn check(&self, acl: &Acl) -> Result<(), Denied> {
        for ns in &self.namespaces {
            for topic in self.topics.keys() {
                if !may_read(acl, ns, topic) {
                    return Err(Denied);
                }
            }
        }
        Ok(())
    }

    /// Whether `event` is one the subscriber asked for.
    pub fn matches(&self, event: &Event) -> bool {
        let ns = event.object.namespace();
        if !ns.is_empty() && !self.namespaces.iter().any(|n| n == ns) {
            return false;
        }
        let topic = event.object.topic().as_str();
        [self.topics.get(ALL), self.topics.get(topic)]
            .into_iter()
            .flatten()
            .flatten()
            .any(|key| key == ALL || event.object.matches_key(key))
    }
}

/// Nomad's rule for reading a topic: the job topics need `read-job` in the namespace,
/// nodes `node:read`, anything else (ACL objects, `*`) a management token.
fn may_read(acl: &Acl, ns: &str, topic: &str) -> bool {
    match topic {
        "Job" | "Evaluation" | "Allocation" | "Deployment" | "Service" | "CSIPlugin" => {
            acl.allow_ns_op(ns, NsCap::READ_JOB)
        }
        "Node" => acl.allow_node_read(),
        _ => acl.is_management(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::acl::policy::parse;
    use crate::server::events::event::Object;
    use crate::structs::{Allocation, Job, Node};

    fn job(ns: &str, id: &str) -> Event {
        Event::new(
            Object::Job(Arc::new(Job {
                namespace: ns.into(),
                id: id.into(),
                ..Default::default()
            })),
            false,
            None,
        )
    }

    fn everything(f: Filter) -> Filter {
        f.authorize(&Acl::management(), "default", Vec::new())
            .unwrap()
    }

    #[test]
    fn topics_and_keys_select_events() {
        let f = everything(Filter::parse(["Job:web", "Node"]).unwrap());
        assert!(f.matches(&job("default", "web")));
        assert!(!f.matches(&job("default", "api")));
        assert!(!f.matches(&job("other", "web")), "another namespace");
        let node = Event::new(Object::Node(Arc::new(Node::default())), false, None);
        assert!(f.matches(&node));
        let alloc = Event::new(
            Object::Allocation(Arc::new(Allocation {
                job_id: "web".into(),
                namespace: "default".into(),
                ..Default::default()
            })),
            false,
            None,
        );
        assert!(!f.matches(&alloc), "Allocation was not asked for");
        let all = everything(Filter::parse([]).unwrap());
        assert!(all.matches(&alloc) && all.matches(&node));
        let by_job = everything(Filter::parse(["Allocation:web"]).unwrap());
        assert!(by_job.matches(&alloc), "a filter key matches");
    }

    #[test]
    fn a_malformed_topic_is_refused() {
        assert!(Filter::parse(["Job:a:b"]).is_err());
    }

    #[test]
    fn reading_a_topic_needs_its_capability_in_every_namespace() {
        let policy = parse(r#"namespace "default" { policy = "read" }"#).unwrap();
        let acl = Acl::from_policies([&policy]);
        let jobs = || Filter::parse(["Job", "Allocation"]).unwrap();
        assert!(jobs().authorize(&acl, "default", Vec::new()).is_ok());
        assert!(jobs().authorize(&acl, "prod", Vec::new()).is_err());
        let all = vec!["default".to_string(), "prod".to_string()];
        assert!(jobs().authorize(&acl, "*", all).is_err());
        assert!(
            Filter::parse([])
                .unwrap()
                .authorize(&acl, "default", Vec::new())
                .is_err(),
            "every topic needs a management token"
        );
        assert!(
            Filter::parse(["ACLToken"])
                .unwrap()
                .authorize(&acl, "default", Vec::new())
                .is_err()
        );
    }
}
