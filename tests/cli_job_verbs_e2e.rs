//! End-to-end tests of Nomad's job verbs and read commands in the `yurt` CLI (`job plan`,
//! `history`, `revert`, `scale`, `eval`, `allocs`, `deployments`, `dispatch`, `periodic force`,
//! `init`, `run -check-index`, `eval status|list`, top-level `status`, `server members`,
//! `operator raft list-peers`, `-json`/`-t` output, prefix resolution and `completion`): the
//! real binary against a real dev agent through NOMAD_ADDR.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// Exit code, stdout and stderr of `yurt <args>` run in `dir` against `addr`.
fn yurt_in(dir: Option<&Path>, addr: &str, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_yurt"));
    cmd.args(args)
        .env("NOMAD_ADDR", addr)
        .env_remove("NOMAD_TOKEN")
        .env_remove("NOMAD_NAMESPACE")
        .env_remove("NOMAD_REGION");
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = cmd.output().expect("run yurt");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn yurt(addr: &str, args: &[&str]) -> (i32, String, String) {
    yurt_in(None, addr, args)
}

fn ok(addr: &str, args: &[&str]) -> String {
    let (code, out, err) = yurt(addr, args);
    assert_eq!(
        code, 0,
        "yurt {args:?} failed:\nstdout: {out}\nstderr: {err}"
    );
    out
}

/// stderr of a command that must fail with `code`.
fn fails(addr: &str, args: &[&str], code: i32) -> String {
    let (got, out, err) = yurt(addr, args);
    assert_eq!(got, code, "yurt {args:?}:\nstdout: {out}\nstderr: {err}");
    err
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The value after `key = ` in Nomad's `key = value` layout.
fn kv<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(" = ")?;
            (k.trim() == key).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {key:?} in:\n{text}"))
}

const BATCH_JOB: &str = r#"
variable "count" {
  type    = number
  default = 1
}

job "bat" {
  type        = "batch"
  datacenters = ["dc1"]

  group "work" {
    count = var.count

    task "sleep" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["300"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
"#;

const SERVICE_JOB: &str = r#"
job "svc" {
  datacenters = ["dc1"]

  group "web" {
    task "sleep" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["300"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
"#;

const PARAM_JOB: &str = r#"
job "param" {
  type        = "batch"
  datacenters = ["dc1"]

  parameterized {
    payload       = "optional"
    meta_required = ["who"]
  }

  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo hi $NOMAD_META_who"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
"#;

const PERIODIC_JOB: &str = r#"
job "per" {
  type        = "batch"
  datacenters = ["dc1"]

  periodic {
    crons            = ["0 0 1 1 *"]
    prohibit_overlap = false
  }

  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
"#;

/// Allocations of `job` (through the API) once `n` of them run.
fn running_allocs(http: &Http, agent: &Agent, job: &str, n: usize) -> Vec<Value> {
    wait_for(Duration::from_secs(60), "allocations running", || {
        let allocs = http
            .get(&agent.url(&format!("/v1/job/{job}/allocations")))
            .json();
        let running: Vec<Value> = allocs
            .as_array()?
            .iter()
            .filter(|a| a["ClientStatus"] == "running" && a["DesiredStatus"] == "run")
            .cloned()
            .collect();
        (running.len() == n).then_some(running)
    })
}

#[test]
fn plan_run_history_revert_scale_and_eval() {
    let agent = Agent::start(AgentOpts::dev());
    let addr = agent.url("");
    let http = Http::default();
    let dir = TempDir::new("cli-verbs");
    let file = dir.path().join("bat.nomad.hcl");
    std::fs::write(&file, BATCH_JOB).unwrap();
    let path = file.to_str().unwrap();

    // A new job: everything is added, allocations would be created (exit 1).
    let (code, out, err) = yurt(&addr, &["job", "plan", path]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.starts_with("+ Job: \"bat\"\n"), "{out}");
    assert!(out.contains("+ Task Group: \"work\" (1 create)"), "{out}");
    assert!(
        out.contains("Scheduler dry-run:\n- All tasks successfully allocated."),
        "{out}"
    );
    assert!(out.contains("Job Modify Index: 0"), "{out}");
    assert!(out.contains("yurt job run -check-index 0 "), "{out}");
    // -diff=false leaves the diff out; -json-output prints the plan response.
    let (code, out, _) = yurt(&addr, &["job", "plan", "-diff=false", path]);
    assert_eq!(code, 1);
    assert!(out.starts_with("Scheduler dry-run:"), "{out}");
    let (code, out, err) = yurt(&addr, &["job", "plan", "-diff", "-verbose", path]);
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("  + Task: \"sleep\"\n    + Driver:"), "{out}");
    let (code, out, _) = yurt(&addr, &["job", "plan", "-json-output", path]);
    assert_eq!(code, 1);
    let plan = json_of(&out);
    assert_eq!(plan["Diff"]["Type"], "Added");
    assert_eq!(plan["Annotations"]["DesiredTGUpdates"]["work"]["Place"], 1);
    let (code, out, _) = yurt(&addr, &["job", "plan", "-t", "{{.Diff.Type}}", path]);
    assert_eq!((code, out.as_str()), (1, "Added\n"));

    // -check-index: a job that does not exist yet is only registered with index 0.
    let err = fails(
        &addr,
        &["job", "run", "-check-index", "7", "-detach", path],
        1,
    );
    assert!(err.contains("Enforcing job modify index 7"), "{err}");
    assert!(err.contains("Job not updated"), "{err}");
    assert!(http.get(&agent.url("/v1/job/bat")).status == 404);
    let out = ok(&addr, &["job", "run", "-check-index", "0", "-detach", path]);
    assert!(out.contains("Evaluation ID: "), "{out}");
    let allocs = running_allocs(&http, &agent, "bat", 1);
    let alloc_id = allocs[0]["ID"].as_str().unwrap().to_string();

    // Unchanged: exit 0, the group's allocations ignored.
    let (code, out, err) = yurt(&addr, &["job", "plan", path]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.starts_with("Job: \"bat\"\nTask Group: \"work\" (1 ignore)"),
        "{out}"
    );

    // A count change: an edited field, one allocation to create, and the index to run with.
    let (code, out, _) = yurt(&addr, &["job", "plan", "-var", "count=2", path]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("+/- Job: \"bat\""), "{out}");
    assert!(
        out.contains("+/- Task Group: \"work\" (1 create, 1 in-place update)"),
        "{out}"
    );
    assert!(out.contains("+/- Count: \"1\" => \"2\""), "{out}");
    let index = out
        .lines()
        .find_map(|l| l.strip_prefix("Job Modify Index: "))
        .expect("job modify index")
        .to_string();
    assert_ne!(index, "0");
    assert!(
        out.contains(&format!(
            "yurt job run -check-index {index} -var=\"count=2\" {path}"
        )),
        "{out}"
    );
    ok(
        &addr,
        &[
            "job",
            "run",
            "-check-index",
            &index,
            "-detach",
            "-var",
            "count=2",
            path,
        ],
    );
    // The same index again is stale now.
    let err = fails(
        &addr,
        &[
            "job",
            "run",
            "-check-index",
            &index,
            "-detach",
            "-var",
            "count=3",
            path,
        ],
        1,
    );
    assert!(err.contains("Job not updated"), "{err}");
    running_allocs(&http, &agent, "bat", 2);

    // History: newest first, -p shows what changed, -json/-t the versions themselves.
    let out = ok(&addr, &["job", "history", "bat"]);
    let versions: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("Version     = "))
        .collect();
    assert_eq!(versions, ["1", "0"], "{out}");
    assert!(
        out.contains("Stable      = ") && out.contains("Submit Date = "),
        "{out}"
    );
    let out = ok(&addr, &["job", "history", "-p", "ba"]);
    assert!(out.contains("Diff        = \n+/- Job: \"bat\""), "{out}");
    assert!(out.contains("+/- Count: \"1\" => \"2\""), "{out}");
    let all = json_of(&ok(&addr, &["job", "history", "-json", "bat"]));
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(
        ok(
            &addr,
            &[
                "job",
                "history",
                "-t",
                "{{range .}}{{.Version}} {{end}}",
                "bat"
            ]
        ),
        "1 0 \n"
    );
    let v0 = json_of(&ok(
        &addr,
        &["job", "history", "-json", "-version", "0", "bat"],
    ));
    assert_eq!(v0["Version"], 0);
    let out = ok(&addr, &["job", "history", "-full", "-version", "0", "bat"]);
    assert!(out.contains("Full        = JSON Job:\n{"), "{out}");
    assert!(out.contains("\"ID\": \"bat\""), "{out}");
    let err = fails(&addr, &["job", "history", "-json", "-p", "bat"], 1);
    assert!(err.contains("exclusive"), "{err}");

    // Scale: the only group needs no name; a wrong group is named in the error.
    let out = ok(&addr, &["job", "scale", "-detach", "bat", "3"]);
    assert!(
        out.contains("Job scale successful") && out.contains("Evaluation ID: "),
        "{out}"
    );
    running_allocs(&http, &agent, "bat", 3);
    let err = fails(&addr, &["job", "scale", "bat", "nope", "2"], 1);
    assert!(err.contains("\"nope\""), "{err}");
    let err = fails(&addr, &["job", "scale", "bat", "many"], 1);
    assert!(err.contains("Failed to convert count"), "{err}");

    // Revert to version 0 (count 1), monitored.
    let out = ok(&addr, &["job", "revert", "bat", "0"]);
    assert!(out.contains("Monitoring evaluation"), "{out}");
    running_allocs(&http, &agent, "bat", 1);
    assert_eq!(
        ok(&addr, &["job", "inspect", "-t", "{{.Version}}", "bat"]),
        "3\n"
    );
    let inspected = json_of(&ok(&addr, &["job", "inspect", "bat"]));
    assert_eq!(inspected["Job"]["ID"], "bat");
    let bare = json_of(&ok(
        &addr,
        &["job", "inspect", "-json", "-version", "1", "bat"],
    ));
    assert_eq!(
        (bare["ID"].as_str(), bare["Version"].as_u64()),
        (Some("bat"), Some(1))
    );

    // job eval: detached prints the new evaluation, else follows it.
    let out = ok(&addr, &["job", "eval", "-detach", "bat"]);
    assert!(out.starts_with("Created eval ID: \""), "{out}");
    let out = ok(&addr, &["job", "eval", "-force-reschedule", "bat"]);
    assert!(out.contains("finished with status \"complete\""), "{out}");

    // job allocs / deployments and their machine-readable forms.
    let out = ok(&addr, &["job", "allocs", "-all", "bat"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "ID", "Node", "ID", "Task", "Group", "Version", "Desired", "Status", "Created",
            "Modified"
        ]
    );
    let out = ok(&addr, &["job", "allocs", "-verbose", "bat"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        &header[..7],
        ["ID", "Eval", "ID", "Node", "ID", "Node", "Name"]
    );
    assert!(out.contains(&alloc_id), "{out}");
    let listed = json_of(&ok(&addr, &["job", "allocs", "-json", "bat"]));
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["JobID"] == "bat")
    );
    let ids = ok(
        &addr,
        &["job", "allocs", "-t", "{{range .}}{{.ID}} {{end}}", "bat"],
    );
    assert!(ids.contains(&alloc_id), "{ids}");
    assert_eq!(
        ok(&addr, &["job", "deployments", "bat"]),
        "No deployments found\n"
    );

    // job status -json / -t: Nomad's per-job summary, allocations, deployment, evaluations.
    let status = json_of(&ok(&addr, &["job", "status", "-json", "bat"]));
    assert_eq!(status[0]["Summary"]["JobID"], "bat");
    assert!(status[0]["Evaluations"].as_array().unwrap().len() >= 3);
    assert_eq!(
        ok(
            &addr,
            &[
                "job",
                "status",
                "-t",
                "{{range .}}{{.Summary.JobID}}{{end}}",
                "bat"
            ]
        ),
        "bat\n"
    );
    let err = fails(&addr, &["job", "status", "-json", "-t", "{{.}}", "bat"], 1);
    assert!(
        err.contains("Both json and template formatting are not allowed"),
        "{err}"
    );
    let err = fails(
        &addr,
        &["job", "status", "-t", "{{range .}}{{.Nope}}{{end}}", "bat"],
        1,
    );
    assert!(err.contains("Nope"), "{err}");

    // Evaluations: list, status by prefix, -json and -t.
    let out = ok(&addr, &["eval", "list"]);
    assert!(
        out.lines()
            .next()
            .unwrap()
            .starts_with("ID        Priority  Triggered By  "),
        "{out}"
    );
    let evals = json_of(&ok(&addr, &["eval", "list", "-job", "bat", "-json"]));
    let evals = evals.as_array().unwrap();
    assert!(evals.len() >= 5 && evals.iter().all(|e| e["JobID"] == "bat"));
    let eval_id = evals[0]["ID"].as_str().unwrap().to_string();
    let out = ok(&addr, &["eval", "list", "-per-page", "2", "-job", "bat"]);
    assert_eq!(
        out.lines().take_while(|l| !l.is_empty()).count(),
        3,
        "{out}"
    );
    assert!(
        out.contains("Results have been paginated") && out.contains("-page-token "),
        "{out}"
    );
    let token = out.trim_end().rsplit(' ').next().unwrap().to_string();
    let next = ok(
        &addr,
        &[
            "eval",
            "list",
            "-per-page",
            "2",
            "-job",
            "bat",
            "-page-token",
            &token,
        ],
    );
    assert!(next.starts_with("ID "), "{next}");
    let out = ok(&addr, &["eval", "status", &eval_id[..8]]);
    assert_eq!(kv(&out, "ID"), &eval_id[..8]);
    assert_eq!(kv(&out, "Job ID"), "bat");
    assert_eq!(kv(&out, "Namespace"), "default");
    assert_eq!(
        ok(&addr, &["eval", "status", "-t", "{{.ID}}", &eval_id[..6]]),
        format!("{eval_id}\n")
    );
    let one = json_of(&ok(&addr, &["eval", "status", "-json", &eval_id]));
    assert_eq!(one["ID"], eval_id.as_str());
    let err = fails(&addr, &["eval", "status", "a"], 1);
    assert!(
        err.contains("must contain at least two characters"),
        "{err}"
    );
    let unknown = if eval_id.starts_with("ff") {
        "00ff00"
    } else {
        "ff00ff"
    };
    let err = fails(&addr, &["eval", "status", unknown], 1);
    assert!(err.contains("No evaluation(s) with prefix or id"), "{err}");

    // Alloc, node and deployment read commands take -json and -t too.
    assert_eq!(
        ok(
            &addr,
            &["alloc", "status", "-t", "{{.JobID}}", &alloc_id[..8]]
        ),
        "bat\n"
    );
    let nodes = json_of(&ok(&addr, &["node", "status", "-json"]));
    let node_id = nodes[0]["ID"].as_str().unwrap().to_string();
    assert_eq!(
        ok(&addr, &["node", "status", "-t", "{{.ID}}", &node_id[..8]]),
        format!("{node_id}\n")
    );

    // A prefix naming several jobs is refused with the candidates listed.
    for id in ["amb-one", "amb-two"] {
        let mut job = service_job(id, 0);
        job["Type"] = json!("batch");
        assert_eq!(
            http.put(&agent.url("/v1/jobs"), &json!({"Job": job}))
                .status,
            200
        );
    }
    let err = fails(&addr, &["job", "status", "amb"], 1);
    assert!(err.starts_with("Prefix matched multiple jobs"), "{err}");
    assert!(err.contains("amb-one") && err.contains("amb-two"), "{err}");
    let err = fails(&addr, &["status", "amb"], 1);
    assert!(
        err.starts_with("Multiple matches found for id \"amb\""),
        "{err}"
    );
    assert!(err.contains("Jobs:\namb-one, amb-two"), "{err}");

    // Top-level status: the job list, or whatever one prefix names.
    let out = ok(&addr, &["status"]);
    assert!(out.starts_with("ID "), "{out}");
    assert!(out.contains("Submit Date") && out.contains("bat"), "{out}");
    let out = ok(&addr, &["status", "bat"]);
    assert!(
        out.contains("Allocations") && kv(&out, "ID") == "bat",
        "{out}"
    );
    let out = ok(&addr, &["status", &alloc_id[..8]]);
    assert_eq!(kv(&out, "ID"), &alloc_id[..8]);
    assert!(out.contains("Client Status"), "{out}");
    let out = ok(&addr, &["status", "-verbose", &node_id[..8]]);
    assert!(out.contains(&node_id), "{out}");
    let out = ok(&addr, &["status", &eval_id[..8]]);
    assert_eq!(kv(&out, "Job ID"), "bat");
    let err = fails(&addr, &["status", "zzzz-nothing"], 1);
    assert!(err.contains("No matches found for id"), "{err}");

    // Errors: a file that does not parse is a plan error (255); so is an agent that is gone.
    let bad = dir.path().join("bad.nomad.hcl");
    std::fs::write(&bad, "job \"x\" {\n  group {\n").unwrap();
    let err = fails(&addr, &["job", "plan", bad.to_str().unwrap()], 255);
    assert!(err.contains("Error parsing job file"), "{err}");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let err = fails(&dead, &["job", "plan", path], 255);
    assert!(err.contains("Error during plan"), "{err}");
    let err = fails(&dead, &["eval", "list"], 1);
    assert!(err.contains("Error querying evaluations"), "{err}");
    // -address wins over a NOMAD_ADDR that points nowhere.
    let out = ok(&dead, &["job", "status", "-address", &addr, "bat"]);
    assert_eq!(kv(&out, "ID"), "bat");

    // Version tags: name version 1 (count 2), see it in the history, revert to it by name.
    let out = ok(
        &addr,
        &[
            "job",
            "tag",
            "apply",
            "-name",
            "two",
            "-description",
            "count two",
            "-version",
            "1",
            "bat",
        ],
    );
    assert_eq!(out, "Job version 1 tagged with name \"two\"\n");
    let out = ok(&addr, &["job", "history", "-version", "1", "bat"]);
    assert_eq!(kv(&out, "Tag Name"), "two", "{out}");
    assert_eq!(kv(&out, "Tag Description"), "count two", "{out}");
    let err = fails(&addr, &["job", "tag", "apply", "-name", "two", "bat"], 1);
    assert!(
        err.contains("already exists on a different version"),
        "{err}"
    );
    let err = fails(&addr, &["job", "tag", "apply", "bat"], 1);
    assert!(err.contains("A version tag name is required"), "{err}");
    let out = ok(&addr, &["job", "revert", "-detach", "bat", "two"]);
    assert!(out.contains("Evaluation ID: "), "{out}");
    let current = http.get(&agent.url("/v1/job/bat")).json();
    assert_eq!(current["Version"], 4);
    assert_eq!(current["TaskGroups"][0]["Count"], 2, "version 1's count");
    assert_eq!(
        current["VersionTag"],
        Value::Null,
        "a revert is a new, untagged version"
    );
    let err = fails(&addr, &["job", "revert", "bat", "nosuch"], 1);
    assert!(
        err.contains("version tag nosuch not found for job bat"),
        "{err}"
    );

    // The HTTP API: Latest tags the current version; unknown versions and jobs are 404s.
    let r = http.put(
        &agent.url("/v1/job/bat/versions/now/tag"),
        &json!({"Latest": true, "Description": "current"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["Name"], "now");
    let current = http.get(&agent.url("/v1/job/bat")).json();
    assert_eq!(current["VersionTag"]["Name"], "now");
    assert_eq!(current["VersionTag"]["Description"], "current");
    let r = http.put(
        &agent.url("/v1/job/bat/versions/x/tag"),
        &json!({"Version": 99}),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let r = http.put(&agent.url("/v1/job/nosuch/versions/x/tag"), &json!({}));
    assert_eq!(r.status, 404, "{}", r.body);
    let r = http.put(
        &agent.url("/v1/job/bat/versions/x/tag"),
        &json!({"Version": 1, "Latest": true}),
    );
    assert_eq!(r.status, 400, "{}", r.body);

    // Nomad's Sprig functions in -t templates.
    assert_eq!(
        ok(
            &addr,
            &["job", "inspect", "-t", "{{ .ID | sprig_upper }}", "bat"]
        ),
        "BAT\n"
    );

    let out = ok(&addr, &["job", "tag", "unset", "-name", "two", "bat"]);
    assert_eq!(out, "Tag \"two\" removed from job \"bat\"\n");
    let err = fails(&addr, &["job", "tag", "unset", "-name", "two", "bat"], 1);
    assert!(err.contains("tag \"two\" not found"), "{err}");
    let r = http.delete(&agent.url("/v1/job/bat/versions/now/tag"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        http.get(&agent.url("/v1/job/bat")).json()["VersionTag"],
        Value::Null
    );
}

#[test]
fn parent_jobs_deployments_init_members_and_completion() {
    let agent = Agent::start(AgentOpts::dev());
    let addr = agent.url("");
    let http = Http::default();
    let dir = TempDir::new("cli-verbs2");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };

    // Dispatch: meta and a payload file; a missing required meta key is refused.
    let param = write("param.nomad.hcl", PARAM_JOB);
    ok(&addr, &["job", "run", "-detach", &param]);
    let payload = write("payload.txt", "input data");
    let out = ok(
        &addr,
        &[
            "job", "dispatch", "-detach", "-meta", "who=me", "param", &payload,
        ],
    );
    let child = kv(&out, "Dispatched Job ID").to_string();
    assert!(child.starts_with("param/dispatch-"), "{out}");
    assert!(!kv(&out, "Evaluation ID").is_empty(), "{out}");
    let stored = http.get(&agent.url(&format!("/v1/job/{child}"))).json();
    assert_eq!(stored["Meta"]["who"], "me");
    // The payload may come from stdin.
    let mut piped = Command::new(env!("CARGO_BIN_EXE_yurt"))
        .args([
            "job", "dispatch", "-detach", "-meta", "who=pipe", "param", "-",
        ])
        .env("NOMAD_ADDR", &addr)
        .env_remove("NOMAD_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run yurt");
    {
        use std::io::Write;
        let mut stdin = piped.stdin.take().unwrap();
        stdin.write_all(b"from stdin").unwrap();
    }
    let done = piped.wait_with_output().unwrap();
    assert!(done.status.success());
    let out = String::from_utf8_lossy(&done.stdout).into_owned();
    let from_pipe = kv(&out, "Dispatched Job ID").to_string();
    let stored = http.get(&agent.url(&format!("/v1/job/{from_pipe}"))).json();
    assert_eq!(stored["Meta"]["who"], "pipe");
    assert!(!stored["Payload"].is_null(), "{stored}");
    let err = fails(&addr, &["job", "dispatch", "param"], 1);
    assert!(err.contains("Failed to dispatch job"), "{err}");
    let err = fails(&addr, &["job", "dispatch", "-meta", "novalue", "param"], 1);
    assert!(err.contains("Error parsing meta value: novalue"), "{err}");
    let out = ok(
        &addr,
        &[
            "job",
            "dispatch",
            "-meta",
            "who=you",
            "-id-prefix-template",
            "run",
            "param",
        ],
    );
    assert!(
        kv(&out, "Dispatched Job ID").starts_with("param/dispatch-"),
        "{out}"
    );
    assert!(out.contains("Monitoring evaluation"), "{out}");

    // -idempotency-token and -priority reach the dispatched child.
    // (Nomad answers a repeated token with the same child only while that child is live;
    // this one finishes at once, so the server side is shown in `parent_jobs_e2e`.)
    let tokened = [
        "job",
        "dispatch",
        "-detach",
        "-meta",
        "who=once",
        "-idempotency-token",
        "tok-1",
        "-priority",
        "80",
        "param",
    ];
    let first = kv(&ok(&addr, &tokened), "Dispatched Job ID").to_string();
    let child = http.get(&agent.url(&format!("/v1/job/{first}"))).json();
    assert_eq!(child["Priority"], 80, "{child}");
    assert_eq!(child["DispatchIdempotencyToken"], "tok-1", "{child}");
    let err = fails(
        &addr,
        &[
            "job",
            "dispatch",
            "-meta",
            "who=x",
            "-priority",
            "101",
            "param",
        ],
        1,
    );
    assert!(err.contains("priority must be between [1, 100]"), "{err}");

    // Periodic force launches a child now; a job that is not periodic is refused.
    let per = write("per.nomad.hcl", PERIODIC_JOB);
    ok(&addr, &["job", "run", "-detach", &per]);
    let out = ok(&addr, &["job", "periodic", "force", "-detach", "per"]);
    assert!(
        out.contains("Force periodic successful") && out.contains("Evaluation ID: "),
        "{out}"
    );
    let children = http.get(&agent.url("/v1/jobs?prefix=per/periodic-")).json();
    assert_eq!(children.as_array().unwrap().len(), 1, "{children}");
    let err = fails(&addr, &["job", "periodic", "force", "param"], 1);
    assert!(err.contains("No periodic job(s)"), "{err}");
    let r = http.post(
        &agent.url("/v1/job/param/periodic/force"),
        &serde_json::json!({}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("non-periodic"), "{}", r.body);
    let r = http.post(
        &agent.url("/v1/job/nosuch/periodic/force"),
        &serde_json::json!({}),
    );
    assert_eq!(r.status, 404, "{}", r.body);

    // Parents say what they are in the job list.
    let out = ok(&addr, &["job", "status"]);
    let kind = |id: &str| {
        out.lines()
            .find_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                (cols.first() == Some(&id)).then(|| cols[1].to_string())
            })
            .unwrap_or_else(|| panic!("no {id} in {out}"))
    };
    assert_eq!(kind("per"), "batch/periodic");
    assert_eq!(kind("param"), "batch/parameterized");

    // var get renders a Go template over the variable.
    ok(&addr, &["var", "put", "app/db", "user=me", "pw=secret"]);
    assert_eq!(
        ok(
            &addr,
            &[
                "var",
                "get",
                "-template",
                "{{.Items.user}}@{{.Path}}",
                "app/db"
            ]
        ),
        "me@app/db\n"
    );
    let err = fails(&addr, &["var", "get", "-out", "go-template", "app/db"], 1);
    assert!(err.contains("-template"), "{err}");

    // A service job's deployments.
    let svc = write("svc.nomad.hcl", SERVICE_JOB);
    ok(&addr, &["job", "run", "-detach", &svc]);
    let out = wait_for(Duration::from_secs(30), "a deployment", || {
        let out = ok(&addr, &["job", "deployments", "svc"]);
        out.contains("svc").then_some(out)
    });
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "Job", "ID", "Job", "Version", "Status", "Description"]
    );
    let out = ok(&addr, &["job", "deployments", "-latest", "svc"]);
    assert_eq!(kv(&out, "Job ID"), "svc");
    assert!(out.contains("Deployed\nTask Group"), "{out}");
    let list = json_of(&ok(&addr, &["job", "deployments", "-json", "svc"]));
    let dep_id = list[0]["ID"].as_str().unwrap().to_string();
    assert_eq!(
        ok(
            &addr,
            &["deployment", "list", "-t", "{{range .}}{{.JobID}}{{end}}"]
        ),
        "svc\n"
    );
    assert_eq!(
        ok(
            &addr,
            &["deployment", "status", "-t", "{{.ID}}", &dep_id[..8]]
        ),
        format!("{dep_id}\n")
    );

    // job init: an example that yurt parses and runs; an existing file is not overwritten.
    let (code, out, err) = yurt_in(Some(dir.path()), &addr, &["job", "init"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Example job file written to example.nomad.hcl\n");
    let (code, _, err) = yurt_in(Some(dir.path()), &addr, &["job", "init", "-short"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Job 'example.nomad.hcl' already exists"),
        "{err}"
    );
    let (code, _, err) = yurt_in(
        Some(dir.path()),
        &addr,
        &["job", "init", "-short", "short.hcl"],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = yurt_in(
        Some(dir.path()),
        &addr,
        &["job", "init", "-connect", "c.hcl"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("Connect"), "{err}");
    let example = dir.path().join("example.nomad.hcl");
    let example = example.to_str().unwrap();
    ok(&addr, &["job", "validate", example]);
    ok(&addr, &["job", "run", "-detach", example]);
    running_allocs(&http, &agent, "example", 1);

    // Servers: one member, the leader; the Raft configuration lists it as leader and voter.
    let out = ok(&addr, &["server", "members"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "Name",
            "Address",
            "Port",
            "Status",
            "Leader",
            "Raft",
            "Version",
            "Build",
            "Datacenter",
            "Region"
        ]
    );
    assert!(
        lines[1].contains("alive") && lines[1].contains("true"),
        "{out}"
    );
    let members = json_of(&ok(&addr, &["server", "members", "-json"]));
    assert_eq!(members[0]["Tags"]["Leader"], "true");
    assert_eq!(
        ok(
            &addr,
            &["server", "members", "-t", "{{range .}}{{.Status}}{{end}}"]
        ),
        "alive\n"
    );
    let config = http
        .get(&agent.url("/v1/operator/raft/configuration"))
        .json();
    assert!(config["Index"].as_u64().unwrap() > 0, "{config}");
    assert_eq!(config["Servers"][0]["Address"], agent.rpc_addr().as_str());
    let out = ok(&addr, &["operator", "raft", "list-peers"]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["Node", "ID", "Address", "State", "Voter", "RaftProtocol"]
    );
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(
        &rows[1][2..],
        [agent.rpc_addr().as_str(), "leader", "true", "3"]
    );

    // Completion scripts need no agent.
    for shell in ["bash", "zsh", "fish"] {
        let out = ok("http://127.0.0.1:1", &["completion", shell]);
        assert!(
            out.contains("yurt") && out.contains("list-peers"),
            "{shell}"
        );
    }
    let err = fails("http://127.0.0.1:1", &["completion", "tcsh"], 1);
    assert!(err.contains("tcsh"), "{err}");
}

#[test]
fn the_raft_configuration_needs_operator_read() {
    let mut opts = AgentOpts::server();
    opts.extra_hcl.push_str("acl {\n  enabled = true\n}\n");
    let agent = Agent::start(opts);
    let addr = agent.url("");
    let http = Http::default();
    let r = http.get(&agent.url("/v1/operator/raft/configuration"));
    assert_eq!(r.status, 403, "{}", r.body);
    let err = fails(&addr, &["operator", "raft", "list-peers"], 1);
    assert!(
        err.contains("Failed to retrieve raft configuration") && err.contains("403"),
        "{err}"
    );
    let boot = http.post(&agent.url("/v1/acl/bootstrap"), &json!({}));
    assert_eq!(boot.status, 200, "{}", boot.body);
    let secret = boot.json()["SecretID"].as_str().unwrap().to_string();
    let out = ok(
        &addr,
        &["operator", "raft", "list-peers", "-token", &secret],
    );
    assert!(
        out.contains(&agent.rpc_addr()) && out.contains("leader"),
        "{out}"
    );
}
