//! Prestart hook `artifacts`: fetches the task's artifacts into its task dir before the
//! driver starts it, announcing it with `Downloading Artifacts`.

use std::collections::BTreeSet;
use std::path::Path;

use super::super::artifact::{self, ArtifactConfig, Spec};
use super::super::taskenv::TaskEnv;
use super::events;
use super::state::TaskShared;
use crate::structs::Task;

/// Fetches every artifact of `task` not in `done` yet; the error is the event's
/// `download_error` (Nomad's wording: which source failed and why).
pub(crate) async fn prestart(
    shared: &TaskShared,
    task: &Task,
    env: &TaskEnv,
    task_dir: &Path,
    cfg: &ArtifactConfig,
    done: &mut BTreeSet<usize>,
) -> Result<(), String> {
    let artifacts = task.artifacts.as_deref().unwrap_or_default();
    if (0..artifacts.len()).all(|i| done.contains(&i)) {
        return Ok(());
    }
    shared.emit(events::downloading_artifacts());
    for (i, a) in artifacts.iter().enumerate() {
        if done.contains(&i) {
            continue;
        }
        let interpolate = |m: &crate::structs::StrMap| {
            m.iter()
                .flatten()
                .map(|(k, v)| (k.clone(), env.replace(v)))
                .collect()
        };
        let spec = Spec {
            source: env.replace(&a.getter_source),
            options: interpolate(&a.getter_options),
            headers: interpolate(&a.getter_headers),
            mode: a.getter_mode.clone(),
            destination: env.replace(&a.relative_dest),
            insecure: a.getter_insecure,
        };
        artifact::get(&spec, task_dir, cfg)
            .await
            .map_err(|e| format!("failed to download artifact {:?}: {e}", a.getter_source))?;
        done.insert(i);
    }
    Ok(())
}
