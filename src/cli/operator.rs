//! `yurt operator raft list-peers`: the servers in the Raft configuration, as Nomad lists
//! them.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::api_client::ApiClient;
use super::api_flags::ApiFlags;
use super::output::{CliError, format_list, run};

/// `yurt operator` subcommands.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Inspect the Raft configuration.
    #[command(subcommand)]
    Raft(RaftCommand),
}

/// `yurt operator raft` subcommands.
#[derive(Debug, Subcommand)]
pub enum RaftCommand {
    /// List the servers in the Raft configuration.
    ListPeers(ListPeersArgs),
}

/// `yurt operator`.
#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// The subcommand.
    #[command(subcommand)]
    pub command: OperatorCommand,
    /// Address and TLS flags.
    #[command(flatten)]
    pub api: ApiFlags,
}

/// `yurt operator raft list-peers [-stale]`.
#[derive(Debug, Args)]
pub struct ListPeersArgs {
    /// Let any server answer, not only the leader.
    #[arg(long)]
    stale: bool,
}

/// Runs an `operator` subcommand.
pub fn main(args: OperatorArgs) -> ExitCode {
    run(async move {
        let api = ApiClient::from_flags(&args.api)?;
        match args.command {
            OperatorCommand::Raft(RaftCommand::ListPeers(a)) => list_peers(&api, &a).await,
        }
    })
}

async fn list_peers(api: &ApiClient, a: &ListPeersArgs) -> Result<(), CliError> {
    let stale = a.stale.to_string();
    let config: Value = api
        .get_json(
            "/v1/operator/raft/configuration",
            &[("stale", stale.as_str())],
        )
        .await
        .map_err(|e| CliError(format!("Failed to retrieve raft configuration: {e}")))?;
    println!("{}", peers_table(&config));
    Ok(())
}

fn peers_table(config: &Value) -> String {
    let mut rows = vec![
        ["Node", "ID", "Address", "State", "Voter", "RaftProtocol"]
            .map(str::to_string)
            .to_vec(),
    ];
    for s in config["Servers"].as_array().into_iter().flatten() {
        let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
        let state = if s["Leader"] == true {
            "leader"
        } else {
            "follower"
        };
        rows.push(vec![
            text("Node"),
            text("ID"),
            text("Address"),
            state.to_string(),
            s["Voter"].as_bool().unwrap_or(false).to_string(),
            text("RaftProtocol"),
        ]);
    }
    format_list(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn peers_are_listed_with_their_state() {
        let config = json!({"Index": 7, "Servers": [
            {"Node": "s1.global", "ID": "10.0.0.1:4647", "Address": "10.0.0.1:4647",
             "Leader": true, "Voter": true, "RaftProtocol": "3"}]});
        assert_eq!(
            peers_table(&config),
            "Node       ID             Address        State   Voter  RaftProtocol\n\
             s1.global  10.0.0.1:4647  10.0.0.1:4647  leader  true   3"
        );
    }
}
