//! `yurt alloc status <alloc>`: Nomad's allocation summary, task states and recent events.

use clap::Args;
use serde_json::Value;

use super::resolve_alloc;
use crate::cli::api_client::ApiClient;
use crate::cli::output::{
    CliError, FormatArgs, ago, format_kv, format_list, format_unix_nanos, short_id,
};

/// `yurt alloc status [-verbose] [-json|-t T] <alloc>`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    format: FormatArgs,
    /// Allocation ID or prefix.
    alloc: String,
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s.to_string()
    }
}

/// Nomad's event description: the display message, else what the event type implies.
fn describe(ev: &Value) -> String {
    let s = |k: &str| ev[k].as_str().unwrap_or_default().to_string();
    let shown = s("DisplayMessage");
    if !shown.is_empty() {
        return shown;
    }
    match s("Type").as_str() {
        "Received" => "Task received by client".into(),
        "Started" => "Task started by client".into(),
        "Restart Signaled" | "Restarting" => s("RestartReason"),
        "Signaling" => format!(
            "Task being sent signal {}",
            ev["Details"]["signal"].as_str().unwrap_or_default()
        ),
        "Terminated" => format!("Exit Code: {}", ev["ExitCode"].as_i64().unwrap_or(0)),
        "Killing" => "Sent interrupt".into(),
        "Killed" => "Task successfully killed".into(),
        _ => s("Message"),
    }
}

/// Prints the status.
pub async fn run(api: &ApiClient, a: StatusArgs) -> Result<(), CliError> {
    a.format.check()?;
    let alloc = resolve_alloc(api, &a.alloc).await?;
    if a.format.print(&alloc)? {
        return Ok(());
    }
    let s = |k: &str| alloc[k].as_str().unwrap_or_default().to_string();
    let v = a.verbose;
    let mut kv = vec![
        ("ID", short_id(&s("ID"), v)),
        ("Eval ID", short_id(&s("EvalID"), v)),
        ("Name", s("Name")),
        ("Node ID", short_id(&s("NodeID"), v)),
        ("Node Name", s("NodeName")),
        ("Job ID", s("JobID")),
        (
            "Job Version",
            alloc["Job"]["Version"].as_i64().unwrap_or(0).to_string(),
        ),
        ("Client Status", s("ClientStatus")),
        ("Client Description", or_none(&s("ClientDescription"))),
        ("Desired Status", s("DesiredStatus")),
        ("Desired Description", or_none(&s("DesiredDescription"))),
        ("Created", ago(alloc["CreateTime"].as_i64().unwrap_or(0))),
        ("Modified", ago(alloc["ModifyTime"].as_i64().unwrap_or(0))),
    ];
    if !s("PreviousAllocation").is_empty() {
        kv.push((
            "Rescheduled Alloc ID",
            short_id(&s("PreviousAllocation"), v),
        ));
    }
    if !s("NextAllocation").is_empty() {
        kv.push(("Replacement Alloc ID", short_id(&s("NextAllocation"), v)));
    }
    println!("{}", format_kv(&kv));
    let Some(states) = alloc["TaskStates"].as_object() else {
        return Ok(());
    };
    for (name, st) in states {
        println!(
            "\nTask {name:?} is {:?}",
            st["State"].as_str().unwrap_or_default()
        );
        println!("Recent Events:");
        let mut rows = vec![vec![
            "Time".to_string(),
            "Type".into(),
            "Description".into(),
        ]];
        let events = st["Events"].as_array().cloned().unwrap_or_default();
        for ev in events.iter().rev() {
            rows.push(vec![
                format_unix_nanos(ev["Time"].as_i64().unwrap_or(0)),
                ev["Type"].as_str().unwrap_or_default().to_string(),
                describe(ev),
            ]);
        }
        println!("{}", format_list(&rows));
    }
    Ok(())
}
