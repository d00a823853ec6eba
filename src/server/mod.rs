//! The bundled server: state store, evaluation broker, schedulers, plan applier, heartbeats
//! and the server-side HTTP handlers.

pub mod scheduler;
pub mod state;
