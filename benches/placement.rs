//! Placement throughput: one service job with Count 10 000 (one dynamic port each) over
//! 1 000 in-memory nodes. Budget (DESIGN.md): at least 20 000 placements/s.
//!
//! Run with `cargo bench --bench placement`.

use std::time::{Duration, Instant};

use yurt::server::scheduler::testing::{MemView, mock_eval, mock_job, mock_node};
use yurt::server::scheduler::{SchedulerView, allocs_fit, schedule};
use yurt::structs::{NetworkResource, Port};

const NODES: usize = 1_000;
const COUNT: i64 = 10_000;
const RUNS: usize = 5;

fn main() {
    let mut view = MemView::new();
    for i in 0..NODES {
        view.upsert_node(mock_node(&format!("node-{i:04}"), 4_000, 8_192));
    }
    let mut job = mock_job("bench", COUNT, 100, 128);
    if let Some(tg) = job.task_groups.as_mut().and_then(|g| g.first_mut()) {
        tg.networks = Some(vec![NetworkResource {
            dynamic_ports: Some(vec![Port {
                label: "http".into(),
                to: -1,
                ..Default::default()
            }]),
            ..Default::default()
        }]);
    }
    let job = view.upsert_job(job);
    let eval = mock_eval(&job);

    let mut times: Vec<Duration> = Vec::new();
    let mut last = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = match schedule(&eval, &view) {
            Ok(out) => out,
            Err(e) => panic!("schedule failed: {e}"),
        };
        times.push(start.elapsed());
        last = Some(out);
    }
    let Some(out) = last else { return };
    let placed: usize = out.plan.node_allocation.values().map(Vec::len).sum();
    assert_eq!(placed as i64, COUNT, "every instance must be placed");
    times.sort();
    let best = times[0];
    let median = times[times.len() / 2];
    let rate = |d: Duration| placed as f64 / d.as_secs_f64();
    println!(
        "placement: {placed} allocs over {NODES} nodes: median {:.1} ms ({:.0} placements/s), best {:.1} ms ({:.0} placements/s)",
        median.as_secs_f64() * 1e3,
        rate(median),
        best.as_secs_f64() * 1e3,
        rate(best),
    );
    let busiest = out
        .plan
        .node_allocation
        .values()
        .map(Vec::len)
        .max()
        .unwrap_or(0);
    println!(
        "placement: {} nodes used, at most {busiest} allocs on one node",
        out.plan.node_allocation.len()
    );

    // What the plan applier does next: re-check every node of the plan.
    view.apply_plan(&out.plan);
    let start = Instant::now();
    for node_id in out.plan.node_allocation.keys() {
        let Some(node) = view.node(node_id) else {
            continue;
        };
        let allocs = view.allocs_by_node(node_id);
        let refs: Vec<_> = allocs.iter().map(|a| &**a).collect();
        if let Err(dim) = allocs_fit(&node, &refs) {
            panic!("plan does not fit on {node_id}: {dim}");
        }
    }
    println!(
        "placement: allocs_fit over the plan's {} nodes took {:.1} ms",
        out.plan.node_allocation.len(),
        start.elapsed().as_secs_f64() * 1e3
    );
}
