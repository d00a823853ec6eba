//! Version strings reported by `yurt version`, `/v1/agent/self` and the node fingerprint.

/// yurt's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Nomad API version yurt speaks; reported as `nomad.version` so version constraints
/// written for Nomad keep working.
pub const NOMAD_COMPAT_VERSION: &str = "1.9.7";
