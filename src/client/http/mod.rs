//! The client's own HTTP endpoints (`/v1/client/...`).

pub mod exec;
pub mod exec_frames;
