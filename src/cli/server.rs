//! `yurt server members`: the servers of the region, as Nomad lists them.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::api_client::ApiClient;
use super::api_flags::ApiFlags;
use super::output::{CliError, FormatArgs, format_list, run};

/// `yurt server` subcommands.
#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// List the servers the agent knows of.
    Members(MembersArgs),
}

/// `yurt server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The subcommand.
    #[command(subcommand)]
    pub command: ServerCommand,
    /// Address and TLS flags.
    #[command(flatten)]
    pub api: ApiFlags,
}

/// `yurt server members [-verbose] [-json|-t T]`.
#[derive(Debug, Args)]
pub struct MembersArgs {
    /// Add the protocol version and all tags.
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    format: FormatArgs,
}

/// Runs a `server` subcommand.
pub fn main(args: ServerArgs) -> ExitCode {
    run(async move {
        let api = ApiClient::from_flags(&args.api)?;
        match args.command {
            ServerCommand::Members(a) => members(&api, &a).await,
        }
    })
}

fn tag(m: &Value, key: &str) -> String {
    m["Tags"][key].as_str().unwrap_or_default().to_string()
}

/// Whether `m` is its region's leader: its RPC address is the one `/v1/status/leader` names.
fn is_leader(m: &Value, leader: &str) -> bool {
    let addr = m["Addr"].as_str().unwrap_or_default();
    !leader.is_empty() && format!("{addr}:{}", tag(m, "port")) == leader
}

async fn members(api: &ApiClient, a: &MembersArgs) -> Result<(), CliError> {
    a.format.check()?;
    let resp: Value = api
        .get_json("/v1/agent/members", &[])
        .await
        .map_err(|e| CliError(format!("Error querying servers: {e}")))?;
    let mut list = resp["Members"].as_array().cloned().unwrap_or_default();
    // A member list with no leader is still worth printing; the Leader column says false.
    let leader: String = api
        .get_json("/v1/status/leader", &[])
        .await
        .unwrap_or_default();
    if a.format.requested() {
        for m in &mut list {
            let leads = is_leader(m, &leader).to_string();
            if let Some(tags) = m["Tags"].as_object_mut() {
                tags.insert("Leader".into(), Value::String(leads));
            }
        }
        a.format.print(&list)?;
        return Ok(());
    }
    println!("{}", members_table(&list, &leader, a.verbose));
    Ok(())
}

fn members_table(list: &[Value], leader: &str, verbose: bool) -> String {
    let mut header = vec!["Name", "Address", "Port", "Status", "Leader"];
    if verbose {
        header.push("Protocol");
    }
    header.extend(["Raft Version", "Build", "Datacenter", "Region"]);
    if verbose {
        header.push("Tags");
    }
    let mut rows = vec![header.into_iter().map(str::to_string).collect::<Vec<_>>()];
    for m in list {
        let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
        let mut row = vec![
            s("Name"),
            s("Addr"),
            m["Port"].as_u64().unwrap_or(0).to_string(),
            s("Status"),
            is_leader(m, leader).to_string(),
        ];
        if verbose {
            row.push(m["ProtocolCur"].as_u64().unwrap_or(0).to_string());
        }
        row.extend([
            tag(m, "raft_vsn"),
            tag(m, "build"),
            tag(m, "dc"),
            tag(m, "region"),
        ]);
        if verbose {
            let tags: Vec<String> = m["Tags"]
                .as_object()
                .map(|t| {
                    t.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            row.push(tags.join(","));
        }
        rows.push(row);
    }
    format_list(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_leader_is_found_by_rpc_address() {
        let m = json!({"Name": "s1.global", "Addr": "10.0.0.1", "Port": 4648, "Status": "alive",
            "Tags": {"port": "4647", "dc": "dc1", "region": "global", "build": "1.9.0",
                     "raft_vsn": "3"}});
        let t = members_table(std::slice::from_ref(&m), "10.0.0.1:4647", false);
        assert_eq!(
            t,
            "Name       Address   Port  Status  Leader  Raft Version  Build  Datacenter  Region\n\
             s1.global  10.0.0.1  4648  alive   true    3             1.9.0  dc1         global"
        );
        assert!(!is_leader(&m, "10.0.0.2:4647"));
    }
}
