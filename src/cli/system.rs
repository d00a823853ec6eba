//! `yurt system gc` and `yurt system reconcile summaries`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::api_flags::ApiFlags;
use super::output::{CliError, run};

/// `yurt system` subcommands.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Run the server's garbage collection now, ignoring its thresholds.
    Gc(ApiOnly),
    /// Reconcile the server's job summaries.
    Reconcile(ReconcileArgs),
}

/// `yurt system`.
#[derive(Debug, Args)]
pub struct SystemArgs {
    /// The subcommand.
    #[command(subcommand)]
    pub command: SystemCommand,
}

/// A command with only the API flags.
#[derive(Debug, Args)]
pub struct ApiOnly {
    #[command(flatten)]
    api: ApiFlags,
}

/// `yurt system reconcile summaries`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// What to reconcile.
    #[command(subcommand)]
    what: ReconcileWhat,
}

/// What `system reconcile` reconciles.
#[derive(Debug, Subcommand)]
pub enum ReconcileWhat {
    /// Job summaries.
    Summaries(ApiOnly),
}

/// Runs a `system` subcommand.
pub fn main(args: SystemArgs) -> ExitCode {
    match args.command {
        SystemCommand::Gc(a) => put(a, "/v1/system/gc", "system garbage-collection"),
        SystemCommand::Reconcile(ReconcileArgs {
            what: ReconcileWhat::Summaries(a),
        }) => put(
            a,
            "/v1/system/reconcile/summaries",
            "system summary reconciliation",
        ),
    }
}

/// PUTs an empty request to `path`; Nomad prints nothing on success.
fn put(a: ApiOnly, path: &'static str, what: &'static str) -> ExitCode {
    run(async move {
        let _: Value = a
            .api
            .client()?
            .put_json(path, &Value::Null)
            .await
            .map_err(|e| CliError(format!("Error running {what}: {e}")))?;
        Ok(())
    })
}
