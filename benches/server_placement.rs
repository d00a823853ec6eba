//! Placement throughput through the real server (issue 2): a `yurt agent -server` process,
//! 1 000 simulated nodes registered over its RPC port the way client agents register, and
//! one service job with Count 10 000 (one dynamic port each) submitted over HTTP. Reports
//! placements/s until the evaluation is complete and until all 10 000 allocations are
//! listed, and the server's idle RSS (fresh process, 5 s after start).
//! Budget (DESIGN.md): at least 20 000 placements/s.
//!
//! Run with `cargo bench --bench server_placement` (release build). The scheduler alone is
//! measured by `cargo bench --bench placement`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const NODES: usize = 1_000;
const COUNT: i64 = 10_000;
const REGISTER_THREADS: usize = 8;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn server_opts() -> AgentOpts {
    let mut opts = AgentOpts::server();
    // Long TTLs: each simulated node heartbeats once, and nothing may expire mid-run.
    opts.extra_hcl =
        "server {\n  min_heartbeat_ttl = \"600s\"\n  heartbeat_grace = \"600s\"\n}\n".into();
    opts.extra_args = vec!["-log-level".into(), "INFO".into()];
    opts
}

fn main() {
    let mut dirs = DirGuard::default();
    // Idle RSS of a fresh server.
    {
        let agent = dirs.start(server_opts());
        std::thread::sleep(Duration::from_secs(5));
        println!(
            "server_placement idle rss: {:.1} MiB (fresh `yurt agent -server`, after 5 s)",
            rss_kib(agent.pid()) as f64 / 1024.0
        );
    }

    let agent = dirs.start(server_opts());
    let rpc = agent.rpc_addr();
    let t_nodes = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..REGISTER_THREADS)
        .map(|_| {
            let (rpc, next) = (rpc.clone(), next.clone());
            std::thread::spawn(move || {
                let http = Http::default();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= NODES {
                        return;
                    }
                    let (id, secret) = (
                        uuid::Uuid::new_v4().to_string(),
                        uuid::Uuid::new_v4().to_string(),
                    );
                    let node =
                        sim_node_json(&id, &secret, &format!("sim-{i:04}"), "dc1", 4000, 8192);
                    let r = http.post(&format!("http://{rpc}/v1/internal/node/register"), &node);
                    assert_eq!(r.status, 200, "register: {}", r.body);
                    let r = http.post(
                        &format!("http://{rpc}/v1/internal/node/status"),
                        &json!({"NodeID": id, "SecretID": secret, "Status": "ready"}),
                    );
                    assert_eq!(r.status, 200, "heartbeat: {}", r.body);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("register worker");
    }
    let http = Http::default();
    wait_for(Duration::from_secs(60), "all nodes ready", || {
        let n = http.get(&agent.url("/v1/nodes")).json();
        let ready = n
            .as_array()
            .map(|l| l.iter().filter(|n| n["Status"] == "ready").count())
            .unwrap_or(0);
        (ready == NODES).then_some(())
    });
    println!(
        "server_placement: {NODES} nodes registered and ready in {:.2} s",
        t_nodes.elapsed().as_secs_f64()
    );

    let mut job = service_job("big", COUNT);
    job["TaskGroups"][0]["Networks"] = json!([{"DynamicPorts": [{"Label": "http"}]}]);
    job["TaskGroups"][0]["Tasks"][0]["Resources"] = json!({"CPU": 100, "MemoryMB": 128});
    let t0 = Instant::now();
    let r = http.put(&agent.url("/v1/jobs"), &json!({"Job": job}));
    assert_eq!(r.status, 200, "{}", r.body);
    let eval_id = r.json()["EvalID"].as_str().unwrap_or_default().to_string();
    let mut index = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let eval = loop {
        assert!(Instant::now() < deadline, "evaluation did not finish");
        let r = http.get(&agent.url(&format!("/v1/evaluation/{eval_id}?index={index}&wait=30s")));
        assert_eq!(r.status, 200, "{}", r.body);
        let e = r.json();
        if e["Status"] == "complete" || e["Status"] == "failed" {
            break e;
        }
        index = r.index();
    };
    let t_eval = t0.elapsed();
    assert_eq!(eval["Status"], "complete", "{eval}");
    let listed = wait_for(Duration::from_secs(60), "10 000 allocations", || {
        let n = http
            .get(&agent.url("/v1/job/big/allocations"))
            .json()
            .as_array()
            .map(Vec::len)
            .unwrap_or(0);
        (n as i64 == COUNT).then_some(n)
    });
    let t_all = t0.elapsed();
    let rate = |d: Duration| COUNT as f64 / d.as_secs_f64();
    println!(
        "server_placement: {listed} allocs over {NODES} nodes: register -> eval complete {:.0} ms ({:.0} placements/s); -> all allocs listed {:.0} ms ({:.0} placements/s)",
        t_eval.as_secs_f64() * 1e3,
        rate(t_eval),
        t_all.as_secs_f64() * 1e3,
        rate(t_all),
    );
    println!(
        "server_placement rss: {:.1} MiB with {NODES} nodes and {COUNT} allocs",
        rss_kib(agent.pid()) as f64 / 1024.0
    );
}
