//! The stats endpoints report real, non-zero figures for a busy task, read from its cgroup.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

#[test]
fn busy_task_has_nonzero_memory_and_cpu_stats() {
    let agent = Agent::start(AgentOpts::dev());
    let http = Http::default();
    let mut job = service_job("busy", 1);
    // A shell spinning on the CPU, holding a few MiB of memory.
    job["TaskGroups"][0]["Tasks"][0]["Config"] = json!({
        "command": "/bin/sh",
        "args": ["-c", "x=$(head -c 4000000 /dev/zero | tr '\\0' a); while :; do :; done"],
    });
    let r = http.put(&agent.url("/v1/jobs"), &json!({ "Job": job }));
    assert_eq!(r.status, 200, "{}", r.body);
    let alloc = wait_for(Duration::from_secs(60), "busy task running", || {
        let allocs = http.get(&agent.url("/v1/job/busy/allocations")).json();
        allocs.as_array()?.iter().find_map(|a| {
            (a["TaskStates"]["server"]["State"] == "running")
                .then(|| a["ID"].as_str().map(str::to_string))?
        })
    });
    // CPU percent needs two samples; ticks and RSS grow as the task runs.
    let stats: Value = wait_for(Duration::from_secs(20), "non-zero stats", || {
        let r = http.get(&agent.url(&format!("/v1/client/allocation/{alloc}/stats")));
        assert_eq!(r.status, 200, "{}", r.body);
        let s = r.json();
        let usage = &s["Tasks"]["server"]["ResourceUsage"];
        let rss = usage["MemoryStats"]["RSS"].as_u64().unwrap_or(0);
        let ticks = usage["CpuStats"]["TotalTicks"].as_f64().unwrap_or(0.0);
        let percent = usage["CpuStats"]["Percent"].as_f64().unwrap_or(0.0);
        (rss > 0 && ticks > 0.0 && percent > 0.0).then_some(s)
    });
    let usage = &stats["Tasks"]["server"]["ResourceUsage"];
    assert!(
        usage["MemoryStats"]["Measured"]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        "{stats}"
    );
    assert!(
        usage["CpuStats"]["Measured"]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        "{stats}"
    );
    // The whole allocation's usage includes the task's.
    assert!(
        stats["ResourceUsage"]["MemoryStats"]["RSS"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
    let r = http.delete(&agent.url("/v1/job/busy"));
    assert_eq!(r.status, 200, "{}", r.body);
}
