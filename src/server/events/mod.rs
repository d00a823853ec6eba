//! The event stream (`GET /v1/event/stream`): every state write yields events for the
//! objects it changed ([`event`]), published once the write is visible to readers
//! ([`broker`]), and streamed to each subscriber through its filter ([`subscription`],
//! [`stream`]).
//!
//! The state store records the changes as a write makes them (shared objects, no copies)
//! and hands them to the broker with the write's index when it commits; writers never
//! encode a payload nor wait for a subscriber. Under Raft, the same happens where a write
//! is applied.

pub mod broker;
pub mod event;
pub mod stream;
pub mod subscription;

pub use broker::{DEFAULT_EVENT_BUFFER_SIZE, EventBroker};
pub use event::{Event, EventBatch, EventType, Object, Topic};
pub use subscription::Filter;
