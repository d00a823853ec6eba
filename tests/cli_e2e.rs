//! End-to-end tests of the user commands (`yurt job ...`, `yurt alloc ...`) run as a user
//! would: the real binary, pointed at a real agent through NOMAD_ADDR.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::json;

/// Exit code, stdout and stderr of `yurt <args>` against `addr`.
fn yurt(addr: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_yurt"))
        .args(args)
        .env("NOMAD_ADDR", addr)
        .env_remove("NOMAD_TOKEN")
        .env_remove("NOMAD_NAMESPACE")
        .env_remove("NOMAD_REGION")
        .output()
        .expect("run yurt");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(addr: &str, args: &[&str]) -> String {
    let (code, out, err) = yurt(addr, args);
    assert_eq!(
        code, 0,
        "yurt {args:?} failed:\nstdout: {out}\nstderr: {err}"
    );
    out
}

#[test]
fn job_and_alloc_commands_against_a_dev_agent() {
    let agent = Agent::start(AgentOpts::dev());
    let addr = agent.url("");
    let http = Http::default();
    let dir = TempDir::new("cli");

    // The trap comes first: once line3 is in the log, a SIGUSR1 is caught, not fatal.
    let script = "trap 'echo got USR1' USR1; \
                  echo pid=$$; echo s3cret > \"$NOMAD_SECRETS_DIR/token\"; \
                  echo line1; echo line2; echo line3; while true; do sleep 0.1; done";
    let job = shell_job("clijob", &[("trap", script)]);
    // A bare job file (no {"Job": ...} wrapper) is accepted too.
    let file = dir.path().join("job.json");
    std::fs::write(&file, serde_json::to_vec(&json!({"Job": job})).unwrap()).unwrap();
    let bare = dir.path().join("bare.json");
    std::fs::write(&bare, serde_json::to_vec(&job).unwrap()).unwrap();

    let out = ok(&addr, &["job", "run", file.to_str().unwrap()]);
    assert!(out.contains("Monitoring evaluation"), "{out}");
    assert!(out.contains("finished with status \"complete\""), "{out}");
    let out = ok(&addr, &["job", "run", "-detach", bare.to_str().unwrap()]);
    assert!(out.contains("Evaluation ID: "), "{out}");

    let alloc = wait_for(Duration::from_secs(30), "alloc running", || {
        let allocs = http.get(&agent.url("/v1/job/clijob/allocations")).json();
        allocs.as_array()?.iter().find_map(|a| {
            (a["TaskStates"]["trap"]["State"] == "running")
                .then(|| a["ID"].as_str().unwrap().to_string())
        })
    });
    let short = &alloc[..8];

    let out = ok(&addr, &["job", "status"]);
    assert!(
        out.contains("clijob") && out.contains("Submit Date"),
        "{out}"
    );
    let out = ok(&addr, &["job", "status", "clij"]);
    assert!(out.contains("Allocations") && out.contains(short), "{out}");

    let out = ok(&addr, &["alloc", "status", short]);
    assert!(
        out.contains(&format!("ID                  = {short}")),
        "{out}"
    );
    assert!(out.contains("Client Status       = running"), "{out}");
    assert!(out.contains("Task \"trap\" is \"running\""), "{out}");
    assert!(
        out.contains("Started") && out.contains("Task started by client"),
        "{out}"
    );

    // Prefix errors.
    let (code, _, err) = yurt(&addr, &["alloc", "status", "f"]);
    assert_eq!(code, 1);
    assert!(err.contains("at least two characters"), "{err}");
    let unknown = if short.starts_with("ff") { "00" } else { "ff" };
    let (code, _, err) = yurt(&addr, &["alloc", "status", &format!("{unknown}ffffff")]);
    assert_eq!(code, 1);
    assert!(err.contains("No allocation(s) with prefix or id"), "{err}");

    // Signal, then the task's log shows it.
    wait_for(Duration::from_secs(30), "the task's trap installed", || {
        ok(&addr, &["alloc", "logs", short, "trap"])
            .contains("line3")
            .then_some(())
    });
    ok(&addr, &["alloc", "signal", "-s", "SIGUSR1", short, "trap"]);
    wait_for(Duration::from_secs(10), "trap output", || {
        ok(&addr, &["alloc", "logs", short, "trap"])
            .contains("got USR1")
            .then_some(())
    });
    // Only task: the task argument may be left out.
    let out = ok(&addr, &["alloc", "logs", "-tail", "-n", "2", short]);
    assert_eq!(out, "line3\ngot USR1\n");
    let out = ok(&addr, &["alloc", "logs", "-c", "9", short]);
    assert_eq!(out, "got USR1\n");
    ok(&addr, &["alloc", "logs", "-stderr", short, "trap"]);
    let (code, _, err) = yurt(&addr, &["alloc", "logs", short, "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("Could not find task named: nope"), "{err}");

    // Files.
    let out = ok(&addr, &["alloc", "fs", short, "alloc/logs"]);
    assert!(
        out.contains("trap.stdout.0") && out.contains("Mode"),
        "{out}"
    );
    let out = ok(&addr, &["alloc", "fs", short, "alloc/logs/trap.stdout.0"]);
    assert!(out.starts_with("pid="), "{out}");
    let (code, _, err) = yurt(&addr, &["alloc", "fs", short, "trap/secrets/token"]);
    assert_eq!(code, 1);
    assert!(err.contains("Reading secret file prohibited"), "{err}");

    // Restart gives a new process.
    ok(&addr, &["alloc", "restart", short, "trap"]);
    wait_for(Duration::from_secs(15), "second pid", || {
        (ok(&addr, &["alloc", "logs", short]).matches("pid=").count() == 2).then_some(())
    });

    // Stop: the allocation gets a replacement.
    let out = ok(&addr, &["alloc", "stop", short]);
    assert!(out.contains("Monitoring evaluation"), "{out}");
    wait_for(Duration::from_secs(20), "replacement", || {
        let a = http
            .get(&agent.url(&format!("/v1/allocation/{alloc}")))
            .json();
        a["NextAllocation"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(|_| ())
    });
    let out = ok(&addr, &["alloc", "status", short]);
    assert!(out.contains("Replacement Alloc ID"), "{out}");

    let out = ok(&addr, &["job", "stop", "-purge", "clijob"]);
    assert!(out.contains("Monitoring evaluation"), "{out}");
    let r = http.get(&agent.url("/v1/job/clijob"));
    assert_eq!(r.status, 404);
}

#[test]
fn unreachable_agent_is_an_error() {
    let port = free_port();
    let (code, _, err) = yurt(&format!("http://127.0.0.1:{port}"), &["job", "status"]);
    assert_eq!(code, 1);
    assert!(err.contains("Error querying"), "{err}");
}

/// `yurt … | head`: when the reader closes the pipe, a command ends by SIGPIPE as other Unix
/// tools do, not with a panic and a backtrace on the user's terminal.
#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    // A pipe whose read end is closed before the command starts: its first write fails.
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    let out = Command::new(env!("CARGO_BIN_EXE_yurt"))
        .args(["completion", "bash"])
        .stdout(std::process::Stdio::from(write))
        .output()
        .expect("run yurt");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(nix::libc::SIGPIPE),
        "{:?} {stderr}",
        out.status
    );
}
