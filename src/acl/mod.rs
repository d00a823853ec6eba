//! The ACL model, pure (no I/O): Nomad's policy language parsed into rules, and the rules
//! of a token compiled into an [`Acl`] that answers every permission question. The ACL
//! objects on the wire (tokens, policies, roles) are in `structs::acl`; storing them is the
//! server's, asking them is the HTTP layer's.

pub mod capability;
pub mod compiled;
pub mod policy;
pub mod secret;

pub use capability::{CapSet, Level, NsCap, VarOp};
pub use compiled::{ALL_NAMESPACES, Acl};
pub use policy::{Policy, PolicyError, parse};
pub use secret::constant_time_eq;
