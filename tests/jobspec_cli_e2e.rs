//! `yurt job run` with HCL2 job files: `-var`, `-var-file` and `NOMAD_VAR_<name>` values, the
//! job read back from the agent, and parse errors on stderr with a non-zero exit.

mod common;

use std::process::Command;

use common::*;

fn yurt(addr: &str, args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_yurt"))
        .args(args)
        .env("NOMAD_ADDR", addr)
        .env_remove("NOMAD_TOKEN")
        .env_remove("NOMAD_NAMESPACE")
        .env_remove("NOMAD_REGION")
        .envs(envs.iter().copied())
        .output()
        .expect("run yurt");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn job_run_reads_hcl_files_with_variables_from_every_source() {
    let agent = Agent::start(AgentOpts::server());
    let addr = agent.url("");
    let http = Http::default();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jobspec");
    let job_file = fixtures.join("variables.nomad.hcl");
    let var_file = fixtures.join("variables.vars.hcl");

    let (code, out, err) = yurt(
        &addr,
        &[
            "job",
            "run",
            "-detach",
            "-var-file",
            var_file.to_str().unwrap(),
            "-var",
            "replicas=7",
            "-var=datacenters=[\"dc9\"]",
            job_file.to_str().unwrap(),
        ],
        &[("NOMAD_VAR_env_name", "cli")],
    );
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("Evaluation ID: "), "{out}");

    let job = http.get(&agent.url("/v1/job/web")).json();
    assert_eq!(job["Name"], "web-cli", "NOMAD_VAR_ reached a local");
    assert_eq!(
        job["Meta"]["image"], "nginx:1.27",
        "the var file set the image"
    );
    assert_eq!(job["TaskGroups"][0]["Count"], 7, "-var beats the var file");
    assert_eq!(job["Datacenters"], serde_json::json!(["dc9"]));
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["Env"]["NODE"],
        "${node.unique.name}"
    );

    // The job file and its variables are kept with the version (job submissions).
    let sub = http.get(&agent.url("/v1/job/web/submission?version=0"));
    assert_eq!(sub.status, 200, "{}", sub.body);
    let sub = sub.json();
    assert_eq!(sub["Source"], std::fs::read_to_string(&job_file).unwrap());
    assert_eq!(sub["Format"], "hcl2");
    assert_eq!(sub["JobID"], "web");
    assert_eq!(sub["Version"], 0);
    assert_eq!(
        sub["VariableFlags"],
        serde_json::json!({"replicas": "7", "env_name": "cli"}),
        "simple -var and NOMAD_VAR_ values are flags"
    );
    let vars = sub["Variables"].as_str().unwrap();
    assert!(
        vars.starts_with(&std::fs::read_to_string(&var_file).unwrap()),
        "{vars}"
    );
    assert!(
        vars.contains("datacenters = [\"dc9\"]"),
        "a list-typed -var is kept as HCL: {vars}"
    );
    let r = http.get(&agent.url("/v1/job/web/submission?version=3"));
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.body.trim(), "job source not found");
    let r = http.get(&agent.url("/v1/job/web/submission"));
    assert_eq!(r.status, 400, "{}", r.body);

    // A new version keeps its own submission; the first stays readable.
    let (code, out, err) = yurt(
        &addr,
        &[
            "job",
            "run",
            "-detach",
            "-var",
            "replicas=8",
            job_file.to_str().unwrap(),
        ],
        &[("NOMAD_VAR_env_name", "cli")],
    );
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let sub1 = http
        .get(&agent.url("/v1/job/web/submission?version=1"))
        .json();
    assert_eq!(sub1["VariableFlags"]["replicas"], "8");
    assert_eq!(sub1["Variables"], "");
    let sub0 = http
        .get(&agent.url("/v1/job/web/submission?version=0"))
        .json();
    assert_eq!(sub0["VariableFlags"]["replicas"], "7");

    // A parse error names the file, line and column on stderr and fails.
    let dir = TempDir::new("hcl-cli");
    let bad = dir.path().join("bad.nomad.hcl");
    std::fs::write(
        &bad,
        "job \"x\" {\n  group \"g\" {\n    count = \"lots\"\n  }\n}\n",
    )
    .unwrap();
    let (code, out, err) = yurt(&addr, &["job", "run", bad.to_str().unwrap()], &[]);
    assert_ne!(code, 0, "stdout: {out}");
    assert!(
        err.contains(&format!("{}:3,13: count: wrong type", bad.display())),
        "{err}"
    );

    // A JSON job file still works, by extension or by content.
    let json_job = dir.path().join("job.nomad");
    let mut j = shell_job("jsonjob", &[("t", "sleep 1")]);
    j["Datacenters"] = serde_json::json!(["dc1"]);
    std::fs::write(
        &json_job,
        serde_json::to_vec(&serde_json::json!({"Job": j})).unwrap(),
    )
    .unwrap();
    let (code, out, err) = yurt(
        &addr,
        &["job", "run", "-detach", json_job.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_eq!(http.get(&agent.url("/v1/job/jsonjob")).status, 200);
    let sub = http
        .get(&agent.url("/v1/job/jsonjob/submission?version=0"))
        .json();
    assert_eq!(sub["Format"], "json");

    // Submissions survive a restart of the server; a purge forgets them.
    let mut agent = agent;
    agent.restart();
    let sub = http.get(&agent.url("/v1/job/web/submission?version=1"));
    assert_eq!(sub.status, 200, "{}", sub.body);
    assert_eq!(sub.json()["VariableFlags"]["replicas"], "8");
    let r = http.delete(&agent.url("/v1/job/web?purge=true"));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http.get(&agent.url("/v1/job/web/submission?version=1"));
    assert_eq!(r.status, 404, "{}", r.body);
}

#[test]
fn job_validate_and_inspect() {
    let agent = Agent::start(AgentOpts::server());
    let addr = agent.url("");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jobspec");
    let job_file = fixtures.join("variables.nomad.hcl");
    let job_path = job_file.to_str().unwrap();

    let env = [("NOMAD_VAR_env_name", "cli")];
    let (code, out, err) = yurt(&addr, &["job", "validate", job_path], &env);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("Job validation successful"), "{out}");

    let dir = std::env::temp_dir().join(format!("yurt-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"Job": {"ID": "bad", "Name": "bad", "Type": "bogus", "TaskGroups": []}}"#,
    )
    .unwrap();
    let (code, out, err) = yurt(&addr, &["job", "validate", bad.to_str().unwrap()], &[]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    assert!(err.contains("Job validation errors:"), "{err}");
    assert!(!out.contains("successful"), "{out}");

    let (code, out, err) = yurt(
        &addr,
        &["job", "run", "-detach", "-var", "replicas=2", job_path],
        &env,
    );
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let (code, out, err) = yurt(
        &addr,
        &["job", "run", "-detach", "-var", "replicas=3", job_path],
        &env,
    );
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");

    let (code, out, err) = yurt(&addr, &["job", "inspect", "we"], &[]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let inspected: serde_json::Value = serde_json::from_str(&out).expect("JSON on stdout");
    assert_eq!(inspected["Job"]["ID"], "web", "a prefix names the job");
    assert_eq!(inspected["Job"]["TaskGroups"][0]["Count"], 3);
    let (code, out, err) = yurt(&addr, &["job", "inspect", "-version", "0", "web"], &[]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let v0: serde_json::Value = serde_json::from_str(&out).expect("JSON on stdout");
    assert_eq!(v0["Job"]["Version"], 0);
    assert_eq!(v0["Job"]["TaskGroups"][0]["Count"], 2);

    let (code, _, err) = yurt(&addr, &["job", "inspect", "nosuch"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("No job(s) with prefix or id"), "{err}");
}

#[test]
fn job_run_plan_and_validate_read_hcl1_files_with_the_flag() {
    let agent = Agent::start(AgentOpts::server());
    let addr = agent.url("");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jobspec");
    let legacy = fixtures.join("legacy.hcl1.nomad");
    let legacy = legacy.to_str().expect("utf-8 path");

    // Without -hcl1 the file is read as HCL2, where a single string is not a list.
    let (code, out, err) = yurt(&addr, &["job", "validate", legacy], &[]);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    assert!(err.contains("datacenters: wrong type"), "{err}");

    let (code, out, err) = yurt(&addr, &["job", "validate", "-hcl1", legacy], &[]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("Job validation successful"), "{out}");

    let (code, out, err) = yurt(
        &addr,
        &["job", "plan", "-region", "global", "-hcl1", legacy],
        &[],
    );
    assert_eq!(
        code, 1,
        "a new job is a change\nstdout: {out}\nstderr: {err}"
    );
    assert!(out.contains("+ Job: \"legacy\""), "{out}");

    let (code, out, err) = yurt(&addr, &["job", "run", "-detach", "-hcl1", legacy], &[]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let http = Http::default();
    let job = http.get(&agent.url("/v1/job/legacy")).json();
    assert_eq!(job["Priority"], 60);
    assert_eq!(job["Datacenters"], serde_json::json!(["dc1"]));
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["Env"]["ALLOC"],
        "${NOMAD_ALLOC_ID}"
    );
    let sub = http.get(&agent.url("/v1/job/legacy/submission?version=0"));
    assert_eq!(sub.status, 200, "{}", sub.body);
    assert_eq!(sub.json()["Format"], "hcl1");

    // HCL1-only syntax hcl-rs cannot read: the form, file, line and column on stderr.
    let dir = std::env::temp_dir().join(format!("yurt-hcl1-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let quoted = dir.join("quoted.nomad");
    std::fs::write(
        &quoted,
        "job \"q\" {\n  meta {\n    \"team.name\" = \"x\"\n  }\n}\n",
    )
    .expect("write job file");
    let quoted = quoted.to_str().expect("utf-8 path");
    let (code, out, err) = yurt(&addr, &["job", "run", "-hcl1", quoted], &[]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    assert!(
        err.contains(&format!(
            "{quoted}:3,5: this HCL1 file uses a quoted attribute name in a block"
        )),
        "{err}"
    );
}
