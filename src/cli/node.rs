//! `yurt node status|drain|eligibility`, with Nomad's flags, messages and layouts.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use yurt_drivers::go_duration::parse_go_duration;

use super::alloc::alloc_list;
use super::api_client::ApiClient;
use super::api_flags::ApiFlags;
use super::output::{CliError, FormatArgs, format_kv, format_list, run, short_id};
use crate::structs::{Allocation, Node, NodeListStub};

/// `yurt node` subcommands.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List nodes, or show one node's details and allocations.
    Status(StatusArgs),
    /// Start or stop draining a node.
    Drain(DrainArgs),
    /// Mark a node eligible or ineligible for new allocations.
    Eligibility(EligibilityArgs),
}

/// `yurt node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The subcommand.
    #[command(subcommand)]
    pub command: NodeCommand,
}

/// `yurt node status [-verbose] [-json|-t T] [node]`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    api: ApiFlags,
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    format: FormatArgs,
    /// A node ID or a unique prefix of one.
    node: Option<String>,
}

/// `yurt node drain -enable|-disable [flags] <node>`.
#[derive(Debug, Args)]
pub struct DrainArgs {
    #[command(flatten)]
    api: ApiFlags,
    /// Start draining.
    #[arg(long)]
    enable: bool,
    /// Stop draining.
    #[arg(long)]
    disable: bool,
    /// How long allocations may take to migrate before they are stopped (default 1h).
    #[arg(long)]
    deadline: Option<String>,
    /// Never force the remaining allocations off.
    #[arg(long = "no-deadline")]
    no_deadline: bool,
    /// Stop every allocation at once.
    #[arg(long)]
    force: bool,
    /// Leave system jobs running on the node.
    #[arg(long = "ignore-system")]
    ignore_system: bool,
    /// Keep the node ineligible when the drain is disabled.
    #[arg(long = "keep-ineligible")]
    keep_ineligible: bool,
    /// Return once the drain is set instead of following it.
    #[arg(long)]
    detach: bool,
    /// Answer yes to the confirmation.
    #[arg(long)]
    yes: bool,
    /// A message recorded in the drain's metadata.
    #[arg(long = "m")]
    message: Option<String>,
    /// The node ID or a unique prefix of one.
    node: String,
}

/// `yurt node eligibility -enable|-disable <node>`.
#[derive(Debug, Args)]
pub struct EligibilityArgs {
    #[command(flatten)]
    api: ApiFlags,
    /// Mark the node eligible.
    #[arg(long)]
    enable: bool,
    /// Mark the node ineligible.
    #[arg(long)]
    disable: bool,
    /// The node ID or a unique prefix of one.
    node: String,
}

/// Runs a `node` subcommand.
pub fn main(args: NodeArgs) -> ExitCode {
    run(async move {
        match args.command {
            NodeCommand::Status(a) => status(&a.api.client()?, &a).await,
            NodeCommand::Drain(a) => drain(&a.api.client()?, &a).await,
            NodeCommand::Eligibility(a) => eligibility(&a.api.client()?, &a).await,
        }
    })
}

/// The one node an ID prefix names, with Nomad's messages when it names none or several.
async fn resolve(api: &ApiClient, prefix: &str) -> Result<NodeListStub, CliError> {
    let stub = super::resolve::resolve(api, super::resolve::NODE, prefix, |many| {
        let nodes: Vec<NodeListStub> =
            serde_json::from_value(Value::Array(many.to_vec())).unwrap_or_default();
        nodes_table(&nodes, true)
    })
    .await?;
    serde_json::from_value(stub).map_err(|e| CliError(format!("Error querying node info: {e}")))
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s.to_string()
    }
}

/// Nomad's node list: `ID  Node Pool  DC  Name  Class  Drain  Eligibility  Status`.
fn nodes_table(nodes: &[NodeListStub], verbose: bool) -> String {
    let mut rows = vec![
        [
            "ID",
            "Node Pool",
            "DC",
            "Name",
            "Class",
            "Drain",
            "Eligibility",
            "Status",
        ]
        .map(str::to_string)
        .to_vec(),
    ];
    rows.extend(nodes.iter().map(|n| {
        vec![
            short_id(&n.id, verbose),
            n.node_pool.clone(),
            n.datacenter.clone(),
            n.name.clone(),
            or_none(&n.node_class),
            n.drain.to_string(),
            n.scheduling_eligibility.clone(),
            n.status.to_string(),
        ]
    }));
    format_list(&rows)
}

async fn status(api: &ApiClient, a: &StatusArgs) -> Result<(), CliError> {
    let Some(prefix) = a.node.as_deref() else {
        let nodes: Vec<NodeListStub> = api
            .get_json("/v1/nodes", &[])
            .await
            .map_err(|e| CliError(format!("Error querying node status: {e}")))?;
        if a.format.print(&nodes)? {
            return Ok(());
        }
        if nodes.is_empty() {
            println!("No nodes registered");
        } else {
            println!("{}", nodes_table(&nodes, a.verbose));
        }
        return Ok(());
    };
    let stub = resolve(api, prefix).await?;
    let node: Node = api
        .get_json(&format!("/v1/node/{}", stub.id), &[])
        .await
        .map_err(|e| CliError(format!("Error querying node info: {e}")))?;
    if a.format.print(&node)? {
        return Ok(());
    }
    let mut allocs: Vec<Value> = api
        .get_json(&format!("/v1/node/{}/allocations", node.id), &[])
        .await
        .map_err(|e| CliError(format!("Error querying node allocations: {e}")))?;
    // Newest first, as Nomad lists them.
    allocs.reverse();
    println!("{}", node_text(&node, &allocs, a.verbose));
    Ok(())
}

/// What `node status <id>` prints.
fn node_text(node: &Node, allocs: &[Value], verbose: bool) -> String {
    let drivers: Vec<String> = node
        .drivers
        .iter()
        .flatten()
        .filter(|(_, d)| d.detected && d.healthy)
        .map(|(name, _)| name.clone())
        .collect();
    let mut out = format_kv(&[
        ("ID", short_id(&node.id, verbose)),
        ("Name", node.name.clone()),
        ("Node Pool", node.node_pool.clone()),
        ("Class", or_none(&node.node_class)),
        ("DC", node.datacenter.clone()),
        ("Drain", drain_text(node)),
        ("Eligibility", node.scheduling_eligibility.clone()),
        ("Status", node.status.to_string()),
        ("Drivers", drivers.join(",")),
    ]);
    let events = node.events.as_deref().unwrap_or_default();
    let mut rows = vec![vec![
        "Time".to_string(),
        "Subsystem".to_string(),
        "Message".to_string(),
    ]];
    rows.extend(events.iter().rev().map(|e| {
        vec![
            e.timestamp
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default(),
            e.subsystem.clone(),
            e.message.clone(),
        ]
    }));
    out.push_str("\n\nNode Events\n");
    out.push_str(&format_list(&rows));
    out.push_str("\n\nAllocations\n");
    if allocs.is_empty() {
        out.push_str("No allocations placed");
    } else {
        out.push_str(&alloc_list(allocs, verbose));
    }
    out
}

/// `false`, or `true; <deadline>` while draining, as Nomad prints it.
fn drain_text(node: &Node) -> String {
    match &node.drain_strategy {
        None => "false".to_string(),
        Some(s) if s.deadline < 0 => "true; force drain".to_string(),
        Some(s) if s.deadline == 0 => "true; no deadline".to_string(),
        Some(s) => format!(
            "true; {} deadline",
            s.force_deadline.format("%Y-%m-%dT%H:%M:%SZ")
        ),
    }
}

/// The `Deadline` a drain's flags ask for, in nanoseconds.
fn deadline_nanos(a: &DrainArgs) -> Result<i64, CliError> {
    let chosen = [a.deadline.is_some(), a.no_deadline, a.force]
        .iter()
        .filter(|b| **b)
        .count();
    if chosen > 1 {
        return Err("only one of -deadline, -no-deadline and -force may be given".into());
    }
    if a.force {
        return Ok(-1);
    }
    if a.no_deadline {
        return Ok(0);
    }
    let d = match a.deadline.as_deref() {
        Some(text) => parse_go_duration(text)
            .map_err(|e| CliError(format!("Failed to parse deadline {text:?}: {e}")))?,
        None => Duration::from_secs(3600),
    };
    if d.is_zero() {
        return Err("A positive drain deadline must be given".into());
    }
    Ok(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn confirm(question: &str) -> Result<bool, CliError> {
    eprint!("{question} [y/N]: ");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError(format!("Failed to read answer: {e}")))?;
    Ok(matches!(line.trim().to_lowercase().as_str(), "y" | "yes"))
}

async fn drain(api: &ApiClient, a: &DrainArgs) -> Result<(), CliError> {
    if a.enable == a.disable {
        return Err("Either the '-enable' or '-disable' flag must be set".into());
    }
    let spec = if a.enable {
        Some(json!({"Deadline": deadline_nanos(a)?, "IgnoreSystemJobs": a.ignore_system}))
    } else {
        None
    };
    let node = resolve(api, &a.node).await?;
    if !a.yes {
        let verb = if a.enable { "enable" } else { "disable" };
        if !confirm(&format!(
            "Are you sure you want to {verb} drain mode for node {:?}?",
            node.id
        ))? {
            println!("Canceling drain toggle");
            return Ok(());
        }
    }
    let mut meta = BTreeMap::new();
    if let Some(m) = &a.message {
        meta.insert("message".to_string(), m.clone());
    }
    let body = json!({"DrainSpec": spec, "MarkEligible": !a.keep_ineligible, "Meta": meta});
    let _: Value = api
        .post_json(&format!("/v1/node/{}/drain", node.id), &body)
        .await
        .map_err(|e| CliError(format!("Error updating drain specification: {e}")))?;
    if a.disable {
        println!("Node {:?} drain strategy unset", node.id);
        return Ok(());
    }
    println!("Node {:?} drain strategy set", node.id);
    if a.detach {
        return Ok(());
    }
    monitor(api, &node.id).await
}

/// Follows a drain until it ends, printing what happens to the node's allocations.
async fn monitor(api: &ApiClient, node_id: &str) -> Result<(), CliError> {
    let now = || chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    println!(
        "{}: Ctrl-C to stop monitoring: will not cancel the node drain",
        now()
    );
    let mut seen: BTreeMap<String, (bool, String)> = BTreeMap::new();
    loop {
        let allocs: Vec<Allocation> = api
            .get_json(&format!("/v1/node/{node_id}/allocations"), &[])
            .await
            .map_err(|e| CliError(format!("Error querying node allocations: {e}")))?;
        for al in &allocs {
            let marked = al.desired_transition.migrate == Some(true);
            let status = al.client_status.to_string();
            let before = seen.insert(al.id.clone(), (marked, status.clone()));
            if let Some((was_marked, was_status)) = before {
                if marked && !was_marked {
                    println!("{}: Alloc {:?} marked for migration", now(), al.id);
                }
                if was_status != status {
                    println!(
                        "{}: Alloc {:?} status {} -> {}",
                        now(),
                        al.id,
                        was_status,
                        status
                    );
                }
            }
        }
        let node: Node = api
            .get_json(&format!("/v1/node/{node_id}"), &[])
            .await
            .map_err(|e| CliError(format!("Error querying node info: {e}")))?;
        if node.drain_strategy.is_none() {
            let outcome = node
                .last_drain
                .as_ref()
                .map_or("complete", |l| l.status.as_str())
                .to_string();
            println!("{}: Drain {outcome} for node {node_id:?}", now());
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn eligibility(api: &ApiClient, a: &EligibilityArgs) -> Result<(), CliError> {
    if a.enable == a.disable {
        return Err("Either the '-enable' or '-disable' flag must be set".into());
    }
    let node = resolve(api, &a.node).await?;
    let value = if a.enable { "eligible" } else { "ineligible" };
    let _: Value = api
        .post_json(
            &format!("/v1/node/{}/eligibility", node.id),
            &json!({"Eligibility": value}),
        )
        .await
        .map_err(|e| CliError(format!("Error updating scheduling eligibility: {e}")))?;
    println!(
        "Node {:?} scheduling eligibility set: {value} for scheduling",
        node.id
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        d: DrainArgs,
    }

    fn args(extra: &[&str]) -> DrainArgs {
        let mut argv = vec!["t", "--enable"];
        argv.extend_from_slice(extra);
        argv.push("node");
        T::parse_from(argv).d
    }

    #[test]
    fn drain_flags_choose_the_deadline() {
        assert_eq!(deadline_nanos(&args(&[])).unwrap(), 3_600_000_000_000);
        assert_eq!(
            deadline_nanos(&args(&["--deadline", "90s"])).unwrap(),
            90_000_000_000
        );
        assert_eq!(deadline_nanos(&args(&["--no-deadline"])).unwrap(), 0);
        assert_eq!(deadline_nanos(&args(&["--force"])).unwrap(), -1);
        assert!(deadline_nanos(&args(&["--force", "--no-deadline"])).is_err());
        assert!(deadline_nanos(&args(&["--deadline", "soon"])).is_err());
    }
}
