//! Placement throughput and server memory per allocation through the real server (issues 2
//! and 18): a `yurt agent -server` process, simulated nodes registered over its RPC port the
//! way client agents register, and service jobs (one dynamic port per allocation) submitted
//! over HTTP. Reports placements/s until each evaluation is complete and until all
//! allocations are listed, the server's idle RSS (fresh process, 5 s after start), and its
//! RSS and Private_Dirty (`/proc/<pid>/smaps_rollup`) before the first job and after the
//! last, with the difference per allocation.
//! Budgets (DESIGN.md): at least 20 000 placements/s (10 000 allocations over 1 000 nodes);
//! at most 4 KiB of server memory per allocation at 100 000 allocations.
//!
//! Run with `cargo bench --bench server_placement` (release build; 10 000 allocations in one
//! job over 1 000 nodes). The load is set by environment variables:
//! `YURT_BENCH_NODES` (default 1000), `YURT_BENCH_ALLOCS` (default 10000) and
//! `YURT_BENCH_JOBS` (default 1; the allocations are split evenly over this many jobs;
//! `YURT_BENCH_NO_DEPLOYMENT=1` submits the job without a deployment), e.g.
//! `YURT_BENCH_NODES=5000 YURT_BENCH_ALLOCS=100000 YURT_BENCH_JOBS=10`.
//! The scheduler alone is measured by `cargo bench --bench placement`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const REGISTER_THREADS: usize = 8;
const PLACEMENTS_BUDGET: f64 = 20_000.0;
const KIB_PER_ALLOC_BUDGET: f64 = 4.0;

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a count: {e}")),
        Err(_) => default,
    }
}

/// RSS and Private_Dirty of a process, in KiB.
#[derive(Debug, Clone, Copy)]
struct Mem {
    rss: u64,
    private_dirty: u64,
}

fn smaps_field(text: &str, field: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn mem(pid: u32) -> Mem {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/smaps_rollup: {e}"));
    Mem {
        rss: smaps_field(&text, "Rss:"),
        private_dirty: smaps_field(&text, "Private_Dirty:"),
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn server_opts() -> AgentOpts {
    let mut opts = AgentOpts::server();
    // Long TTLs: each simulated node heartbeats once, and nothing may expire mid-run.
    opts.extra_hcl =
        "server {\n  min_heartbeat_ttl = \"600s\"\n  heartbeat_grace = \"600s\"\n}\n".into();
    opts.extra_args = vec!["-log-level".into(), "INFO".into()];
    opts
}

fn register_nodes(rpc: &str, nodes: usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..REGISTER_THREADS)
        .map(|_| {
            let (rpc, next) = (rpc.to_string(), next.clone());
            std::thread::spawn(move || {
                let http = Http::default();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= nodes {
                        return;
                    }
                    let (id, secret) = (
                        uuid::Uuid::new_v4().to_string(),
                        uuid::Uuid::new_v4().to_string(),
                    );
                    let node =
                        sim_node_json(&id, &secret, &format!("sim-{i:05}"), "dc1", 4000, 8192);
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
}

/// Submits a job of `count` allocations; returns the time until its evaluation completed.
fn place_job(http: &Http, agent: &Agent, id: &str, count: usize) -> Duration {
    let mut job = service_job(id, count as i64);
    job["TaskGroups"][0]["Networks"] = json!([{"DynamicPorts": [{"Label": "http"}]}]);
    job["TaskGroups"][0]["Tasks"][0]["Resources"] = json!({"CPU": 100, "MemoryMB": 128});
    // YURT_BENCH_NO_DEPLOYMENT=1 places the job without a deployment (`MaxParallel = 0`), to
    // tell the cost of deployment bookkeeping from the rest.
    if std::env::var_os("YURT_BENCH_NO_DEPLOYMENT").is_some() {
        job["Update"] = json!({"MaxParallel": 0});
    }
    let t0 = Instant::now();
    let r = http.put(&agent.url("/v1/jobs"), &json!({"Job": job}));
    assert_eq!(r.status, 200, "{}", r.body);
    let eval_id = r.json()["EvalID"].as_str().unwrap_or_default().to_string();
    let mut index = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
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
    let took = t0.elapsed();
    assert_eq!(eval["Status"], "complete", "{eval}");
    took
}

fn main() {
    let nodes = env_usize("YURT_BENCH_NODES", 1_000);
    let allocs = env_usize("YURT_BENCH_ALLOCS", 10_000);
    let jobs = env_usize("YURT_BENCH_JOBS", 1).max(1);
    assert!(
        allocs.is_multiple_of(jobs),
        "YURT_BENCH_ALLOCS must be a multiple of YURT_BENCH_JOBS"
    );
    let per_job = allocs / jobs;

    let mut dirs = DirGuard::default();
    // Idle RSS of a fresh server.
    {
        let agent = dirs.start(server_opts());
        std::thread::sleep(Duration::from_secs(5));
        println!(
            "server_placement idle rss: {:.1} MiB (fresh `yurt agent -server`, after 5 s)",
            mib(mem(agent.pid()).rss)
        );
    }

    let agent = dirs.start(server_opts());
    let t_nodes = Instant::now();
    register_nodes(&agent.rpc_addr(), nodes);
    let http = Http::default();
    wait_for(Duration::from_secs(120), "all nodes ready", || {
        let n = http.get(&agent.url("/v1/nodes")).json();
        let ready = n
            .as_array()
            .map(|l| l.iter().filter(|n| n["Status"] == "ready").count())
            .unwrap_or(0);
        (ready == nodes).then_some(())
    });
    println!(
        "server_placement: {nodes} nodes registered and ready in {:.2} s",
        t_nodes.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(2));
    let before = mem(agent.pid());

    let t0 = Instant::now();
    let mut t_evals = Duration::ZERO;
    for j in 0..jobs {
        let id = format!("big-{j:03}");
        let took = place_job(&http, &agent, &id, per_job);
        t_evals += took;
        if jobs > 1 {
            println!(
                "server_placement: job {id}: {per_job} allocs, register -> eval complete {:.0} ms ({:.0} placements/s)",
                took.as_secs_f64() * 1e3,
                per_job as f64 / took.as_secs_f64()
            );
        }
    }
    let t_placed = t0.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let placed = mem(agent.pid());
    let t_list = Instant::now();
    let mut listed = 0;
    for j in 0..jobs {
        let path = format!("/v1/job/big-{j:03}/allocations");
        listed += wait_for(Duration::from_secs(120), "allocations listed", || {
            let n = http
                .get(&agent.url(&path))
                .json()
                .as_array()
                .map(Vec::len)
                .unwrap_or(0);
            (n == per_job).then_some(n)
        });
    }
    // The pause before the memory reading is not part of the time to list.
    let t_all = t_placed + t_list.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let after = mem(agent.pid());

    let rate = |d: Duration| allocs as f64 / d.as_secs_f64();
    println!(
        "server_placement: {listed} allocs in {jobs} job(s) over {nodes} nodes: register -> eval complete {:.0} ms summed over jobs ({:.0} placements/s, budget >= {PLACEMENTS_BUDGET:.0}); wall clock to the last eval {:.0} ms; -> all allocs listed {:.0} ms ({:.0} placements/s)",
        t_evals.as_secs_f64() * 1e3,
        rate(t_evals),
        t_placed.as_secs_f64() * 1e3,
        t_all.as_secs_f64() * 1e3,
        rate(t_all),
    );
    let per_alloc = |m: Mem| {
        (
            m.rss.saturating_sub(before.rss) as f64 / allocs as f64,
            m.private_dirty.saturating_sub(before.private_dirty) as f64 / allocs as f64,
        )
    };
    for (what, m) in [
        ("before the first job", before),
        ("after the last eval", placed),
        ("after listing every alloc", after),
    ] {
        let (rss, dirty) = per_alloc(m);
        println!(
            "server_placement mem {what}: rss {:.1} MiB, private_dirty {:.1} MiB; per alloc since before: rss {rss:.2} KiB, private_dirty {dirty:.2} KiB (budget <= {KIB_PER_ALLOC_BUDGET:.0} KiB)",
            mib(m.rss),
            mib(m.private_dirty),
        );
    }
}
