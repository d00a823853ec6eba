//! The supervisor's error type.

/// Failures inside the supervisor and its launcher.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The launch spec is unreadable or unusable.
    #[error("invalid launch spec: {0}")]
    Spec(String),
    /// The task's user cannot be resolved.
    #[error("user {0}")]
    User(String),
    /// The supervisor said something the launcher did not understand, or reported a failure.
    #[error("supervisor: {0}")]
    Protocol(String),
    /// I/O failure with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl SupervisorError {
    /// Wraps an I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        SupervisorError::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps an errno from nix with context.
    pub fn errno(context: impl Into<String>, e: nix::errno::Errno) -> Self {
        SupervisorError::io(context, std::io::Error::from(e))
    }
}
