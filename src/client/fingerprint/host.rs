//! Host: OS, kernel, architecture, hostname, cgroup version and signals.

use std::collections::BTreeMap;

/// Go's name for the architecture (`amd64`, `arm64`), which job constraints use.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// The machine's hostname.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// `(ID, VERSION_ID)` from `/etc/os-release`.
pub fn os_release() -> (String, String) {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    (get("ID"), get("VERSION_ID"))
}

/// `1` or `2`, from the filesystem mounted at `/sys/fs/cgroup`.
pub fn cgroups_version() -> Option<&'static str> {
    let st = nix::sys::statfs::statfs("/sys/fs/cgroup").ok()?;
    Some(
        if st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC {
            "2"
        } else {
            "1"
        },
    )
}

/// Signal names a task's `kill_signal` or the signal API may use.
pub const SIGNALS: &[&str] = &[
    "SIGABRT", "SIGALRM", "SIGBUS", "SIGCONT", "SIGFPE", "SIGHUP", "SIGILL", "SIGINT", "SIGIO",
    "SIGIOT", "SIGKILL", "SIGPIPE", "SIGPROF", "SIGQUIT", "SIGSEGV", "SIGSTOP", "SIGSYS",
    "SIGTERM", "SIGTRAP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGUSR1", "SIGUSR2", "SIGWINCH",
    "SIGXCPU", "SIGXFSZ", "SIGNULL",
];

/// Sets the host attributes.
pub fn attributes(attrs: &mut BTreeMap<String, String>) {
    let (os, version) = os_release();
    attrs.insert("os.name".into(), os);
    attrs.insert("os.version".into(), version);
    attrs.insert("kernel.name".into(), std::env::consts::OS.into());
    attrs.insert(
        "kernel.version".into(),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    );
    attrs.insert("kernel.arch".into(), std::env::consts::ARCH.into());
    attrs.insert("cpu.arch".into(), go_arch().into());
    attrs.insert("unique.hostname".into(), hostname());
    attrs.insert("os.signals".into(), SIGNALS.join(","));
    if let Some(v) = cgroups_version() {
        attrs.insert("os.cgroups.version".into(), v.into());
    }
}
