//! Native service discovery on the client: which of an allocation's `provider = "nomad"`
//! services are registered (group services while the allocation runs, task services while
//! their task runs), where they are reached, and the loop that keeps the servers' copy equal.

pub mod address;
pub mod build;
pub mod sync;

pub use build::{Running, registrations};
pub use sync::ServiceSync;
