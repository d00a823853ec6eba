//! `yurt alloc ...`: status, signal, restart, stop, logs and fs, taking full allocation
//! IDs or unique prefixes like Nomad's CLI.

mod fs;
mod lifecycle;
mod logs;
mod status;

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::api_client::ApiClient;
use super::api_flags::ApiFlags;
use super::output::{CliError, format_list, run, short_id};
use super::resolve::{ALLOC, id_of, resolve};

/// `yurt alloc` subcommands.
#[derive(Debug, Subcommand)]
pub enum AllocCommand {
    /// Display an allocation's status and recent task events.
    Status(status::StatusArgs),
    /// Send a signal to an allocation's tasks.
    Signal(lifecycle::SignalArgs),
    /// Restart an allocation's tasks in place.
    Restart(lifecycle::RestartArgs),
    /// Stop and reschedule an allocation.
    Stop(lifecycle::StopArgs),
    /// Show a task's stdout or stderr.
    Logs(logs::LogsArgs),
    /// List or read files in an allocation's directory.
    Fs(fs::FsArgs),
    /// Run a command in a running allocation (over the exec WebSocket).
    Exec(super::alloc_exec::ExecArgs),
}

/// `yurt alloc`.
#[derive(Debug, Args)]
pub struct AllocArgs {
    /// The subcommand.
    #[command(subcommand)]
    pub command: AllocCommand,
    /// Address and TLS flags.
    #[command(flatten)]
    pub api: ApiFlags,
}

/// Runs an `alloc` subcommand.
pub fn main(args: AllocArgs) -> ExitCode {
    let command = match args.command {
        // exec drives its own runtime and terminal, and passes the remote exit code through.
        AllocCommand::Exec(a) => return super::alloc_exec::run(&a, &args.api),
        other => other,
    };
    run(async move {
        let api = ApiClient::from_flags(&args.api)?;
        match command {
            AllocCommand::Status(a) => status::run(&api, a).await,
            AllocCommand::Signal(a) => lifecycle::signal(&api, a).await,
            AllocCommand::Restart(a) => lifecycle::restart(&api, a).await,
            AllocCommand::Stop(a) => lifecycle::stop(&api, a).await,
            AllocCommand::Logs(a) => logs::run(&api, a).await,
            AllocCommand::Fs(a) => fs::run(&api, a).await,
            // Dispatched above, before this runtime exists.
            AllocCommand::Exec(_) => Err("alloc exec runs outside the API runtime".into()),
        }
    })
}

/// The allocation an ID or unique prefix names, as `/v1/allocation/:id` returns it. An
/// ambiguous prefix lists the matches and fails, like Nomad.
pub async fn resolve_alloc(api: &ApiClient, id: &str) -> Result<Value, CliError> {
    let stub = resolve(api, ALLOC, id, |many| alloc_list(many, false)).await?;
    Ok(api
        .get_json(&format!("/v1/allocation/{}", id_of(&stub)), &[])
        .await?)
}

/// Nomad's allocation table (`ID Node ID Task Group Version Desired Status Created
/// Modified`); `-verbose` adds the evaluation and node name and shows full IDs and times.
pub fn alloc_list(allocs: &[Value], verbose: bool) -> String {
    let mut header = vec!["ID"];
    if verbose {
        header.push("Eval ID");
    }
    header.push("Node ID");
    if verbose {
        header.push("Node Name");
    }
    header.extend([
        "Task Group",
        "Version",
        "Desired",
        "Status",
        "Created",
        "Modified",
    ]);
    let mut rows = vec![header.into_iter().map(str::to_string).collect::<Vec<_>>()];
    let time = |nanos: i64| {
        if verbose {
            super::output::format_unix_nanos(nanos)
        } else {
            super::output::ago(nanos)
        }
    };
    for a in allocs {
        let s = |k: &str| a[k].as_str().unwrap_or_default().to_string();
        let mut row = vec![short_id(&s("ID"), verbose)];
        if verbose {
            row.push(s("EvalID"));
        }
        row.push(short_id(&s("NodeID"), verbose));
        if verbose {
            row.push(s("NodeName"));
        }
        row.extend([
            s("TaskGroup"),
            a["JobVersion"].as_i64().unwrap_or(0).to_string(),
            s("DesiredStatus"),
            s("ClientStatus"),
            time(a["CreateTime"].as_i64().unwrap_or(0)),
            time(a["ModifyTime"].as_i64().unwrap_or(0)),
        ]);
        rows.push(row);
    }
    format_list(&rows)
}

/// The task a command acts on: the one named, or the allocation's only task.
pub fn pick_task(alloc: &Value, named: Option<&str>) -> Result<String, CliError> {
    let tasks = alloc_task_names(alloc);
    match named {
        Some(t) if tasks.iter().any(|n| n == t) => Ok(t.to_string()),
        Some(t) => Err(format!("Could not find task named: {t}").into()),
        None if tasks.len() == 1 => Ok(tasks[0].clone()),
        None => {
            let list: String = tasks.iter().map(|t| format!("  * {t}\n")).collect();
            Err(format!(
                "Allocation {:?} is running the following tasks:\n{list}\nPlease specify the task.",
                alloc["ID"].as_str().unwrap_or_default()
            )
            .into())
        }
    }
}

/// The task names of the allocation's group, from its job.
fn alloc_task_names(alloc: &Value) -> Vec<String> {
    let group = alloc["TaskGroup"].as_str().unwrap_or_default();
    alloc["Job"]["TaskGroups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["Name"] == group))
        .and_then(|g| g["Tasks"].as_array())
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t["Name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
