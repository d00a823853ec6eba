//! The HCL2 job file parser on real-shaped job files (`tests/fixtures/jobspec/`): each file
//! parsed and compared with the fields it sets; variables from every source; each error kind
//! with its line and column.

use std::path::PathBuf;

use serde_json::{Value, json};
use yurt::jobspec::{ErrorKind, ParseConfig, Pos, parse};

const S: i64 = 1_000_000_000;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jobspec")
        .join(name)
}

fn config(name: &str) -> ParseConfig {
    let path = fixture(name);
    ParseConfig {
        body: std::fs::read_to_string(&path).expect("fixture readable"),
        path: path.display().to_string(),
        allow_fs: true,
        ..ParseConfig::default()
    }
}

fn parse_ok(cfg: &ParseConfig) -> Value {
    match parse(cfg) {
        Ok(p) => p.job,
        Err(e) => panic!("parse failed: {e}"),
    }
}

fn text(body: &str) -> ParseConfig {
    ParseConfig {
        path: "t.nomad.hcl".to_string(),
        body: body.to_string(),
        ..ParseConfig::default()
    }
}

fn parse_err(cfg: &ParseConfig) -> yurt::jobspec::JobspecError {
    match parse(cfg) {
        Ok(p) => panic!("expected an error, parsed {}", p.job),
        Err(e) => e,
    }
}

#[test]
fn service_job_like_the_init_example() {
    let job = parse_ok(&config("webcache.nomad.hcl"));
    assert_eq!(job["ID"], "webcache");
    assert_eq!(job["Name"], "webcache");
    assert_eq!(job["Datacenters"], json!(["dc1", "dc2"]));
    assert_eq!(job["Type"], "service");
    assert_eq!(job["Priority"], 70);
    assert_eq!(job["NodePool"], "edge");
    assert_eq!(
        job["Update"],
        json!({"MaxParallel": 2, "MinHealthyTime": 15 * S, "HealthyDeadline": 240 * S,
               "ProgressDeadline": 720 * S, "AutoRevert": true, "Canary": 1})
    );
    assert_eq!(
        job["Migrate"],
        json!({"MaxParallel": 1, "HealthCheck": "task_states", "MinHealthyTime": 20 * S, "HealthyDeadline": 360 * S})
    );
    assert_eq!(
        job["UI"],
        json!({"Description": "cache in front of the web tier",
               "Links": [{"Label": "runbook", "URL": "https://runbooks.example.org/webcache"}]})
    );
    let g = &job["TaskGroups"][0];
    assert_eq!(g["Name"], "cache");
    assert_eq!(g["Count"], 3);
    // A port with a static value is reserved; the others are dynamic.
    assert_eq!(
        g["Networks"][0]["DynamicPorts"],
        json!([{"Label": "db", "To": 6379, "Value": 0, "HostNetwork": ""}])
    );
    assert_eq!(
        g["Networks"][0]["ReservedPorts"],
        json!([{"Label": "admin", "Value": 9090, "To": 0, "HostNetwork": ""}])
    );
    let svc = &g["Services"][0];
    assert_eq!(svc["Name"], "webcache-redis");
    assert_eq!(svc["Tags"], json!(["cache", "v7"]));
    assert_eq!(svc["PortLabel"], "db");
    assert_eq!(svc["Provider"], "nomad");
    assert_eq!(
        svc["Checks"],
        json!([{"Name": "alive", "Type": "tcp", "Interval": 10 * S, "Timeout": 2 * S}])
    );
    assert_eq!(
        g["RestartPolicy"],
        json!({"Attempts": 3, "Interval": 1200 * S, "Delay": 25 * S, "Mode": "delay"})
    );
    assert_eq!(g["EphemeralDisk"], json!({"SizeMB": 512, "Sticky": true}));
    let t = &g["Tasks"][0];
    assert_eq!(t["Name"], "redis");
    assert_eq!(t["Driver"], "docker");
    assert_eq!(
        t["Config"],
        json!({"image": "redis:7", "ports": ["db"], "auth_soft_fail": true, "args": ["--maxmemory", "200mb"]})
    );
    assert_eq!(t["ShutdownDelay"], 5 * S);
    assert_eq!(t["KillTimeout"], 90 * S);
    assert_eq!(t["KillSignal"], "SIGTERM");
    // The unnamed identity is the task's default identity.
    assert_eq!(t["Identity"], json!({"Env": true, "File": true}));
    assert!(t.get("Identities").is_none());
    assert_eq!(t["Resources"], json!({"CPU": 400, "MemoryMB": 300}));
}

#[test]
fn batch_job_with_constraints_templates_and_runtime_interpolation() {
    let job = parse_ok(&config("batch-features.nomad.hcl"));
    assert_eq!(job["Type"], "batch");
    assert_eq!(job["Namespace"], "reports");
    assert_eq!(job["Region"], "eu");
    assert_eq!(job["Meta"], json!({"owner": "data-team", "tier": "2"}));
    assert_eq!(
        job["Constraints"],
        json!([
            {"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="},
            {"LTarget": "${attr.driver.docker.version}", "RTarget": ">= 20.10", "Operand": "version"},
            {"LTarget": "", "RTarget": "", "Operand": "distinct_hosts"},
        ])
    );
    assert_eq!(
        job["Affinities"],
        json!([{"LTarget": "${node.datacenter}", "RTarget": "dc1", "Operand": "=", "Weight": 60}])
    );
    assert_eq!(
        job["Spreads"],
        json!([{"Attribute": "${node.datacenter}", "Weight": 80,
                "SpreadTarget": [{"Value": "dc1", "Percent": 70}, {"Value": "dc2", "Percent": 30}]}])
    );
    assert_eq!(
        job["Periodic"],
        json!({"Specs": ["0 2 * * *"], "ProhibitOverlap": true, "TimeZone": "Europe/Paris", "SpecType": "cron"})
    );
    assert_eq!(
        job["Reschedule"],
        json!({"Attempts": 2, "Interval": 3600 * S, "Delay": 30 * S, "Unlimited": false})
    );
    let g = &job["TaskGroups"][0];
    assert_eq!(
        g["Volumes"],
        json!({"scratch": {"Name": "scratch", "Type": "host", "Source": "scratch-disk", "ReadOnly": false}})
    );
    let fetch = &g["Tasks"][0];
    assert_eq!(
        fetch["Lifecycle"],
        json!({"Hook": "prestart", "Sidecar": false})
    );
    assert_eq!(
        fetch["Config"]["args"],
        json!(["-c", "echo fetching to ${NOMAD_ALLOC_DIR}/in"])
    );
    assert_eq!(
        fetch["Artifacts"],
        json!([{"GetterSource": "https://example.org/dataset.tar.gz", "RelativeDest": "local/dataset",
                "GetterMode": "any", "GetterOptions": {"checksum": "sha256:abcd"}}])
    );
    let build = &g["Tasks"][1];
    assert_eq!(build["User"], "nobody");
    assert_eq!(
        build["Env"],
        json!({"REPORT_DAY": "${NOMAD_META_day}", "VERBOSE": "true"})
    );
    let tmpl = &build["Templates"][0];
    assert_eq!(tmpl["DestPath"], "local/report.conf");
    assert_eq!(tmpl["ChangeMode"], "noop");
    assert_eq!(
        tmpl["EmbeddedTmpl"],
        "region = \"{{ env \"NOMAD_REGION\" }}\"\nalloc  = \"${NOMAD_ALLOC_ID}\"\n"
    );
    // Nomad's template defaults.
    assert_eq!(tmpl["Perms"], "0644");
    assert_eq!(tmpl["Splay"], 5 * S);
    assert_eq!(tmpl["ErrMissingKey"], false);
    assert_eq!(
        build["VolumeMounts"],
        json!([{"Volume": "scratch", "Destination": "/scratch"}])
    );
    assert_eq!(
        build["LogConfig"],
        json!({"MaxFiles": 4, "MaxFileSizeMB": 15})
    );
    assert_eq!(build["DispatchPayload"], json!({"File": "input.json"}));
}

#[test]
fn connect_checks_and_driver_config_blocks() {
    let job = parse_ok(&config("connect.nomad.hcl"));
    let g = &job["TaskGroups"][0];
    assert_eq!(g["Networks"][0]["Mode"], "bridge");
    let svc = &g["Services"][0];
    assert_eq!(
        svc["Connect"],
        json!({"SidecarService": {"Proxy": {"Upstreams": [
                   {"DestinationName": "count-db", "LocalBindPort": 5432}]}},
               "SidecarTask": {"Resources": {"CPU": 50, "MemoryMB": 48}, "LogConfig": {"MaxFiles": 2},
                               "KillTimeout": 3 * S}})
    );
    let check = &svc["Checks"][0];
    assert_eq!(check["Header"], json!({"Authorization": ["Bearer x"]}));
    assert_eq!(check["CheckRestart"], json!({"Limit": 3, "Grace": 90 * S}));
    let t = &g["Tasks"][0];
    assert_eq!(
        t["Config"]["mount"],
        json!([{"type": "bind", "source": "local", "target": "/etc/api"}, {"type": "tmpfs", "target": "/tmp"}])
    );
    assert_eq!(
        t["Vault"],
        json!({"Policies": ["api-read"], "Env": true, "DisableFile": false, "ChangeMode": "restart"})
    );
    assert_eq!(t["Templates"][0]["Envvars"], true);
    assert_eq!(t["Templates"][0]["Splay"], 10 * S);
    assert_eq!(
        t["Templates"][0]["EmbeddedTmpl"],
        "{{ with secret \"kv/api\" }}{{ .Data.key }}{{ end }}"
    );
}

fn with_env_name(mut cfg: ParseConfig) -> ParseConfig {
    cfg.envs
        .push(("NOMAD_VAR_env_name".to_string(), "prod".to_string()));
    cfg
}

#[test]
fn variables_defaults_locals_dynamic_blocks_and_functions() {
    let job = parse_ok(&with_env_name(config("variables.nomad.hcl")));
    assert_eq!(job["ID"], "web");
    assert_eq!(
        job["Name"], "web-prod",
        "a local built from another local and an env variable"
    );
    assert_eq!(job["Datacenters"], json!(["dc1"]));
    assert_eq!(
        job["Meta"],
        json!({"image": "nginx:1.25", "summary": "nginx:1.25 x2", "labels": "{\"HEALTH\":8081,\"HTTP\":8080}"})
    );
    let g = &job["TaskGroups"][0];
    assert_eq!(g["Count"], 2);
    assert_eq!(
        g["Networks"][0]["DynamicPorts"],
        json!([{"Label": "health", "To": 8081, "Value": 0, "HostNetwork": ""},
               {"Label": "http", "To": 8080, "Value": 0, "HostNetwork": ""}])
    );
    let t = &g["Tasks"][0];
    assert_eq!(
        t["Config"],
        json!({"image": "nginx:1.25", "ports": ["health", "http"]})
    );
    // Runtime references stay for the client, quoted or bare.
    assert_eq!(
        t["Env"],
        json!({"NODE": "${node.unique.name}", "KERNEL": "${attr.kernel.name}", "FROM_ENV": "${env[\"HOME\"]}",
               "HOST_PORT": "${NOMAD_PORT_http}", "TOKEN": "not-a-secret"})
    );
    assert_eq!(t["Resources"], json!({"CPU": 300, "MemoryMB": 512}));
}

#[test]
fn variable_sources_in_precedence_order() {
    // var file beats env beats default; -var beats the file.
    let mut cfg = with_env_name(config("variables.nomad.hcl"));
    cfg.envs
        .push(("NOMAD_VAR_image".to_string(), "from-env:1".to_string()));
    cfg.envs
        .push(("NOMAD_VAR_unrelated".to_string(), "ignored".to_string()));
    cfg.var_files.push(fixture("variables.vars.hcl"));
    let job = parse_ok(&cfg);
    assert_eq!(job["Meta"]["image"], "nginx:1.27");
    assert_eq!(job["TaskGroups"][0]["Count"], 4);

    cfg.arg_vars.push("replicas=5".to_string());
    cfg.arg_vars.push("datacenters=[\"a\", \"b\"]".to_string());
    let job = parse_ok(&cfg);
    assert_eq!(job["TaskGroups"][0]["Count"], 5);
    assert_eq!(job["Datacenters"], json!(["a", "b"]));

    // The API's Variables text is read like a var file.
    let mut api = with_env_name(config("variables.nomad.hcl"));
    api.var_content = "image = \"api:2\"\nreplicas = 6\n".to_string();
    let job = parse_ok(&api);
    assert_eq!(job["Meta"]["image"], "api:2");
    assert_eq!(job["TaskGroups"][0]["Count"], 6);
}

#[test]
fn variable_errors() {
    // Missing required variable.
    let e = parse_err(&config("variables.nomad.hcl"));
    assert_eq!(e.kind, ErrorKind::RequiredVariable("env_name".to_string()));
    assert_eq!(
        e.pos,
        Pos {
            line: 35,
            column: 1
        }
    );

    // A validation block that fails names the variable and its message.
    let mut cfg = with_env_name(config("variables.nomad.hcl"));
    cfg.arg_vars.push("replicas=12".to_string());
    let e = parse_err(&cfg);
    assert_eq!(
        e.kind,
        ErrorKind::VariableValidation {
            name: "replicas".to_string(),
            message: "replicas must be between 1 and 9".to_string()
        }
    );
    assert_eq!(
        e.pos,
        Pos {
            line: 11,
            column: 21
        }
    );

    // -var for an undeclared variable.
    let mut cfg = with_env_name(config("variables.nomad.hcl"));
    cfg.arg_vars.push("nope=1".to_string());
    let e = parse_err(&cfg);
    assert!(matches!(e.kind, ErrorKind::UndefinedVariable(_)));
    // A -var has no line and column: the error names the argument instead.
    assert!(
        e.to_string()
            .starts_with("-var \"nope=1\": undefined variable"),
        "{e}"
    );

    // Wrong type for a typed variable.
    let mut cfg = with_env_name(config("variables.nomad.hcl"));
    cfg.arg_vars.push("replicas=many".to_string());
    assert!(matches!(
        parse_err(&cfg).kind,
        ErrorKind::InvalidValue { .. }
    ));
}

#[test]
fn each_error_kind_names_line_and_column() {
    type Case = (&'static str, Pos, fn(&ErrorKind) -> bool);
    let cases: &[Case] = &[
        // unknown block
        (
            "job \"a\" {\n  group \"g\" {\n    tsak \"t\" {}\n  }\n}\n",
            Pos { line: 3, column: 5 },
            |k| matches!(k, ErrorKind::UnknownBlock { name, .. } if name == "tsak"),
        ),
        // unknown argument
        (
            "job \"a\" {\n  typo = 1\n}\n",
            Pos { line: 2, column: 3 },
            |k| matches!(k, ErrorKind::UnknownArgument { name, .. } if name == "typo"),
        ),
        // wrong type
        (
            "job \"a\" {\n  group \"g\" {\n    count = \"three\"\n  }\n}\n",
            Pos {
                line: 3,
                column: 13,
            },
            |k| matches!(k, ErrorKind::WrongType { field, .. } if field == "count"),
        ),
        // missing label
        (
            "job \"a\" {\n  group {\n  }\n}\n",
            Pos { line: 2, column: 3 },
            |k| matches!(k, ErrorKind::Labels { block, want: 1, got: 0 } if block == "group"),
        ),
        // undefined variable
        (
            "job \"a\" {\n  region = var.nope\n}\n",
            Pos {
                line: 2,
                column: 12,
            },
            |k| matches!(k, ErrorKind::UndefinedVariable(v) if v == "var.nope"),
        ),
        // bad duration
        (
            "job \"a\" {\n  update {\n    stagger = \"10 parsecs\"\n  }\n}\n",
            Pos {
                line: 3,
                column: 15,
            },
            |k| matches!(k, ErrorKind::InvalidValue { field, .. } if field == "stagger"),
        ),
        // syntax
        (
            "job \"a\" {\n  type = \n}\n",
            Pos {
                line: 2,
                column: 10,
            },
            |k| matches!(k, ErrorKind::Syntax(_)),
        ),
        // duplicate single block
        (
            "job \"a\" {\n  update {}\n  update {}\n}\n",
            Pos { line: 3, column: 3 },
            |k| matches!(k, ErrorKind::Duplicate(b) if b == "update"),
        ),
        // no job
        (
            "variable \"x\" {\n  default = 1\n}\n",
            Pos { line: 1, column: 1 },
            |k| matches!(k, ErrorKind::MissingJob),
        ),
        // unknown function
        (
            "job \"a\" {\n  region = nofunc(1)\n}\n",
            Pos {
                line: 2,
                column: 12,
            },
            |k| matches!(k, ErrorKind::Eval(m) if m.contains("nofunc")),
        ),
    ];
    for (body, pos, check) in cases {
        let e = parse_err(&text(body));
        assert_eq!(e.file, "t.nomad.hcl");
        assert_eq!(e.pos, *pos, "{body}\n→ {e}");
        assert!(check(&e.kind), "{body}\n→ {e}");
        assert!(
            e.to_string()
                .starts_with(&format!("t.nomad.hcl:{},{}: ", pos.line, pos.column)),
            "{e}"
        );
    }
}

#[test]
fn file_functions_read_beside_the_job_file_only_when_allowed() {
    let dir = std::env::temp_dir().join(format!("yurt-jobspec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("motd.txt"), "hello from a file").expect("write");
    let body = "job \"f\" {\n  meta {\n    motd = file(\"motd.txt\")\n  }\n}\n";
    let mut cfg = ParseConfig {
        path: dir.join("f.nomad.hcl").display().to_string(),
        body: body.to_string(),
        allow_fs: true,
        ..ParseConfig::default()
    };
    assert_eq!(parse_ok(&cfg)["Meta"]["motd"], "hello from a file");
    cfg.allow_fs = false;
    let e = parse_err(&cfg);
    assert_eq!(
        e.pos,
        Pos {
            line: 3,
            column: 12
        }
    );
    assert!(e.to_string().contains("disabled"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn top_level_tasks_become_groups() {
    let job = parse_ok(&text(
        "job \"solo\" {\n  task \"only\" {\n    driver = \"exec\"\n  }\n}\n",
    ));
    assert_eq!(
        job["TaskGroups"],
        json!([{"Name": "only", "Tasks": [{"Name": "only", "Driver": "exec"}]}])
    );
}

fn hcl1(mut cfg: ParseConfig) -> ParseConfig {
    cfg.hcl1 = true;
    cfg
}

#[test]
fn hcl1_file_with_literal_values_weak_types_and_blocks_as_assignments() {
    let job = parse_ok(&hcl1(config("legacy.hcl1.nomad")));
    assert_eq!(job["ID"], "legacy");
    assert_eq!(job["Name"], "legacy");
    assert_eq!(job["Datacenters"], json!(["dc1"]));
    assert_eq!(job["Priority"], 60);
    assert_eq!(job["AllAtOnce"], false);
    assert_eq!(job["Meta"], json!({"owner": "ops", "tier": "2"}));
    assert_eq!(
        job["Constraints"],
        json!([
            {"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="},
            {"LTarget": "", "RTarget": "true", "Operand": "distinct_hosts"}
        ])
    );
    assert_eq!(
        job["Update"],
        json!({"Stagger": 30 * S, "MaxParallel": 2, "AutoRevert": true})
    );
    let g = &job["TaskGroups"][0];
    assert_eq!(g["Name"], "cache");
    assert_eq!(g["Count"], 3);
    assert_eq!(
        g["Networks"],
        json!([{
            "DynamicPorts": [{"Label": "http", "Value": 0, "To": 0, "HostNetwork": ""}],
            "ReservedPorts": [{"Label": "db", "Value": 5432, "To": 0, "HostNetwork": ""}]
        }])
    );
    assert_eq!(
        g["RestartPolicy"],
        json!({"Attempts": 2, "Interval": 300 * S, "Delay": 15 * S, "Mode": "fail"})
    );
    let t = &g["Tasks"][0];
    assert_eq!(t["Name"], "redis");
    assert_eq!(
        t["Config"],
        json!({
            "image": "redis:${NOMAD_META_version}",
            "command": "/bin/sh",
            "args": ["-c", "echo ${env[\"HOME\"]} && exec redis-server"],
            "port_map": [{"db": 6379}],
            "logging": [{"syslog": [{"tag": "redis"}]}]
        })
    );
    assert_eq!(
        t["Env"],
        json!({"ALLOC": "${NOMAD_ALLOC_ID}", "REGION": "${node.region}"})
    );
    assert_eq!(
        t["Templates"],
        json!([{
            "DestPath": "local/redis.conf",
            "EmbeddedTmpl": "port {{ env \"NOMAD_PORT_db\" }}\ndir ${NOMAD_TASK_DIR}\n",
            "ChangeMode": "restart", "Perms": "0644", "Splay": 5 * S, "ErrMissingKey": false
        }])
    );
    assert_eq!(
        t["Artifacts"],
        json!([{"GetterSource": "https://example.com/redis.tgz", "RelativeDest": "local/",
                "GetterOptions": {"checksum": "sha256:abcd"}}])
    );
    assert_eq!(t["Resources"], json!({"CPU": 500, "MemoryMB": 256}));
    assert_eq!(
        t["ScalingPolicies"],
        json!([{"Min": 100, "Max": 1000, "Type": "vertical_cpu", "Policy": {"cooldown": "5m"}}])
    );
    assert_eq!(
        t["Services"],
        json!([{"Name": "redis-cache", "PortLabel": "db", "Tags": ["cache", "${NOMAD_DC}"],
                "Checks": [{"Type": "tcp", "Interval": 10 * S, "Timeout": 2 * S}]}])
    );
    assert_eq!(t["KillTimeout"], 20 * S);
    // The parsed job fits the API job type.
    parse(&hcl1(config("legacy.hcl1.nomad")))
        .expect("parses")
        .to_job()
        .expect("fits the job type");

    // HCL2 semantics refuse the file: a single string is not a list there.
    let e = parse_err(&config("legacy.hcl1.nomad"));
    assert!(
        matches!(e.kind, ErrorKind::WrongType { ref field, .. } if field == "datacenters"),
        "{e}"
    );
    assert_eq!(
        e.pos,
        Pos {
            line: 5,
            column: 17
        }
    );
}

#[test]
fn hcl1_errors_name_the_construct_file_line_and_column() {
    // Syntax HCL1 allows and hcl-rs does not: the form is named, with its position.
    for (body, what, pos) in [
        (
            "job \"a\" {\n  meta {\n    \"team.name\" = \"x\"\n  }\n}\n",
            "a quoted attribute name in a block",
            Pos { line: 3, column: 5 },
        ),
        (
            "job \"a\" {\n  meta {\n    team.name = \"x\"\n  }\n}\n",
            "a dotted attribute name",
            Pos { line: 3, column: 5 },
        ),
        (
            "job \"a\" {\n  task \"t\" {\n    config = {\n      port_map { http = 80 }\n    }\n  }\n}\n",
            "a block inside an assignment",
            Pos { line: 4, column: 7 },
        ),
        (
            "job \"a\" {\n  affinity {\n    weight = .5\n  }\n}\n",
            "a decimal without its leading zero",
            Pos {
                line: 3,
                column: 14,
            },
        ),
    ] {
        let e = parse_err(&hcl1(text(body)));
        assert_eq!(e.file, "t.nomad.hcl");
        assert_eq!(e.pos, pos, "{body}: {e}");
        assert!(
            matches!(e.kind, ErrorKind::Unsupported(ref m) if m.contains(what) && m.contains("HCL1")),
            "{body}: {e}"
        );
    }

    // HCL2 constructs in an HCL1 file.
    let e = parse_err(&hcl1(text(
        "job \"a\" {\n  group \"g\" {\n    count = var.n\n  }\n}\n",
    )));
    assert_eq!(
        e.pos,
        Pos {
            line: 3,
            column: 13
        }
    );
    assert!(e.to_string().contains("variable reference is HCL2"), "{e}");
    let e = parse_err(&hcl1(text(
        "job \"a\" {\n  meta {\n    x = upper(\"a\")\n  }\n}\n",
    )));
    assert_eq!(e.pos, Pos { line: 3, column: 9 });
    assert!(e.to_string().contains("function call is HCL2"), "{e}");
    let e = parse_err(&hcl1(text("variable \"n\" {}\njob \"a\" {}\n")));
    assert_eq!(e.pos, Pos { line: 1, column: 1 });
    assert!(e.to_string().contains("no variables"), "{e}");

    // HCL1's own rules: one network, port labels, scaling names.
    let e = parse_err(&hcl1(text(
        "job \"a\" {\n  group \"g\" {\n    network {}\n    network {}\n  }\n}\n",
    )));
    assert_eq!(e.pos, Pos { line: 4, column: 5 });
    assert!(
        matches!(e.kind, ErrorKind::Duplicate(ref n) if n == "network"),
        "{e}"
    );
    let e = parse_err(&hcl1(text(
        "job \"a\" {\n  group \"g\" {\n    network {\n      port \"Http\" {}\n      port \"hTTP\" {}\n    }\n  }\n}\n",
    )));
    assert_eq!(e.pos, Pos { line: 5, column: 7 });
    let e = parse_err(&hcl1(text(
        "job \"a\" {\n  group \"g\" {\n    network {\n      port \"a-b\" {}\n    }\n  }\n}\n",
    )));
    assert!(
        e.to_string().contains("letters, digits and underscores"),
        "{e}"
    );
    let e = parse_err(&hcl1(text(
        "job \"a\" {\n  task \"t\" {\n    scaling \"disk\" {\n      max = 1\n    }\n  }\n}\n",
    )));
    assert_eq!(e.pos, Pos { line: 3, column: 5 });
    assert!(e.to_string().contains("\"cpu\" or \"mem\""), "{e}");
}

#[test]
fn hcl1_job_level_forms_nomad_documents() {
    let job = parse_ok(&hcl1(text(
        r#"job "default" {
  id   = "job1"
  name = "My Job"

  periodic {
    cron             = "*/5 * * *"
    prohibit_overlap = "true"
    time_zone        = "Europe/Minsk"
  }

  parameterized {
    payload       = "required"
    meta_required = "dispatcher_email"
    meta_optional = ["pager"]
  }

  constraint {
    distinct_property = "${meta.rack}"
  }

  constraint {
    attribute = "$attr.kernel.version"
    version   = "~> 3.2"
  }

  task "bar" {
    driver = "docker"

    scaling "mem" {
      enabled = false
      min     = 128
      max     = 1024
    }

    dispatch_payload {
      file = "input.txt"
    }
  }
}
"#,
    )));
    assert_eq!(job["ID"], "job1");
    assert_eq!(job["Name"], "My Job");
    assert_eq!(
        job["Periodic"],
        json!({"SpecType": "cron", "Spec": "*/5 * * *", "ProhibitOverlap": true, "TimeZone": "Europe/Minsk"})
    );
    assert_eq!(
        job["ParameterizedJob"],
        json!({"Payload": "required", "MetaRequired": ["dispatcher_email"], "MetaOptional": ["pager"]})
    );
    assert_eq!(
        job["Constraints"],
        json!([
            {"LTarget": "${meta.rack}", "RTarget": "", "Operand": "distinct_property"},
            {"LTarget": "$attr.kernel.version", "RTarget": "~> 3.2", "Operand": "version"}
        ])
    );
    let t = &job["TaskGroups"][0]["Tasks"][0];
    assert_eq!(
        t["ScalingPolicies"],
        json!([{"Enabled": false, "Min": 128, "Max": 1024, "Type": "vertical_mem"}])
    );
    assert_eq!(t["DispatchPayload"], json!({"File": "input.txt"}));
}

/// Opt-in: Nomad's own HCL1 parser fixtures (`jobspec/test-fixtures` in a hashicorp/nomad
/// clone given as `YURT_NOMAD_REPO`, read at the last commit that has them), each parsed with
/// HCL1 semantics and compared with the fields the file sets; the fixtures Nomad's HCL1
/// parser refuses must be refused too. Reports the files hcl-rs cannot read.
#[test]
fn nomad_hcl1_fixtures_when_a_nomad_repo_is_given() {
    let Ok(repo) = std::env::var("YURT_NOMAD_REPO") else {
        eprintln!("YURT_NOMAD_REPO not set: skipping Nomad's HCL1 fixtures");
        return;
    };
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // HCL1 was removed from Nomad in 1.9: the fixtures live in the commit before that.
    let removed = git(&["log", "-1", "--format=%H", "HEAD", "--", "jobspec/parse.go"]);
    let at = format!("{}^", removed.trim());
    let list = git(&["ls-tree", "--name-only", &at, "jobspec/test-fixtures/"]);
    let read = |name: &str| git(&["show", &format!("{at}:jobspec/test-fixtures/{name}")]);
    let parse_fixture = |name: &str| {
        parse(&ParseConfig {
            path: name.to_string(),
            body: read(name),
            hcl1: true,
            ..ParseConfig::default()
        })
    };
    let ok = |name: &str| match parse_fixture(name) {
        Ok(p) => {
            p.to_job()
                .unwrap_or_else(|e| panic!("{name} does not fit the job type: {e}"));
            p.job
        }
        Err(e) => panic!("{name}: {e}"),
    };

    let basic = ok("basic.hcl");
    assert_eq!(basic["ID"], "binstore-storagelocker");
    assert_eq!(basic["Region"], "fooregion");
    assert_eq!(basic["Namespace"], "foonamespace");
    assert_eq!(basic["NodePool"], "dev");
    assert_eq!(basic["Priority"], 52);
    assert_eq!(basic["AllAtOnce"], true);
    assert_eq!(basic["ConsulToken"], "abc");
    assert_eq!(basic["Constraints"][1]["Operand"], "semver");
    assert_eq!(basic["Affinities"][0]["Weight"], 50);
    assert_eq!(
        basic["Spreads"][0]["SpreadTarget"][1],
        json!({"Value": "r2", "Percent": 60})
    );
    assert_eq!(basic["Update"]["Stagger"], 60 * S);
    assert_eq!(basic["TaskGroups"][0]["Name"], "outside");
    assert_eq!(
        basic["TaskGroups"][0]["Tasks"][0]["Meta"],
        json!({"my-cool-key": "foobar"})
    );
    let g = &basic["TaskGroups"][1];
    assert_eq!(g["Name"], "binsl");
    assert_eq!(g["Count"], 5);
    assert_eq!(g["Volumes"]["baz"]["PerAlloc"], true);
    assert_eq!(g["StopAfterClientDisconnect"], 120 * S);
    assert_eq!(g["Disconnect"]["Reconcile"], "best_score");
    assert_eq!(
        g["Meta"],
        json!({"elb_mode": "tcp", "elb_interval": "10", "elb_checks": "3"})
    );
    let t = &g["Tasks"][0];
    assert_eq!(t["User"], "bob");
    assert_eq!(t["Kind"], "connect-proxy:test");
    assert_eq!(
        t["Config"],
        json!({"image": "hashicorp/binstore", "labels": [{"FOO": "bar"}]})
    );
    assert_eq!(
        t["LogConfig"],
        json!({"Disabled": false, "MaxFiles": 14, "MaxFileSizeMB": 101})
    );
    assert_eq!(t["Services"][0]["Checks"][0]["GRPCUseTLS"], true);
    assert_eq!(
        t["Services"][0]["Checks"][0]["CheckRestart"]["Grace"],
        10 * S
    );
    let net = &t["Resources"]["Networks"][0];
    assert_eq!(net["MBits"], 100);
    assert_eq!(net["ReservedPorts"].as_array().map(Vec::len), Some(3));
    assert_eq!(net["DynamicPorts"].as_array().map(Vec::len), Some(3));
    assert_eq!(t["Resources"]["Devices"][0]["Count"], 10);
    assert_eq!(t["Resources"]["MemoryMaxMB"], 256);
    assert_eq!(t["KillTimeout"], 22 * S);
    assert_eq!(t["Artifacts"][1]["GetterMode"], "file");
    assert_eq!(
        t["Vault"],
        json!({"Namespace": "ns1", "Policies": ["foo", "bar"], "Env": true,
               "DisableFile": false, "ChangeMode": "restart"})
    );
    assert_eq!(t["Templates"][0]["VaultGrace"], 33 * S);
    assert_eq!(t["Templates"][1]["ChangeScript"]["Command"], "/bin/foo");
    assert_eq!(
        g["Tasks"][1]["Lifecycle"],
        json!({"Hook": "prestart", "Sidecar": true})
    );

    assert_eq!(ok("default-job.hcl")["ID"], "foo");
    let specify = ok("specify-job.hcl");
    assert_eq!(
        (&specify["ID"], &specify["Name"]),
        (&json!("job1"), &json!("My Job"))
    );
    assert_eq!(
        ok("distinctHosts-constraint.hcl")["Constraints"],
        json!([{"LTarget": "", "RTarget": "true", "Operand": "distinct_hosts"}])
    );
    assert_eq!(
        ok("regexp-constraint.hcl")["Constraints"][0]["Operand"],
        "regexp"
    );
    assert_eq!(
        ok("set-contains-constraint.hcl")["Constraints"][0]["RTarget"],
        "foo,bar,baz"
    );
    assert_eq!(
        ok("periodic-crons.hcl")["Periodic"]["Specs"],
        json!(["*/5 * * *", "*/7 * * *"])
    );
    assert_eq!(
        ok("task-nested-config.hcl")["TaskGroups"][0]["Tasks"][0]["Config"],
        json!({"image": "hashicorp/image", "port_map": [{"db": 1234}]})
    );
    assert_eq!(
        ok("consul-namespace.hcl")["TaskGroups"][0]["Consul"],
        json!({"Namespace": "foo"})
    );
    let scaling = ok("task-scaling-policy.hcl");
    let types: Vec<&Value> = scaling["TaskGroups"][0]["Tasks"][0]["ScalingPolicies"]
        .as_array()
        .map(|l| l.iter().map(|p| &p["Type"]).collect())
        .unwrap_or_default();
    assert_eq!(types, [&json!("vertical_cpu"), &json!("vertical_mem")]);
    let ports = ok("parse-ports.hcl");
    assert_eq!(
        ports["TaskGroups"][0]["Networks"][0]["ReservedPorts"][0]["Value"],
        9000
    );

    // Nomad's HCL1 parser refuses these; so does yurt.
    for name in [
        "multi-network.hcl",
        "multi-resource.hcl",
        "multi-vault.hcl",
        "bad-artifact.hcl",
        "bad-ports.hcl",
        "overlapping-ports.hcl",
        "basic_wrong_key.hcl",
        "tg-scaling-policy-missing-max.hcl",
        "tg-scaling-policy-multi-policy.hcl",
        "tg-scaling-policy-with-label.hcl",
        "tg-scaling-policy-invalid-type.hcl",
        "task-scaling-policy-missing-name.hcl",
        "task-scaling-policy-multi-name.hcl",
        "task-scaling-policy-multi-cpu.hcl",
        "task-scaling-policy-invalid-type.hcl",
        "task-scaling-policy-invalid-resource.hcl",
    ] {
        let e = parse_fixture(name).map(|p| p.job).expect_err(name);
        assert!(e.pos.line > 0, "{name}: the error has no position: {e}");
    }

    // Every other fixture parses, or is refused for a named reason.
    let (mut parsed, mut refused) = (0, Vec::new());
    for path in list.lines() {
        let name = path.rsplit('/').next().unwrap_or(path);
        match std::panic::catch_unwind(|| parse_fixture(name)) {
            Ok(Ok(_)) => parsed += 1,
            Ok(Err(e)) => refused.push(e.to_string()),
            Err(_) => panic!("the parser panicked on {name}"),
        }
    }
    eprintln!(
        "Nomad HCL1 fixtures: {parsed} parsed, {} refused:",
        refused.len()
    );
    for e in &refused {
        eprintln!("  {e}");
    }
}

#[test]
fn parsed_job_converts_to_the_api_type_with_every_field() {
    let parsed = parse(&with_env_name(config("variables.nomad.hcl"))).expect("parses");
    let job = parsed.to_job().expect("fits the job type");
    assert_eq!(job.id, "web");
    assert_eq!(job.task_groups.as_ref().map(Vec::len), Some(1));
    assert_eq!(job.groups()[0].count, 2);
    let task = &job.groups()[0].tasks()[0];
    assert_eq!(task.resources().cpu, 300);
    assert_eq!(
        task.env
            .as_ref()
            .and_then(|e| e.get("HOST_PORT"))
            .map(String::as_str),
        Some("${NOMAD_PORT_http}")
    );
    // The reply without Canonicalize lists every key, unset ones null.
    let api = parsed.api_json();
    assert_eq!(api["Priority"], Value::Null);
    assert_eq!(api["Dispatched"], false);
    assert_eq!(api["TaskGroups"][0]["RestartPolicy"], Value::Null);
    assert_eq!(api["TaskGroups"][0]["Tasks"][0]["KillSignal"], "");
}

/// Opt-in: parses every `.nomad`/`.hcl` file under `e2e/` of a hashicorp/nomad clone
/// (`YURT_NOMAD_REPO=<dir>`, bare or not) and reports how many parsed and why the others did
/// not. Files without a top-level `job` block (agent configs, ACL policies, volume specs) are
/// counted apart. Never panics on any input.
#[test]
fn nomad_e2e_job_files_when_a_nomad_repo_is_given() {
    let Ok(repo) = std::env::var("YURT_NOMAD_REPO") else {
        eprintln!("YURT_NOMAD_REPO not set: skipping the Nomad e2e corpus");
        return;
    };
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let list = String::from_utf8(git(&["ls-tree", "-r", "--name-only", "HEAD", "e2e"]))
        .expect("utf-8 paths");
    let files: Vec<&str> = list
        .lines()
        .filter(|p| p.ends_with(".nomad") || p.ends_with(".hcl"))
        .collect();
    let (mut parsed, mut not_jobs, mut needs_vars) = (0, 0, 0);
    let mut causes: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for path in &files {
        let body = String::from_utf8_lossy(&git(&["show", &format!("HEAD:{path}")])).into_owned();
        let is_job = body
            .lines()
            .any(|l| l.starts_with("job ") || l.starts_with("job\t"));
        let mut cfg = ParseConfig {
            path: path.to_string(),
            body,
            ..ParseConfig::default()
        };
        // Nomad's e2e suite passes -var values; a file needing some is retried with a
        // placeholder ("1" fits strings and numbers) to see whether the rest parses.
        let mut outcome;
        loop {
            let result = std::panic::catch_unwind(|| parse(&cfg));
            outcome = result.unwrap_or_else(|_| panic!("the parser panicked on {path}"));
            match &outcome {
                Err(e) if cfg.envs.len() < 8 => match &e.kind {
                    ErrorKind::RequiredVariable(name) => {
                        cfg.envs
                            .push((format!("NOMAD_VAR_{name}"), "1".to_string()));
                    }
                    _ => break,
                },
                _ => break,
            }
        }
        if !cfg.envs.is_empty() && outcome.is_ok() {
            needs_vars += 1;
        }
        match outcome {
            Ok(p) => match p.to_job() {
                Ok(_) => parsed += 1,
                Err(e) => causes
                    .entry("does not fit yurt's job type".to_string())
                    .or_default()
                    .push(format!("{path}: {e}")),
            },
            Err(_) if !is_job => not_jobs += 1,
            Err(e) if matches!(e.kind, ErrorKind::RequiredVariable(_)) => causes
                .entry("needs a -var value".to_string())
                .or_default()
                .push(e.to_string()),
            Err(e) => {
                let cause = match &e.kind {
                    ErrorKind::UnknownBlock { name, .. } => format!("unknown block {name:?}"),
                    ErrorKind::UnknownArgument { name, .. } => format!("unknown argument {name:?}"),
                    ErrorKind::Eval(m) => {
                        format!("eval: {}", m.split(" in expression").next().unwrap_or(m))
                    }
                    other => format!("{other}"),
                };
                causes.entry(cause).or_default().push(e.to_string());
            }
        }
    }
    let failed: usize = causes.values().map(Vec::len).sum();
    eprintln!(
        "Nomad e2e corpus: {} files; {parsed} parsed ({needs_vars} of them with placeholder \
         -var values); {not_jobs} are not job files; {failed} job files failed:",
        files.len()
    );
    for (cause, errs) in &causes {
        eprintln!("  {:3} × {cause}  (e.g. {})", errs.len(), errs[0]);
    }
    assert!(parsed > 0, "no file of the corpus parsed");
}

#[test]
fn escapes_directives_and_group_vault() {
    let body = r#"
locals {
  names = ["a", "b"]
}
job "esc" {
  group "g" {
    vault {
      policies = ["p"]
    }
    task "t" {
      driver = "exec"
      env {
        LITERAL   = "$${NOT_INTERPOLATED}"
        DIRECTIVE = "%{ for n in local.names }${n};%{ endfor }"
        MIXED     = "${upper("x")}-${NOMAD_TASK_NAME}-${attr.unique.hostname}"
      }
    }
    task "own" {
      driver = "exec"
      vault {
        policies = ["q"]
      }
    }
  }
}
"#;
    let job = parse_ok(&text(body));
    let g = &job["TaskGroups"][0];
    assert_eq!(
        g["Tasks"][0]["Env"],
        json!({"LITERAL": "${NOT_INTERPOLATED}", "DIRECTIVE": "a;b;",
               "MIXED": "X-${NOMAD_TASK_NAME}-${attr.unique.hostname}"})
    );
    assert!(
        g.get("Vault").is_none(),
        "a group-level vault moves into the tasks"
    );
    assert_eq!(g["Tasks"][0]["Vault"]["Policies"], json!(["p"]));
    assert_eq!(g["Tasks"][1]["Vault"]["Policies"], json!(["q"]));
}

#[test]
fn dynamic_blocks_in_driver_config_and_with_an_iterator() {
    let body = r#"
variable "mounts" {
  type    = list(object({ source = string, target = string, mode = optional(string) }))
  default = [
    { source = "/srv/a", target = "/a" },
    { source = "/srv/b", target = "/b" },
  ]
}
job "dyn" {
  group "g" {
    dynamic "constraint" {
      for_each = ["linux", "darwin"]
      iterator = os
      content {
        attribute = "${attr.kernel.name}"
        operator  = "!="
        value     = os.value == "linux" ? "windows" : os.value
      }
    }
    task "t" {
      driver = "docker"
      config {
        image = "busybox"
        dynamic "mount" {
          for_each = var.mounts
          content {
            type   = "bind"
            source = mount.value.source
            target = mount.value.target
          }
        }
      }
    }
  }
}
"#;
    let job = parse_ok(&text(body));
    let g = &job["TaskGroups"][0];
    assert_eq!(
        g["Constraints"],
        json!([
            {"LTarget": "${attr.kernel.name}", "Operand": "!=", "RTarget": "windows"},
            {"LTarget": "${attr.kernel.name}", "Operand": "!=", "RTarget": "darwin"},
        ])
    );
    assert_eq!(
        g["Tasks"][0]["Config"]["mount"],
        json!([
            {"type": "bind", "source": "/srv/a", "target": "/a"},
            {"type": "bind", "source": "/srv/b", "target": "/b"},
        ])
    );

    // A dynamic block of a type the enclosing block does not have is an error at its label.
    let e = parse_err(&text(
        "job \"d\" {\n  dynamic \"nope\" {\n    for_each = [1]\n    content {}\n  }\n}\n",
    ));
    assert!(
        matches!(e.kind, ErrorKind::UnknownBlock { ref name, .. } if name == "nope"),
        "{e}"
    );
    assert_eq!(
        e.pos,
        Pos {
            line: 2,
            column: 11
        }
    );
}

#[test]
fn parameterized_multiregion_scaling_volumes_devices_and_actions() {
    let job = parse_ok(&config("dispatch-and-more.nomad.hcl"));
    assert_eq!(
        job["ParameterizedJob"],
        json!({"Payload": "required", "MetaRequired": ["input"], "MetaOptional": ["preset"]})
    );
    assert_eq!(
        job["Multiregion"],
        json!({"Strategy": {"MaxParallel": 1, "OnFailure": "fail_all"},
               "Regions": [{"Name": "west", "Count": 2, "Datacenters": ["w1"], "Meta": {"zone": "w"}}]})
    );
    let g = &job["TaskGroups"][0];
    assert_eq!(
        g["Scaling"],
        json!({"Min": 1, "Max": 5, "Enabled": true, "Type": "horizontal",
               "Policy": {"cooldown": "1m", "check": [{"source": "prometheus"}]}})
    );
    assert_eq!(
        g["Volumes"]["media"],
        json!({"Name": "media", "Type": "csi", "Source": "media-vol", "AccessMode": "single-node-writer",
               "AttachmentMode": "file-system", "PerAlloc": true,
               "MountOptions": {"FSType": "ext4", "MountFlags": ["noatime"]}})
    );
    assert_eq!(
        g["Disconnect"],
        json!({"LostAfter": 300 * S, "Replace": false, "Reconcile": "keep_original"})
    );
    assert_eq!(g["Consul"], json!({"Namespace": "media"}));
    assert_eq!(g["Networks"][0]["DNS"], json!({"Servers": ["10.0.0.53"]}));
    assert_eq!(g["Networks"][0]["CNI"], json!({"Args": {"tier": "gold"}}));
    let t = &g["Tasks"][0];
    assert_eq!(t["Kind"], "worker");
    assert_eq!(t["Leader"], true);
    assert_eq!(
        t["RestartPolicy"],
        json!({"Attempts": 1, "RenderTemplates": true})
    );
    let tmpl = &t["Templates"][0];
    assert_eq!(
        tmpl["ChangeScript"],
        json!({"Command": "/bin/reload", "Args": ["-q"], "Timeout": 20 * S, "FailOnError": true,
               "RunOnFirstRender": false})
    );
    assert_eq!(tmpl["Wait"], json!({"Min": 2 * S, "Max": 10 * S}));
    assert_eq!(
        t["Artifacts"][0]["GetterHeaders"],
        json!({"Authorization": "Bearer t"})
    );
    // A named identity stays in Identities.
    assert_eq!(
        t["Identities"],
        json!([{"Name": "vault_default", "Audience": ["vault.io"], "TTL": 3600 * S}])
    );
    assert!(t.get("Identity").is_none());
    assert_eq!(
        t["Actions"],
        json!([{"Name": "probe", "Command": "/bin/probe", "Args": ["--fast"]}])
    );
    assert_eq!(
        t["Resources"],
        json!({"CPU": 2000, "MemoryMB": 1024, "MemoryMaxMB": 2048,
               "Devices": [{"Name": "nvidia/gpu", "Count": 1, "Constraints": [
                   {"LTarget": "${device.attr.memory}", "Operand": ">=", "RTarget": "2 GiB"}]}],
               "NUMA": {"Affinity": "require"}})
    );
    assert_eq!(
        t["VolumeMounts"],
        json!([{"Volume": "media", "Destination": "/media", "ReadOnly": true}])
    );
}
