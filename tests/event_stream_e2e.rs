//! End to end: `GET /v1/event/stream` on real agents. A job's events in order with rising
//! indexes, resuming from an index, topic and key filters, the heartbeat, a stalled
//! subscriber that neither slows registrations nor stays subscribed, ACL checks (a deleted
//! token's stream ends), and the stream read through a client-only agent.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// Opens a stream and reads its lines on a thread; returns the status and the frames.
fn subscribe(url: &str, token: Option<&str>) -> (u16, mpsc::Receiver<Value>) {
    let client = http_builder(None)
        .timeout(Duration::from_secs(300))
        .build()
        .expect("client");
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.header("X-Nomad-Token", t);
    }
    let resp = req.send().expect("GET stream");
    let status = resp.status().as_u16();
    let (tx, rx) = mpsc::channel();
    if status == 200 {
        std::thread::spawn(move || {
            for line in BufReader::new(resp).lines() {
                let Ok(line) = line else { break };
                let v = serde_json::from_str(&line).unwrap_or_else(|_| json!({"Unparsed": line}));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
    }
    (status, rx)
}

fn is_heartbeat(f: &Value) -> bool {
    f.as_object().is_some_and(|o| o.is_empty())
}

/// Frames (heartbeats left out) until `done` holds for one of them; panics after `timeout`.
fn frames_until(
    rx: &mpsc::Receiver<Value>,
    timeout: Duration,
    mut done: impl FnMut(&Value) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("timed out; frames so far: {out:#?}"));
        if is_heartbeat(&f) {
            continue;
        }
        assert!(f.get("Error").is_none(), "stream error: {f}");
        let stop = done(&f);
        out.push(f);
        if stop {
            return out;
        }
    }
}

fn events(frames: &[Value]) -> Vec<&Value> {
    frames
        .iter()
        .flat_map(|f| f["Events"].as_array().into_iter().flatten())
        .collect()
}

fn has_event(f: &Value, topic: &str, ty: &str, pred: impl Fn(&Value) -> bool) -> bool {
    f["Events"].as_array().is_some_and(|es| {
        es.iter()
            .any(|e| e["Topic"] == topic && e["Type"] == ty && pred(e))
    })
}

fn register(http: &Http, agent: &Agent, job: &Value) {
    let r = http.put(&agent.url("/v1/jobs"), &json!({"Job": job}));
    assert_eq!(r.status, 200, "register: {}", r.body);
}

#[test]
fn a_job_streams_its_events_in_order_and_a_subscriber_resumes_from_an_index() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let node = SimNode::register(&agent.rpc_addr(), "n1", "dc1", 4000, 8192);
    let (status, rx) = subscribe(
        &agent.url("/v1/event/stream?topic=Job:web&topic=Evaluation&topic=Allocation"),
        None,
    );
    assert_eq!(status, 200);
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("first frame");
    assert!(
        is_heartbeat(&first),
        "a stream opens with a heartbeat: {first}"
    );

    register(&http, &agent, &service_job("other", 1));
    register(&http, &agent, &service_job("web", 2));
    let is_web = |e: &Value| e["Payload"]["Allocation"]["JobID"] == "web";
    let mut frames = frames_until(&rx, Duration::from_secs(60), |f| {
        has_event(f, "Allocation", "PlanResult", is_web)
    });
    let placed: Vec<String> = events(&frames)
        .into_iter()
        .filter(|e| e["Topic"] == "Allocation" && is_web(e))
        .map(|e| e["Key"].as_str().expect("Key").to_string())
        .collect();
    assert_eq!(placed.len(), 2, "{frames:#?}");
    let running: Vec<(String, &str)> = placed.iter().map(|id| (id.clone(), "running")).collect();
    assert_eq!(node.update_allocs(&running).status, 200);
    frames.extend(frames_until(&rx, Duration::from_secs(60), |f| {
        has_event(f, "Allocation", "AllocationUpdated", |e| {
            is_web(e) && e["Payload"]["Allocation"]["ClientStatus"] == "running"
        })
    }));

    // Indexes rise frame by frame and every event carries its frame's.
    let mut last = 0;
    for f in &frames {
        let index = f["Index"].as_u64().expect("Index");
        assert!(index > last, "index {index} after {last}");
        last = index;
        for e in f["Events"].as_array().expect("Events") {
            assert_eq!(e["Index"], index);
        }
    }
    let all = events(&frames);
    for e in &all {
        if e["Topic"] == "Job" {
            assert_eq!(e["Key"], "web", "the Job:web filter passed {e}");
        }
        if e["Topic"] == "Allocation" {
            assert!(e["Payload"]["Allocation"]["Job"].is_null(), "{e}");
            assert_eq!(e["FilterKeys"][0], e["Payload"]["Allocation"]["JobID"]);
        }
    }
    let at = |pred: &dyn Fn(&Value) -> bool| -> u64 {
        all.iter()
            .find(|e| pred(e))
            .and_then(|e| e["Index"].as_u64())
            .unwrap_or_else(|| panic!("missing event in {all:#?}"))
    };
    let registered = at(&|e| e["Topic"] == "Job" && e["Type"] == "JobRegistered");
    let eval = at(&|e| {
        e["Topic"] == "Evaluation"
            && e["Type"] == "JobRegistered"
            && e["Payload"]["Evaluation"]["JobID"] == "web"
    });
    let plan = at(&|e| e["Type"] == "PlanResult" && is_web(e));
    let updated = at(&|e| e["Type"] == "AllocationUpdated" && is_web(e));
    assert_eq!(registered, eval, "the job and its evaluation are one write");
    assert!(
        registered < plan && plan < updated,
        "{registered} {plan} {updated}"
    );
    let job = all
        .iter()
        .find(|e| e["Topic"] == "Job")
        .expect("a Job event");
    assert_eq!(job["Payload"]["Job"]["ID"], "web");
    assert_eq!(job["Namespace"], "default");

    // A new subscriber resumes at the plan's index from the buffer.
    let (status, resumed) = subscribe(
        &agent.url(&format!(
            "/v1/event/stream?topic=Allocation:web&index={plan}"
        )),
        None,
    );
    assert_eq!(status, 200);
    let again = frames_until(&resumed, Duration::from_secs(30), |f| {
        has_event(f, "Allocation", "AllocationUpdated", |_| true)
    });
    assert_eq!(again[0]["Index"].as_u64(), Some(plan), "{again:#?}");
    assert!(
        events(&again).iter().all(|e| is_web(e)),
        "Allocation:web matches the job ID filter key"
    );

    // Node events never carry the node's secret.
    let (_, nodes) = subscribe(&agent.url("/v1/event/stream?topic=Node"), None);
    let reg = frames_until(&nodes, Duration::from_secs(30), |f| {
        has_event(f, "Node", "NodeRegistration", |_| true)
    });
    let e = events(&reg)[0];
    assert_eq!(e["Key"], node.id.as_str());
    assert_eq!(e["Payload"]["Node"]["SecretID"], "");
    assert_eq!(e["Namespace"], "");
}

#[test]
fn a_quiet_stream_gets_a_heartbeat_every_ten_seconds() {
    let agent = Agent::start(AgentOpts::server());
    let (status, rx) = subscribe(&agent.url("/v1/event/stream?topic=Node:none"), None);
    assert_eq!(status, 200);
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("first frame");
    assert!(is_heartbeat(&first));
    let start = Instant::now();
    let next = rx.recv_timeout(Duration::from_secs(15)).expect("heartbeat");
    assert!(is_heartbeat(&next), "{next}");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited <= Duration::from_secs(13),
        "heartbeat after {waited:?}"
    );
}

/// A job whose registration makes big events: the stalled subscriber's socket fills fast.
fn bulky_job(id: &str) -> Value {
    let mut job = service_job(id, 1);
    job["Meta"] = json!({ "blob": "x".repeat(40_000) });
    job
}

fn median_registration(http: &Http, agent: &Agent, prefix: &str, n: usize) -> Duration {
    let mut times: Vec<Duration> = (0..n)
        .map(|i| {
            let start = Instant::now();
            register(http, agent, &bulky_job(&format!("{prefix}-{i}")));
            start.elapsed()
        })
        .collect();
    times.sort();
    times[n / 2]
}

#[test]
fn a_stalled_subscriber_does_not_slow_registration_and_is_dropped() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let without = median_registration(&http, &agent, "before", 30);

    // Connect, ask for everything, and read nothing.
    let addr = agent
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stalled = std::net::TcpStream::connect(&addr).expect("connect");
    write!(
        stalled,
        "GET /v1/event/stream HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let with = median_registration(&http, &agent, "during", 300);
    eprintln!("registration p50: {without:?} without a stalled subscriber, {with:?} with one");
    assert!(
        with <= without * 3 + Duration::from_millis(20),
        "registration p50 {with:?} with a stalled subscriber, {without:?} without"
    );

    // A subscriber that reads is served meanwhile.
    let (status, rx) = subscribe(&agent.url("/v1/event/stream?topic=Job:probe"), None);
    assert_eq!(status, 200);
    register(&http, &agent, &service_job("probe", 1));
    frames_until(&rx, Duration::from_secs(30), |f| {
        has_event(f, "Job", "JobRegistered", |_| true)
    });

    // The stalled one was dropped: what it finally reads ends with the error frame.
    stalled
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match stalled.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        assert!(Instant::now() < deadline, "the stalled stream never ended");
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..text.len().min(200)]
    );
    let tail = &text[text.len().saturating_sub(400)..];
    assert!(
        tail.contains("\"Error\":\"subscription closed by server"),
        "the stream ended without saying why: {tail}"
    );
    assert!(
        !text.contains("\"Key\":\"during-299\""),
        "a dropped subscriber was still sent the last registration"
    );
}

const ACL_HCL: &str = "acl {\n  enabled = true\n}\n";

fn with_token(http: &Http, method: reqwest::Method, url: &str, token: &str, body: &Value) -> Resp {
    http.request_as(method, url, token, body)
}

#[test]
fn a_token_sees_only_the_namespaces_and_topics_it_may_read() {
    let mut opts = AgentOpts::server();
    opts.extra_hcl.push_str(ACL_HCL);
    let agent = Agent::start(opts);
    let http = Http::default();
    let r = http.post(&agent.url("/v1/acl/bootstrap"), &json!({}));
    assert_eq!(r.status, 200, "bootstrap: {}", r.body);
    let mgmt = r.json()["SecretID"].as_str().expect("SecretID").to_string();
    let post = |path: &str, body: Value| {
        let r = with_token(&http, reqwest::Method::POST, &agent.url(path), &mgmt, &body);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r
    };
    post("/v1/namespace/prod", json!({"Name": "prod"}));
    post(
        "/v1/acl/policy/default-reader",
        json!({"Name": "default-reader", "Rules": "namespace \"default\" {\n  policy = \"read\"\n}\n"}),
    );
    let created = post(
        "/v1/acl/token",
        json!({"Name": "reader", "Type": "client", "Policies": ["default-reader"]}),
    )
    .json();
    let token = created["SecretID"].as_str().expect("SecretID").to_string();
    let accessor = created["AccessorID"]
        .as_str()
        .expect("AccessorID")
        .to_string();

    for (query, why) in [
        ("topic=Job&namespace=prod", "no read-job in prod"),
        ("topic=Job&namespace=*", "prod is among every namespace"),
        ("", "every topic needs a management token"),
        ("topic=ACLToken", "ACL topics need a management token"),
        ("topic=Node", "no node:read"),
    ] {
        let (status, _) = subscribe(
            &agent.url(&format!("/v1/event/stream?{query}")),
            Some(&token),
        );
        assert_eq!(status, 403, "{why}");
    }
    let (status, _) = subscribe(&agent.url("/v1/event/stream?topic=Job"), None);
    assert_eq!(status, 403, "anonymous");

    let (status, rx) = subscribe(
        &agent.url("/v1/event/stream?topic=Job&topic=Evaluation"),
        Some(&token),
    );
    assert_eq!(status, 200);
    let mut prod = service_job("hidden", 1);
    prod["Namespace"] = json!("prod");
    for job in [prod, service_job("visible", 1)] {
        let r = with_token(
            &http,
            reqwest::Method::PUT,
            &agent.url("/v1/jobs"),
            &mgmt,
            &json!({"Job": job}),
        );
        assert_eq!(r.status, 200, "register: {}", r.body);
    }
    let frames = frames_until(&rx, Duration::from_secs(30), |f| {
        has_event(f, "Job", "JobRegistered", |e| e["Key"] == "visible")
    });
    for e in events(&frames) {
        assert_eq!(
            e["Namespace"], "default",
            "a prod event reached the reader: {e}"
        );
    }

    // Deleting the reader's token ends its stream, with the reason.
    let r = with_token(
        &http,
        reqwest::Method::DELETE,
        &agent.url(&format!("/v1/acl/token/{accessor}")),
        &mgmt,
        &json!({}),
    );
    assert_eq!(r.status, 200, "delete token: {}", r.body);
    let deadline = Instant::now() + Duration::from_secs(30);
    let closed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = rx
            .recv_timeout(left)
            .expect("the stream of a deleted token went on");
        if let Some(e) = f.get("Error") {
            break e.to_string();
        }
    };
    assert!(closed.contains("no longer allows it"), "{closed}");

    // A management token may read the ACL topic, and a token's secret never shows.
    let (status, acl_rx) = subscribe(&agent.url("/v1/event/stream?topic=ACLToken"), Some(&mgmt));
    assert_eq!(status, 200);
    let frames = frames_until(&acl_rx, Duration::from_secs(30), |f| {
        has_event(f, "ACLToken", "ACLTokenUpserted", |_| true)
    });
    let text = serde_json::to_string(&frames).expect("json");
    assert!(!text.contains(&token), "a token's secret was streamed");
    assert!(!text.contains(&mgmt), "a token's secret was streamed");
}

#[test]
fn a_client_only_agent_streams_the_servers_events() {
    let server = Agent::start(AgentOpts::server());
    let client = Agent::start(AgentOpts::client(vec![server.rpc_addr()], "c1"));
    let (status, rx) = subscribe(&client.url("/v1/event/stream?topic=Node"), None);
    assert_eq!(status, 200);
    let frames = frames_until(&rx, Duration::from_secs(60), |f| {
        has_event(f, "Node", "NodeRegistration", |e| {
            e["Payload"]["Node"]["Name"] == "c1"
        })
    });
    assert!(!frames.is_empty());
}
