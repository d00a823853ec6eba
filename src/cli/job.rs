//! `yurt job run|validate|inspect|status|stop`: Nomad's job commands that yurt has so far.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::alloc::alloc_list;
use super::api_client::ApiClient;
use super::api_flags::ApiFlags;
use super::eval_monitor::monitor;
use super::output::{CliError, format_kv, format_list, run};

/// `yurt job` subcommands.
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Register a job from an HCL2 job file or a JSON job (`{"Job": ...}` or the bare job).
    Run(RunArgs),
    /// Check a job file for errors without registering it.
    Validate(ValidateArgs),
    /// Print a registered job as JSON (`{"Job": ...}`), as a job file for `job run -json`.
    Inspect(InspectArgs),
    /// List jobs, or show one job and its allocations.
    Status(StatusArgs),
    /// Stop a job (and with -purge, forget it).
    Stop(StopArgs),
}

/// `yurt job`.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The subcommand.
    #[command(subcommand)]
    pub command: JobCommand,
    /// Address and TLS flags.
    #[command(flatten)]
    pub api: ApiFlags,
}

/// `yurt job run [-detach] [-var name=value]... [-var-file f]... <file>`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Print the evaluation ID instead of monitoring it (and its deployment).
    #[arg(long)]
    detach: bool,
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    job_file: super::job_file::JobFileArgs,
    /// The job file (HCL2 or JSON; `-` reads stdin).
    file: String,
}

/// `yurt job validate [-var …] <file>`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    job_file: super::job_file::JobFileArgs,
    /// The job file (HCL2 or JSON; `-` reads stdin).
    file: String,
}

/// `yurt job inspect [-version N] <id>`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Show this version of the job instead of the current one.
    #[arg(long)]
    version: Option<u64>,
    /// Job ID or prefix.
    job: String,
}

/// `yurt job status [id]`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
    /// Job ID or prefix; all jobs when omitted.
    job: Option<String>,
}

/// `yurt job stop [-purge] [-detach] <id>`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Remove the job from the server entirely.
    #[arg(long)]
    purge: bool,
    /// Print the evaluation ID instead of monitoring it.
    #[arg(long)]
    detach: bool,
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
    /// Job ID or prefix.
    job: String,
}

/// Runs a `job` subcommand.
pub fn main(args: JobArgs) -> ExitCode {
    run(async move {
        let api = ApiClient::from_flags(&args.api)?;
        match args.command {
            JobCommand::Run(a) => job_run(&api, a).await,
            JobCommand::Validate(a) => job_validate(&api, a).await,
            JobCommand::Inspect(a) => job_inspect(&api, a).await,
            JobCommand::Status(a) => job_status(&api, a).await,
            JobCommand::Stop(a) => job_stop(&api, a).await,
        }
    })
}

async fn job_run(api: &ApiClient, a: RunArgs) -> Result<(), CliError> {
    let loaded = super::job_file::load_job(&a.file, &a.job_file)?;
    let resp: Value = api
        .put_json(
            "/v1/jobs",
            &json!({"Job": loaded.job, "Submission": loaded.submission}),
        )
        .await
        .map_err(|e| CliError(format!("Error submitting job: {e}")))?;
    let eval = resp["EvalID"].as_str().unwrap_or_default();
    if a.detach || eval.is_empty() {
        println!("Job registration successful");
        if !eval.is_empty() {
            println!("Evaluation ID: {eval}");
        }
        return Ok(());
    }
    monitor(api, eval, a.verbose).await?;
    // A service job's evaluation starts (or continues) a deployment: follow it to its end.
    let done: Value = api.get_json(&format!("/v1/evaluation/{eval}"), &[]).await?;
    let deployment = done["DeploymentID"].as_str().unwrap_or_default();
    if deployment.is_empty() {
        return Ok(());
    }
    println!();
    super::deployment::follow(api, deployment, a.verbose).await
}

/// Parses the file here (variables and all, as `job run` does) and asks the agent to
/// validate the job; errors go to stderr with exit 1, as Nomad's `job validate`.
async fn job_validate(api: &ApiClient, a: ValidateArgs) -> Result<(), CliError> {
    let loaded = super::job_file::load_job(&a.file, &a.job_file)?;
    let resp: Value = api
        .post_json("/v1/validate/job", &json!({"Job": loaded.job}))
        .await
        .map_err(|e| CliError(format!("Error validating job: {e}")))?;
    let text = |v: &Value| v.as_str().unwrap_or_default().trim().to_string();
    let warnings = text(&resp["Warnings"]);
    if !warnings.is_empty() {
        println!("Job Warnings:\n{warnings}\n");
    }
    let error = text(&resp["Error"]);
    let listed: Vec<String> = resp["ValidationErrors"]
        .as_array()
        .map(|v| v.iter().map(text).filter(|e| !e.is_empty()).collect())
        .unwrap_or_default();
    if !error.is_empty() || !listed.is_empty() {
        let detail = if error.is_empty() {
            listed.join("\n")
        } else {
            error
        };
        return Err(CliError(format!("Job validation errors:\n{detail}")));
    }
    println!("Job validation successful");
    Ok(())
}

/// Prints the job as `{"Job": …}`, the form `job run -json` reads back.
async fn job_inspect(api: &ApiClient, a: InspectArgs) -> Result<(), CliError> {
    let current = resolve_job(api, &a.job).await?;
    let job = match a.version {
        None => current,
        Some(version) => {
            let id = current["ID"].as_str().unwrap_or(&a.job).to_string();
            let versions: Value = api.get_json(&format!("/v1/job/{id}/versions"), &[]).await?;
            versions["Versions"]
                .as_array()
                .and_then(|all| {
                    all.iter()
                        .find(|j| j["Version"].as_u64() == Some(version))
                        .cloned()
                })
                .ok_or_else(|| CliError(format!("Job {id:?} has no version {version}")))?
        }
    };
    let out = serde_json::to_string_pretty(&json!({"Job": job}))
        .map_err(|e| CliError(format!("Error formatting the job: {e}")))?;
    println!("{out}");
    Ok(())
}

/// The job an ID or unique prefix names.
async fn resolve_job(api: &ApiClient, id: &str) -> Result<Value, CliError> {
    let matches: Vec<Value> = api.get_json("/v1/jobs", &[("prefix", id)]).await?;
    let full = match matches.as_slice() {
        [] => return Err(format!("No job(s) with prefix or id {id:?} found").into()),
        [one] => one["ID"].as_str().unwrap_or(id).to_string(),
        many => match many.iter().find(|j| j["ID"] == id) {
            Some(exact) => exact["ID"].as_str().unwrap_or(id).to_string(),
            None => {
                return Err(format!("Prefix matched multiple jobs\n\n{}", jobs_table(many)).into());
            }
        },
    };
    Ok(api.get_json(&format!("/v1/job/{full}"), &[]).await?)
}

fn jobs_table(jobs: &[Value]) -> String {
    let mut rows = vec![
        ["ID", "Type", "Priority", "Status", "Submit Date"]
            .map(str::to_string)
            .to_vec(),
    ];
    for j in jobs {
        rows.push(vec![
            j["ID"].as_str().unwrap_or_default().to_string(),
            j["Type"].as_str().unwrap_or_default().to_string(),
            j["Priority"].as_i64().unwrap_or(0).to_string(),
            j["Status"].as_str().unwrap_or_default().to_string(),
            super::output::format_unix_nanos(j["SubmitTime"].as_i64().unwrap_or(0)),
        ]);
    }
    format_list(&rows)
}

async fn job_status(api: &ApiClient, a: StatusArgs) -> Result<(), CliError> {
    let Some(id) = a.job else {
        let jobs: Vec<Value> = api.get_json("/v1/jobs", &[]).await?;
        if jobs.is_empty() {
            println!("No running jobs");
        } else {
            println!("{}", jobs_table(&jobs));
        }
        return Ok(());
    };
    let job = resolve_job(api, &id).await?;
    let s = |k: &str| job[k].as_str().unwrap_or_default().to_string();
    let dcs: Vec<&str> = job["Datacenters"]
        .as_array()
        .map(|d| d.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    println!(
        "{}",
        format_kv(&[
            ("ID", s("ID")),
            ("Name", s("Name")),
            (
                "Submit Date",
                super::output::format_unix_nanos(job["SubmitTime"].as_i64().unwrap_or(0))
            ),
            ("Type", s("Type")),
            (
                "Priority",
                job["Priority"].as_i64().unwrap_or(0).to_string()
            ),
            ("Datacenters", dcs.join(",")),
            ("Namespace", s("Namespace")),
            ("Status", s("Status")),
        ])
    );
    let job_id = s("ID");
    let allocs: Vec<Value> = api
        .get_json(&format!("/v1/job/{job_id}/allocations"), &[])
        .await?;
    println!("\nAllocations");
    if allocs.is_empty() {
        println!("No allocations placed");
    } else {
        println!("{}", alloc_list(&allocs, a.verbose));
    }
    Ok(())
}

async fn job_stop(api: &ApiClient, a: StopArgs) -> Result<(), CliError> {
    let job = resolve_job(api, &a.job).await?;
    let id = job["ID"].as_str().unwrap_or_default();
    let purge = a.purge.to_string();
    let resp: Value = api
        .delete_json(&format!("/v1/job/{id}"), &[("purge", purge.as_str())])
        .await
        .map_err(|e| CliError(format!("Error deregistering job: {e}")))?;
    let eval = resp["EvalID"].as_str().unwrap_or_default();
    if a.detach || eval.is_empty() {
        println!("{eval}");
        return Ok(());
    }
    monitor(api, eval, a.verbose).await
}
