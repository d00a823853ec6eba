//! The connection to the Docker engine and the mapping of its errors.
//!
//! The client is created lazily and kept: bollard refuses to build a unix-socket client while
//! the socket file is missing, so an engine that starts after the agent is picked up on the next
//! call. bollard opens a fresh connection per request, so a kept client survives engine restarts.

use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::{API_DEFAULT_VERSION, Docker};
use tokio::sync::Mutex;

use crate::DriverError;

/// Timeout of ordinary API calls (Nomad's normal client uses 5 minutes).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// A lazily connected engine client for one endpoint.
pub struct Engine {
    endpoint: String,
    client: Mutex<Option<Docker>>,
}

impl Engine {
    /// An engine at `endpoint` (`unix://`, `tcp://` or `http://`); nothing is contacted yet.
    pub fn new(endpoint: &str) -> Self {
        Engine {
            endpoint: endpoint.to_string(),
            client: Mutex::new(None),
        }
    }

    /// The client, connecting (and negotiating the API version) on first use.
    pub async fn client(&self) -> Result<Docker, DriverError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let secs = REQUEST_TIMEOUT.as_secs();
        let raw = if let Some(path) = self.endpoint.strip_prefix("unix://") {
            Docker::connect_with_unix(path, secs, API_DEFAULT_VERSION)
        } else {
            Docker::connect_with_http(&self.endpoint, secs, API_DEFAULT_VERSION)
        }
        .map_err(|e| {
            DriverError::Unavailable(format!("Failed to initialize docker client: {e}"))
        })?;
        let client = raw.negotiate_version().await.map_err(|e| {
            DriverError::Unavailable(format!("Failed to connect to docker daemon: {e}"))
        })?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// A client without a practical timeout, for calls that legitimately block (wait, stop).
    pub async fn patient_client(&self, bound: Duration) -> Result<Docker, DriverError> {
        Ok(self.client().await?.with_timeout(bound))
    }
}

/// The engine's own message for an error (what `docker` would print), without bollard's prefix.
pub fn message(e: &BollardError) -> String {
    match e {
        BollardError::DockerResponseServerError { message, .. } => message.clone(),
        BollardError::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

/// The HTTP status of an engine error response, if it was one.
pub fn status(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The object does not exist (404).
pub fn is_not_found(e: &BollardError) -> bool {
    status(e) == Some(404)
}

/// The request conflicts with the object's state (409: name in use, not running, ...).
pub fn is_conflict(e: &BollardError) -> bool {
    status(e) == Some(409)
}

/// Nothing to do (304: already stopped/started).
pub fn is_not_modified(e: &BollardError) -> bool {
    status(e) == Some(304)
}

/// A recoverable driver failure with what was being done.
pub fn failed(context: &str, e: &BollardError) -> DriverError {
    DriverError::Failed(format!("{context}: {}", message(e)))
}
