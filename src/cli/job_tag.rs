//! `yurt job tag apply|unset`: naming a version of a job, so `job revert` can go back to it
//! by name.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::api_client::ApiClient;
use super::job::{path_escape, resolve_job};
use super::output::CliError;

/// `yurt job tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    #[command(subcommand)]
    command: TagCommand,
}

#[derive(Debug, Subcommand)]
pub enum TagCommand {
    /// Name a version of a job (the current one unless -version says otherwise).
    Apply(ApplyArgs),
    /// Take a name off the version of a job that has it.
    Unset(UnsetArgs),
}

/// `yurt job tag apply -name <tag> [-description <text>] [-version <n>] <job>`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The tag's name, unique among the job's versions.
    #[arg(long)]
    name: Option<String>,
    /// What the version is, for people reading `job history`.
    #[arg(long)]
    description: Option<String>,
    /// The version to tag (default: the current version).
    #[arg(long)]
    version: Option<String>,
    /// Job ID or prefix.
    job: String,
}

/// `yurt job tag unset -name <tag> <job>`.
#[derive(Debug, Args)]
pub struct UnsetArgs {
    /// The tag to remove.
    #[arg(long)]
    name: Option<String>,
    /// Job ID or prefix.
    job: String,
}

pub async fn tag(api: &ApiClient, a: TagArgs) -> Result<(), CliError> {
    match a.command {
        TagCommand::Apply(a) => apply(api, a).await,
        TagCommand::Unset(a) => unset(api, a).await,
    }
}

fn tag_path(id: &str, name: &str) -> String {
    format!(
        "/v1/job/{}/versions/{}/tag",
        path_escape(id),
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
    )
}

fn required_name(name: Option<String>) -> Result<String, CliError> {
    name.filter(|n| !n.trim().is_empty())
        .ok_or_else(|| CliError("A version tag name is required".to_string()))
}

async fn apply(api: &ApiClient, a: ApplyArgs) -> Result<(), CliError> {
    let name = required_name(a.name)?;
    let job = resolve_job(api, &a.job).await?;
    let id = job["ID"].as_str().unwrap_or_default().to_string();
    let version = match a.version.as_deref() {
        None => job["Version"].as_u64().unwrap_or(0),
        Some(v) => v
            .parse::<u64>()
            .map_err(|e| CliError(format!("Error parsing version: {e}")))?,
    };
    let _: Value = api
        .put_json(
            &tag_path(&id, &name),
            &json!({"Version": version, "Description": a.description.unwrap_or_default()}),
        )
        .await
        .map_err(|e| CliError(format!("Error tagging job version: {e}")))?;
    println!("Job version {version} tagged with name \"{name}\"");
    Ok(())
}

async fn unset(api: &ApiClient, a: UnsetArgs) -> Result<(), CliError> {
    let name = required_name(a.name)?;
    let job = resolve_job(api, &a.job).await?;
    let id = job["ID"].as_str().unwrap_or_default().to_string();
    let _: Value = api
        .delete_json(&tag_path(&id, &name), &[])
        .await
        .map_err(|e| CliError(format!("Error tagging job version: {e}")))?;
    println!("Tag \"{name}\" removed from job \"{id}\"");
    Ok(())
}

/// The version of job `id` tagged `name`.
pub async fn version_by_tag(api: &ApiClient, id: &str, name: &str) -> Result<u64, CliError> {
    let resp: Value = api
        .get_json(&format!("/v1/job/{}/versions", path_escape(id)), &[])
        .await
        .map_err(|e| CliError(format!("Error retrieving job versions: {e}")))?;
    resp["Versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["VersionTag"]["Name"] == name)
        .and_then(|v| v["Version"].as_u64())
        .ok_or_else(|| CliError(format!("version tag {name} not found for job {id}")))
}
