//! Prestart hook `dispatch_payload`: a dispatched job's payload is written to
//! `local/<dispatch_payload.file>` before the task starts (Nomad decodes the snappy block
//! the server stored).

use std::path::{Component, Path};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::super::allocdir::TaskDir;
use crate::structs::{Job, Task};

/// Writes the payload for `task`, if its job carries one and the task asks for it.
pub(crate) fn prestart(job: Option<&Job>, task: &Task, dir: &TaskDir) -> Result<(), String> {
    let Some(file) = task
        .dispatch_payload
        .as_ref()
        .map(|d| d.file.as_str())
        .filter(|f| !f.is_empty())
    else {
        return Ok(());
    };
    let Some(encoded) = job.and_then(|j| j.payload.as_deref()) else {
        return Ok(());
    };
    let relative = Path::new(file);
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "dispatch payload file {file:?} escapes the local dir"
        ));
    }
    let compressed = STANDARD
        .decode(encoded.as_bytes())
        .map_err(|e| format!("payload is not base64: {e}"))?;
    let payload = snap::raw::Decoder::new()
        .decompress_vec(&compressed)
        .map_err(|e| format!("decompressing payload: {e}"))?;
    let path = dir.local_dir().join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(&path, payload).map_err(|e| format!("{}: {e}", path.display()))
}
