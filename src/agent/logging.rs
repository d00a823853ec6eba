//! Process-wide tracing setup from the agent's `log_level` and `log_json`; the level can be
//! changed later (a SIGHUP reload), as Nomad's agent can.

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// Swaps the installed filter; set once `init` installed the subscriber.
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

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

/// `RUST_LOG`, when set and valid, refines the level per module and wins over `log_level`.
fn env_filter() -> Option<EnvFilter> {
    EnvFilter::try_from_default_env().ok()
}

/// Installs the global subscriber. Returns false when a subscriber was already installed
/// (tests, embedding).
pub fn init(level: &str, json: bool) -> bool {
    let filter = env_filter().unwrap_or_else(|| EnvFilter::new(filter_directive(level)));
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour only on a terminal; journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let fmt = if json {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok();
    if installed {
        let _ = FILTER.set(handle);
    }
    installed
}

/// What a level change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelChange {
    /// The new level is in force.
    Applied,
    /// `RUST_LOG` decides the filter; `log_level` is not used while it is set.
    OverriddenByEnv,
    /// This process did not install the subscriber (`init` was not called or lost the race).
    NotInstalled,
}

/// Switches the installed subscriber to the canonical `level`.
pub fn set_level(level: &str) -> Result<LevelChange, String> {
    let Some(handle) = FILTER.get() else {
        return Ok(LevelChange::NotInstalled);
    };
    if env_filter().is_some() {
        return Ok(LevelChange::OverriddenByEnv);
    }
    handle
        .reload(EnvFilter::new(filter_directive(level)))
        .map(|()| LevelChange::Applied)
        .map_err(|e| e.to_string())
}
