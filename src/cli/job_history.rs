//! `yurt job history` (a job's versions, with `-p` diffs between them) and `yurt job revert`.

use clap::Args;
use serde_json::{Value, json};

use super::api_client::ApiClient;
use super::eval_monitor::monitor;
use super::job::{path_escape, resolve_job};
use super::job_diff::format_job_diff;
use super::output::{CliError, FormatArgs, format_kv, format_unix_nanos, json_indented};

/// `yurt job history [-p] [-full] [-version N] [-json|-t T] <job>`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Show the difference between each version and the one before it.
    #[arg(short = 'p')]
    diff: bool,
    /// Show the whole job of each version, as JSON.
    #[arg(long)]
    full: bool,
    /// Show only this version.
    #[arg(long)]
    version: Option<u64>,
    #[command(flatten)]
    format: FormatArgs,
    /// Job ID or prefix.
    job: String,
}

/// `yurt job revert [-detach] [-verbose] <job> <version|tag>`.
#[derive(Debug, Args)]
pub struct RevertArgs {
    /// Print the evaluation ID instead of monitoring it.
    #[arg(long)]
    detach: bool,
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
    /// Job ID or prefix.
    job: String,
    /// The version to go back to, or the tag naming it.
    version: String,
}

pub async fn history(api: &ApiClient, a: HistoryArgs) -> Result<(), CliError> {
    a.format.check()?;
    if a.format.requested() && (a.diff || a.full) {
        return Err("-json and -t are exclusive with -p and -full".into());
    }
    let job = resolve_job(api, &a.job).await?;
    let id = job["ID"].as_str().unwrap_or_default().to_string();
    let diffs = a.diff.to_string();
    let resp: Value = api
        .get_json(
            &format!("/v1/job/{}/versions", path_escape(&id)),
            &[("diffs", diffs.as_str())],
        )
        .await
        .map_err(|e| CliError(format!("Error retrieving job versions: {e}")))?;
    let versions = resp["Versions"].as_array().cloned().unwrap_or_default();
    let diffs = resp["Diffs"].as_array().cloned().unwrap_or_default();
    // Versions come newest first; Diffs[i] leads from version i+1 to version i.
    let entries: Vec<(Value, Option<Value>)> = versions
        .into_iter()
        .enumerate()
        .map(|(i, v)| (v, diffs.get(i).cloned()))
        .filter(|(v, _)| {
            a.version
                .is_none_or(|want| v["Version"].as_u64() == Some(want))
        })
        .collect();
    if let Some(want) = a.version
        && entries.is_empty()
    {
        return Err(format!("Job {id:?} has no version {want}").into());
    }
    if a.format.requested() {
        let data = match (a.version, entries.first()) {
            (Some(_), Some((v, _))) => v.clone(),
            _ => Value::Array(entries.into_iter().map(|(v, _)| v).collect()),
        };
        a.format.print(&data)?;
        return Ok(());
    }
    let shown: Vec<String> = entries
        .iter()
        .map(|(v, d)| format_version(v, d.as_ref(), a.full))
        .collect::<Result<_, _>>()?;
    println!("{}", shown.join("\n\n"));
    Ok(())
}

fn format_version(job: &Value, diff: Option<&Value>, full: bool) -> Result<String, CliError> {
    let mut kv: Vec<(&str, String)> = vec![
        ("Version", job["Version"].as_u64().unwrap_or(0).to_string()),
        (
            "Stable",
            job["Stable"].as_bool().unwrap_or(false).to_string(),
        ),
        (
            "Submit Date",
            format_unix_nanos(job["SubmitTime"].as_i64().unwrap_or(0)),
        ),
    ];
    if let Some(tag) = job["VersionTag"].as_object() {
        let name = tag.get("Name").and_then(Value::as_str).unwrap_or_default();
        kv.push(("Tag Name", name.to_string()));
        let desc = tag
            .get("Description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !desc.is_empty() {
            kv.push(("Tag Description", desc.to_string()));
        }
    }
    if let Some(d) = diff.filter(|d| d["Type"] != "None") {
        kv.push(("Diff", format!("\n{}", format_job_diff(d, false).trim())));
    }
    if full {
        kv.push(("Full", format!("JSON Job:\n{}", json_indented(job)?)));
    }
    Ok(format_kv(&kv))
}

pub async fn revert(api: &ApiClient, a: RevertArgs) -> Result<(), CliError> {
    let job = resolve_job(api, &a.job).await?;
    let id = job["ID"].as_str().unwrap_or_default().to_string();
    // A number is a version; anything else names a version by its tag.
    let version = match a.version.parse::<u64>() {
        Ok(v) => v,
        Err(_) => super::job_tag::version_by_tag(api, &id, &a.version).await?,
    };
    let resp: Value = api
        .post_json(
            &format!("/v1/job/{}/revert", path_escape(&id)),
            &json!({"JobID": id, "JobVersion": version}),
        )
        .await
        .map_err(|e| CliError(format!("Error reverting job: {e}")))?;
    let eval = resp["EvalID"].as_str().unwrap_or_default();
    if eval.is_empty() {
        return Ok(());
    }
    if a.detach {
        println!("Evaluation ID: {eval}");
        return Ok(());
    }
    monitor(api, eval, a.verbose).await
}
