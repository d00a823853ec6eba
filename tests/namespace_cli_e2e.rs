//! `yurt namespace apply|list|status|delete` run as a user would: the real binary against a
//! real server agent, through NOMAD_ADDR or the `-address` flag.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use serde_json::{Value, json};

/// Exit code, stdout and stderr of `yurt <args>` with `NOMAD_ADDR=addr` and `stdin`.
fn yurt_in(addr: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_yurt"))
        .args(args)
        .env("NOMAD_ADDR", addr)
        .env_remove("NOMAD_TOKEN")
        .env_remove("NOMAD_NAMESPACE")
        .env_remove("NOMAD_REGION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run yurt");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait yurt");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn yurt(addr: &str, args: &[&str]) -> (i32, String, String) {
    yurt_in(addr, args, "")
}

fn ok(addr: &str, args: &[&str]) -> String {
    let (code, out, err) = yurt(addr, args);
    assert_eq!(code, 0, "yurt {args:?}:\nstdout: {out}\nstderr: {err}");
    out
}

fn fails(addr: &str, args: &[&str]) -> String {
    let (code, out, err) = yurt(addr, args);
    assert_eq!(
        code, 1,
        "yurt {args:?} should fail:\nstdout: {out}\nstderr: {err}"
    );
    err
}

#[test]
fn namespace_commands_against_a_server() {
    let agent = Agent::start(AgentOpts::server());
    let addr = agent.url("");
    let http = Http::default();
    let dir = TempDir::new("ns-cli");

    // By name, with flags.
    let out = ok(
        &addr,
        &["namespace", "apply", "-description", "First team", "team-a"],
    );
    assert_eq!(out, "Successfully applied namespace \"team-a\"!\n");
    let ns = http.get(&agent.url("/v1/namespace/team-a")).json();
    assert_eq!(ns["Description"], "First team");
    // Applying by name again keeps what it does not change.
    let out = ok(&addr, &["namespace", "apply", "-quota=", "team-a"]);
    assert!(out.contains("team-a"), "{out}");
    let ns = http.get(&agent.url("/v1/namespace/team-a")).json();
    assert_eq!(ns["Description"], "First team");

    // From an HCL file, and from JSON on stdin.
    let hcl = dir.path().join("team-b.hcl");
    std::fs::write(
        &hcl,
        r#"
name        = "team-b"
description = "Second team"
capabilities {
  disabled_task_drivers = ["raw_exec"]
}
meta {
  owner = "ops"
}
"#,
    )
    .expect("write spec");
    let out = ok(&addr, &["namespace", "apply", hcl.to_str().expect("path")]);
    assert_eq!(out, "Successfully applied namespace \"team-b\"!\n");
    let spec = json!({"Name": "team-c", "Description": "Third", "Meta": null});
    let (code, out, err) = yurt_in(
        &addr,
        &["namespace", "apply", "-json", "-"],
        &spec.to_string(),
    );
    assert_eq!(code, 0, "{out}{err}");

    // list, also as JSON and through -address instead of NOMAD_ADDR.
    let out = ok(&addr, &["namespace", "list"]);
    assert_eq!(
        out,
        "Name     Description\n\
         default  Default shared namespace\n\
         team-a   First team\n\
         team-b   Second team\n\
         team-c   Third\n"
    );
    let (code, out, err) = Command::new(env!("CARGO_BIN_EXE_yurt"))
        .args(["namespace", "list", "-json", "-address", &addr])
        .env("NOMAD_ADDR", "http://127.0.0.1:1")
        .output()
        .map(|o| {
            (
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .expect("run yurt");
    assert_eq!(code, 0, "{out}{err}");
    let listed: Value = serde_json::from_str(&out).expect("JSON list");
    assert_eq!(listed.as_array().map(Vec::len), Some(4));
    assert!(
        out.contains("\n    {"),
        "indented like Nomad's -json: {out}"
    );

    // status, by exact name or unique prefix.
    let out = ok(&addr, &["namespace", "status", "team-b"]);
    assert!(out.contains("Name                   = team-b\n"), "{out}");
    assert!(out.contains("Disabled Drivers       = raw_exec\n"), "{out}");
    assert!(out.contains("Enabled Drivers        = *\n"), "{out}");
    assert!(out.contains("\nMetadata\nowner = ops\n"), "{out}");
    let out = ok(&addr, &["namespace", "status", "def"]);
    assert!(out.contains("= Default shared namespace"), "{out}");
    let out = ok(&addr, &["namespace", "status", "-json", "team-a"]);
    let ns: Value = serde_json::from_str(&out).expect("JSON status");
    assert_eq!(ns["Name"], "team-a");
    let err = fails(&addr, &["namespace", "status", "team"]);
    assert!(
        err.starts_with("Prefix matched multiple namespaces"),
        "{err}"
    );
    assert!(err.contains("team-c"), "{err}");
    let err = fails(&addr, &["namespace", "status", "nope"]);
    assert_eq!(
        err,
        "Error retrieving namespaces: Namespace \"nope\" matched no namespaces\n"
    );

    // The server's refusals come through with Nomad's messages.
    let err = fails(&addr, &["namespace", "apply", "bad_name"]);
    assert!(err.starts_with("Error applying namespace: "), "{err}");
    assert!(err.contains("invalid name \"bad_name\""), "{err}");
    let err = fails(&addr, &["namespace", "delete", "default"]);
    assert!(err.contains("can not delete default namespace"), "{err}");
    let mut job = service_job("busy", 1);
    job["Namespace"] = json!("team-a");
    let r = http.put(&agent.url("/v1/jobs"), &json!({"Job": job}));
    assert_eq!(r.status, 200, "{}", r.body);
    let err = fails(&addr, &["namespace", "delete", "team-a"]);
    assert!(err.contains("has non-terminal jobs"), "{err}");

    // delete.
    let out = ok(&addr, &["namespace", "delete", "team-c"]);
    assert_eq!(out, "Successfully deleted namespace \"team-c\"!\n");
    assert_eq!(http.get(&agent.url("/v1/namespace/team-c")).status, 404);
}
