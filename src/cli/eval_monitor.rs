//! Nomad's evaluation monitor: follows an evaluation until the scheduler is done with it
//! and reports the allocations it created (`job run`, `job stop`, `alloc stop`).

use std::time::Duration;

use serde_json::Value;

use super::api_client::ApiClient;
use super::output::{CliError, short_id};

/// How long the monitor waits for the scheduler before giving up.
const MONITOR_LIMIT: Duration = Duration::from_secs(60);

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Follows evaluation `eval_id` until it leaves `pending`.
pub async fn monitor(api: &ApiClient, eval_id: &str, verbose: bool) -> Result<(), CliError> {
    println!(
        "==> {}: Monitoring evaluation {:?}",
        now(),
        short_id(eval_id, verbose)
    );
    let path = format!("/v1/evaluation/{eval_id}");
    let deadline = tokio::time::Instant::now() + MONITOR_LIMIT;
    let mut index = 0u64;
    let mut triggered = false;
    let eval = loop {
        let idx = index.to_string();
        let (eval, i): (Value, u64) = api
            .get_json_indexed(&path, &[("index", idx.as_str()), ("wait", "5s")])
            .await?;
        index = i;
        if !triggered {
            triggered = true;
            println!(
                "    {}: Evaluation triggered by job {:?}",
                now(),
                eval["JobID"].as_str().unwrap_or_default()
            );
        }
        let status = eval["Status"].as_str().unwrap_or_default();
        if status != crate::structs::EvalStatus::Pending.as_str() {
            break eval;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("Timed out monitoring evaluation {eval_id:?}").into());
        }
    };
    let allocs: Vec<Value> = api
        .get_json(&format!("/v1/evaluation/{eval_id}/allocations"), &[])
        .await?;
    for a in &allocs {
        let s = |k: &str| a[k].as_str().unwrap_or_default().to_string();
        if a["CreateIndex"] == a["ModifyIndex"] || a["DesiredStatus"] == "run" {
            println!(
                "    {}: Allocation {:?} created: node {:?}, group {:?}",
                now(),
                short_id(&s("ID"), verbose),
                short_id(&s("NodeID"), verbose),
                s("TaskGroup")
            );
        }
    }
    let status = eval["Status"].as_str().unwrap_or_default();
    println!(
        "    {}: Evaluation status changed: \"pending\" -> {status:?}",
        now()
    );
    println!(
        "==> {}: Evaluation {:?} finished with status {status:?}",
        now(),
        short_id(eval_id, verbose)
    );
    Ok(())
}
