//! Hostile input for every decoder an outsider can reach, called in-process: generated and
//! mutated input must come back as an error carrying a message (a 4xx for HTTP decoders),
//! never as a panic. Each property runs a modest number of cases so the suite stays quick;
//! regression cases found by the properties are pinned as plain tests below them.

use axum::http::HeaderMap;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

use yurt::acl::policy::parse as parse_policy;
use yurt::agent::{AgentConfig, ConfigFormat, parse_config};
use yurt::client::http::exec_frames::{Handshake, parse_input};
use yurt::http::filter::Filter;
use yurt::http::query::{QueryOptions, QueryParams, WriteOptions, parse_wait};
use yurt::http::{HttpError, decode_json};
use yurt::jobspec::{ParseConfig, parse};
use yurt::rpc::{ClientAllocsRequest, GetAllocsRequest, NodeStatusRequest, UpdateAllocsRequest};
use yurt::server::ops::jobs::JobRegisterRequest;
use yurt::structs::Node;
use yurt::structs::acl::{AclPolicy, AclRole, AclToken};
use yurt::structs::canonicalize::canonicalize_job;
use yurt::structs::validate::validate_job;
use yurt::structs::variable::VariableDecrypted;
use yurt_drivers::supervisor::protocol::{MAX_REQUEST_LINE, Request, Response, decode_request};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jobspec");

/// 256 cases per property by default; `PROPTEST_CASES=20000` for a deeper hunt.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        // A failing case is shrunk, but not for minutes on a shared 2-core machine.
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    }
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}"))
        .unwrap_or_else(|e| panic!("reading fixture {name}: {e}"))
}

fn job_files() -> Vec<String> {
    [
        "webcache.nomad.hcl",
        "batch-features.nomad.hcl",
        "connect.nomad.hcl",
        "dispatch-and-more.nomad.hcl",
        "variables.nomad.hcl",
    ]
    .iter()
    .map(|n| fixture(n))
    .collect()
}

/// An HTTP decoder's error must be the client's (4xx) and say something.
fn assert_client_error(err: &HttpError) -> Result<(), TestCaseError> {
    prop_assert!(
        err.status().is_client_error(),
        "status {} for {err:?}",
        err.status()
    );
    prop_assert!(!err.to_string().trim().is_empty(), "empty message");
    Ok(())
}

/// Fragments that steer mutations toward the parsers' interesting paths.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "\"",
    "'",
    "\\",
    "\n",
    "=",
    ":",
    ",",
    ".",
    "..",
    "${",
    "%{",
    "}}",
    "*",
    "-",
    "+",
    "/",
    "null",
    "true",
    "0",
    "-1",
    "1e309",
    "18446744073709551616",
    "\u{0}",
    "\u{feff}",
    "é",
    "#",
    "//",
    "/*",
    "<<EOF\n",
    "\nEOF\n",
    "job",
    "group",
    "task",
    "count",
    "Job",
    "TaskGroups",
    "Tasks",
    "Count",
    "ID",
    "==",
    "!=",
    "contains",
    "matches",
    "is empty",
    "not",
    "and",
    "or",
    "in",
];

/// A text edit: delete a range, insert a token or arbitrary text, duplicate a slice.
#[derive(Debug, Clone)]
enum Edit {
    Delete(Index, u8),
    Insert(Index, String),
    Duplicate(Index, u8),
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    let token = prop::sample::select(TOKENS).prop_map(str::to_string);
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<Index>(), token).prop_map(|(i, t)| Edit::Insert(i, t)),
        (any::<Index>(), ".{0,8}").prop_map(|(i, t)| Edit::Insert(i, t)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, n)| Edit::Duplicate(i, n)),
        any::<Index>().prop_map(Edit::Truncate),
    ]
}

/// The byte offset of the `i`th char boundary, so edits keep the text valid UTF-8.
fn boundary(text: &str, i: &Index) -> usize {
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(text.len()))
        .collect();
    bounds[i.index(bounds.len())]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut s = text.to_string();
    for e in edits {
        match e {
            Edit::Delete(i, n) => {
                let at = boundary(&s, i);
                let end = s[at..]
                    .char_indices()
                    .nth(usize::from(*n))
                    .map_or(s.len(), |(b, _)| at + b);
                s.replace_range(at..end, "");
            }
            Edit::Insert(i, t) => {
                let at = boundary(&s, i);
                s.insert_str(at, t);
            }
            Edit::Duplicate(i, n) => {
                let at = boundary(&s, i);
                let end = s[at..]
                    .char_indices()
                    .nth(usize::from(*n))
                    .map_or(s.len(), |(b, _)| at + b);
                let piece = s[at..end].to_string();
                s.insert_str(end, &piece);
            }
            Edit::Truncate(i) => {
                let at = boundary(&s, i);
                s.truncate(at);
            }
        }
    }
    s
}

/// Arbitrary JSON, biased toward the shapes that confuse typed decoders.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(TOKENS).prop_map(|t| Value::String(t.to_string())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(TOKENS).prop_map(str::to_string),
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces the `i`th node (pre-order) of `doc` with `with`.
fn replace_node(doc: &mut Value, i: &Index, with: Value) {
    fn count(v: &Value) -> usize {
        1 + match v {
            Value::Array(a) => a.iter().map(count).sum(),
            Value::Object(o) => o.values().map(count).sum(),
            _ => 0,
        }
    }
    fn nth(v: &mut Value, mut n: usize) -> Option<&mut Value> {
        if n == 0 {
            return Some(v);
        }
        n -= 1;
        let children: Vec<&mut Value> = match v {
            Value::Array(a) => a.iter_mut().collect(),
            Value::Object(o) => o.values_mut().collect(),
            _ => return None,
        };
        for child in children {
            let c = count(child);
            if n < c {
                return nth(child, n);
            }
            n -= c;
        }
        None
    }
    let total = count(doc);
    if let Some(node) = nth(doc, i.index(total)) {
        *node = with;
    }
}

/// The API JSON of each fixture job, as a client would send it to `PUT /v1/jobs`.
fn job_bodies() -> Vec<Value> {
    job_files()
        .into_iter()
        .filter_map(|body| {
            // Only variables.nomad.hcl declares variables without defaults.
            let (var_content, envs) = if body.contains("variable \"") {
                let env = ("NOMAD_VAR_env_name".to_string(), "prod".to_string());
                (fixture("variables.vars.hcl"), vec![env])
            } else {
                (String::new(), vec![])
            };
            let parsed = parse(&ParseConfig {
                path: "fixture.nomad.hcl".into(),
                body,
                var_content,
                envs,
                ..ParseConfig::default()
            })
            .map_err(|e| eprintln!("fixture does not parse: {e}"))
            .ok()?;
            Some(json!({ "Job": parsed.api_json() }))
        })
        .collect()
}

/// What `PUT /v1/jobs` does with a body before it touches state: decode, canonicalize,
/// validate. Every step must survive whatever decoded.
fn register_decode(body: &[u8]) -> Result<(), TestCaseError> {
    match decode_json::<JobRegisterRequest>(body) {
        Err(e) => assert_client_error(&e)?,
        Ok(req) => {
            if let Some(mut job) = req.job {
                canonicalize_job(&mut job, "global");
                if let Err(e) = validate_job(&job) {
                    prop_assert!(!e.to_string().trim().is_empty());
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn job_json_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        register_decode(&body)?;
    }

    #[test]
    fn job_json_mutated_text(which in any::<Index>(), edits in prop::collection::vec(edit(), 1..6)) {
        let bodies = job_bodies();
        let text = serde_json::to_string(which.get(&bodies)).expect("fixture job serializes");
        register_decode(apply(&text, &edits).as_bytes())?;
    }

    #[test]
    fn job_json_mutated_tree(
        which in any::<Index>(),
        swaps in prop::collection::vec((any::<Index>(), json_value()), 1..4),
    ) {
        let bodies = job_bodies();
        let mut doc = which.get(&bodies).clone();
        for (at, with) in swaps {
            replace_node(&mut doc, &at, with);
        }
        register_decode(doc.to_string().as_bytes())?;
    }

    #[test]
    fn jobspec_arbitrary_text(body in ".{0,256}", vars in ".{0,64}") {
        jobspec_case(body, vars)?;
    }

    #[test]
    fn jobspec_mutated_files(which in any::<Index>(), edits in prop::collection::vec(edit(), 1..6)) {
        let files = job_files();
        jobspec_case(apply(which.get(&files).as_str(), &edits), String::new())?;
    }

    #[test]
    fn jobspec_mutated_var_file(edits in prop::collection::vec(edit(), 1..6)) {
        let vars = apply(&fixture("variables.vars.hcl"), &edits);
        jobspec_case(fixture("variables.nomad.hcl"), vars)?;
    }

    #[test]
    fn query_string_and_options(raw in "[a-z_=&%+?#0-9A-F.\\-*\u{80}-\u{10ffff}]{0,64}") {
        query_case(&raw)?;
    }

    #[test]
    fn query_params_known_names(
        pairs in prop::collection::vec(
            (
                prop::sample::select(&["index", "wait", "stale", "prefix", "namespace", "region",
                    "per_page", "next_token", "reverse", "pretty", "filter", "consistent",
                    "idempotency_token", "all", "resources"][..]),
                prop_oneof![".{0,12}".boxed(), any::<i64>().prop_map(|i| i.to_string()).boxed(),
                    Just("18446744073709551616".to_string()).boxed(),
                    "-?[0-9]{1,20}(ns|us|ms|s|m|h)?".boxed()],
            ),
            0..6,
        ),
    ) {
        let raw = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        query_case(&raw)?;
    }

    #[test]
    fn filter_arbitrary_text(expr in ".{0,64}") {
        filter_case(&expr)?;
    }

    #[test]
    fn filter_token_soup(parts in prop::collection::vec(
        prop_oneof![
            prop::sample::select(TOKENS).prop_map(str::to_string),
            "[A-Za-z.]{1,8}",
            "\"[^\"]{0,6}\"?",
            "`[^`]{0,6}`?",
        ],
        1..12,
    )) {
        filter_case(&parts.join(" "))?;
    }

    #[test]
    fn agent_config_hcl_text(text in ".{0,256}") {
        config_case(&text, ConfigFormat::Hcl)?;
    }

    #[test]
    fn agent_config_json_tree(doc in json_value()) {
        config_case(&doc.to_string(), ConfigFormat::Json)?;
    }

    #[test]
    fn agent_config_mutated(edits in prop::collection::vec(edit(), 1..6)) {
        config_case(&apply(AGENT_CONFIG, &edits), ConfigFormat::Hcl)?;
    }

    #[test]
    fn exec_frames_arbitrary_bytes(raw in prop::collection::vec(any::<u8>(), 0..256)) {
        exec_frame_case(&raw)?;
    }

    #[test]
    fn exec_frames_json_shapes(
        key in prop::sample::select(&["stdin", "tty_size", "setup", "other"][..]),
        inner in json_value(),
        data in prop_oneof![".{0,16}".boxed(), "[A-Za-z0-9+/=]{0,16}".boxed()],
    ) {
        let frame = json!({ key: inner });
        exec_frame_case(frame.to_string().as_bytes())?;
        let stdin = json!({ "stdin": { "data": data, "close": inner } });
        exec_frame_case(stdin.to_string().as_bytes())?;
        let size = json!({ "tty_size": { "height": inner, "width": -1 } });
        exec_frame_case(size.to_string().as_bytes())?;
        let _ = serde_json::from_value::<Handshake>(inner);
    }

    #[test]
    fn supervisor_request_lines(raw in prop::collection::vec(any::<u8>(), 0..MAX_REQUEST_LINE)) {
        supervisor_case(&raw)?;
    }

    #[test]
    fn supervisor_request_shapes(
        op in prop::sample::select(&["status", "signal", "stop", "wait", "shutdown", "", "Stop"][..]),
        signal in json_value(),
        timeout in json_value(),
    ) {
        let line = json!({ "op": op, "signal": signal, "timeout_ms": timeout }).to_string();
        supervisor_case(line.as_bytes())?;
        // The agent reads the supervisor's answers the same way.
        let _ = serde_json::from_str::<Response>(&line);
    }
}

/// Decodes `body` as each of the other request bodies the HTTP API and the client RPC take.
fn other_bodies_case(body: &[u8]) -> Result<(), TestCaseError> {
    fn one<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<(), TestCaseError> {
        if let Err(e) = decode_json::<T>(body) {
            assert_client_error(&e)?;
        }
        Ok(())
    }
    one::<Node>(body)?;
    one::<NodeStatusRequest>(body)?;
    one::<ClientAllocsRequest>(body)?;
    one::<GetAllocsRequest>(body)?;
    one::<UpdateAllocsRequest>(body)?;
    one::<AclToken>(body)?;
    one::<AclRole>(body)?;
    one::<VariableDecrypted>(body)?;
    match decode_json::<AclPolicy>(body) {
        Err(e) => assert_client_error(&e)?,
        Ok(p) => policy_case(&p.rules)?,
    }
    Ok(())
}

const POLICY: &str = r#"
namespace "default" {
  policy       = "write"
  capabilities = ["alloc-exec"]
  variables {
    path "app/*" {
      capabilities = ["read", "list"]
    }
  }
}
namespace "prod-*" {
  policy = "read"
}
node {
  policy = "read"
}
agent {
  policy = "deny"
}
operator {
  policy = "read"
}
host_volume "data" {
  capabilities = ["mount-readonly"]
}
"#;

fn policy_case(rules: &str) -> Result<(), TestCaseError> {
    if let Err(e) = parse_policy(rules) {
        prop_assert!(!e.to_string().trim().is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn other_request_bodies_json_trees(doc in json_value()) {
        other_bodies_case(doc.to_string().as_bytes())?;
    }

    #[test]
    fn other_request_bodies_wrapped(key in prop::sample::select(&["Node", "Allocs", "Alloc",
        "Name", "Rules", "Policies", "Items", "Path", "Status", "NodeID", "SecretID"][..]),
        inner in json_value()) {
        other_bodies_case(json!({ key: inner }).to_string().as_bytes())?;
    }

    #[test]
    fn acl_policy_rules_text(rules in ".{0,128}") {
        policy_case(&rules)?;
    }

    #[test]
    fn acl_policy_rules_mutated(edits in prop::collection::vec(edit(), 1..6)) {
        policy_case(&apply(POLICY, &edits))?;
    }

    #[test]
    fn acl_policy_rules_json(doc in json_value()) {
        policy_case(&doc.to_string())?;
        policy_case(&json!({ "namespace": { "default": doc } }).to_string())?;
    }
}

fn jobspec_case(body: String, var_content: String) -> Result<(), TestCaseError> {
    let cfg = ParseConfig {
        path: "input.hcl".into(),
        body,
        var_content,
        ..ParseConfig::default()
    };
    match parse(&cfg) {
        Err(e) => prop_assert!(!e.to_string().trim().is_empty()),
        Ok(parsed) => {
            let _ = parsed.api_json();
            match parsed.to_job() {
                Err(e) => prop_assert!(!e.to_string().trim().is_empty()),
                Ok(mut job) => {
                    canonicalize_job(&mut job, "global");
                    let _ = validate_job(&job);
                }
            }
        }
    }
    Ok(())
}

fn query_case(raw: &str) -> Result<(), TestCaseError> {
    let params = match QueryParams::parse(Some(raw)) {
        Ok(p) => p,
        Err(e) => return assert_client_error(&e),
    };
    let headers = HeaderMap::new();
    if let Err(e) = QueryOptions::parse(&params, &headers) {
        assert_client_error(&e)?;
    }
    let _ = WriteOptions::parse(&params, &headers);
    if let Err(e) = parse_wait(params.get("wait")) {
        assert_client_error(&e)?;
    }
    for name in ["stale", "reverse", "pretty", "index", "per_page"] {
        if let Err(e) = params.flag(name) {
            assert_client_error(&e)?;
        }
        if let Err(e) = params.int::<u64>(name) {
            assert_client_error(&e)?;
        }
        if let Err(e) = params.int::<i32>(name) {
            assert_client_error(&e)?;
        }
    }
    if let Some(f) = params.get("filter") {
        filter_case(f)?;
    }
    Ok(())
}

fn percent_encode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A job-list stub as the filter sees it.
fn filter_subject() -> Value {
    json!({
        "ID": "web", "Name": "web", "Status": "running", "Priority": 50, "Stop": false,
        "Meta": {"team": "a", "": "empty"}, "Datacenters": ["dc1", "dc2"],
        "TaskGroups": [{"Name": "g", "Count": 3, "Tasks": [{"Name": "t", "Driver": "exec"}]}],
        "Nil": null, "Float": 1.5,
    })
}

fn filter_case(expr: &str) -> Result<(), TestCaseError> {
    match Filter::parse(expr) {
        Err(e) => prop_assert!(!e.to_string().trim().is_empty()),
        Ok(f) => {
            if let Err(e) = f.matches(&filter_subject()) {
                prop_assert!(!e.to_string().trim().is_empty());
            }
        }
    }
    Ok(())
}

const AGENT_CONFIG: &str = r#"
data_dir  = "/tmp/yurt-fuzz"
bind_addr = "127.0.0.1"
log_level = "INFO"
ports {
  http = 4646
}
server {
  enabled          = true
  bootstrap_expect = 1
}
client {
  enabled    = true
  servers    = ["127.0.0.1:4647"]
  node_class = "fuzz"
  meta {
    rack = "r1"
  }
}
acl {
  enabled   = false
  token_ttl = "30s"
}
plugin "raw_exec" {
  config {
    enabled = true
  }
}
"#;

fn config_case(text: &str, format: ConfigFormat) -> Result<(), TestCaseError> {
    match parse_config(text, format, "fuzz.hcl") {
        Err(e) => prop_assert!(!e.to_string().trim().is_empty()),
        Ok(loaded) => {
            if let Err(e) = AgentConfig::resolve(loaded.config, false, loaded.warnings) {
                prop_assert!(!e.to_string().trim().is_empty());
            }
        }
    }
    Ok(())
}

fn exec_frame_case(raw: &[u8]) -> Result<(), TestCaseError> {
    if let Err(e) = parse_input(raw) {
        prop_assert!(!e.trim().is_empty());
    }
    Ok(())
}

fn supervisor_case(line: &[u8]) -> Result<(), TestCaseError> {
    match decode_request(line) {
        Err(e) => prop_assert!(e.starts_with("bad request: ") && e.len() > "bad request: ".len()),
        Ok(req) => {
            // Whatever decodes must survive a round trip: the agent writes these lines too.
            let again = serde_json::to_vec(&req).expect("a request serializes");
            prop_assert_eq!(decode_request(&again).ok(), Some(req));
        }
    }
    Ok(())
}

#[test]
fn fixtures_parse_so_mutations_start_from_valid_input() {
    assert_eq!(job_bodies().len(), job_files().len());
    parse_policy(POLICY).expect("the policy mutations start from parses");
    let loaded = parse_config(AGENT_CONFIG, ConfigFormat::Hcl, "fuzz.hcl").expect("parses");
    assert_eq!(loaded.warnings, Vec::<String>::new());
    AgentConfig::resolve(loaded.config, false, loaded.warnings).expect("resolves");
}

#[test]
fn supervisor_refuses_unknown_ops_with_a_message() {
    let err = decode_request(br#"{"op":"exec","cmd":"sh"}"#).expect_err("unknown op");
    assert!(err.contains("exec"), "{err}");
    assert_eq!(
        decode_request(br#"{"op":"stop","signal":15,"timeout_ms":5000}"#),
        Ok(Request::Stop {
            signal: 15,
            timeout_ms: 5000
        })
    );
}

/// Deep nesting must come back as an error, not exhaust the stack of the thread serving it.
#[test]
fn deeply_nested_input_is_refused_not_a_stack_overflow() {
    let depth = 20_000;
    let json = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let body = format!(r#"{{"Job":{{"Meta":{json}}}}}"#);
    assert_client_error(&decode_json::<JobRegisterRequest>(body.as_bytes()).expect_err("too deep"))
        .expect("a 4xx");
    // These aborted the agent (stack overflow) before the filter parser bounded its depth.
    for levels in [100, 1000, depth] {
        let parens = format!("{}ID == \"x\"{}", "(".repeat(levels), ")".repeat(levels));
        let nots = format!("{}ID == \"x\"", "not ".repeat(levels));
        for expr in [parens, nots] {
            let err = Filter::parse(&expr).expect_err("too deep").to_string();
            assert!(
                err.contains("nests deeper") || err.contains("longer than"),
                "{err}"
            );
        }
    }
    let ok = format!("{}ID == \"web\"{}", "(".repeat(64), ")".repeat(64));
    assert!(
        Filter::parse(&ok)
            .expect("64 levels")
            .matches(&filter_subject())
            .expect("evaluates")
    );
    let chain = vec!["ID == \"x\""; depth].join(" and ");
    let err = Filter::parse(&chain).expect_err("too long").to_string();
    assert!(err.contains("longer than"), "{err}");
    // The longest chain accepted still evaluates (and drops) without trouble.
    let chain = vec!["ID == \"web\""; 500].join(" and ");
    let f = Filter::parse(&chain).expect("a long chain within the limit");
    assert!(f.matches(&filter_subject()).expect("evaluates"));
    let hcl = format!(
        "job \"x\" {{ meta = {}{} }}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let _ = parse(&ParseConfig {
        path: "deep.hcl".into(),
        body: hcl,
        ..ParseConfig::default()
    });
}
