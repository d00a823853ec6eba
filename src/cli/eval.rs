//! `yurt eval status <id-prefix>` and `yurt eval list`, with Nomad's layouts, and the
//! placement-failure text (`formatAllocMetrics`) `job plan` shares.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::alloc::alloc_list;
use super::api_client::ApiClient;
use super::api_flags::ApiFlags;
use super::output::{CliError, FormatArgs, ago, format_kv, format_list, run, short_id};
use super::resolve::{EVAL, id_of, resolve};

/// `yurt eval` subcommands.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Display an evaluation's status, its placed allocations and placement failures.
    Status(StatusArgs),
    /// List evaluations.
    List(ListArgs),
}

/// `yurt eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The subcommand.
    #[command(subcommand)]
    pub command: EvalCommand,
    /// Address and TLS flags.
    #[command(flatten)]
    pub api: ApiFlags,
}

/// `yurt eval status [-verbose] [-json|-t T] <eval>`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Show full IDs and times.
    #[arg(long)]
    verbose: bool,
    /// Follow the evaluation until the scheduler is done with it.
    #[arg(long)]
    monitor: bool,
    #[command(flatten)]
    format: FormatArgs,
    /// An evaluation ID or a unique prefix of one.
    eval: String,
}

/// `yurt eval list [-verbose] [-job J] [-status S] [-filter F] [-per-page N] [-json|-t T]`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
    /// Only the evaluations of this job.
    #[arg(long)]
    job: Option<String>,
    /// Only evaluations with this status.
    #[arg(long)]
    status: Option<String>,
    /// A filter expression over the evaluations.
    #[arg(long)]
    filter: Option<String>,
    /// How many evaluations per page.
    #[arg(long = "per-page")]
    per_page: Option<u32>,
    /// The page to start from (from a previous listing).
    #[arg(long = "page-token")]
    page_token: Option<String>,
    #[command(flatten)]
    format: FormatArgs,
}

/// Runs an `eval` subcommand.
pub fn main(args: EvalArgs) -> ExitCode {
    run(async move {
        let api = ApiClient::from_flags(&args.api)?;
        match args.command {
            EvalCommand::Status(a) => status(&api, &a).await,
            EvalCommand::List(a) => list(&api, &a).await,
        }
    })
}

fn s(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// Nomad's `evalFailureStatus`: whether placements failed, as the table shows it.
fn failure_status(eval: &Value) -> (String, bool) {
    let failed = eval["FailedTGAllocs"]
        .as_object()
        .is_some_and(|m| !m.is_empty());
    if eval["Status"] == "blocked" {
        return ("N/A - In Progress".into(), failed);
    }
    (failed.to_string(), failed)
}

/// Nomad's evaluation table.
pub fn eval_table(evals: &[Value], verbose: bool) -> String {
    let mut rows = vec![
        [
            "ID",
            "Priority",
            "Triggered By",
            "Job ID",
            "Namespace",
            "Node ID",
            "Status",
            "Placement Failures",
        ]
        .map(str::to_string)
        .to_vec(),
    ];
    for e in evals {
        rows.push(vec![
            short_id(&s(e, "ID"), verbose),
            e["Priority"].as_i64().unwrap_or(0).to_string(),
            s(e, "TriggeredBy"),
            s(e, "JobID"),
            s(e, "Namespace"),
            short_id(&s(e, "NodeID"), verbose),
            s(e, "Status"),
            failure_status(e).0,
        ]);
    }
    format_list(&rows)
}

async fn list(api: &ApiClient, a: &ListArgs) -> Result<(), CliError> {
    a.format.check()?;
    let per_page = a.per_page.map(|n| n.to_string());
    let mut query: Vec<(&str, &str)> = Vec::new();
    let optional = [
        ("job", a.job.as_deref()),
        ("status", a.status.as_deref()),
        ("filter", a.filter.as_deref()),
        ("per_page", per_page.as_deref()),
        ("next_token", a.page_token.as_deref()),
    ];
    for (k, v) in optional {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            query.push((k, v));
        }
    }
    let (evals, next) = api
        .get_json_paged::<Vec<Value>>("/v1/evaluations", &query)
        .await
        .map_err(|e| CliError(format!("Error querying evaluations: {e}")))?;
    if a.format.print(&evals)? {
        return Ok(());
    }
    if evals.is_empty() {
        println!("No evals found");
        return Ok(());
    }
    println!("{}", eval_table(&evals, a.verbose));
    if let Some(token) = next {
        let args: Vec<String> = std::env::args().collect();
        println!(
            "\nResults have been paginated. To get the next page run:\n\n{} -page-token {token}",
            without_page_token(&args).join(" ")
        );
    }
    Ok(())
}

/// The command line as typed, less any `-page-token` (and its value), for the next page's.
fn without_page_token(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut skip_value = false;
    for arg in args {
        if skip_value {
            skip_value = false;
            continue;
        }
        let bare = arg.trim_start_matches('-');
        if arg.starts_with('-') && (bare == "page-token" || bare.starts_with("page-token=")) {
            skip_value = !bare.contains('=');
            continue;
        }
        out.push(arg.clone());
    }
    out
}

async fn status(api: &ApiClient, a: &StatusArgs) -> Result<(), CliError> {
    a.format.check()?;
    let stub = resolve(api, EVAL, &a.eval, |many| eval_table(many, a.verbose)).await?;
    let id = id_of(&stub);
    if a.monitor {
        return super::eval_monitor::monitor(api, &id, a.verbose).await;
    }
    let eval: Value = api
        .get_json(&format!("/v1/evaluation/{id}"), &[("related", "true")])
        .await
        .map_err(|e| CliError(format!("Error querying evaluation: {e}")))?;
    if a.format.print(&eval)? {
        return Ok(());
    }
    let placed: Vec<Value> = api
        .get_json(&format!("/v1/evaluation/{id}/allocations"), &[])
        .await
        .map_err(|e| CliError(format!("Error querying related allocations: {e}")))?;
    println!("{}", format_eval(&eval, &placed, a.verbose));
    Ok(())
}

fn format_eval(eval: &Value, placed: &[Value], verbose: bool) -> String {
    let v = verbose;
    let (failure_text, failures) = failure_status(eval);
    let time = |key: &str| {
        let nanos = eval[key].as_i64().unwrap_or(0);
        if verbose {
            super::output::format_unix_nanos(nanos)
        } else {
            ago(nanos)
        }
    };
    let description = match s(eval, "StatusDescription") {
        d if d.is_empty() => s(eval, "Status"),
        d => d,
    };
    let mut kv: Vec<(&str, String)> = vec![
        ("ID", short_id(&s(eval, "ID"), v)),
        ("Create Time", time("CreateTime")),
        ("Modify Time", time("ModifyTime")),
        ("Status", s(eval, "Status")),
        ("Status Description", description),
        ("Type", s(eval, "Type")),
        ("TriggeredBy", s(eval, "TriggeredBy")),
        ("Job ID", s(eval, "JobID")),
        ("Namespace", s(eval, "Namespace")),
    ];
    match s(eval, "TriggeredBy").as_str() {
        "node-update" if !s(eval, "NodeID").is_empty() => kv.push(("Node ID", s(eval, "NodeID"))),
        "max-plan-attempts" if !s(eval, "PreviousEval").is_empty() => {
            kv.push(("Previous Eval", s(eval, "PreviousEval")));
        }
        _ => {}
    }
    kv.push((
        "Priority",
        eval["Priority"].as_i64().unwrap_or(0).to_string(),
    ));
    kv.push(("Placement Failures", failure_text));
    let wait_until = s(eval, "WaitUntil");
    if !wait_until.is_empty() && !wait_until.starts_with("0001-01-01") {
        kv.push(("Wait Until", wait_until));
    }
    kv.push(("Previous Eval", short_id(&s(eval, "PreviousEval"), v)));
    kv.push(("Next Eval", short_id(&s(eval, "NextEval"), v)));
    kv.push(("Blocked Eval", short_id(&s(eval, "BlockedEval"), v)));
    let mut out = format_kv(&kv);

    if let Some(related) = eval["RelatedEvals"].as_array().filter(|r| !r.is_empty()) {
        let mut rows = vec![
            [
                "ID",
                "Priority",
                "Triggered By",
                "Node ID",
                "Status",
                "Description",
            ]
            .map(str::to_string)
            .to_vec(),
        ];
        for r in related {
            rows.push(vec![
                short_id(&s(r, "ID"), v),
                r["Priority"].as_i64().unwrap_or(0).to_string(),
                s(r, "TriggeredBy"),
                short_id(&s(r, "NodeID"), v),
                s(r, "Status"),
                s(r, "StatusDescription"),
            ]);
        }
        out.push_str(&format!("\n\nRelated Evaluations\n{}", format_list(&rows)));
    }
    if let Some(updates) = eval["PlanAnnotations"]["DesiredTGUpdates"]
        .as_object()
        .filter(|u| !u.is_empty())
    {
        out.push_str(&format!(
            "\n\nPlan Annotations\n{}",
            plan_annotations(updates, verbose)
        ));
    }
    if !placed.is_empty() {
        out.push_str(&format!(
            "\n\nPlaced Allocations\n{}",
            alloc_list(placed, verbose)
        ));
    }
    if failures && let Some(groups) = eval["FailedTGAllocs"].as_object() {
        out.push_str("\n\nFailed Placements");
        for (tg, metrics) in groups {
            out.push_str(&format!(
                "\n{}:\n{}",
                failed_group_heading(tg, metrics),
                format_alloc_metrics(metrics, "  ").trim_end()
            ));
        }
        if !s(eval, "BlockedEval").is_empty() {
            out.push_str(&format!(
                "\n\nEvaluation {:?} waiting for additional capacity to place remainder",
                short_id(&s(eval, "BlockedEval"), v)
            ));
        }
    }
    out
}

/// Nomad's plan-annotation table: the five decision columns always, the others when used.
fn plan_annotations(updates: &serde_json::Map<String, Value>, verbose: bool) -> String {
    let fixed = [
        ("Ignore", "Ignore"),
        ("Place", "Place"),
        ("Stop", "Stop"),
        ("InPlace", "InPlaceUpdate"),
        ("Destructive", "DestructiveUpdate"),
    ];
    let optional = [
        ("Migrate", "Migrate"),
        ("Canary", "Canary"),
        ("Preemptions", "Preemptions"),
        ("Reschedule Now", "RescheduleNow"),
        ("Reschedule Later", "RescheduleLater"),
        ("Disconnect", "Disconnect"),
        ("Reconnect", "Reconnect"),
    ];
    let n = |d: &Value, k: &str| d[k].as_u64().unwrap_or(0);
    let shown: Vec<(&str, &str)> = optional
        .into_iter()
        .filter(|(_, k)| verbose || updates.values().any(|d| n(d, k) > 0))
        .collect();
    let mut header = vec!["Task Group".to_string()];
    header.extend(fixed.iter().chain(&shown).map(|(h, _)| h.to_string()));
    let mut rows = vec![header];
    for (tg, d) in updates {
        let mut row = vec![tg.clone()];
        row.extend(fixed.iter().chain(&shown).map(|(_, k)| n(d, k).to_string()));
        rows.push(row);
    }
    format_list(&rows)
}

/// `Task Group "web" (failed to place 3 allocations)`: the group and how many of its
/// allocations one failure stands for (itself and those coalesced into it).
pub fn failed_group_heading(tg: &str, metrics: &Value) -> String {
    let count = metrics["CoalescedFailures"].as_u64().unwrap_or(0) + 1;
    let noun = if count > 1 {
        "allocations"
    } else {
        "allocation"
    };
    format!("Task Group {tg:?} (failed to place {count} {noun})")
}

/// Nomad's `formatAllocMetrics`: why a group could not be placed, one `* …` line per reason.
pub fn format_alloc_metrics(m: &Value, prefix: &str) -> String {
    let mut out = String::new();
    if m["NodesEvaluated"].as_u64().unwrap_or(0) == 0 {
        out.push_str(&format!(
            "{prefix}* No nodes were eligible for evaluation\n"
        ));
    }
    let counts = |key: &str| -> Vec<(String, u64)> {
        m[key]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    };
    for (dc, available) in counts("NodesAvailable") {
        if available == 0 {
            out.push_str(&format!(
                "{prefix}* No nodes are available in datacenter {dc:?}\n"
            ));
        }
    }
    for (class, n) in counts("ClassFiltered") {
        out.push_str(&format!(
            "{prefix}* Class {class:?}: {n} nodes excluded by filter\n"
        ));
    }
    for (c, n) in counts("ConstraintFiltered") {
        out.push_str(&format!(
            "{prefix}* Constraint {c:?}: {n} nodes excluded by filter\n"
        ));
    }
    let exhausted = m["NodesExhausted"].as_u64().unwrap_or(0);
    if exhausted > 0 {
        out.push_str(&format!(
            "{prefix}* Resources exhausted on {exhausted} nodes\n"
        ));
    }
    for (class, n) in counts("ClassExhausted") {
        out.push_str(&format!(
            "{prefix}* Class {class:?} exhausted on {n} nodes\n"
        ));
    }
    for (dim, n) in counts("DimensionExhausted") {
        out.push_str(&format!(
            "{prefix}* Dimension {dim:?} exhausted on {n} nodes\n"
        ));
    }
    out.trim_end_matches('\n').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_next_page_command_drops_the_old_token() {
        let args: Vec<String> = ["yurt", "eval", "list", "-page-token", "a", "-per-page=2"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            without_page_token(&args),
            ["yurt", "eval", "list", "-per-page=2"]
        );
        let args: Vec<String> = ["yurt", "eval", "list", "--page-token=b"]
            .map(String::from)
            .to_vec();
        assert_eq!(without_page_token(&args), ["yurt", "eval", "list"]);
    }

    #[test]
    fn metrics_name_each_reason() {
        let m = json!({"NodesEvaluated": 2, "NodesAvailable": {"dc1": 2, "dc9": 0},
            "ConstraintFiltered": {"${attr.kernel.name} = windows": 2},
            "NodesExhausted": 1, "DimensionExhausted": {"memory": 1}});
        assert_eq!(
            format_alloc_metrics(&m, "  "),
            "  * No nodes are available in datacenter \"dc9\"\n\
             \x20 * Constraint \"${attr.kernel.name} = windows\": 2 nodes excluded by filter\n\
             \x20 * Resources exhausted on 1 nodes\n\
             \x20 * Dimension \"memory\" exhausted on 1 nodes"
        );
    }

    #[test]
    fn the_list_shows_failures_and_blocked_evals() {
        let evals = vec![
            json!({"ID": "0123456789abcdef", "Priority": 50, "TriggeredBy": "job-register",
                   "JobID": "web", "Namespace": "default", "Status": "complete"}),
            json!({"ID": "fedcba9876543210", "Priority": 50, "TriggeredBy": "queued-allocs",
                   "JobID": "web", "Namespace": "default", "Status": "blocked",
                   "FailedTGAllocs": {"web": {}}}),
        ];
        let t = eval_table(&evals, false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "ID        Priority  Triggered By   Job ID  Namespace  Node ID  Status    Placement Failures"
        );
        assert!(lines[1].starts_with("01234567  50"), "{t}");
        assert!(lines[1].ends_with("complete  false"), "{t}");
        assert!(lines[2].ends_with("blocked   N/A - In Progress"), "{t}");
    }
}
