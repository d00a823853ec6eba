//! Process-wide tracing setup from the agent's `log_level` and `log_json`.

use tracing_subscriber::EnvFilter;

/// Maps a canonical log level (see `config::LOG_LEVELS`) to a tracing filter directive.
pub fn filter_directive(level: &str) -> &'static str {
    match level {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "WARN" => "warn",
        "ERROR" => "error",
        "OFF" => "off",
        _ => "info",
    }
}

/// Installs the global subscriber; `RUST_LOG`, when set, refines the level per module.
/// Returns false when a subscriber was already installed (tests, embedding).
pub fn init(level: &str, json: bool) -> bool {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(filter_directive(level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal; journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder.json().try_init().is_ok()
    } else {
        builder.try_init().is_ok()
    }
}
