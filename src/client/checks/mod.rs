//! Health checks of native services, run by the client: HTTP and TCP probes of each
//! registered service's checks, their results (served at
//! `/v1/client/allocation/:id/checks`), and `check_restart`.

pub mod probe;
pub mod runner;
pub mod store;

pub use runner::{AllocChecks, CheckSpec, specs};
pub use store::CheckStore;
