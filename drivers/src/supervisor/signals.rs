//! Nomad's signal names (consul-template's `SignalLookup` keys) mapped to numbers.
//!
//! Names are matched exactly, without case folding, like Nomad's exec/raw_exec; unlike
//! Nomad, an unknown name is an error instead of a silent SIGINT.

/// The accepted names and their Linux numbers; `SIGNULL` is 0 (existence probe).
const TABLE: &[(&str, i32)] = &[
    ("SIGNULL", 0),
    ("SIGABRT", libc::SIGABRT),
    ("SIGALRM", libc::SIGALRM),
    ("SIGBUS", libc::SIGBUS),
    ("SIGCONT", libc::SIGCONT),
    ("SIGFPE", libc::SIGFPE),
    ("SIGHUP", libc::SIGHUP),
    ("SIGILL", libc::SIGILL),
    ("SIGINT", libc::SIGINT),
    ("SIGIO", libc::SIGIO),
    ("SIGIOT", libc::SIGIOT),
    ("SIGKILL", libc::SIGKILL),
    ("SIGPIPE", libc::SIGPIPE),
    ("SIGPROF", libc::SIGPROF),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGSEGV", libc::SIGSEGV),
    ("SIGSTOP", libc::SIGSTOP),
    ("SIGSYS", libc::SIGSYS),
    ("SIGTERM", libc::SIGTERM),
    ("SIGTRAP", libc::SIGTRAP),
    ("SIGTSTP", libc::SIGTSTP),
    ("SIGTTIN", libc::SIGTTIN),
    ("SIGTTOU", libc::SIGTTOU),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGWINCH", libc::SIGWINCH),
    ("SIGXCPU", libc::SIGXCPU),
    ("SIGXFSZ", libc::SIGXFSZ),
];

/// The signal number for a Nomad signal name, or None when the name is not accepted.
pub fn parse_signal(name: &str) -> Option<i32> {
    TABLE.iter().find(|(n, _)| *n == name).map(|&(_, s)| s)
}

/// The Nomad name of a signal number (first match, so 6 is `SIGABRT`).
pub fn signal_name(sig: i32) -> Option<&'static str> {
    TABLE.iter().find(|&&(_, s)| s == sig).map(|&(n, _)| n)
}

/// Whether `sig` is a number the supervisor may deliver (a table entry).
pub fn is_known(sig: i32) -> bool {
    signal_name(sig).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_only() {
        assert_eq!(parse_signal("SIGHUP"), Some(1));
        assert_eq!(parse_signal("SIGUSR1"), Some(libc::SIGUSR1));
        assert_eq!(parse_signal("sighup"), None);
        assert_eq!(parse_signal("SIGCHLD"), None);
        assert_eq!(parse_signal("9"), None);
        assert_eq!(signal_name(libc::SIGKILL), Some("SIGKILL"));
        assert!(!is_known(libc::SIGCHLD));
    }
}
