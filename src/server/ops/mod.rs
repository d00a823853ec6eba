//! The server's operations, one file per area: what Nomad's RPC endpoints do (Job.Register,
//! Job.Scale, Job.Dispatch, Node.UpdateStatus, Alloc.Stop, …). Each validates its input and
//! carries the change out in one state write, with the evaluations that follow from it. The
//! HTTP handlers in [`super::http`] decode requests and call these; the in-process client
//! reaches the node operations through [`crate::rpc::ServerApi`].

pub mod acl;
pub mod allocs;
pub mod cluster_api;
pub mod deployments;
pub mod job_dispatch;
pub mod job_plan;
pub mod job_scale;
pub mod job_versions;
pub mod jobs;
pub mod keyring;
pub mod namespaces;
pub mod node_admin;
pub mod nodes;
pub mod operator;
pub mod search;
pub mod services;
pub mod variables;
pub mod workload_vars;
