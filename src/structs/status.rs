//! Status enums of jobs, allocations, tasks, evaluations, nodes and deployments.
//!
//! Each one travels as Nomad's exact lowercase string (the wire and the records already on
//! disk use those strings), so serde goes through `as_str`/`FromStr` rather than a derive:
//! one table of names per enum, and an unknown name is an error that says which status it
//! was and what is allowed, with the field path added by the request decoder.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A status string that is not one of the enum's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: expected one of {allowed}")]
pub struct UnknownStatus {
    pub what: &'static str,
    pub value: String,
    pub allowed: String,
}

macro_rules! status_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Nomad's name for this status.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $wire ),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $wire => Ok($name::$variant), )+
                    _ => Err(UnknownStatus {
                        what: $what,
                        value: s.to_string(),
                        allowed: [$($wire),+].join(", "),
                    }),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(StatusVisitor::<$name>(std::marker::PhantomData))
            }
        }
    };
}

struct StatusVisitor<T>(std::marker::PhantomData<T>);

impl<T: FromStr<Err = UnknownStatus>> Visitor<'_> for StatusVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a status string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(|e: UnknownStatus| E::custom(e))
    }
}

status_enum! {
    /// A job's status, derived by the server from its allocations and evaluations.
    JobStatus, "job Status" {
        Pending = "pending",
        Running = "running",
        Dead = "dead",
    }
}

status_enum! {
    /// What the server wants an allocation to be.
    #[derive(Default)]
    AllocDesiredStatus, "alloc DesiredStatus" {
        #[default]
        Run = "run",
        Stop = "stop",
        Evict = "evict",
    }
}

status_enum! {
    /// What the client reports an allocation is (or `lost`, set by the server).
    #[derive(Default)]
    AllocClientStatus, "alloc ClientStatus" {
        #[default]
        Pending = "pending",
        Running = "running",
        Complete = "complete",
        Failed = "failed",
        Lost = "lost",
        Unknown = "unknown",
    }
}

status_enum! {
    /// The state of one task in an allocation.
    #[derive(Default)]
    TaskStateName, "task State" {
        #[default]
        Pending = "pending",
        Running = "running",
        Dead = "dead",
    }
}

status_enum! {
    /// An evaluation's progress. Nomad spells the cancelled one `canceled`.
    #[derive(Default)]
    EvalStatus, "eval Status" {
        Blocked = "blocked",
        #[default]
        Pending = "pending",
        Complete = "complete",
        Failed = "failed",
        Canceled = "canceled",
    }
}

status_enum! {
    /// A node's liveness as the server sees it.
    #[derive(Default)]
    NodeStatus, "node Status" {
        #[default]
        Initializing = "initializing",
        Ready = "ready",
        Down = "down",
        Disconnected = "disconnected",
    }
}

status_enum! {
    /// A deployment's progress. Nomad spells the cancelled one `cancelled` (unlike evals).
    #[derive(Default)]
    DeploymentStatus, "deployment Status" {
        #[default]
        Running = "running",
        Paused = "paused",
        Failed = "failed",
        Successful = "successful",
        Cancelled = "cancelled",
        Initializing = "initializing",
        Pending = "pending",
        Blocked = "blocked",
        Unblocking = "unblocking",
    }
}

/// A status that only the server sets, carried as `""` until it does (a job before it is
/// registered, e.g. what `/v1/jobs/parse` returns). On input it is never trusted: whatever a
/// client sends back (`null`, `""`, a stale `"running"` from `nomad job inspect`, or a name
/// this server does not know) reads as "not given", and the server sets its own value.
pub mod server_owned {
    use super::*;

    pub fn serialize<S, T>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        T: Serialize,
    {
        match v {
            Some(t) => t.serialize(s),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr,
    {
        let raw = Option::<String>::deserialize(d)?;
        Ok(raw.and_then(|s| s.parse().ok()))
    }
}

/// `null` and `""` read as the status's default (a sender that leaves it unset); any other
/// string must be one of its names.
pub fn blank_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = UnknownStatus> + Default,
{
    match Option::<String>::deserialize(d)?.as_deref() {
        None | Some("") => Ok(T::default()),
        Some(s) => s.parse().map_err(|e: UnknownStatus| de::Error::custom(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trips<T>(expected: &[(T, &str)])
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + fmt::Debug + Copy + FromStr,
    {
        for (variant, wire) in expected {
            assert_eq!(serde_json::to_value(variant).unwrap(), json!(wire));
            let back: T = serde_json::from_value(json!(wire)).unwrap();
            assert_eq!(back, *variant);
        }
    }

    #[test]
    fn every_variant_has_nomads_exact_name() {
        use AllocClientStatus as C;
        use AllocDesiredStatus as D;
        round_trips(&[
            (JobStatus::Pending, "pending"),
            (JobStatus::Running, "running"),
            (JobStatus::Dead, "dead"),
        ]);
        round_trips(&[(D::Run, "run"), (D::Stop, "stop"), (D::Evict, "evict")]);
        round_trips(&[
            (C::Pending, "pending"),
            (C::Running, "running"),
            (C::Complete, "complete"),
            (C::Failed, "failed"),
            (C::Lost, "lost"),
            (C::Unknown, "unknown"),
        ]);
        round_trips(&[
            (TaskStateName::Pending, "pending"),
            (TaskStateName::Running, "running"),
            (TaskStateName::Dead, "dead"),
        ]);
        round_trips(&[
            (EvalStatus::Blocked, "blocked"),
            (EvalStatus::Pending, "pending"),
            (EvalStatus::Complete, "complete"),
            (EvalStatus::Failed, "failed"),
            (EvalStatus::Canceled, "canceled"),
        ]);
        round_trips(&[
            (NodeStatus::Initializing, "initializing"),
            (NodeStatus::Ready, "ready"),
            (NodeStatus::Down, "down"),
            (NodeStatus::Disconnected, "disconnected"),
        ]);
        round_trips(&[
            (DeploymentStatus::Running, "running"),
            (DeploymentStatus::Paused, "paused"),
            (DeploymentStatus::Successful, "successful"),
            (DeploymentStatus::Failed, "failed"),
            (DeploymentStatus::Cancelled, "cancelled"),
            (DeploymentStatus::Initializing, "initializing"),
            (DeploymentStatus::Pending, "pending"),
            (DeploymentStatus::Blocked, "blocked"),
            (DeploymentStatus::Unblocking, "unblocking"),
        ]);
    }

    #[test]
    fn all_lists_every_variant_once() {
        assert_eq!(JobStatus::ALL.len(), 3);
        assert_eq!(AllocDesiredStatus::ALL.len(), 3);
        assert_eq!(AllocClientStatus::ALL.len(), 6);
        assert_eq!(TaskStateName::ALL.len(), 3);
        assert_eq!(EvalStatus::ALL.len(), 5);
        assert_eq!(NodeStatus::ALL.len(), 4);
        assert_eq!(DeploymentStatus::ALL.len(), 9);
        for s in EvalStatus::ALL {
            assert_eq!(s.to_string(), s.as_str());
            assert_eq!(s.as_str().parse::<EvalStatus>().unwrap(), *s);
        }
    }

    #[test]
    fn eval_and_deployment_spell_cancel_differently() {
        assert!("cancelled".parse::<EvalStatus>().is_err());
        assert!("canceled".parse::<DeploymentStatus>().is_err());
    }

    #[test]
    fn an_unknown_name_is_an_error_that_says_which_status() {
        let err = serde_json::from_value::<AllocClientStatus>(json!("exploded")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("alloc ClientStatus"), "{msg}");
        assert!(msg.contains("\"exploded\""), "{msg}");
        assert!(msg.contains("pending, running, complete"), "{msg}");
        assert!(serde_json::from_value::<AllocClientStatus>(json!("")).is_err());
        assert!(serde_json::from_value::<AllocClientStatus>(json!(null)).is_err());
    }

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(default)]
    struct Owned {
        #[serde(rename = "Status", with = "server_owned")]
        status: Option<JobStatus>,
    }

    #[test]
    fn a_server_owned_status_ignores_what_the_client_sends() {
        for body in [
            json!({}),
            json!({"Status": null}),
            json!({"Status": ""}),
            json!({"Status": "bogus"}),
        ] {
            let o: Owned = serde_json::from_value(body.clone()).unwrap();
            assert_eq!(o.status, None, "{body}");
        }
        let o: Owned = serde_json::from_value(json!({"Status": "running"})).unwrap();
        assert_eq!(o.status, Some(JobStatus::Running));
        assert_eq!(
            serde_json::to_value(Owned::default()).unwrap(),
            json!({"Status": ""})
        );
        let dead = Owned {
            status: Some(JobStatus::Dead),
        };
        assert_eq!(
            serde_json::to_value(dead).unwrap(),
            json!({"Status": "dead"})
        );
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Blank {
        #[serde(rename = "Status", deserialize_with = "blank_default")]
        status: NodeStatus,
    }

    #[test]
    fn blank_default_reads_null_and_empty_as_unset_and_refuses_unknown() {
        for body in [json!({}), json!({"Status": null}), json!({"Status": ""})] {
            let b: Blank = serde_json::from_value(body.clone()).unwrap();
            assert_eq!(b.status, NodeStatus::Initializing, "{body}");
        }
        let b: Blank = serde_json::from_value(json!({"Status": "down"})).unwrap();
        assert_eq!(b.status, NodeStatus::Down);
        let err = serde_json::from_value::<Blank>(json!({"Status": "sideways"})).unwrap_err();
        assert!(err.to_string().contains("invalid node Status"), "{err}");
    }

    #[test]
    fn records_carry_the_same_strings_as_before() {
        let job = crate::structs::Job::default();
        assert_eq!(serde_json::to_value(&job).unwrap()["Status"], json!(""));
        let node: crate::structs::Node = serde_json::from_value(json!({"Status": null})).unwrap();
        assert_eq!(node.status, NodeStatus::Initializing);
        let node: crate::structs::Node = serde_json::from_value(json!({"Status": "down"})).unwrap();
        assert_eq!(
            serde_json::to_value(&node).unwrap()["Status"],
            json!("down")
        );
        let eval: crate::structs::Evaluation =
            serde_json::from_value(json!({"Status": "canceled"})).unwrap();
        assert_eq!(eval.status, EvalStatus::Canceled);
        let dep: crate::structs::Deployment =
            serde_json::from_value(json!({"Status": "cancelled"})).unwrap();
        assert_eq!(
            serde_json::to_value(&dep).unwrap()["Status"],
            json!("cancelled")
        );
    }

    #[test]
    fn an_allocation_record_round_trips_its_status_strings() {
        let stored = json!({
            "DesiredStatus": "stop",
            "ClientStatus": "lost",
            "TaskStates": {"t": {"State": "dead", "Failed": true}},
        });
        let a: crate::structs::Allocation = serde_json::from_value(stored).unwrap();
        assert_eq!(a.desired_status, AllocDesiredStatus::Stop);
        assert_eq!(a.client_status, AllocClientStatus::Lost);
        let back = serde_json::to_value(&a).unwrap();
        assert_eq!(back["DesiredStatus"], json!("stop"));
        assert_eq!(back["ClientStatus"], json!("lost"));
        assert_eq!(back["TaskStates"]["t"]["State"], json!("dead"));
        let unset: crate::structs::Allocation =
            serde_json::from_value(json!({"DesiredStatus": "", "ClientStatus": null})).unwrap();
        assert_eq!(unset.desired_status, AllocDesiredStatus::Run);
        assert_eq!(unset.client_status, AllocClientStatus::Pending);
    }
}
