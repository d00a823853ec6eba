//! End-to-end `alloc exec`: a real dev agent runs a raw_exec task and tests talk to its exec
//! websocket as Nomad's CLI and UI would, and run `yurt alloc exec`.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use common::ws::*;
use common::{Agent, AgentOpts, Http};

/// A dev agent with one running raw_exec task (`sleep`); returns the agent and the alloc ID.
fn agent_with_task(job_id: &str) -> (Agent, String) {
    let agent = Agent::start(AgentOpts::dev());
    let http = Http::default();
    let mut job = common::service_job(job_id, 1);
    job["TaskGroups"][0]["Tasks"][0]["Config"] = json!({"command": "/bin/sleep", "args": ["1000"]});
    let r = http.put(&agent.url("/v1/jobs"), &json!({ "Job": job }));
    assert_eq!(r.status, 200, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(60);
    let alloc_id = loop {
        let allocs = http.get(&agent.url(&format!("/v1/job/{job_id}/allocations")));
        let running = allocs.json().as_array().and_then(|list| {
            list.iter().find_map(|a| {
                let up = a["TaskStates"]["server"]["State"] == "running";
                up.then(|| a["ID"].as_str().map(str::to_string))?
            })
        });
        if let Some(id) = running {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "task never ran; allocs: {}\nagent log:\n{}",
            allocs.body,
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    (agent, alloc_id)
}

#[test]
fn raw_exec_non_tty_stdin_and_errors() {
    let (agent, alloc) = agent_with_task("exec-basic");
    rt().block_on(async {
        // stdout, stderr and a non-zero exit; streams close before the exit frame.
        let url = exec_url(
            &agent.url(""),
            &alloc,
            "server",
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            "",
        );
        let mut ws = connect(&url).await;
        let o = collect(&mut ws).await;
        assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
        assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
        assert_eq!(o.exit_code(), Some(3), "{o:?}");
        assert_eq!(
            o.exit.as_ref().unwrap(),
            &json!({"exited": true, "result": {"exit_code": 3}})
        );
        let pos = |f: &Value| o.frames.iter().position(|x| x == f).unwrap();
        let exit_pos = o.frames.len() - 1;
        assert!(pos(&json!({"stdout": {"close": true}})) < exit_pos);
        assert!(pos(&json!({"stderr": {"close": true}})) < exit_pos);
        assert_eq!(o.close.as_ref().map(|c| c.0), Some(1000));

        // stdin through cat, with heartbeats and a (non-TTY, ignored) resize; exit 0 omits the code.
        let mut ws = connect(&exec_url(&agent.url(""), &alloc, "server", &["cat"], "")).await;
        send(&mut ws, json!({})).await;
        send(&mut ws, json!({"tty_size": {"height": 10, "width": 20}})).await;
        stdin(&mut ws, "hello exec\n").await;
        send(&mut ws, json!({"stdin": {"close": true}})).await;
        let o = collect(&mut ws).await;
        assert_eq!(String::from_utf8_lossy(&o.stdout), "hello exec\n");
        assert_eq!(
            o.exit.as_ref().unwrap(),
            &json!({"exited": true, "result": {}})
        );

        // The exec runs with the task's env and in its task dir.
        let mut ws = connect(&exec_url(
            &agent.url(""),
            &alloc,
            "server",
            &["sh", "-c", "echo $NOMAD_ALLOC_ID; pwd"],
            "",
        ))
        .await;
        let o = collect(&mut ws).await;
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(text.starts_with(&format!("{alloc}\n")), "{text}");
        assert!(text.trim_end().ends_with("/server"), "{text}");

        // ws_handshake: the token frame comes first.
        let mut ws = connect(&exec_url(
            &agent.url(""),
            &alloc,
            "server",
            &["echo", "hs"],
            "&ws_handshake=true",
        ))
        .await;
        send(&mut ws, json!({"version": 1, "auth_token": "anything"})).await;
        let o = collect(&mut ws).await;
        assert_eq!(String::from_utf8_lossy(&o.stdout), "hs\n");
        assert_eq!(o.exit_code(), Some(0));

        // A wrong handshake version is a policy close.
        let mut ws = connect(&exec_url(
            &agent.url(""),
            &alloc,
            "server",
            &["echo"],
            "&ws_handshake=true",
        ))
        .await;
        send(&mut ws, json!({"version": 2, "auth_token": ""})).await;
        let o = collect(&mut ws).await;
        assert_eq!(
            o.close,
            Some((1008, "unexpected handshake value: 2".into()))
        );

        // Unknown task: Nomad's 500 "task not found" → 1011.
        let mut ws = connect(&exec_url(&agent.url(""), &alloc, "nope", &["echo"], "")).await;
        let o = collect(&mut ws).await;
        assert_eq!(o.close, Some((1011, "task not found".into())));

        // Missing task and empty command: 400s → 1008.
        let mut ws = connect(&exec_url(&agent.url(""), &alloc, "", &["echo"], "")).await;
        assert_eq!(
            collect(&mut ws).await.close,
            Some((1008, "must provide task name".into()))
        );
        let mut ws = connect(&exec_url(&agent.url(""), &alloc, "server", &[], "")).await;
        assert_eq!(
            collect(&mut ws).await.close,
            Some((1008, "command is not present".into()))
        );

        // A frame that is not JSON ends the session with 1011.
        let mut ws = connect(&exec_url(&agent.url(""), &alloc, "server", &["cat"], "")).await;
        ws.send(Message::Text("nope".into())).await.unwrap();
        let o = collect(&mut ws).await;
        assert_eq!(o.close.as_ref().map(|c| c.0), Some(1011), "{o:?}");

        // A command that cannot be started is the driver's 500.
        let mut ws = connect(&exec_url(
            &agent.url(""),
            &alloc,
            "server",
            &["/no/such/binary"],
            "",
        ))
        .await;
        let o = collect(&mut ws).await;
        assert_eq!(o.close.as_ref().map(|c| c.0), Some(1011), "{o:?}");
    });

    // Before the upgrade: unknown alloc → 404, malformed command JSON → 500.
    let http = Http::default();
    let missing = uuid::Uuid::new_v4().to_string();
    let r = http.get(&agent.url(&format!(
        "/v1/client/allocation/{missing}/exec?task=server&command=%5B%22echo%22%5D"
    )));
    assert_eq!(r.status, 404);
    assert_eq!(r.body, format!("Unknown allocation \"{missing}\""));
    let r = http.get(&agent.url(&format!(
        "/v1/client/allocation/{alloc}/exec?task=server&command=%5Becho"
    )));
    assert_eq!(r.status, 500);
    assert!(
        r.body.starts_with("failed to marshal command into json: "),
        "{}",
        r.body
    );
    let r = http.get(&agent.url(&format!("/v1/client/allocation/{alloc}/exec?task=server")));
    assert_eq!(r.status, 500);
    assert_eq!(
        r.body,
        "failed to marshal command into json: unexpected end of JSON input"
    );
    let r = http.get(&agent.url(&format!(
        "/v1/client/allocation/{alloc}/exec?task=server&command=%5B%22sh%22%5D&tty=maybe"
    )));
    assert_eq!(r.status, 500);
    assert!(
        r.body.starts_with("tty value is not a boolean"),
        "{}",
        r.body
    );
}

#[test]
fn raw_exec_tty_interactive_shell() {
    let (agent, alloc) = agent_with_task("exec-tty");
    rt().block_on(async {
        let url = exec_url(&agent.url(""), &alloc, "server", &["/bin/sh"], "&tty=true");
        let mut ws = connect(&url).await;
        let mut acc = Vec::new();
        stdin(&mut ws, "echo $((6*7))\n").await;
        read_until(&mut ws, &mut acc, "42").await;
        send(&mut ws, json!({"tty_size": {"height": 33, "width": 111}})).await;
        stdin(&mut ws, "stty size\n").await;
        read_until(&mut ws, &mut acc, "33 111").await;
        // A TTY is a TTY.
        stdin(&mut ws, "test -t 0 && echo is-a-tty\n").await;
        read_until(&mut ws, &mut acc, "is-a-tty\r\n").await;
        stdin(&mut ws, "exit 7\n").await;
        let o = collect(&mut ws).await;
        assert_eq!(o.exit_code(), Some(7), "{o:?}");
        assert!(o.stderr.is_empty(), "stderr is merged into stdout on a TTY");
    });
}

#[test]
fn exec_through_the_server_reaches_a_remote_client() {
    let server = Agent::start(AgentOpts::server());
    let client = Agent::start(AgentOpts::client(vec![server.rpc_addr()], "c1"));
    let http = Http::default();
    let mut job = common::service_job("exec-remote", 1);
    job["TaskGroups"][0]["Tasks"][0]["Config"] = json!({"command": "/bin/sleep", "args": ["1000"]});
    let r = http.put(&server.url("/v1/jobs"), &json!({ "Job": job }));
    assert_eq!(r.status, 200, "{}", r.body);
    let alloc = common::wait_for(Duration::from_secs(60), "remote task running", || {
        let allocs = http
            .get(&server.url("/v1/job/exec-remote/allocations"))
            .json();
        allocs.as_array()?.iter().find_map(|a| {
            let up = a["TaskStates"]["server"]["State"] == "running";
            up.then(|| a["ID"].as_str().map(str::to_string))?
        })
    });
    rt().block_on(async {
        // Asked of the server agent, answered by the client agent that runs the task.
        let url = exec_url(
            &server.url(""),
            &alloc,
            "server",
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            "",
        );
        let mut ws = connect(&url).await;
        let o = collect(&mut ws).await;
        assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
        assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
        assert_eq!(o.exit_code(), Some(3), "{o:?}");
        // An unknown allocation is still Nomad's 404 through the server.
        let bad = exec_url(
            &server.url(""),
            "00000000-0000-0000-0000-000000000000",
            "server",
            &["true"],
            "",
        );
        let err = tokio_tungstenite::connect_async(bad.as_str()).await.err();
        match err {
            Some(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 404)
            }
            other => panic!("expected a 404, got {other:?}"),
        }
    });
    drop(client);
}

#[test]
fn cli_alloc_exec_passes_exit_code_and_output() {
    let (agent, alloc) = agent_with_task("exec-cli");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_yurt"))
            .args(args)
            .env("NOMAD_ADDR", agent.url(""))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&[
        "alloc",
        "exec",
        &alloc[..8],
        "sh",
        "-c",
        "echo via-cli; echo e >&2; exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via-cli\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "e\n");

    // Nomad's flag spellings, stdin from a pipe.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_yurt"))
        .args(["alloc", "exec", "-i", "-task", "server", &alloc, "cat"])
        .env("NOMAD_ADDR", agent.url(""))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut si = child.stdin.take().unwrap();
        si.write_all(b"piped through\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped through\n");

    // Unknown prefix and unknown task.
    let out = run(&["alloc", "exec", "ffffffff", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No allocation(s) with prefix or id"),
        "{out:?}"
    );
    let out = run(&["alloc", "exec", "-task", "nope", &alloc, "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("task not found"),
        "{out:?}"
    );
}

/// `yurt alloc exec -i -t` on a real terminal: the local terminal goes raw (Ctrl-C reaches
/// the remote command instead of killing the CLI), its size is sent at start and again on
/// SIGWINCH, and the remote exit code comes back.
#[test]
fn cli_alloc_exec_tty_raw_mode_and_resize() {
    use nix::pty::{Winsize, openpty};
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    let (agent, alloc) = agent_with_task("exec-cli-tty");
    let size = |rows, cols| Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&size(20, 60)), None).expect("openpty");
    let slave = std::fs::File::from(pty.slave);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_yurt"));
    cmd.args([
        "alloc", "exec", "-i", "-t", "-task", "server", &alloc, "/bin/sh",
    ])
    .env("NOMAD_ADDR", agent.url(""))
    .stdin(slave.try_clone().unwrap())
    .stdout(slave.try_clone().unwrap())
    .stderr(slave.try_clone().unwrap());
    // SAFETY: setsid and ioctl are async-signal-safe; the slave becomes the controlling
    // terminal so the kernel sends SIGWINCH to the CLI when the size changes.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn yurt alloc exec");
    drop(slave);
    let master = std::fs::File::from(pty.master);
    let mut writer = master.try_clone().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let mut reader = master;
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut expect = |needle: &str| {
        let deadline = Instant::now() + STEP;
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(chunk) => seen.extend(chunk),
                Err(_) => panic!(
                    "no {needle:?} on the terminal; saw {:?}",
                    String::from_utf8_lossy(&seen)
                ),
            }
        }
        seen.clear();
    };
    writer.write_all(b"stty size\n").unwrap();
    expect("20 60");
    // Ctrl-C interrupts the remote sleep; the CLI (raw local terminal) keeps running.
    writer.write_all(b"sleep 100\n").unwrap();
    // Ctrl-C goes once the remote sleep runs (waited for: after a fixed pause, a slow
    // machine could deliver it while the shell is still starting the command).
    let deadline = Instant::now() + STEP;
    let remote_sleep = || {
        common::pids_matching(&format!("NOMAD_ALLOC_ID={alloc}"))
            .into_iter()
            .any(|p| common::cmdline(p) == ["sleep", "100"])
    };
    while !remote_sleep() {
        assert!(Instant::now() < deadline, "the remote sleep never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.write_all(&[3]).unwrap();
    writer.write_all(b"echo alive-$((40+2))\n").unwrap();
    expect("alive-42");
    // SAFETY: TIOCSWINSZ on the master we own, with a valid winsize.
    let r = unsafe { libc::ioctl(writer.as_raw_fd(), libc::TIOCSWINSZ, &size(33, 111)) };
    assert_eq!(r, 0, "TIOCSWINSZ");
    let deadline = Instant::now() + STEP;
    loop {
        writer.write_all(b"stty size\n").unwrap();
        let chunk = rx
            .recv_timeout(Duration::from_millis(500))
            .unwrap_or_default();
        seen.extend(chunk);
        if String::from_utf8_lossy(&seen).contains("33 111") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "resize never reached the remote terminal: {:?}",
            String::from_utf8_lossy(&seen)
        );
    }
    writer.write_all(b"exit 6\n").unwrap();
    let deadline = Instant::now() + STEP;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("yurt alloc exec did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(6));
}

/// `cargo test --test exec_ws_e2e -- --ignored --nocapture exec_benchmark`
#[test]
#[ignore]
fn exec_benchmark() {
    let (agent, alloc) = agent_with_task("exec-bench");
    rt().block_on(async {
        let url = exec_url(&agent.url(""), &alloc, "server", &["echo", "hi"], "");
        let mut samples = Vec::new();
        for _ in 0..55 {
            let t0 = Instant::now();
            let mut ws = connect(&url).await;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) if t.contains("\"stdout\":{\"data\"") => break,
                    Some(Ok(_)) => {}
                    other => panic!("no output: {other:?}"),
                }
            }
            samples.push(t0.elapsed());
            let _ = collect(&mut ws).await;
        }
        samples.drain(..5); // warm-up
        samples.sort();
        let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "exec open → first stdout byte over {} sessions: p50 {:?}, p99 {:?}, min {:?}, max {:?}",
            samples.len(),
            pct(0.5),
            pct(0.99),
            samples[0],
            samples[samples.len() - 1]
        );

        let url = exec_url(&agent.url(""), &alloc, "server", &["head", "-c", "100M", "/dev/zero"], "");
        let t0 = Instant::now();
        let mut ws = connect(&url).await;
        let mut bytes = 0usize;
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                if let Some(d) = v["stdout"]["data"].as_str() {
                    bytes += STANDARD.decode(d).unwrap().len();
                }
                if v["exited"] == true {
                    break;
                }
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        assert_eq!(bytes, 100 * 1024 * 1024);
        println!(
            "exec bulk stdout: {} MiB in {:.2}s = {:.0} MiB/s",
            bytes >> 20,
            secs,
            (bytes >> 20) as f64 / secs
        );
    });
}
