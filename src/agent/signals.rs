//! The signals `yurt agent` answers, as Nomad's agent does: SIGHUP reloads the
//! configuration, SIGINT and SIGTERM stop the agent. Installed before anything else starts:
//! SIGHUP's default action would otherwise kill the agent on `systemctl reload`.

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::config::AgentConfig;

/// A signal that stops the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT (Ctrl-C, and what the systemd unit sends).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl StopSignal {
    /// The signal's name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        }
    }

    /// Whether `config` asks for a graceful leave on this signal (`leave_on_interrupt`,
    /// `leave_on_terminate`).
    pub fn leaves(self, config: &AgentConfig) -> bool {
        match self {
            StopSignal::Interrupt => config.leave_on_interrupt,
            StopSignal::Terminate => config.leave_on_terminate,
        }
    }
}

/// What the agent was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentSignal {
    /// SIGHUP: re-read the configuration.
    Reload,
    /// Stop.
    Stop(StopSignal),
}

/// The agent's signal streams.
pub struct Signals {
    hup: Signal,
    int: Signal,
    term: Signal,
}

impl Signals {
    /// Takes over SIGHUP, SIGINT and SIGTERM for this process. Needs a tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// The next signal received.
    pub async fn recv(&mut self) -> AgentSignal {
        tokio::select! {
            Some(()) = self.hup.recv() => AgentSignal::Reload,
            Some(()) = self.int.recv() => AgentSignal::Stop(StopSignal::Interrupt),
            Some(()) = self.term.recv() => AgentSignal::Stop(StopSignal::Terminate),
            // The streams only end with the runtime; nothing more will arrive.
            else => std::future::pending().await,
        }
    }

    /// The next stop signal, answering any SIGHUP meanwhile with a note that it is ignored
    /// (while stopping there is nothing left to reload).
    pub async fn next_stop(&mut self) -> StopSignal {
        loop {
            match self.recv().await {
                AgentSignal::Stop(s) => return s,
                AgentSignal::Reload => {
                    tracing::info!("SIGHUP received while shutting down; not reloading");
                }
            }
        }
    }
}
