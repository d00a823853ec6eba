//! Finding the allocation (and task) a client request names, with Nomad's errors.

use crate::client::alloc_runner::AllocRunnerHandle;
use crate::http::HttpError;

use super::ClientApp;

/// Nomad's 404 for an allocation no agent knows.
pub fn unknown_alloc(id: &str) -> HttpError {
    HttpError::not_found(format!("Unknown allocation \"{id}\""))
}

impl ClientApp {
    /// The runner of allocation `id` on this node, or Nomad's 404.
    pub fn runner(&self, id: &str) -> Result<AllocRunnerHandle, HttpError> {
        self.client.alloc(id).ok_or_else(|| unknown_alloc(id))
    }

    /// Like [`ClientApp::runner`], also refusing a runner whose directory is gone (streams).
    pub fn live_runner(&self, id: &str) -> Result<AllocRunnerHandle, HttpError> {
        let runner = self.runner(id)?;
        if runner.is_destroyed() {
            return Err(HttpError::not_found(format!(
                "state for allocation {id} not found on client"
            )));
        }
        Ok(runner)
    }
}

/// go-multierror's rendering of several errors, which Nomad returns verbatim.
pub fn multierror(errors: &[String]) -> String {
    let head = if errors.len() == 1 {
        "1 error occurred:".to_string()
    } else {
        format!("{} errors occurred:", errors.len())
    };
    let items: String = errors.iter().map(|e| format!("\n\t* {e}")).collect();
    format!("{head}{items}\n\n")
}
