//! `yurt cluster jobs|start|stop|startall|stopall|scale`: the Cluster API's job templates
//! (seed 001, `docs/cluster-api.md`) from the command line.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api_client::ApiClient;
use super::api_flags::ApiFlags;
use super::output::{CliError, format_list, run};
use crate::http::to_json_bytes;

/// `yurt cluster` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// List the job templates with their jobs' status and task group counts.
    Jobs(JobsArgs),
    /// Start a template's job, or refresh it from the template when it runs.
    Start(StartArgs),
    /// Stop a template's job.
    Stop(StopArgs),
    /// Start or refresh every autostart template.
    Startall(StartAllArgs),
    /// Stop every template's job.
    Stopall(StopAllArgs),
    /// Set a task group's count, or change it by a delta with -delta.
    #[command(allow_negative_numbers = true)]
    Scale(ScaleArgs),
}

/// `yurt cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The subcommand.
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// `yurt cluster jobs [-json]`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    api: ApiFlags,
    /// Print the API's JSON answer.
    #[arg(long)]
    json: bool,
}

/// `yurt cluster start [-force] <name>`.
#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    api: ApiFlags,
    /// When the job runs, take the template's task group counts too.
    #[arg(long)]
    force: bool,
    /// The template (job) name.
    name: String,
}

/// `yurt cluster stop [-purge] <name>`.
#[derive(Debug, Args)]
pub struct StopArgs {
    #[command(flatten)]
    api: ApiFlags,
    /// Purge the job instead of only stopping it.
    #[arg(long)]
    purge: bool,
    /// The template (job) name.
    name: String,
}

/// `yurt cluster startall [-force]`.
#[derive(Debug, Args)]
pub struct StartAllArgs {
    #[command(flatten)]
    api: ApiFlags,
    /// For running jobs, take the templates' task group counts too.
    #[arg(long)]
    force: bool,
}

/// `yurt cluster stopall [-purge]`.
#[derive(Debug, Args)]
pub struct StopAllArgs {
    #[command(flatten)]
    api: ApiFlags,
    /// Purge the jobs instead of only stopping them.
    #[arg(long)]
    purge: bool,
}

/// `yurt cluster scale [-delta] <name> <group> <count>`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    api: ApiFlags,
    /// Add <count> (which may be negative) to the group's count instead of setting it; the
    /// count never goes below 0, and a delta of 0 sets it to 0.
    #[arg(long)]
    delta: bool,
    /// The template (job) name.
    name: String,
    /// The task group.
    group: String,
    /// The new count, or the change with -delta.
    count: i64,
}

/// Runs a `cluster` subcommand.
pub fn main(args: ClusterArgs) -> ExitCode {
    run(async move {
        match args.command {
            ClusterCommand::Jobs(a) => jobs(&a.api.client()?, a.json).await,
            ClusterCommand::Start(a) => {
                let query = [("force", bool_text(a.force))];
                let path = format!("/jobs/start/{}", path_segment(&a.name));
                one(&a.api.client()?, &path, &query).await
            }
            ClusterCommand::Stop(a) => {
                let query = [("purge", bool_text(a.purge))];
                let path = format!("/jobs/stop/{}", path_segment(&a.name));
                one(&a.api.client()?, &path, &query).await
            }
            ClusterCommand::Startall(a) => {
                let query = [("force", bool_text(a.force))];
                all(&a.api.client()?, "/jobs/startall", &query, "Started").await
            }
            ClusterCommand::Stopall(a) => {
                let query = [("purge", bool_text(a.purge))];
                all(&a.api.client()?, "/jobs/stopall", &query, "Stopped").await
            }
            ClusterCommand::Scale(a) => scale(&a.api.client()?, &a).await,
        }
    })
}

fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// A job name as one URL path segment.
fn path_segment(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// One template as `GET /jobs` lists it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobView {
    name: String,
    status: String,
    autostart: bool,
    by_cluster: bool,
    #[serde(default)]
    task_groups: Vec<GroupView>,
    #[serde(default)]
    hclv1: bool,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupView {
    name: String,
    count: i64,
    summary: Value,
}

async fn jobs(client: &ApiClient, json_out: bool) -> Result<(), CliError> {
    let list: Value = client.get_json("/jobs", &[]).await?;
    if json_out {
        return print_json(&list);
    }
    let views: Vec<JobView> = serde_json::from_value(list)
        .map_err(|e| CliError(format!("Error decoding the job templates: {e}")))?;
    if views.is_empty() {
        println!("No job templates");
        return Ok(());
    }
    let mut rows = vec![vec![
        "Name".to_string(),
        "Status".to_string(),
        "Autostart".to_string(),
        "ByCluster".to_string(),
        "Groups (running/count)".to_string(),
        "Error".to_string(),
    ]];
    for v in views {
        let groups: Vec<String> = v
            .task_groups
            .iter()
            .map(|g| {
                let running = g.summary["running"].as_i64().unwrap_or(0);
                format!("{}={running}/{}", g.name, g.count)
            })
            .collect();
        let error = match (&v.error, v.hclv1) {
            (Some(e), true) => format!("HCL1: {}", first_line(e)),
            (Some(e), false) => first_line(e).to_string(),
            (None, _) => String::new(),
        };
        rows.push(vec![
            v.name,
            v.status,
            v.autostart.to_string(),
            v.by_cluster.to_string(),
            groups.join(","),
            error,
        ]);
    }
    println!("{}", format_list(&rows));
    Ok(())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// `start` or `stop` of one template: prints the template's state after it.
async fn one(client: &ApiClient, path: &str, query: &[(&str, &str)]) -> Result<(), CliError> {
    let view: Value = client.post_json_query(path, query, &json!({})).await?;
    print_json(&view)
}

/// `startall` or `stopall`: the jobs acted on, or the failures (exit 1).
async fn all(
    client: &ApiClient,
    path: &str,
    query: &[(&str, &str)],
    verb: &str,
) -> Result<(), CliError> {
    let reply: Value = client.post_json_query(path, query, &json!({})).await?;
    for name in reply["jobs"].as_array().into_iter().flatten() {
        println!("{verb} {}", name.as_str().unwrap_or_default());
    }
    Ok(())
}

async fn scale(client: &ApiClient, a: &ScaleArgs) -> Result<(), CliError> {
    let path = if a.delta {
        "/jobs/updatecounts"
    } else {
        "/jobs/settaskgroupcount"
    };
    let body = json!({"jobID": a.name, "taskGroup": a.group, "count": a.count});
    let view: Value = client.post_json_query(path, &[], &body).await?;
    print_json(&view)
}

fn print_json(v: &Value) -> Result<(), CliError> {
    let bytes = to_json_bytes(v, true).map_err(|e| CliError(e.to_string()))?;
    print!("{}", String::from_utf8_lossy(&bytes));
    Ok(())
}
