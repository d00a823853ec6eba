//! `yurt job plan <file>`: the scheduler's dry run of a job file, printed as Nomad prints it
//! (the annotated diff, "Scheduler dry-run", the job modify index for `job run
//! -check-index`). Exit codes as Nomad: 0 no allocation changes, 1 changes, 255 an error.

use std::process::ExitCode;

use clap::Args;
use serde_json::{Value, json};

use super::api_client::ApiClient;
use super::api_flags::ApiFlags;
use super::job::path_escape;
use super::job_diff::format_job_diff;
use super::job_file::{JobFileArgs, load_job};
use super::output::{CliError, FormatArgs};

/// `yurt job plan [-diff=false] [-verbose] [-json-output|-t T] [-var …] <file>`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Print the job diff (`-diff=false` leaves it out).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_parser = parse_bool)]
    diff: bool,
    /// Expand added and deleted groups and tasks in the diff.
    #[arg(long)]
    verbose: bool,
    /// Print the plan response as JSON instead of the annotated text.
    #[arg(long = "json-output")]
    json_output: bool,
    /// Format the plan response with a Go template.
    #[arg(short = 't', value_name = "TEMPLATE")]
    template: Option<String>,
    #[command(flatten)]
    job_file: JobFileArgs,
    /// The job file (HCL2 or JSON; `-` reads stdin).
    file: String,
}

fn parse_bool(s: &str) -> Result<bool, String> {
    crate::http::query::parse_go_bool(s).ok_or_else(|| format!("invalid boolean value {s:?}"))
}

/// Nomad's exit code for a failed plan.
const PLAN_ERROR: u8 = 255;

/// Runs `job plan`; its exit codes are its own, so it does not go through `output::run`.
pub fn main(args: PlanArgs, api: &ApiFlags) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error starting runtime: {e}");
            return ExitCode::from(PLAN_ERROR);
        }
    };
    match rt.block_on(plan(args, api)) {
        Ok(code) => ExitCode::from(code),
        Err(CliError(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(PLAN_ERROR)
        }
    }
}

async fn plan(a: PlanArgs, flags: &ApiFlags) -> Result<u8, CliError> {
    let format = FormatArgs {
        json: a.json_output,
        template: a.template.clone(),
    };
    if a.json_output && a.template.is_some() {
        return Err("Both -json-output and -t formatting are not allowed".into());
    }
    let loaded = load_job(&a.file, &a.job_file)?;
    let job = loaded.job;
    let id = job["ID"].as_str().unwrap_or_default().to_string();
    if id.is_empty() {
        return Err("Error getting job struct: the job has no ID".into());
    }
    let namespace = job["Namespace"].as_str().filter(|n| !n.is_empty());
    let region = job["Region"].as_str().filter(|r| !r.is_empty());
    let api = ApiClient::from_flags(flags)?
        .with_namespace(namespace.map(str::to_string))
        .with_region(region.map(str::to_string));
    // The diff is always asked for: it tells whether anything would change.
    let resp: Value = api
        .post_json(
            &format!("/v1/job/{}/plan", path_escape(&id)),
            &json!({"Job": job, "Diff": true}),
        )
        .await
        .map_err(|e| CliError(format!("Error during plan: {e}")))?;
    if format.print(&resp)? {
        return Ok(exit_code(&resp));
    }
    if a.diff {
        println!("{}\n", format_job_diff(&resp["Diff"], a.verbose).trim());
    }
    println!("Scheduler dry-run:");
    println!("{}", format_dry_run(&resp, &job));
    println!();
    let warnings = resp["Warnings"].as_str().unwrap_or_default();
    if !warnings.is_empty() {
        println!("Job Warnings:\n{warnings}\n");
    }
    let mut run_args = String::new();
    for v in &a.job_file.vars {
        run_args.push_str(&format!("-var={v:?} "));
    }
    for f in &a.job_file.var_files {
        run_args.push_str(&format!("-var-file={:?} ", f.display().to_string()));
    }
    let index = resp["JobModifyIndex"].as_u64().unwrap_or(0);
    println!("Job Modify Index: {index}");
    println!(
        "To submit the job with version verification run:\n\n\
         yurt job run -check-index {index} {run_args}{}\n\n\
         With -check-index the job is only registered if the server's job modify index is \
         still {index}:\nif someone changed the job since this plan, the run is refused and \
         the plan above may be stale.",
        a.file
    );
    Ok(exit_code(&resp))
}

/// 0 when nothing would be placed, stopped, migrated or replaced; 1 otherwise.
fn exit_code(resp: &Value) -> u8 {
    if resp["Diff"]["Type"] == "None" {
        return 0;
    }
    let changes = resp["Annotations"]["DesiredTGUpdates"]
        .as_object()
        .is_some_and(|groups| {
            groups.values().any(|d| {
                ["Stop", "Place", "Migrate", "DestructiveUpdate", "Canary"]
                    .iter()
                    .map(|k| d[*k].as_u64().unwrap_or(0))
                    .sum::<u64>()
                    > 0
            })
        });
    u8::from(changes)
}

fn format_dry_run(resp: &Value, job: &Value) -> String {
    let mut out = String::new();
    let failed = resp["FailedTGAllocs"].as_object().filter(|m| !m.is_empty());
    match failed {
        None => out.push_str("- All tasks successfully allocated.\n"),
        Some(groups) => {
            if job["Type"] == "system" {
                out.push_str("- WARNING: Failed to place allocations on all nodes.\n");
            } else {
                out.push_str("- WARNING: Failed to place all allocations.\n");
            }
            for (tg, metrics) in groups {
                out.push_str(&format!(
                    "  {}:\n",
                    super::eval::failed_group_heading(tg, metrics)
                ));
                out.push_str(&super::eval::format_alloc_metrics(metrics, "    "));
                out.push_str("\n\n");
            }
        }
    }
    let rolling = resp["CreatedEvals"].as_array().and_then(|evals| {
        evals
            .iter()
            .rev()
            .find(|e| e["TriggeredBy"] == "rolling-update")
    });
    if let Some(eval) = rolling {
        let wait = eval["Wait"].as_i64().unwrap_or(0);
        out.push_str(&format!(
            "- Rolling update, next evaluation will be in {}.\n",
            crate::structs::time::format_go_duration(std::time::Duration::from_nanos(
                u64::try_from(wait).unwrap_or(0)
            ))
        ));
    }
    let next = resp["NextPeriodicLaunch"]
        .as_str()
        .filter(|n| !n.starts_with("0001-01-01"))
        .and_then(|n| chrono::DateTime::parse_from_rfc3339(n).ok());
    if let Some(at) = next
        && job["ParameterizedJob"].is_null()
    {
        let at = at.with_timezone(&chrono::Utc);
        let from_now = (at - chrono::Utc::now()).to_std().unwrap_or_default();
        out.push_str(&format!(
            "- If submitted now, next periodic launch would be at {} ({} from now).\n",
            at.format("%Y-%m-%dT%H:%M:%SZ"),
            crate::structs::time::format_go_duration(std::time::Duration::from_secs(
                from_now.as_secs()
            ))
        ));
    }
    out.trim_end_matches('\n').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_annotations() {
        let none = json!({"Diff": {"Type": "None"}, "Annotations": {"DesiredTGUpdates": {}}});
        assert_eq!(exit_code(&none), 0);
        let inplace = json!({"Diff": {"Type": "Edited"}, "Annotations": {"DesiredTGUpdates":
            {"web": {"InPlaceUpdate": 2, "Ignore": 1}}}});
        assert_eq!(exit_code(&inplace), 0);
        let place = json!({"Diff": {"Type": "Added"}, "Annotations": {"DesiredTGUpdates":
            {"web": {"Place": 1}}}});
        assert_eq!(exit_code(&place), 1);
    }
}
