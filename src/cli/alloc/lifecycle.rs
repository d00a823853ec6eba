//! `yurt alloc signal|restart|stop`.

use clap::Args;
use serde_json::{Value, json};

use super::{pick_task, resolve_alloc};
use crate::cli::api_client::ApiClient;
use crate::cli::eval_monitor::monitor;
use crate::cli::output::CliError;

/// `yurt alloc signal [-s SIG] <alloc> [task]`.
#[derive(Debug, Args)]
pub struct SignalArgs {
    /// The signal to send (Nomad's CLI default is SIGKILL).
    #[arg(short = 's', default_value = "SIGKILL")]
    signal: String,
    /// The task to signal (instead of the positional argument).
    #[arg(long)]
    task: Option<String>,
    /// Allocation ID or prefix.
    alloc: String,
    /// Task to signal; all tasks when omitted.
    task_arg: Option<String>,
}

/// `yurt alloc restart <alloc> [task]`.
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// The task to restart (instead of the positional argument).
    #[arg(long)]
    task: Option<String>,
    /// Restart every task, finished prestart tasks included.
    #[arg(long = "all-tasks")]
    all_tasks: bool,
    /// Allocation ID or prefix.
    alloc: String,
    /// Task to restart; all running tasks when omitted.
    task_arg: Option<String>,
}

/// `yurt alloc stop [-detach] <alloc>`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Print the evaluation ID instead of monitoring it.
    #[arg(long)]
    detach: bool,
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
    /// Allocation ID or prefix.
    alloc: String,
}

/// The named task, checked against the allocation; empty means "all".
fn task_of(alloc: &Value, flag: Option<String>, arg: Option<String>) -> Result<String, CliError> {
    match flag.or(arg) {
        Some(t) => pick_task(alloc, Some(&t)),
        None => Ok(String::new()),
    }
}

/// Sends the signal.
pub async fn signal(api: &ApiClient, a: SignalArgs) -> Result<(), CliError> {
    let alloc = resolve_alloc(api, &a.alloc).await?;
    let task = task_of(&alloc, a.task, a.task_arg)?;
    let id = alloc["ID"].as_str().unwrap_or_default();
    let _: Value = api
        .put_json(
            &format!("/v1/client/allocation/{id}/signal"),
            &json!({"Task": task, "Signal": a.signal}),
        )
        .await
        .map_err(|e| CliError(format!("Error sending signal: {e}")))?;
    Ok(())
}

/// Restarts the task(s).
pub async fn restart(api: &ApiClient, a: RestartArgs) -> Result<(), CliError> {
    let alloc = resolve_alloc(api, &a.alloc).await?;
    let task = task_of(&alloc, a.task, a.task_arg)?;
    if a.all_tasks && !task.is_empty() {
        return Err("The -all-tasks option cannot be used when a task is specified".into());
    }
    let id = alloc["ID"].as_str().unwrap_or_default();
    let _: Value = api
        .put_json(
            &format!("/v1/client/allocation/{id}/restart"),
            &json!({"TaskName": task, "AllTasks": a.all_tasks}),
        )
        .await
        .map_err(|e| CliError(format!("Failed to restart allocation:\n\n{e}")))?;
    Ok(())
}

/// Stops the allocation and follows the evaluation that replaces it.
pub async fn stop(api: &ApiClient, a: StopArgs) -> Result<(), CliError> {
    let alloc = resolve_alloc(api, &a.alloc).await?;
    let id = alloc["ID"].as_str().unwrap_or_default();
    let resp: Value = api
        .post_json(&format!("/v1/allocation/{id}/stop"), &json!({}))
        .await
        .map_err(|e| CliError(format!("Error stopping allocation: {e}")))?;
    let eval = resp["EvalID"].as_str().unwrap_or_default();
    if a.detach {
        println!("{eval}");
        return Ok(());
    }
    monitor(api, eval, a.verbose).await
}
