//! The job verbs that act on a registered job: `dispatch`, `scale`, `periodic force`, `eval`,
//! and the job-scoped listings `deployments` and `allocs`.

use std::io::Read;

use base64::Engine as _;
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::alloc::alloc_list;
use super::api_client::ApiClient;
use super::eval_monitor::monitor;
use super::job::{path_escape, resolve_job};
use super::output::{CliError, FormatArgs, format_kv, format_list, short_id};

/// `yurt job dispatch [-meta k=v]... [-id-prefix-template T] [-detach] <job> [input|-]`.
#[derive(Debug, Args)]
pub struct DispatchArgs {
    /// Print the evaluation ID instead of monitoring it.
    #[arg(long)]
    detach: bool,
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
    /// A `key=value` metadata pair for the dispatched job (repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    meta: Vec<String>,
    /// A prefix for the dispatched job's ID.
    #[arg(long = "id-prefix-template")]
    id_prefix_template: Option<String>,
    /// Dispatch at most one live child per token: a repeat returns the existing child.
    #[arg(long = "idempotency-token")]
    idempotency_token: Option<String>,
    /// The dispatched job's priority (1-100; default: the parent's).
    #[arg(long)]
    priority: Option<i64>,
    /// The parameterized job's ID or prefix.
    job: String,
    /// A file whose content is the payload (`-` reads stdin).
    input: Option<String>,
}

/// `yurt job scale [-detach] [-verbose] [-check-index N] <job> [<group>] <count>`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Print the evaluation ID instead of monitoring it.
    #[arg(long)]
    detach: bool,
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
    /// Only scale if the job's modify index is still this one.
    #[arg(long = "check-index")]
    check_index: Option<u64>,
    /// `<job> [<group>] <count>`.
    #[arg(num_args = 2..=3, required = true)]
    args: Vec<String>,
}

/// `yurt job periodic force <job>`.
#[derive(Debug, Subcommand)]
pub enum PeriodicCommand {
    /// Launch a periodic job now, whatever its schedule says.
    Force(ForceArgs),
}

/// `yurt job periodic`.
#[derive(Debug, Args)]
pub struct PeriodicArgs {
    #[command(subcommand)]
    command: PeriodicCommand,
}

/// `yurt job periodic force [-detach] [-verbose] <job>`.
#[derive(Debug, Args)]
pub struct ForceArgs {
    /// Print the evaluation ID instead of monitoring it.
    #[arg(long)]
    detach: bool,
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
    /// The periodic job's ID or prefix.
    job: String,
}

/// `yurt job eval [-force-reschedule] [-detach] [-verbose] <job>`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Reschedule failed allocations now, even those waiting for their reschedule delay.
    #[arg(long = "force-reschedule")]
    force_reschedule: bool,
    /// Print the evaluation ID instead of monitoring it.
    #[arg(long)]
    detach: bool,
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
    /// Job ID or prefix.
    job: String,
}

/// `yurt job deployments [-latest] [-all] [-verbose] [-json|-t T] <job>`.
#[derive(Debug, Args)]
pub struct DeploymentsArgs {
    /// Show only the latest deployment, in detail.
    #[arg(long)]
    latest: bool,
    /// Include deployments of an earlier job with the same ID.
    #[arg(long)]
    all: bool,
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    format: FormatArgs,
    /// Job ID or prefix.
    job: String,
}

/// `yurt job allocs [-all] [-verbose] [-json|-t T] <job>`.
#[derive(Debug, Args)]
pub struct AllocsArgs {
    /// Include allocations of an earlier job with the same ID.
    #[arg(long)]
    all: bool,
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    format: FormatArgs,
    /// Job ID or prefix.
    job: String,
}

fn job_id(job: &Value) -> String {
    job["ID"].as_str().unwrap_or_default().to_string()
}

/// Follows the evaluation a write created, or prints its ID with `-detach`.
async fn follow(api: &ApiClient, eval: &str, detach: bool, verbose: bool) -> Result<(), CliError> {
    if eval.is_empty() {
        return Ok(());
    }
    if detach {
        println!("Evaluation ID: {eval}");
        return Ok(());
    }
    monitor(api, eval, verbose).await
}

pub async fn dispatch(api: &ApiClient, a: DispatchArgs) -> Result<(), CliError> {
    let payload = match a.input.as_deref() {
        None => Vec::new(),
        Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| CliError(format!("Error reading input data: {e}")))?;
            buf
        }
        Some(path) => {
            std::fs::read(path).map_err(|e| CliError(format!("Error reading input data: {e}")))?
        }
    };
    let mut meta = Map::new();
    for m in &a.meta {
        let Some((k, v)) = m.split_once('=') else {
            return Err(format!("Error parsing meta value: {m}").into());
        };
        meta.insert(k.to_string(), Value::String(v.to_string()));
    }
    let job = resolve_job(api, &a.job).await?;
    let id = job_id(&job);
    let mut body = json!({"JobID": id, "Meta": meta});
    if !payload.is_empty() {
        body["Payload"] = base64::engine::general_purpose::STANDARD
            .encode(&payload)
            .into();
    }
    if let Some(t) = &a.id_prefix_template {
        body["IdPrefixTemplate"] = t.clone().into();
    }
    if let Some(p) = a.priority {
        body["Priority"] = p.into();
    }
    // The token travels in the query, as Nomad's write options carry it.
    let query: Vec<(&str, &str)> = a
        .idempotency_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| ("idempotency_token", t))
        .into_iter()
        .collect();
    let resp: Value = api
        .put_json_query(
            &format!("/v1/job/{}/dispatch", path_escape(&id)),
            &query,
            &body,
        )
        .await
        .map_err(|e| CliError(format!("Failed to dispatch job: {e}")))?;
    let eval = resp["EvalID"].as_str().unwrap_or_default();
    let mut kv = vec![(
        "Dispatched Job ID",
        resp["DispatchedJobID"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )];
    if !eval.is_empty() {
        kv.push(("Evaluation ID", short_id(eval, a.verbose)));
    }
    println!("{}", format_kv(&kv));
    if a.detach || eval.is_empty() {
        return Ok(());
    }
    println!();
    monitor(api, eval, a.verbose).await
}

pub async fn scale(api: &ApiClient, a: ScaleArgs) -> Result<(), CliError> {
    let (prefix, group, count) = match a.args.as_slice() {
        [job, count] => (job, None, count),
        [job, group, count] => (job, Some(group.clone()), count),
        _ => return Err("Command requires at least two arguments and no more than three".into()),
    };
    let count: i64 = count
        .parse()
        .map_err(|e| CliError(format!("Failed to convert count string to int: {e}")))?;
    let job = resolve_job(api, prefix).await?;
    let id = job_id(&job);
    let groups: Vec<String> = job["TaskGroups"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter_map(|g| g["Name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let group = match (group, groups.as_slice()) {
        (Some(g), _) if groups.contains(&g) => g,
        (Some(g), _) => return Err(format!("Task group {g:?} not found in job {id:?}").into()),
        (None, [only]) => only.clone(),
        (None, _) => {
            return Err(format!(
                "Job {id:?} has {} task groups; name the one to scale: yurt job scale {id} <group> {count}",
                groups.len()
            )
            .into());
        }
    };
    let mut body = json!({
        "Count": count,
        "Target": {"Job": id, "Group": group},
        "Message": "submitted using the yurt CLI",
        "PolicyOverride": false,
    });
    if let Some(index) = a.check_index {
        body["JobModifyIndex"] = index.into();
    }
    let resp: Value = api
        .post_json(&format!("/v1/job/{}/scale", path_escape(&id)), &body)
        .await
        .map_err(|e| CliError(format!("Error submitting scaling request: {e}")))?;
    let warnings = resp["Warnings"].as_str().unwrap_or_default();
    if !warnings.is_empty() {
        println!("Job Warnings:\n{warnings}\n");
    }
    let eval = resp["EvalID"].as_str().unwrap_or_default();
    let parent = !job["Periodic"].is_null() || !job["ParameterizedJob"].is_null();
    if a.detach || parent {
        println!("Job scale successful");
        if !parent && !eval.is_empty() {
            println!("Evaluation ID: {eval}");
        }
        return Ok(());
    }
    follow(api, eval, false, a.verbose).await
}

pub async fn periodic(api: &ApiClient, a: PeriodicArgs) -> Result<(), CliError> {
    let PeriodicCommand::Force(a) = a.command;
    let job = resolve_job(api, &a.job).await?;
    let id = job_id(&job);
    if job["Periodic"].is_null() || job["ParameterizedJob"].is_object() {
        return Err(format!("No periodic job(s) with prefix or id {:?} found", a.job).into());
    }
    let resp: Value = api
        .post_json(
            &format!("/v1/job/{}/periodic/force", path_escape(&id)),
            &json!({}),
        )
        .await
        .map_err(|e| CliError(format!("Error forcing periodic job {id:?}: {e}")))?;
    let eval = resp["EvalID"].as_str().unwrap_or_default();
    if a.detach || eval.is_empty() {
        println!("Force periodic successful");
        println!("Evaluation ID: {eval}");
        return Ok(());
    }
    monitor(api, eval, a.verbose).await
}

pub async fn evaluate(api: &ApiClient, a: EvalArgs) -> Result<(), CliError> {
    let job = resolve_job(api, &a.job).await?;
    let id = job_id(&job);
    let resp: Value = api
        .post_json(
            &format!("/v1/job/{}/evaluate", path_escape(&id)),
            &json!({"JobID": id, "EvalOptions": {"ForceReschedule": a.force_reschedule}}),
        )
        .await
        .map_err(|e| CliError(format!("Error evaluating job: {e}")))?;
    let eval = resp["EvalID"].as_str().unwrap_or_default();
    if a.detach {
        println!("Created eval ID: {:?} ", short_id(eval, a.verbose));
        return Ok(());
    }
    monitor(api, eval, a.verbose).await
}

pub async fn deployments(api: &ApiClient, a: DeploymentsArgs) -> Result<(), CliError> {
    a.format.check()?;
    let job = resolve_job(api, &a.job).await?;
    let id = path_escape(&job_id(&job));
    if a.latest {
        let d: Value = api
            .get_json(&format!("/v1/job/{id}/deployment"), &[])
            .await
            .map_err(|e| CliError(format!("Error retrieving deployments: {e}")))?;
        if a.format.print(&d)? {
            return Ok(());
        }
        if d.is_null() {
            println!("No deployment found");
        } else {
            println!("{}", super::deployment::format_deployment(&d, a.verbose));
        }
        return Ok(());
    }
    let all = a.all.to_string();
    let list: Vec<Value> = api
        .get_json(
            &format!("/v1/job/{id}/deployments"),
            &[("all", all.as_str())],
        )
        .await
        .map_err(|e| CliError(format!("Error retrieving deployments: {e}")))?;
    if a.format.print(&list)? {
        return Ok(());
    }
    if list.is_empty() {
        println!("No deployments found");
        return Ok(());
    }
    let mut rows = vec![
        ["ID", "Job ID", "Job Version", "Status", "Description"]
            .map(str::to_string)
            .to_vec(),
    ];
    for d in &list {
        let s = |k: &str| d[k].as_str().unwrap_or_default().to_string();
        rows.push(vec![
            short_id(&s("ID"), a.verbose),
            s("JobID"),
            d["JobVersion"].as_u64().unwrap_or(0).to_string(),
            s("Status"),
            s("StatusDescription"),
        ]);
    }
    println!("{}", format_list(&rows));
    Ok(())
}

pub async fn allocs(api: &ApiClient, a: AllocsArgs) -> Result<(), CliError> {
    a.format.check()?;
    let job = resolve_job(api, &a.job).await?;
    let all = a.all.to_string();
    let list: Vec<Value> = api
        .get_json(
            &format!("/v1/job/{}/allocations", path_escape(&job_id(&job))),
            &[("all", all.as_str())],
        )
        .await
        .map_err(|e| CliError(format!("Error retrieving allocations: {e}")))?;
    if a.format.print(&list)? {
        return Ok(());
    }
    if list.is_empty() {
        println!("No allocations placed");
    } else {
        println!("{}", alloc_list(&list, a.verbose));
    }
    Ok(())
}
