//! Hostile clients against a real agent: an oversized body is refused from its declared
//! length, half-sent request heads neither block other clients nor stay open, and the alloc
//! fs endpoints refuse every way out of the alloc dir (`..`, absolute paths, symlinks).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Sends `head` (and nothing more) on a fresh connection.
fn send_head(agent: &Agent, head: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", agent.http_port)).expect("connect");
    s.write_all(head.as_bytes()).expect("send head");
    s
}

/// Reads until the server closes the connection or `limit` passes; `None` if it stayed open.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        match s.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // A reset is a close too.
            Err(_) => return Some(got),
        }
    }
}

/// Reads one response head (up to the blank line).
fn read_head(s: &mut TcpStream, limit: Duration) -> String {
    s.set_read_timeout(Some(limit)).expect("read timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no response head (read so far {got:?}): {e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn oversized_bodies_are_refused_from_their_declared_length() {
    let agent = Agent::start(AgentOpts::server());
    // 10 GiB declared, 16 bytes sent: an answer at all proves the body was not read whole.
    for (method, path) in [
        ("PUT", "/v1/jobs"),
        ("POST", "/v1/jobs/parse"),
        ("PUT", "/v1/var/a"),
        ("POST", "/v1/search"),
    ] {
        let mut s = send_head(
            &agent,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: 10737418240\r\n\r\n{{\"Job\":{{\"ID\":1"
            ),
        );
        let head = read_head(&mut s, Duration::from_secs(30));
        assert!(
            head.starts_with("HTTP/1.1 413"),
            "{method} {path}: {head:?}"
        );
    }
    // The agent still serves.
    let r = Http::default().get(&agent.url("/v1/agent/self"));
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn slow_loris_connections_do_not_block_others_and_are_closed() {
    let agent = Agent::start(AgentOpts::server());
    // Half a request head each, then silence.
    let mut stalled: Vec<TcpStream> = (0..32)
        .map(|i| {
            send_head(
                &agent,
                &format!("GET /v1/agent/self HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: "),
            )
        })
        .collect();
    // A client on another connection is served meanwhile, more than once.
    let http = Http::default();
    for _ in 0..3 {
        let r = http.get(&agent.url("/v1/status/leader"));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // The server gives up on each stalled head (after yurt::http::serve::HEADER_READ_TIMEOUT);
    // the bound here is only how long the test is willing to wait for that.
    let limit = yurt::http::serve::HEADER_READ_TIMEOUT * 6;
    for (i, s) in stalled.iter_mut().enumerate() {
        let got = read_until_closed(s, limit)
            .unwrap_or_else(|| panic!("stalled connection {i} still open after {limit:?}"));
        // Whatever hyper says before closing, it must not be a served request.
        let text = String::from_utf8_lossy(&got);
        assert!(!text.starts_with("HTTP/1.1 200"), "{text}");
    }
    let r = http.get(&agent.url("/v1/status/leader"));
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn fs_endpoints_refuse_every_way_out_of_the_alloc_dir() {
    let mut dirs = DirGuard::default();
    let agent = dirs.start(AgentOpts::dev());
    let http = Http::default();
    let job = shell_job(
        "hostile-fs",
        &[(
            "t",
            "echo inside > \"$NOMAD_ALLOC_DIR/data/inside\"; sleep 600",
        )],
    );
    let alloc = run_job_and_wait(&http, &agent.url(""), &job);
    let _procs = ProcGuard(vec![alloc.clone()]);
    let root = alloc_dir(&agent, &alloc);
    let data = root.join("alloc").join("data");
    wait_for(Duration::from_secs(30), "the task's file", || {
        data.join("inside").exists().then_some(())
    });
    // What a task could plant: links to the host's root, to a host file, and one that stays
    // inside (allowed).
    let outside = agent.data_dir.path().join("outside.txt");
    std::fs::write(&outside, "host secret").expect("write outside file");
    std::os::unix::fs::symlink("/", data.join("root")).expect("symlink /");
    std::os::unix::fs::symlink(&outside, data.join("host-file")).expect("symlink file");
    std::os::unix::fs::symlink("../../alloc/data/inside", data.join("inner"))
        .expect("symlink inside");
    std::os::unix::fs::symlink("../../..", data.join("up")).expect("symlink up");

    let fs = |op: &str, q: &str| http.get(&agent.url(&format!("/v1/client/fs/{op}/{alloc}?{q}")));
    let escapes = [
        "path=..",
        "path=../../../../etc/passwd",
        "path=alloc/../../outside.txt",
        "path=%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "path=/..//../etc/passwd",
        "path=alloc/data/./../../../../etc",
        "path=alloc/data/root/etc/passwd",
        "path=alloc/data/root",
        "path=alloc/data/host-file",
        "path=alloc/data/up",
        "path=alloc/data/up/outside.txt",
    ];
    for q in escapes {
        // A path that leaves the alloc dir is bad input: 400 for every operation (Nomad
        // passes the client's error through as a 500 for ls and stat; yurt does not).
        for (op, status) in [("cat", 400), ("ls", 400), ("stat", 400)] {
            let r = fs(op, q);
            assert_eq!(
                (r.status, r.body.as_str()),
                (status, "Path escapes the alloc directory"),
                "{op} {q}"
            );
        }
        let r = fs("readat", &format!("{q}&offset=0&limit=64"));
        assert_eq!(r.status, 400, "readat {q}: {}", r.body);
        assert!(
            !r.body.contains("host secret") && !r.body.contains("root:"),
            "{}",
            r.body
        );
        let r = fs("stream", &format!("{q}&follow=false"));
        assert_eq!(r.status, 400, "stream {q}: {}", r.body);
    }
    // An absolute path names a file inside the alloc dir, never the host's.
    let r = fs("cat", "path=/etc/passwd");
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "stat /etc/passwd: no such file or directory")
    );
    let r = fs("cat", "path=/alloc/data/inside");
    assert_eq!((r.status, r.body.as_str()), (200, "inside\n"));
    // A link that stays inside is followed.
    let r = fs("cat", "path=alloc/data/inner");
    assert_eq!((r.status, r.body.as_str()), (200, "inside\n"));
    let r = http.delete(&agent.url("/v1/job/hostile-fs?purge=true"));
    assert_eq!(r.status, 200, "{}", r.body);
}
