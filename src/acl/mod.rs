//! The ACL model, pure (no I/O): Nomad's policy language parsed into rules, and the rules
//! of a token compiled into an [`Acl`] that answers every permission question. The ACL
//! objects on the wire (tokens, policies, roles) are in `structs::acl`; storing them is the
//! server's, asking them is the HTTP layer's.

pub mod capability;
pub mod compiled;
pub mod policy;

pub use capability::{CapSet, Level, NsCap, VarOp};
pub use compiled::{ALL_NAMESPACES, Acl};
pub use policy::{Policy, PolicyError, parse};

use std::time::Duration;

/// The `acl { }` settings the server and the client act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclSettings {
    /// Enforce tokens; when false every caller may do everything.
    pub enabled: bool,
    /// How long a client agent trusts a token it resolved through a server.
    pub token_ttl: Duration,
    /// How long a client agent trusts the policies it resolved through a server.
    pub policy_ttl: Duration,
    /// Shortest `ExpirationTTL` a token may be given.
    pub token_min_expiration_ttl: Duration,
    /// Longest `ExpirationTTL` a token may be given.
    pub token_max_expiration_ttl: Duration,
}

impl Default for AclSettings {
    fn default() -> Self {
        // Nomad's defaults.
        AclSettings {
            enabled: false,
            token_ttl: Duration::from_secs(30),
            policy_ttl: Duration::from_secs(30),
            token_min_expiration_ttl: Duration::from_secs(60),
            token_max_expiration_ttl: Duration::from_secs(24 * 3600),
        }
    }
}
