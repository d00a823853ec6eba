//! End-to-end tests of task artifacts: a real `yurt` dev agent fetches artifacts from a
//! loopback HTTP server started by the test before raw_exec tasks start.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const SEC: i64 = 1_000_000_000;

/// A tiny HTTP/1.0 file server on loopback: serves `files` by path (404 otherwise) and
/// counts the requests for each path.
struct FileServer {
    base: String,
    hits: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl FileServer {
    fn start(files: BTreeMap<String, Vec<u8>>) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let hits = Arc::new(Mutex::new(BTreeMap::new()));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().expect("clone stream"));
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                // Skip the headers up to the blank line.
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if line == "\r\n" || line == "\n" => break,
                        Ok(_) => {}
                    }
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .split('?')
                    .next()
                    .unwrap_or("/")
                    .to_string();
                *counter
                    .lock()
                    .expect("hits")
                    .entry(path.clone())
                    .or_default() += 1;
                let (status, body) = match files.get(&path) {
                    Some(b) => ("200 OK", b.clone()),
                    None => ("404 Not Found", b"not found".to_vec()),
                };
                let head = format!(
                    "HTTP/1.0 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            }
        });
        FileServer { base, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("hits")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A gzipped tar of `(name, contents)`; names are written raw into the header so an archive
/// with an escaping entry can be built too.
fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, *data).expect("tar entry");
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&b.into_inner().expect("tar")).expect("gzip");
    gz.finish().expect("gzip")
}

fn job(id: &str, script: &str, artifacts: Value, attempts: i64) -> Value {
    json!({
        "ID": id,
        "Name": id,
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "g",
            "Count": 1,
            "RestartPolicy": {"Attempts": attempts, "Interval": 600 * SEC, "Delay": SEC, "Mode": "fail"},
            "ReschedulePolicy": {"Attempts": 0, "Unlimited": false},
            "Tasks": [{
                "Name": "t",
                "Driver": "raw_exec",
                "Config": {"command": "/bin/sh", "args": ["-c", script]},
                "Artifacts": artifacts,
                "Resources": {"CPU": 100, "MemoryMB": 64},
                "KillTimeout": SEC,
            }],
        }],
    })
}

fn first_alloc(http: &Http, agent: &Agent, job: &str) -> Option<Value> {
    let allocs = http
        .get(&agent.url(&format!("/v1/job/{job}/allocations")))
        .json();
    let id = allocs.as_array()?.first()?["ID"].as_str()?.to_string();
    Some(http.get(&agent.url(&format!("/v1/allocation/{id}"))).json())
}

fn event_types(alloc: &Value) -> Vec<String> {
    alloc["TaskStates"]["t"]["Events"]
        .as_array()
        .map(|evs| {
            evs.iter()
                .filter_map(|e| e["Type"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn artifacts_with_good_and_bad_checksums_and_an_escaping_archive() {
    let hello = b"hello from the artifact server\n".to_vec();
    let good_tar = tar_gz(&[("pkg/data.txt", b"packed")]);
    let evil_tar = tar_gz(&[("../../escaped.txt", b"evil")]);
    let server = FileServer::start(BTreeMap::from([
        ("/hello.txt".to_string(), hello.clone()),
        ("/app.tar.gz".to_string(), good_tar.clone()),
        ("/evil.tar.gz".to_string(), evil_tar),
    ]));

    let mut dirs = DirGuard::default();
    let agent = dirs.start(AgentOpts::dev());
    let http = Http::default();
    let _guard = ProcGuard(vec!["NOMAD_JOB_ID=artgood".into()]);

    // Good checksums: the task starts and sees both the file and the unpacked archive.
    let script = "grep -q 'hello from' \"$NOMAD_TASK_DIR/hello.txt\" \
                  && grep -q packed \"$NOMAD_TASK_DIR/app/pkg/data.txt\" \
                  && exec sleep 1000; exit 3";
    let good = job(
        "artgood",
        script,
        json!([
            {"GetterSource": server.url("/hello.txt"),
             "GetterOptions": {"checksum": format!("sha256:{}", sha256_hex(&hello))},
             "RelativeDest": "local/"},
            {"GetterSource": server.url("/app.tar.gz"),
             "GetterOptions": {"checksum": format!("sha256:{}", sha256_hex(&good_tar))},
             "RelativeDest": "local/app"},
        ]),
        0,
    );
    let alloc_id = run_job_and_wait(&http, &agent.url(""), &good);
    let alloc = first_alloc(&http, &agent, "artgood").expect("good alloc");
    let types = event_types(&alloc);
    let dl = types.iter().position(|t| t == "Downloading Artifacts");
    let started = types.iter().position(|t| t == "Started");
    assert!(
        matches!((dl, started), (Some(d), Some(s)) if d < s),
        "events: {types:?}"
    );
    let task_local = alloc_dir(&agent, &alloc_id).join("t/local");
    assert_eq!(
        std::fs::read(task_local.join("hello.txt")).expect("hello"),
        hello
    );

    // A bad checksum: the task never starts; the restart policy (1 attempt) retries the
    // download once, then gives up.
    let bad = job(
        "artbad",
        "exec sleep 1000",
        json!([{"GetterSource": server.url("/hello.txt"),
                "GetterOptions": {"checksum": format!("sha256:{}", "0".repeat(64))}}]),
        1,
    );
    let r = http.put(&agent.url("/v1/jobs"), &json!({ "Job": bad }));
    assert_eq!(r.status, 200, "register: {}", r.body);
    let alloc = wait_for(Duration::from_secs(60), "bad-checksum task dead", || {
        first_alloc(&http, &agent, "artbad").filter(|a| a["TaskStates"]["t"]["State"] == "dead")
    });
    let types = event_types(&alloc);
    assert!(!types.iter().any(|t| t == "Started"), "events: {types:?}");
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "Failed Artifact Download")
            .count(),
        2,
        "events: {types:?}"
    );
    assert!(types.iter().any(|t| t == "Restarting"), "events: {types:?}");
    assert_eq!(types.last().map(String::as_str), Some("Not Restarting"));
    assert_eq!(alloc["TaskStates"]["t"]["Failed"], true);
    let failed = alloc["TaskStates"]["t"]["Events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["Type"] == "Failed Artifact Download"))
        .cloned()
        .expect("failure event");
    let msg = failed["Details"]["download_error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        msg.starts_with("failed to download artifact") && msg.contains("checksums did not match"),
        "{failed}"
    );
    assert_eq!(failed["DisplayMessage"].as_str(), Some(msg));
    // Nothing but the good job's first fetch and the bad job's two attempts hit the file.
    assert_eq!(server.hits("/hello.txt"), 3);

    // An archive with an entry that climbs out of the destination is refused.
    let evil = job(
        "artevil",
        "exec sleep 1000",
        json!([{"GetterSource": server.url("/evil.tar.gz")}]),
        0,
    );
    let r = http.put(&agent.url("/v1/jobs"), &json!({ "Job": evil }));
    assert_eq!(r.status, 200, "register: {}", r.body);
    let alloc = wait_for(
        Duration::from_secs(60),
        "escaping-archive task dead",
        || {
            first_alloc(&http, &agent, "artevil")
                .filter(|a| a["TaskStates"]["t"]["State"] == "dead")
        },
    );
    let types = event_types(&alloc);
    assert!(!types.iter().any(|t| t == "Started"), "events: {types:?}");
    let failed = alloc["TaskStates"]["t"]["Events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["Type"] == "Failed Artifact Download"))
        .cloned()
        .expect("failure event");
    assert!(
        failed["Details"]["download_error"]
            .as_str()
            .is_some_and(|m| m.contains("escapes")),
        "{failed}"
    );
    let evil_alloc = alloc["ID"].as_str().expect("alloc id");
    let adir = alloc_dir(&agent, evil_alloc);
    assert!(!adir.join("escaped.txt").exists());
    assert!(!adir.join("t/escaped.txt").exists());
}
