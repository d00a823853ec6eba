//! Prestart hook `task_dir`: builds the task's directory tree once, announcing it with the
//! `Task Setup` event.

use super::super::allocdir::{AllocDirError, TaskDir};
use super::events;
use super::state::TaskShared;

/// Size of the secrets dir when the task does not say (Nomad's default).
const DEFAULT_SECRETS_MB: i64 = 1;

/// Builds `dir` unless an earlier start already did.
pub(crate) fn prestart(
    shared: &TaskShared,
    dir: &TaskDir,
    done: &mut bool,
) -> Result<(), AllocDirError> {
    if *done {
        return Ok(());
    }
    shared.emit(events::building_task_dir());
    dir.build(DEFAULT_SECRETS_MB)?;
    *done = true;
    Ok(())
}
