//! `yurt deployment list|status|promote|fail|pause|resume|unblock`, with Nomad's layouts,
//! and the deployment follower `job run` uses once its evaluation is done.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::api_client::ApiClient;
use super::api_flags::ApiFlags;
use super::eval_monitor::monitor;
use super::output::{CliError, FormatArgs, format_kv, format_list, run, short_id};

/// How long `job run` follows a deployment before leaving it to run on its own.
const FOLLOW_LIMIT: Duration = Duration::from_secs(15 * 60);

/// `yurt deployment` subcommands.
#[derive(Debug, Subcommand)]
pub enum DeploymentCommand {
    /// List deployments.
    List(ListArgs),
    /// Display the status of a deployment.
    Status(StatusArgs),
    /// Promote the canaries of a deployment (all groups, or those given with -group).
    Promote(PromoteArgs),
    /// Mark a deployment failed (reverting the job when its groups ask for auto-revert).
    Fail(ActArgs),
    /// Pause a deployment.
    Pause(ActArgs),
    /// Resume a paused deployment.
    Resume(ActArgs),
    /// Unblock a blocked (multiregion) deployment.
    Unblock(ActArgs),
}

/// `yurt deployment`.
#[derive(Debug, Args)]
pub struct DeploymentArgs {
    /// The subcommand.
    #[command(subcommand)]
    pub command: DeploymentCommand,
    /// Address and TLS flags.
    #[command(flatten)]
    pub api: ApiFlags,
}

/// `yurt deployment list [-json|-t T] [-verbose]`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    format: FormatArgs,
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
}

/// `yurt deployment status [-json|-t T] [-verbose] <deployment>`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    format: FormatArgs,
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
    /// A deployment ID or a unique prefix of one.
    deployment: String,
}

/// `yurt deployment promote [-group g]... [-detach] [-verbose] <deployment>`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// A task group to promote (repeatable); without it every group is promoted.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Print the evaluation ID instead of monitoring it.
    #[arg(long)]
    detach: bool,
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
    /// A deployment ID or a unique prefix of one.
    deployment: String,
}

/// `yurt deployment fail|pause|resume|unblock [-detach] [-verbose] <deployment>`.
#[derive(Debug, Args)]
pub struct ActArgs {
    /// Print the evaluation ID instead of monitoring it.
    #[arg(long)]
    detach: bool,
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
    /// A deployment ID or a unique prefix of one.
    deployment: String,
}

/// Runs a `deployment` subcommand.
pub fn main(args: DeploymentArgs) -> ExitCode {
    run(async move {
        let api = ApiClient::from_flags(&args.api)?;
        match args.command {
            DeploymentCommand::List(a) => list(&api, &a).await,
            DeploymentCommand::Status(a) => status(&api, &a).await,
            DeploymentCommand::Promote(a) => {
                let d = resolve(&api, &a.deployment).await?;
                let id = str_of(&d, "ID");
                let body = if a.groups.is_empty() {
                    json!({"DeploymentID": id, "All": true})
                } else {
                    json!({"DeploymentID": id, "Groups": a.groups})
                };
                let resp = write(&api, "promote", &id, &body, "promoting").await?;
                finish(&api, &resp, a.detach, a.verbose, None).await
            }
            DeploymentCommand::Fail(a) => act(&api, &a, "fail", "failed").await,
            DeploymentCommand::Pause(a) => act(&api, &a, "pause", "paused").await,
            DeploymentCommand::Resume(a) => act(&api, &a, "resume", "resumed").await,
            DeploymentCommand::Unblock(a) => act(&api, &a, "unblock", "unblocked").await,
        }
    })
}

fn str_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// The one deployment whose ID starts with `prefix`.
async fn resolve(api: &ApiClient, prefix: &str) -> Result<Value, CliError> {
    super::resolve::resolve(api, super::resolve::DEPLOYMENT, prefix, |many| {
        list_table(many, true)
    })
    .await
}

async fn write(
    api: &ApiClient,
    op: &str,
    id: &str,
    body: &Value,
    doing: &str,
) -> Result<Value, CliError> {
    api.post_json(&format!("/v1/deployment/{op}/{id}"), body)
        .await
        .map_err(|e| CliError(format!("Error {doing} deployment: {e}")))
}

async fn act(api: &ApiClient, a: &ActArgs, op: &str, done: &str) -> Result<(), CliError> {
    let d = resolve(api, &a.deployment).await?;
    let id = str_of(&d, "ID");
    let (path_op, body, doing) = match op {
        "pause" => (
            "pause",
            json!({"DeploymentID": id, "Pause": true}),
            "pausing",
        ),
        "resume" => (
            "pause",
            json!({"DeploymentID": id, "Pause": false}),
            "resuming",
        ),
        "fail" => ("fail", json!({"DeploymentID": id}), "failing"),
        _ => ("unblock", json!({"DeploymentID": id}), "unblocking"),
    };
    let resp = write(api, path_op, &id, &body, doing).await?;
    let mut msg = format!("Deployment {:?} {done}", short_id(&id, a.verbose));
    if let Some(v) = resp["RevertedJobVersion"].as_i64() {
        msg.push_str(&format!(". Auto-reverted to job version {v}."));
    }
    finish(api, &resp, a.detach, a.verbose, Some(msg)).await
}

/// Prints `msg`, then follows the write's evaluation unless `detach`.
async fn finish(
    api: &ApiClient,
    resp: &Value,
    detach: bool,
    verbose: bool,
    msg: Option<String>,
) -> Result<(), CliError> {
    if let Some(m) = msg {
        println!("{m}");
    }
    let eval = str_of(resp, "EvalID");
    if eval.is_empty() {
        return Ok(());
    }
    if detach {
        println!("Evaluation ID: {eval}");
        return Ok(());
    }
    println!();
    monitor(api, &eval, verbose).await
}

fn list_table(deployments: &[Value], verbose: bool) -> String {
    let mut rows = vec![vec![
        "ID".to_string(),
        "Job ID".into(),
        "Job Version".into(),
        "Status".into(),
        "Description".into(),
    ]];
    for d in deployments {
        rows.push(vec![
            short_id(&str_of(d, "ID"), verbose),
            str_of(d, "JobID"),
            d["JobVersion"].to_string(),
            str_of(d, "Status"),
            str_of(d, "StatusDescription"),
        ]);
    }
    format_list(&rows)
}

async fn list(api: &ApiClient, a: &ListArgs) -> Result<(), CliError> {
    let all: Vec<Value> = api
        .get_json("/v1/deployments", &[])
        .await
        .map_err(|e| CliError(format!("Error retrieving deployments: {e}")))?;
    if a.format.print(&all)? {
        return Ok(());
    }
    if all.is_empty() {
        println!("No deployments found");
    } else {
        println!("{}", list_table(&all, a.verbose));
    }
    Ok(())
}

async fn status(api: &ApiClient, a: &StatusArgs) -> Result<(), CliError> {
    a.format.check()?;
    let d = resolve(api, &a.deployment).await?;
    let full: Value = api
        .get_json(&format!("/v1/deployment/{}", str_of(&d, "ID")), &[])
        .await
        .map_err(|e| CliError(format!("Error retrieving deployment: {e}")))?;
    if !a.format.print(&full)? {
        println!("{}", format_deployment(&full, a.verbose));
    }
    Ok(())
}

/// Nomad's `formatDeployment`: the summary, then a row per group.
pub fn format_deployment(d: &Value, verbose: bool) -> String {
    let head = format_kv(&[
        ("ID", short_id(&str_of(d, "ID"), verbose)),
        ("Job ID", str_of(d, "JobID")),
        ("Job Version", d["JobVersion"].to_string()),
        ("Status", str_of(d, "Status")),
        ("Description", str_of(d, "StatusDescription")),
    ]);
    format!("{head}\n\nDeployed\n{}", format_groups(d))
}

/// Nomad's `formatDeploymentGroups`: the Auto Revert, Promoted and Canaries columns only
/// when some group uses them.
fn format_groups(d: &Value) -> String {
    let empty = serde_json::Map::new();
    let groups = d["TaskGroups"].as_object().unwrap_or(&empty);
    let any = |f: &dyn Fn(&Value) -> bool| groups.values().any(f);
    let autorevert = any(&|g| g["AutoRevert"] == true);
    let canaries = any(&|g| g["DesiredCanaries"].as_i64().unwrap_or(0) > 0);
    let mut header = vec!["Task Group".to_string()];
    if autorevert {
        header.push("Auto Revert".into());
    }
    if canaries {
        header.push("Promoted".into());
    }
    header.push("Desired".into());
    if canaries {
        header.push("Canaries".into());
    }
    for h in ["Placed", "Healthy", "Unhealthy", "Progress Deadline"] {
        header.push(h.into());
    }
    let mut rows = vec![header];
    for (name, g) in groups {
        let n = |k: &str| g[k].as_i64().unwrap_or(0).to_string();
        let mut row = vec![name.clone()];
        if autorevert {
            row.push(g["AutoRevert"].as_bool().unwrap_or(false).to_string());
        }
        if canaries {
            let promoted = if g["DesiredCanaries"].as_i64().unwrap_or(0) > 0 {
                g["Promoted"].as_bool().unwrap_or(false).to_string()
            } else {
                "N/A".to_string()
            };
            row.push(promoted);
        }
        row.push(n("DesiredTotal"));
        if canaries {
            row.push(n("DesiredCanaries"));
        }
        row.push(n("PlacedAllocs"));
        row.push(n("HealthyAllocs"));
        row.push(n("UnhealthyAllocs"));
        let deadline = if g["ProgressDeadline"].as_i64().unwrap_or(0) != 0 {
            str_of(g, "RequireProgressBy")
        } else {
            "N/A".to_string()
        };
        row.push(deadline);
        rows.push(row);
    }
    format_list(&rows)
}

/// Follows the deployment `id` (as `job run` does after its evaluation): prints the table
/// each time it changes, until the deployment ends.
pub async fn follow(api: &ApiClient, id: &str, verbose: bool) -> Result<(), CliError> {
    let now = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    println!(
        "==> {}: Monitoring deployment {:?}",
        now(),
        short_id(id, verbose)
    );
    let deadline = tokio::time::Instant::now() + FOLLOW_LIMIT;
    let path = format!("/v1/deployment/{id}");
    let mut index = 0u64;
    let mut last = String::new();
    loop {
        let idx = index.to_string();
        let (d, i): (Value, u64) = api
            .get_json_indexed(&path, &[("index", idx.as_str()), ("wait", "5s")])
            .await
            .map_err(|e| CliError(format!("Error fetching deployment: {e}")))?;
        index = i;
        let shown = format_deployment(&d, verbose);
        let status = str_of(&d, "Status");
        let ended = matches!(status.as_str(), "successful" | "failed" | "cancelled");
        if shown != last {
            if ended {
                let mark = if status == "successful" { "✓" } else { "!" };
                println!("  {mark} Deployment {:?} {status}", short_id(id, verbose));
            }
            println!("\n    {}", now());
            for line in shown.lines() {
                println!("    {line}");
            }
            last = shown;
        }
        if ended {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            println!("Deployment {:?} is still running", short_id(id, verbose));
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_show_canary_and_revert_columns_only_when_used() {
        let plain = json!({"TaskGroups": {"cache": {
            "DesiredTotal": 3, "PlacedAllocs": 3, "HealthyAllocs": 2, "UnhealthyAllocs": 0,
            "ProgressDeadline": 0, "RequireProgressBy": "0001-01-01T00:00:00Z"}}});
        let t = format_groups(&plain);
        assert!(
            t.starts_with("Task Group  Desired  Placed  Healthy  Unhealthy  Progress Deadline"),
            "{t}"
        );
        assert!(t.ends_with("N/A"), "{t}");
        let canary = json!({"TaskGroups": {"cache": {
            "AutoRevert": true, "DesiredCanaries": 1, "Promoted": false, "DesiredTotal": 3,
            "ProgressDeadline": 600, "RequireProgressBy": "2026-01-01T00:00:00Z"}}});
        let t = format_groups(&canary);
        assert!(
            t.contains("Auto Revert  Promoted  Desired  Canaries  Placed"),
            "{t}"
        );
        assert!(t.contains("2026-01-01T00:00:00Z"), "{t}");
    }
}
