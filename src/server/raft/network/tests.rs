//! A three-node cluster in one process, over real loopback HTTP, with the redb log store and
//! the test state machine.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::RPCError;
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::VoteRequest;
use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy, Vote};

use super::*;
use crate::server::raft::http::raft_router;
use crate::server::raft::log_store::LogStore;
use crate::server::raft::testing::{TempDir, TestConfig, TestStateMachine};

/// Every wait in these tests gives up after this long.
const WAIT: Duration = Duration::from_secs(30);

fn http_client() -> reqwest::Client {
    crate::tls::reqwest_tls(
        reqwest::Client::builder().connect_timeout(Duration::from_secs(1)),
        None,
    )
    .expect("tls")
    .build()
    .expect("client")
}

struct Node {
    id: u64,
    raft: Raft<TestConfig>,
    sm: TestStateMachine,
    server: tokio::task::JoinHandle<()>,
    _dir: TempDir,
}

fn config() -> Arc<Config> {
    let config = Config {
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        // Snapshot and purge early, so a node added later must catch up from a snapshot
        // sent over HTTP instead of from the log.
        snapshot_policy: SnapshotPolicy::LogsSinceLast(3),
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        snapshot_max_chunk_size: 64,
        ..Config::default()
    };
    Arc::new(config.validate().expect("config"))
}

async fn start_node(id: u64, listener: tokio::net::TcpListener) -> Node {
    let dir = TempDir::new(&format!("raft-node-{id}"));
    let log = LogStore::<TestConfig>::open(&dir.path().join("raft")).expect("log store");
    let sm = TestStateMachine::default();
    let raft = Raft::new(
        id,
        config(),
        HttpNetwork::new(id, http_client()),
        log,
        sm.clone(),
    )
    .await
    .expect("raft");
    let app = raft_router(raft.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Node {
        id,
        raft,
        sm,
        server,
        _dir: dir,
    }
}

async fn listen() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    (l, addr)
}

/// The node that all of `nodes` agree leads, other than `not`.
async fn wait_leader(nodes: &[Node], not: Option<u64>) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let leaders: Vec<Option<u64>> = nodes
            .iter()
            .map(|n| n.raft.metrics().borrow().current_leader)
            .collect();
        if let Some(Some(l)) = leaders.first()
            && leaders.iter().all(|x| *x == Some(*l))
            && Some(*l) != not
            && let Some(n) = nodes.iter().find(|n| n.id == *l)
            && n.raft.metrics().borrow().state == ServerState::Leader
        {
            return *l;
        }
        assert!(Instant::now() < deadline, "no agreed leader: {leaders:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_writes(nodes: &[Node], want: &[String]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let seen: Vec<Vec<String>> = nodes.iter().map(|n| n.sm.writes()).collect();
        if seen.iter().all(|w| w == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "writes not replicated: want {want:?}, have {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_replicate_and_fail_over_over_http() {
    let mut listeners = Vec::new();
    let mut members = BTreeMap::new();
    for id in 1..=3 {
        let (l, addr) = listen().await;
        members.insert(id, BasicNode::new(addr));
        listeners.push((id, l));
    }
    let mut nodes = Vec::new();
    for (id, l) in listeners {
        nodes.push(start_node(id, l).await);
    }
    nodes[0]
        .raft
        .initialize(members.clone())
        .await
        .expect("initialize");
    let leader = wait_leader(&nodes, None).await;
    let by_id = |nodes: &[Node], id: u64| -> Raft<TestConfig> {
        nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.raft.clone())
            .expect("node")
    };

    let mut want = Vec::new();
    for i in 0..8 {
        let w = format!("w{i}");
        by_id(&nodes, leader)
            .client_write(w.clone())
            .await
            .expect("write");
        want.push(w);
    }
    wait_writes(&nodes, &want).await;

    // A fourth node joins after the log was purged: it can only catch up through a snapshot
    // sent in chunks to its snapshot route.
    let lead = by_id(&nodes, leader);
    lead.trigger().snapshot().await.expect("snapshot");
    let last = lead.metrics().borrow().last_log_index;
    lead.wait(Some(WAIT))
        .metrics(
            |m| m.purged.map(|p| p.index) >= last,
            "the leader purges its log up to its snapshot",
        )
        .await
        .expect("purged");
    let (l, addr) = listen().await;
    let fourth = start_node(4, l).await;
    lead.add_learner(4, BasicNode::new(addr), true)
        .await
        .expect("add learner");
    fourth
        .raft
        .wait(Some(WAIT))
        .metrics(|m| m.snapshot.is_some(), "the learner installs a snapshot")
        .await
        .expect("snapshot installed");
    wait_writes(std::slice::from_ref(&fourth), &want).await;
    let _ = fourth.raft.shutdown().await;
    fourth.server.abort();

    // Stop the leader: its routes go away with it, so the others find it unreachable.
    let pos = nodes.iter().position(|n| n.id == leader).expect("leader");
    let old = nodes.remove(pos);
    let stopped = Instant::now();
    let _ = old.raft.shutdown().await;
    old.server.abort();
    let _ = old.server.await;
    let new_leader = wait_leader(&nodes, Some(leader)).await;
    // Informational (`--nocapture`): the time to a new leader depends on the machine's load.
    println!(
        "node {new_leader} leads {:?} after node {leader} stopped",
        stopped.elapsed()
    );
    let w = "after failover".to_string();
    by_id(&nodes, new_leader)
        .client_write(w.clone())
        .await
        .expect("write on the new leader");
    want.push(w);
    wait_writes(&nodes, &want).await;
    for n in nodes {
        let _ = n.raft.shutdown().await;
        n.server.abort();
    }
}

#[tokio::test]
async fn a_peer_that_is_not_listening_is_unreachable() {
    let (l, addr) = listen().await;
    drop(l);
    let mut network = HttpNetwork::<TestConfig>::new(1, http_client());
    let mut peer = network.new_client(2, &BasicNode::new(addr)).await;
    let err = peer
        .vote(
            VoteRequest::new(Vote::new(1, 1), None),
            RPCOption::new(Duration::from_secs(5)),
        )
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
}

#[tokio::test]
async fn a_malformed_request_is_a_400_naming_it() {
    let (l, addr) = listen().await;
    let node = start_node(1, l).await;
    let http = http_client();
    for (path, what) in [(APPEND_PATH, "append"), (VOTE_PATH, "vote")] {
        let resp = http
            .post(format!("http://{addr}{path}"))
            .body("{\"vote\": 7}")
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 400, "{path}");
        let text = resp.text().await.expect("body");
        assert!(text.contains(what), "{path}: {text}");
    }
    let resp = http
        .post(format!("http://{addr}{SNAPSHOT_PATH}"))
        .body(vec![200u8, 0, 0, 0, b'{'])
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.expect("body");
    assert!(text.contains("snapshot chunk"), "{text}");
    let _ = node.raft.shutdown().await;
    node.server.abort();
}

#[test]
fn a_chunk_keeps_its_header_and_bytes() {
    let rpc = openraft::raft::InstallSnapshotRequest::<TestConfig> {
        vote: Vote::new(3, 2),
        meta: openraft::SnapshotMeta {
            snapshot_id: "9-1".into(),
            ..Default::default()
        },
        offset: 128,
        data: vec![0, 1, 2, 255],
        done: true,
    };
    let body = frame_chunk(rpc).expect("frame");
    let back = unframe_chunk::<TestConfig>(&body).expect("unframe");
    assert_eq!(back.vote, Vote::new(3, 2));
    assert_eq!(back.meta.snapshot_id, "9-1");
    assert_eq!((back.offset, back.done), (128, true));
    assert_eq!(back.data, [0, 1, 2, 255]);
    assert!(unframe_chunk::<TestConfig>(&body[..6]).is_err());
}

/// Commit latency of a one-node cluster on the redb log store, with 1 and 16 concurrent
/// writers, and how many log transactions (fsyncs) the writes took (`cargo test --lib
/// one_node_commit -- --ignored --nocapture`). It prints; it asserts nothing about speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn one_node_commit_latency() {
    let dir = TempDir::new("raft-one-node");
    let log = LogStore::<TestConfig>::open(dir.path()).expect("log store");
    let stats = log.stats();
    let config = Config {
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        ..Config::default()
    };
    let raft = Raft::new(
        1,
        Arc::new(config.validate().expect("config")),
        HttpNetwork::new(1, http_client()),
        log,
        TestStateMachine::default(),
    )
    .await
    .expect("raft");
    raft.initialize(BTreeMap::from([(1, BasicNode::new("127.0.0.1:1"))]))
        .await
        .expect("initialize");
    raft.wait(Some(WAIT))
        .state(ServerState::Leader, "leader")
        .await
        .expect("leader");
    let payload = "x".repeat(2048);
    for writers in [1usize, 16] {
        let per_writer = 800 / writers;
        let before = stats.read();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..writers {
            let raft = raft.clone();
            let payload = payload.clone();
            tasks.push(tokio::spawn(async move {
                let mut took = Vec::new();
                for _ in 0..per_writer {
                    let t = Instant::now();
                    raft.client_write(payload.clone()).await.expect("write");
                    took.push(t.elapsed());
                }
                took
            }));
        }
        let mut took = Vec::new();
        for t in tasks {
            took.extend(t.await.expect("writer"));
        }
        let elapsed = start.elapsed();
        took.sort();
        let n = took.len();
        let after = stats.read();
        let [txns, fsyncs, appends, entries] = [0, 1, 2, 3].map(|i| after[i] - before[i]);
        println!(
            "1 node, {writers} writers, {n} writes of 2 KiB: p50 {:?} p99 {:?} {:.0} writes/s; \
             log: {txns} transactions, {fsyncs} fsyncs, {appends} appends of {entries} entries",
            took[n / 2],
            took[n * 99 / 100],
            n as f64 / elapsed.as_secs_f64()
        );
    }
    let _ = raft.shutdown().await;
}
