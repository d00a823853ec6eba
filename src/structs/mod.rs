//! The Nomad API data model: plain data with serde names, defaults and validation. No I/O.

pub mod acl;
pub mod alloc;
pub mod canonicalize;
pub mod de;
pub mod deployment;
pub mod eval;
pub mod job;
pub mod keyring;
pub mod namespace;
pub mod node;
pub mod node_drain;
pub mod node_scores;
pub mod operator;
pub mod scaling;
pub mod secret;
pub mod service;
pub mod status;
pub mod submission;
pub mod time;
pub mod validate;
pub mod validate_services;
pub mod variable;
pub mod vec_map;

pub use alloc::*;
pub use deployment::*;
pub use eval::*;
pub use job::*;
pub use namespace::{Namespace, NamespaceCapabilities, NamespaceNodePoolConfiguration};
pub use node::*;
pub use node_drain::*;
pub use node_scores::{NodeScores, ScorerNames};
pub use operator::{PreemptionConfig, SchedulerConfiguration};
pub use scaling::*;
pub use status::*;
pub use submission::JobSubmission;
pub use vec_map::VecMap;

/// Namespace used when a request names none.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Region used when none is configured.
pub const DEFAULT_REGION: &str = "global";

/// A fresh random UUID in Nomad's textual form.
pub fn generate_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The first 8 characters of an ID (Nomad's short ID).
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
