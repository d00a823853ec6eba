//! Signal names the docker driver accepts (consul-template's table, Nomad's `signals.Parse`).

use crate::DriverError;

/// The Unix signal names Nomad publishes as `os.signals`.
pub const NAMES: &[&str] = &[
    "SIGNULL", "SIGABRT", "SIGALRM", "SIGBUS", "SIGCONT", "SIGFPE", "SIGHUP", "SIGILL", "SIGINT",
    "SIGIO", "SIGIOT", "SIGKILL", "SIGPIPE", "SIGPROF", "SIGQUIT", "SIGSEGV", "SIGSTOP", "SIGSYS",
    "SIGTERM", "SIGTRAP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGUSR1", "SIGUSR2", "SIGWINCH",
    "SIGXCPU", "SIGXFSZ",
];

/// Case-insensitive lookup; unknown names are an error listing the valid ones (as in Nomad).
pub fn parse(name: &str) -> Result<&'static str, DriverError> {
    let upper = name.trim().to_ascii_uppercase();
    NAMES.iter().copied().find(|n| *n == upper).ok_or_else(|| {
        DriverError::InvalidSignal(format!("{name:?}; valid signals are {}", NAMES.join(", ")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_and_unknown_is_error() {
        assert_eq!(parse("sigusr1").ok(), Some("SIGUSR1"));
        assert_eq!(parse("SIGHUP").ok(), Some("SIGHUP"));
        assert!(matches!(
            parse("SIGFOO"),
            Err(DriverError::InvalidSignal(_))
        ));
        assert!(parse("9").is_err());
        assert!(parse("SIGCHLD").is_err());
    }
}
