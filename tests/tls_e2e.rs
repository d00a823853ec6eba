//! TLS end to end with real `yurt` processes and a CA generated at test time: HTTPS and the
//! CLI (`NOMAD_CACERT`, the TLS flags, exec over wss), a CLI that refuses a certificate from
//! another CA, `verify_https_client`, a client agent on TLS RPC with `verify_server_hostname`
//! (and exec/logs forwarded between agents over TLS), and start-up errors for bad files.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::pki::{CertFiles, TestCa};
use common::*;
use serde_json::json;
use yurt::tls::{ClientTls, ServerCheck, client_config, load_identity, load_roots};

/// A CA, a stranger CA, and certificates for a server, a client agent and the CLI user.
struct Pki {
    dir: TempDir,
    ca_file: PathBuf,
    other_ca_file: PathBuf,
    server: CertFiles,
    client: CertFiles,
    cli: CertFiles,
    other_ca: TestCa,
}

fn pki() -> Pki {
    let dir = TempDir::new("pki");
    let ca = TestCa::new("yurt test CA");
    let other_ca = TestCa::new("someone else's CA");
    let d = dir.path().to_path_buf();
    Pki {
        ca_file: ca.write_ca(&d, "ca"),
        other_ca_file: other_ca.write_ca(&d, "other-ca"),
        server: ca.issue(&d, "server", &["server.global.nomad", "localhost"]),
        client: ca.issue(&d, "client", &["client.global.nomad", "localhost"]),
        cli: ca.issue(&d, "cli", &["cli.global.nomad"]),
        other_ca,
        dir,
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A `tls { }` block with both listeners on, `cert` as the agent's certificate, plus `extra`.
fn tls_hcl(pki: &Pki, cert: &CertFiles, extra: &str) -> String {
    format!(
        "tls {{\n  http = true\n  rpc = true\n  ca_file = {:?}\n  cert_file = {:?}\n  key_file = {:?}\n{extra}}}\n",
        path(&pki.ca_file),
        path(&cert.cert),
        path(&cert.key)
    )
}

/// How the harness talks to such an agent: trusting the CA, showing the CLI user's cert.
fn probe(pki: &Pki) -> TlsProbe {
    let config = client_config(&ClientTls {
        roots: Some(load_roots("ca", &pki.ca_file).unwrap()),
        identity: Some(load_identity("cert", &pki.cli.cert, "key", &pki.cli.key).unwrap()),
        check: ServerCheck::Hostname,
    })
    .unwrap();
    TlsProbe {
        http: true,
        rpc: true,
        client: config,
    }
}

fn tls_agent(mut opts: AgentOpts, pki: &Pki, cert: &CertFiles, extra: &str) -> Agent {
    opts.extra_hcl = tls_hcl(pki, cert, extra);
    opts.tls = Some(probe(pki));
    Agent::start(opts)
}

/// Runs `yurt <args>` with exactly the `NOMAD_*` variables in `env`.
fn yurt(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_yurt"));
    cmd.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("NOMAD_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run yurt")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn succeeded(out: &Output, what: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: stdout {} stderr {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn failed(out: &Output, what: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what} should fail: stdout {} stderr {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

#[test]
fn https_end_to_end_through_the_cli_with_exec_over_wss() {
    let pki = pki();
    let agent = tls_agent(AgentOpts::dev(), &pki, &pki.server, "");
    let addr = agent.url("");
    assert!(addr.starts_with("https://127.0.0.1:"), "{addr}");
    let ca = path(&pki.ca_file);
    let env = [("NOMAD_ADDR", addr.as_str()), ("NOMAD_CACERT", ca)];

    let job = shell_job(
        "tlsjob",
        &[("t", "echo started; while true; do sleep 0.1; done")],
    );
    let file = pki.dir.path().join("job.json");
    std::fs::write(&file, serde_json::to_vec(&json!({ "Job": job })).unwrap()).unwrap();
    let out = succeeded(&yurt(&env, &["job", "run", path(&file)]), "job run");
    assert!(out.contains("finished with status \"complete\""), "{out}");

    let http = Http::with_tls(Some(&probe(&pki).client));
    let alloc = wait_for(Duration::from_secs(60), "alloc running", || {
        let allocs = http.get(&agent.url("/v1/job/tlsjob/allocations")).json();
        allocs.as_array()?.iter().find_map(|a| {
            (a["TaskStates"]["t"]["State"] == "running")
                .then(|| a["ID"].as_str().unwrap().to_string())
        })
    });
    let out = succeeded(&yurt(&env, &["job", "status", "tlsjob"]), "job status");
    assert!(
        out.contains(&alloc[..8]) && out.contains("running"),
        "{out}"
    );

    // exec over wss://, the remote exit code passed through.
    let out = yurt(
        &env,
        &[
            "alloc",
            "exec",
            "-i=false",
            &alloc[..8],
            "sh",
            "-c",
            "echo over-wss; exit 4",
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(text(&out.stdout), "over-wss\n");

    // The flags do what the variables do; a flag wins over its variable.
    let out = yurt(
        &[("NOMAD_CACERT", path(&pki.other_ca_file))],
        &["job", "status", "-address", &addr, "-ca-cert", ca],
    );
    assert!(succeeded(&out, "flags").contains("tlsjob"));
    let ca_dir = pki.dir.path().join("cas");
    std::fs::create_dir_all(&ca_dir).unwrap();
    std::fs::copy(&pki.ca_file, ca_dir.join("ca.pem")).unwrap();
    let out = yurt(
        &[
            ("NOMAD_ADDR", addr.as_str()),
            ("NOMAD_CAPATH", path(&ca_dir)),
        ],
        &["job", "status"],
    );
    assert!(succeeded(&out, "NOMAD_CAPATH").contains("tlsjob"));
    let out = yurt(
        &env,
        &["job", "status", "-tls-server-name=server.global.nomad"],
    );
    succeeded(&out, "-tls-server-name");

    // A CA that did not sign the agent's certificate: refused, and the reason shown.
    let other = [
        ("NOMAD_ADDR", addr.as_str()),
        ("NOMAD_CACERT", path(&pki.other_ca_file)),
    ];
    let err = failed(&yurt(&other, &["job", "status"]), "another CA");
    assert!(err.contains("UnknownIssuer"), "{err}");
    let err = failed(
        &yurt(&other, &["alloc", "exec", "-i=false", &alloc[..8], "true"]),
        "exec with another CA",
    );
    assert!(err.contains("UnknownIssuer"), "{err}");
    // Without a CA the system's roots do not know ours either.
    let err = failed(
        &yurt(&[("NOMAD_ADDR", addr.as_str())], &["job", "status"]),
        "system roots",
    );
    assert!(err.contains("UnknownIssuer"), "{err}");
    // A name the certificate does not carry.
    let err = failed(
        &yurt(
            &env,
            &["job", "status", "-tls-server-name", "server.eu.nomad"],
        ),
        "wrong server name",
    );
    assert!(err.contains("not valid for name"), "{err}");
    // Skipping verification is the user's explicit choice.
    let skip = [
        ("NOMAD_ADDR", addr.as_str()),
        ("NOMAD_CACERT", path(&pki.other_ca_file)),
        ("NOMAD_SKIP_VERIFY", "true"),
    ];
    succeeded(&yurt(&skip, &["job", "status"]), "NOMAD_SKIP_VERIFY");

    // Plain HTTP on the HTTPS port gets no API answer.
    let plain = addr.replace("https://", "http://");
    let out = yurt(&[("NOMAD_ADDR", plain.as_str())], &["job", "status"]);
    assert_ne!(out.status.code(), Some(0), "{out:?}");

    let me = http.get(&agent.url("/v1/agent/self")).json();
    assert_eq!(me["config"]["TLSConfig"]["EnableHTTP"], true, "{me}");
    assert_eq!(me["config"]["TLSConfig"]["KeyFile"], path(&pki.server.key));
    drop(pki.other_ca);
}

#[test]
fn verify_https_client_refuses_callers_without_a_certificate_from_the_ca() {
    let pki = pki();
    let agent = tls_agent(
        AgentOpts::server(),
        &pki,
        &pki.server,
        "  verify_https_client = true\n",
    );
    let addr = agent.url("");
    let ca = path(&pki.ca_file);
    let env = [("NOMAD_ADDR", addr.as_str()), ("NOMAD_CACERT", ca)];
    let err = failed(&yurt(&env, &["job", "status"]), "no client certificate");
    assert!(err.contains("Error querying"), "{err}");

    let stranger = pki
        .other_ca
        .issue(pki.dir.path(), "stranger", &["cli.global.nomad"]);
    let with_stranger = [
        ("NOMAD_ADDR", addr.as_str()),
        ("NOMAD_CACERT", ca),
        ("NOMAD_CLIENT_CERT", path(&stranger.cert)),
        ("NOMAD_CLIENT_KEY", path(&stranger.key)),
    ];
    failed(
        &yurt(&with_stranger, &["job", "status"]),
        "a stranger's certificate",
    );

    let with_cert = [
        ("NOMAD_ADDR", addr.as_str()),
        ("NOMAD_CACERT", ca),
        ("NOMAD_CLIENT_CERT", path(&pki.cli.cert)),
        ("NOMAD_CLIENT_KEY", path(&pki.cli.key)),
    ];
    let out = succeeded(&yurt(&with_cert, &["job", "status"]), "with a certificate");
    assert!(out.contains("No running jobs"), "{out}");
    let flags = [
        "job",
        "status",
        "-client-cert",
        path(&pki.cli.cert),
        "-client-key",
        path(&pki.cli.key),
    ];
    succeeded(&yurt(&env, &flags), "with -client-cert/-client-key");
}

#[test]
fn a_client_agent_uses_tls_rpc_and_agents_forward_over_tls() {
    let pki = pki();
    // Every hop checks both ends: agents show their certificates to each other's HTTPS too.
    let hostname = "  verify_server_hostname = true\n  verify_https_client = true\n";
    let server = tls_agent(AgentOpts::server(), &pki, &pki.server, hostname);
    let client = tls_agent(
        AgentOpts::client(vec![server.rpc_addr()], "tls-client"),
        &pki,
        &pki.client,
        hostname,
    );
    let http = Http::with_tls(Some(&probe(&pki).client));
    let node_id = wait_for(Duration::from_secs(60), "node ready over TLS RPC", || {
        let nodes = http.get(&server.url("/v1/nodes")).json();
        nodes.as_array()?.iter().find_map(|n| {
            (n["Name"] == "tls-client" && n["Status"] == "ready")
                .then(|| n["ID"].as_str().map(str::to_string))?
        })
    });
    let node = http.get(&server.url(&format!("/v1/node/{node_id}"))).json();
    assert_eq!(node["TLSEnabled"], true, "{node}");
    let job = shell_job(
        "tlsrpc",
        &[("t", "echo hello-logs; while true; do sleep 0.1; done")],
    );
    let alloc = run_job_and_wait(&http, &server.url(""), &job);

    // The server-only agent forwards exec (wss) and logs (https) to the client agent.
    let env = [
        ("NOMAD_ADDR", server.url("")),
        ("NOMAD_CACERT", path(&pki.ca_file).to_string()),
        ("NOMAD_CLIENT_CERT", path(&pki.cli.cert).to_string()),
        ("NOMAD_CLIENT_KEY", path(&pki.cli.key).to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = yurt(
        &env,
        &["alloc", "exec", "-i=false", &alloc, "echo", "forwarded"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(text(&out.stdout), "forwarded\n");
    let out = succeeded(&yurt(&env, &["alloc", "logs", &alloc, "t"]), "alloc logs");
    assert!(out.contains("hello-logs"), "{out}");
    // And the client-only agent proxies the public API to the server over TLS RPC.
    let jobs = http.get(&client.url("/v1/jobs"));
    assert_eq!(jobs.status, 200, "{}", jobs.body);
    assert!(jobs.body.contains("tlsrpc"), "{}", jobs.body);

    // The RPC port speaks only mutual TLS: plain HTTP and a caller without a certificate
    // get no answer.
    let node_register = "/v1/internal/node/register";
    let plain = http_builder(None).build().unwrap();
    assert!(
        plain
            .post(format!(
                "http://127.0.0.1:{}{node_register}",
                server.rpc_port
            ))
            .body("{}")
            .send()
            .is_err()
    );
    let no_cert = client_config(&ClientTls {
        roots: Some(load_roots("ca", &pki.ca_file).unwrap()),
        identity: None,
        check: ServerCheck::Hostname,
    })
    .unwrap();
    let anonymous = http_builder(Some(&no_cert)).build().unwrap();
    assert!(
        anonymous
            .post(server.rpc_url(node_register))
            .body("{}")
            .send()
            .is_err()
    );
}

#[test]
fn verify_server_hostname_refuses_a_server_without_the_server_name() {
    let pki = pki();
    // A client's certificate standing in for a server's: signed by the CA, wrong name.
    let server = tls_agent(AgentOpts::server(), &pki, &pki.client, "");
    let client = tls_agent(
        AgentOpts::client(vec![server.rpc_addr()], "careful-client"),
        &pki,
        &pki.client,
        "  verify_server_hostname = true\n",
    );
    wait_for(Duration::from_secs(30), "registration refused", || {
        client
            .log()
            .contains("not valid for name \"server.global.nomad\"")
            .then_some(())
    });
    let http = Http::with_tls(Some(&probe(&pki).client));
    let nodes = http.get(&server.url("/v1/nodes")).json();
    assert_eq!(nodes, json!([]), "no node may register");
}

#[test]
fn unusable_tls_files_stop_the_agent_naming_the_setting() {
    let pki = pki();
    let data = pki.dir.path().join("data");
    let missing = pki.dir.path().join("missing-key.pem");
    let config = pki.dir.path().join("agent.hcl");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nbind_addr = \"127.0.0.1\"\nports {{\n  http = {}\n  rpc = {}\n}}\n\
             server {{\n  enabled = true\n}}\ntls {{\n  http = true\n  ca_file = {:?}\n  \
             cert_file = {:?}\n  key_file = {:?}\n}}\n",
            path(&data),
            free_port(),
            free_port(),
            path(&pki.ca_file),
            path(&pki.server.cert),
            path(&missing)
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_yurt"))
        .args(["agent", "-config", path(&config)])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("tls.key_file: reading {}", missing.display())),
        "{err}"
    );
    // The key's contents never appear, even when the wrong file is named.
    let swapped = std::fs::read_to_string(&config)
        .unwrap()
        .replace(path(&missing), path(&pki.server.cert))
        .replace(
            &format!("cert_file = {:?}", path(&pki.server.cert)),
            &format!("cert_file = {:?}", path(&pki.server.key)),
        );
    std::fs::write(&config, swapped).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_yurt"))
        .args(["agent", "-config", path(&config)])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("tls.cert_file: "), "{err}");
    assert!(!err.contains("PRIVATE KEY"), "{err}");
}
