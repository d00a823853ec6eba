//! `yurt job …`: Nomad's job commands. Registering, inspecting and stopping live here; the
//! other verbs in `job_plan`, `job_history`, `job_actions` and `job_init`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::alloc::alloc_list;
use super::api_client::ApiClient;
use super::api_flags::ApiFlags;
use super::eval_monitor::monitor;
use super::job_actions::{
    AllocsArgs, DeploymentsArgs, DispatchArgs, EvalArgs, PeriodicArgs, ScaleArgs,
};
use super::job_history::{HistoryArgs, RevertArgs};
use super::output::{CliError, FormatArgs, format_kv, format_list, run};

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
    /// Show what the scheduler would do with a job file, without registering it.
    Plan(super::job_plan::PlanArgs),
    /// List a job's versions (with -p, what changed between them).
    History(HistoryArgs),
    /// Register an earlier version of a job again (by version number or tag).
    Revert(RevertArgs),
    /// Name versions of a job (`apply`, `unset`).
    Tag(super::job_tag::TagArgs),
    /// Start an instance of a parameterized job.
    Dispatch(DispatchArgs),
    /// Change the count of a job's task group.
    Scale(ScaleArgs),
    /// Act on periodic jobs (`force` launches one now).
    Periodic(PeriodicArgs),
    /// List a job's deployments.
    Deployments(DeploymentsArgs),
    /// List a job's allocations.
    Allocs(AllocsArgs),
    /// Create a new evaluation of a job.
    Eval(EvalArgs),
    /// Write an example job file.
    Init(super::job_init::InitArgs),
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
    /// Register only if the job's modify index is still this one (0: only if the job does
    /// not exist yet), as `job plan` prints it.
    #[arg(long = "check-index")]
    check_index: Option<u64>,
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
    /// Format the job with a Go template instead of printing `{"Job": …}`.
    #[arg(short = 't', value_name = "TEMPLATE")]
    template: Option<String>,
    /// Print the job itself as JSON (the default output wraps it as `{"Job": …}`).
    #[arg(long)]
    json: bool,
    /// Job ID or prefix.
    job: String,
}

/// `yurt job status [id]`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
    /// With -json/-t: include allocations of an earlier job with the same ID.
    #[arg(long = "all-allocs")]
    all_allocs: bool,
    #[command(flatten)]
    format: FormatArgs,
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
    let command = match args.command {
        // plan has exit codes of its own (1: changes, 255: an error).
        JobCommand::Plan(a) => return super::job_plan::main(a, &args.api),
        // init writes a local file and needs no agent.
        JobCommand::Init(a) => return run(async move { super::job_init::init(a) }),
        other => other,
    };
    run(async move {
        let api = ApiClient::from_flags(&args.api)?;
        match command {
            JobCommand::Run(a) => job_run(&api, a).await,
            JobCommand::Validate(a) => job_validate(&api, a).await,
            JobCommand::Inspect(a) => job_inspect(&api, a).await,
            JobCommand::Status(a) => job_status(&api, a).await,
            JobCommand::Stop(a) => job_stop(&api, a).await,
            JobCommand::History(a) => super::job_history::history(&api, a).await,
            JobCommand::Revert(a) => super::job_history::revert(&api, a).await,
            JobCommand::Tag(a) => super::job_tag::tag(&api, a).await,
            JobCommand::Dispatch(a) => super::job_actions::dispatch(&api, a).await,
            JobCommand::Scale(a) => super::job_actions::scale(&api, a).await,
            JobCommand::Periodic(a) => super::job_actions::periodic(&api, a).await,
            JobCommand::Deployments(a) => super::job_actions::deployments(&api, a).await,
            JobCommand::Allocs(a) => super::job_actions::allocs(&api, a).await,
            JobCommand::Eval(a) => super::job_actions::evaluate(&api, a).await,
            // Dispatched above, before this runtime exists.
            JobCommand::Plan(_) | JobCommand::Init(_) => {
                Err("job plan and job init run outside the API runtime".into())
            }
        }
    })
}

async fn job_run(api: &ApiClient, a: RunArgs) -> Result<(), CliError> {
    let loaded = super::job_file::load_job(&a.file, &a.job_file)?;
    let region = loaded.job["Region"]
        .as_str()
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    let api = &api.clone().with_region(region);
    let mut body = json!({"Job": loaded.job, "Submission": loaded.submission});
    if let Some(index) = a.check_index {
        body["EnforceIndex"] = true.into();
        body["JobModifyIndex"] = index.into();
    }
    let resp: Value = api.put_json("/v1/jobs", &body).await.map_err(|e| {
        // An index conflict is the expected outcome of a stale plan: say so plainly.
        let text = e.to_string();
        match enforce_index_message(&text) {
            Some(reason) => CliError(format!("{reason}\nJob not updated")),
            None => CliError(format!("Error submitting job: {text}")),
        }
    })?;
    let warnings = resp["Warnings"].as_str().unwrap_or_default();
    if !warnings.is_empty() {
        println!("Job Warnings:\n{warnings}\n");
    }
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

/// The server's "Enforcing job modify index …" reason inside an error, if that is the error.
fn enforce_index_message(error: &str) -> Option<&str> {
    let start = error.find("Enforcing job modify index")?;
    let rest = &error[start..];
    Some(rest.trim_end_matches(')').trim_end())
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
    let format = FormatArgs {
        json: a.json,
        template: a.template.clone(),
    };
    format.check()?;
    let current = resolve_job(api, &a.job).await?;
    let job = match a.version {
        None => current,
        Some(version) => {
            let id = current["ID"].as_str().unwrap_or(&a.job).to_string();
            let versions: Value = api
                .get_json(&format!("/v1/job/{}/versions", path_escape(&id)), &[])
                .await?;
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
    // -json and -t show the job itself; the default wraps it for `job run -json`.
    if format.print(&job)? {
        return Ok(());
    }
    println!("{}", super::output::json_indented(&json!({"Job": job}))?);
    Ok(())
}

/// The job an ID or unique prefix names.
pub async fn resolve_job(api: &ApiClient, id: &str) -> Result<Value, CliError> {
    let stub = super::resolve::resolve(api, super::resolve::JOB, id, jobs_table).await?;
    let full = super::resolve::id_of(&stub);
    Ok(api
        .get_json(&format!("/v1/job/{}", path_escape(&full)), &[])
        .await?)
}

/// A job ID as one path segment's worth of URL (`/` kept: dispatched children's IDs hold
/// it and the API recognises sub-resources by suffix).
pub fn path_escape(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, JOB_ID_SET).to_string()
}

const JOB_ID_SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn jobs_table(jobs: &[Value]) -> String {
    let mut rows = vec![
        ["ID", "Type", "Priority", "Status", "Submit Date"]
            .map(str::to_string)
            .to_vec(),
    ];
    for j in jobs {
        // Nomad's getTypeString and getStatusString: parents and stopped jobs say so.
        let mut ty = j["Type"].as_str().unwrap_or_default().to_string();
        if j["Periodic"] == true {
            ty.push_str("/periodic");
        }
        if j["ParameterizedJob"] == true {
            ty.push_str("/parameterized");
        }
        let mut status = j["Status"].as_str().unwrap_or_default().to_string();
        if j["Stop"] == true {
            status.push_str(" (stopped)");
        }
        rows.push(vec![
            j["ID"].as_str().unwrap_or_default().to_string(),
            ty,
            j["Priority"].as_i64().unwrap_or(0).to_string(),
            status,
            super::output::format_unix_nanos(j["SubmitTime"].as_i64().unwrap_or(0)),
        ]);
    }
    format_list(&rows)
}

async fn job_status(api: &ApiClient, a: StatusArgs) -> Result<(), CliError> {
    a.format.check()?;
    let Some(id) = a.job else {
        let jobs: Vec<Value> = api.get_json("/v1/jobs", &[]).await?;
        if a.format.requested() {
            let mut out = Vec::with_capacity(jobs.len());
            for j in &jobs {
                out.push(job_json(api, &super::resolve::id_of(j), a.all_allocs).await?);
            }
            a.format.print(&out)?;
            return Ok(());
        }
        if jobs.is_empty() {
            println!("No running jobs");
        } else {
            println!("{}", jobs_table(&jobs));
        }
        return Ok(());
    };
    let job = resolve_job(api, &id).await?;
    if a.format.requested() {
        let one = job_json(api, &super::resolve::id_of(&job), a.all_allocs).await?;
        a.format.print(&vec![one])?;
        return Ok(());
    }
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

/// What `job status -json` prints per job, as Nomad's `JobJson`: the summary, allocations,
/// latest deployment and evaluations.
async fn job_json(api: &ApiClient, id: &str, all_allocs: bool) -> Result<Value, CliError> {
    let id = path_escape(id);
    let all = all_allocs.to_string();
    let summary: Value = api
        .get_json(&format!("/v1/job/{id}/summary"), &[])
        .await
        .map_err(|e| CliError(format!("Error querying job summary: {e}")))?;
    let allocations: Value = api
        .get_json(
            &format!("/v1/job/{id}/allocations"),
            &[("all", all.as_str())],
        )
        .await
        .map_err(|e| CliError(format!("Error querying job allocations: {e}")))?;
    let deployment: Value = api
        .get_json(&format!("/v1/job/{id}/deployment"), &[])
        .await
        .map_err(|e| CliError(format!("Error querying latest job deployment: {e}")))?;
    let evaluations: Value = api
        .get_json(&format!("/v1/job/{id}/evaluations"), &[])
        .await
        .map_err(|e| CliError(format!("Error querying job evaluations: {e}")))?;
    Ok(json!({
        "Summary": summary,
        "Allocations": allocations,
        "LatestDeployment": deployment,
        "Evaluations": evaluations,
    }))
}

async fn job_stop(api: &ApiClient, a: StopArgs) -> Result<(), CliError> {
    let job = resolve_job(api, &a.job).await?;
    let id = job["ID"].as_str().unwrap_or_default();
    let purge = a.purge.to_string();
    let resp: Value = api
        .delete_json(
            &format!("/v1/job/{}", path_escape(id)),
            &[("purge", purge.as_str())],
        )
        .await
        .map_err(|e| CliError(format!("Error deregistering job: {e}")))?;
    let eval = resp["EvalID"].as_str().unwrap_or_default();
    if a.detach || eval.is_empty() {
        println!("{eval}");
        return Ok(());
    }
    monitor(api, eval, a.verbose).await
}
