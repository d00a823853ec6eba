//! The HTTP conventions every yurt endpoint shares, written once: typed errors rendered as
//! Nomad's plain-text bodies, query-option and token extractors, JSON body decoding,
//! blocking queries over index watches, response headers and `?pretty`, paging, and the
//! router-wide layers (gzip, body limit, 404/405 bodies).
//!
//! A handler typically reads:
//! ```ignore
//! async fn list_jobs(State(s): State<App>, opts: QueryOptions) -> Result<JsonReply<Vec<JobStub>>, HttpError> {
//!     let (index, jobs) = blocking_query(&[s.state.watch_jobs()], &opts, || async { s.state.jobs(&opts) }).await?;
//!     let page = paginate(jobs, &opts, |j| j.id.clone());
//!     Ok(JsonReply::query(&opts, index, page.items).next_token(page.next_token))
//! }
//! ```

pub mod acl;
pub mod blocking;
pub mod body;
pub mod error;
pub mod filter;
pub mod layers;
pub mod paging;
pub mod permissions;
pub mod query;
pub mod respond;
pub mod serve;

pub use acl::{AclBackend, Caller, DeferredCheck, ObjectKind};
pub use blocking::{WaitOutcome, blocking_query, wait_for_index};
pub use body::{JsonBody, OptionalJsonBody, decode_json, decode_optional_json};
pub use error::HttpError;
pub use layers::{LayerConfig, NoCompression, apply_layers, apply_layers_with, no_compression};
pub use paging::{Page, paginate};
pub use query::{AuthContext, QueryOptions, QueryParams, WriteOptions};
pub use respond::{JsonReply, to_json_bytes};
