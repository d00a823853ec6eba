//! `yurt alloc ...`: commands about one allocation.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::alloc_exec;

/// `yurt alloc` arguments.
#[derive(Debug, Args)]
pub struct AllocArgs {
    /// The alloc subcommand.
    #[command(subcommand)]
    pub command: AllocCommand,
}

/// Alloc subcommands.
#[derive(Debug, Subcommand)]
pub enum AllocCommand {
    /// Run a command in a running allocation.
    Exec(alloc_exec::ExecArgs),
}

/// Runs an alloc subcommand.
pub fn run(args: &AllocArgs) -> ExitCode {
    match &args.command {
        AllocCommand::Exec(a) => alloc_exec::run(a),
    }
}
