//! End to end: ACLs on real agents. Bootstrap (twice, and again through the reset file),
//! the endpoint matrix (a token with the capability, one without, no token), list filtering
//! by namespace, exec into raw_exec vs exec tasks, requests forwarded to another agent,
//! expired tokens, and ACL objects surviving a restart.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const ACL_HCL: &str = "acl {\n  enabled = true\n  token_min_expiration_ttl = \"1s\"\n}\n";

/// A tiny HTTP client that sends a token (or none).
struct Api {
    client: reqwest::blocking::Client,
    token: Option<String>,
}

impl Api {
    fn new(token: Option<&str>) -> Api {
        Api {
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
            token: token.map(str::to_string),
        }
    }

    fn send(&self, method: &str, url: &str, body: Option<&Value>) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, url);
        if let Some(t) = &self.token {
            req = req.header("X-Nomad-Token", t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        Resp {
            status,
            headers,
            body: r.text().unwrap_or_default(),
        }
    }

    fn get(&self, url: &str) -> Resp {
        self.send("GET", url, None)
    }

    fn post(&self, url: &str, body: &Value) -> Resp {
        self.send("POST", url, Some(body))
    }

    fn put(&self, url: &str, body: &Value) -> Resp {
        self.send("PUT", url, Some(body))
    }
}

fn acl_agent(mut opts: AgentOpts) -> Agent {
    opts.extra_hcl.push_str(ACL_HCL);
    Agent::start(opts)
}

fn bootstrap(agent: &Agent) -> String {
    let r = Api::new(None).post(&agent.url("/v1/acl/bootstrap"), &json!({}));
    assert_eq!(r.status, 200, "bootstrap: {}", r.body);
    r.json()["SecretID"].as_str().expect("SecretID").to_string()
}

/// Creates policy `name` with `rules` and a client token holding it; returns its secret.
fn token_with(agent: &Agent, mgmt: &Api, name: &str, rules: &str) -> String {
    let r = mgmt.post(
        &agent.url(&format!("/v1/acl/policy/{name}")),
        &json!({"Name": name, "Rules": rules}),
    );
    assert_eq!(r.status, 200, "policy {name}: {}", r.body);
    let r = mgmt.post(
        &agent.url("/v1/acl/token"),
        &json!({"Name": name, "Type": "client", "Policies": [name]}),
    );
    assert_eq!(r.status, 200, "token {name}: {}", r.body);
    r.json()["SecretID"].as_str().expect("SecretID").to_string()
}

#[test]
fn bootstrap_once_then_again_through_the_reset_file_and_objects_survive_a_restart() {
    let mut agent = acl_agent(AgentOpts::server());
    let anon = Api::new(None);
    let r = anon.post(&agent.url("/v1/acl/bootstrap"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let first = r.json();
    assert_eq!(first["Name"], "Bootstrap Token");
    assert_eq!(first["Type"], "management");
    assert_eq!(first["Global"], true);
    for field in ["AccessorID", "SecretID", "CreateTime"] {
        assert!(
            first[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field}: {first}"
        );
    }
    let reset_index = first["CreateIndex"].as_u64().expect("CreateIndex");
    assert!(first["ModifyIndex"].as_u64().is_some());

    let r = anon.post(&agent.url("/v1/acl/bootstrap"), &json!({}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        format!("ACL bootstrap already done (reset index: {reset_index})")
    );

    // A wrong index in the reset file is refused naming both; the right one allows one more.
    let reset_file = agent
        .data_dir
        .path()
        .join("data/server/acl-bootstrap-reset");
    std::fs::write(&reset_file, "999999").unwrap();
    let r = anon.post(&agent.url("/v1/acl/bootstrap"), &json!({}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        format!("Invalid bootstrap reset index (specified 999999, reset index: {reset_index})")
    );
    std::fs::write(&reset_file, format!("{reset_index}\n")).unwrap();
    let secret = "3c4d1a2b-0000-4000-8000-00000000abcd";
    let r = anon.post(
        &agent.url("/v1/acl/bootstrap"),
        &json!({"BootstrapSecret": secret}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["SecretID"],
        secret,
        "the given BootstrapSecret is used"
    );
    let second_index = r.json()["CreateIndex"].as_u64().unwrap();
    let r = anon.post(&agent.url("/v1/acl/bootstrap"), &json!({}));
    assert_eq!(r.status, 400, "the same reset index works once: {}", r.body);
    assert_eq!(
        r.body,
        format!(
            "Invalid bootstrap reset index (specified {reset_index}, reset index: {second_index})"
        )
    );

    // Policies, tokens and roles survive a restart.
    let mgmt = Api::new(Some(secret));
    let reader = token_with(&agent, &mgmt, "readers", "node {\n  policy = \"read\"\n}\n");
    let r = mgmt.post(
        &agent.url("/v1/acl/role"),
        &json!({"Name": "ops", "Policies": [{"Name": "readers"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let role_id = r.json()["ID"].as_str().unwrap().to_string();
    agent.restart();
    assert_eq!(
        Api::new(Some(&reader)).get(&agent.url("/v1/nodes")).status,
        200
    );
    let r = mgmt.get(&agent.url("/v1/acl/role/name/ops"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ID"], role_id.as_str());
    let r = mgmt.get(&agent.url("/v1/acl/policies"));
    assert_eq!(r.json().as_array().map(Vec::len), Some(1), "{}", r.body);
    // Secrets never reach the log.
    assert!(!agent.log().contains(secret), "a secret was logged");
    assert!(!agent.log().contains(&reader), "a secret was logged");
}

/// A client token reads its own token, the policies it holds (directly or through a role)
/// and its roles, and nothing else of the ACL system, as in Nomad.
#[test]
fn a_client_token_reads_what_it_holds_and_nothing_else() {
    let agent = acl_agent(AgentOpts::server());
    let mgmt = Api::new(Some(&bootstrap(&agent)));
    for (name, rules) in [
        ("direct", "node {\n  policy = \"read\"\n}\n"),
        ("via-role", "agent {\n  policy = \"read\"\n}\n"),
        ("foreign", "operator {\n  policy = \"read\"\n}\n"),
    ] {
        let r = mgmt.post(
            &agent.url(&format!("/v1/acl/policy/{name}")),
            &json!({"Name": name, "Rules": rules}),
        );
        assert_eq!(r.status, 200, "policy {name}: {}", r.body);
    }
    let mut role_ids = Vec::new();
    for (role, policy) in [("mine", "via-role"), ("theirs", "foreign")] {
        let r = mgmt.post(
            &agent.url("/v1/acl/role"),
            &json!({"Name": role, "Policies": [{"Name": policy}]}),
        );
        assert_eq!(r.status, 200, "role {role}: {}", r.body);
        role_ids.push(r.json()["ID"].as_str().unwrap().to_string());
    }
    let mut tokens = Vec::new();
    for (name, role) in [("me", &role_ids[0]), ("other", &role_ids[1])] {
        let r = mgmt.post(
            &agent.url("/v1/acl/token"),
            &json!({"Name": name, "Type": "client", "Policies": ["direct"], "Roles": [{"ID": role}]}),
        );
        assert_eq!(r.status, 200, "token {name}: {}", r.body);
        let t = r.json();
        tokens.push((
            t["SecretID"].as_str().unwrap().to_string(),
            t["AccessorID"].as_str().unwrap().to_string(),
        ));
    }
    let me = Api::new(Some(&tokens[0].0));
    let status = |path: &str| me.get(&agent.url(path)).status;
    assert_eq!(status("/v1/acl/policy/direct"), 200);
    assert_eq!(status("/v1/acl/policy/via-role"), 200);
    assert_eq!(status(&format!("/v1/acl/token/{}", tokens[0].1)), 200);
    assert_eq!(status(&format!("/v1/acl/role/{}", role_ids[0])), 200);
    assert_eq!(status("/v1/acl/role/name/mine"), 200);
    for path in [
        "/v1/acl/policy/foreign".to_string(),
        format!("/v1/acl/token/{}", tokens[1].1),
        format!("/v1/acl/role/{}", role_ids[1]),
        "/v1/acl/role/name/theirs".to_string(),
        "/v1/acl/policies".to_string(),
        "/v1/acl/tokens".to_string(),
    ] {
        let r = me.get(&agent.url(&path));
        assert_eq!(
            (r.status, r.body.as_str()),
            (403, "Permission denied"),
            "{path}"
        );
    }
    let r = Api::new(None).get(&agent.url("/v1/acl/policy/direct"));
    assert_eq!(r.status, 403, "no token: {}", r.body);
    let r = me.send(
        "DELETE",
        &agent.url(&format!("/v1/acl/token/{}", tokens[0].1)),
        None,
    );
    assert_eq!(r.status, 403, "reading is not deleting: {}", r.body);
}

#[test]
fn policies_are_validated_and_tokens_expire() {
    let agent = acl_agent(AgentOpts::server());
    let mgmt = Api::new(Some(&bootstrap(&agent)));
    let r = mgmt.post(
        &agent.url("/v1/acl/policy/bad"),
        &json!({"Rules": "namespace \"default\" {\n  policy = \"reed\"\n}\n"}),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body
            .contains("namespace \"default\": invalid namespace policy \"reed\""),
        "{}",
        r.body
    );
    let r = mgmt.post(
        &agent.url("/v1/acl/policy/bad"),
        &json!({"Rules": "namespace \"default\" {\n  policy = \n}\n"}),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("line 2"),
        "a syntax error says where: {}",
        r.body
    );

    let r = mgmt.post(
        &agent.url("/v1/acl/policy/nodes"),
        &json!({"Rules": "node {\n  policy = \"read\"\n}\n"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = mgmt.post(
        &agent.url("/v1/acl/token"),
        &json!({"Type": "client", "Policies": ["nodes"], "ExpirationTTL": 2_000_000_000i64}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let t = r.json();
    assert!(t["ExpirationTime"].as_str().is_some(), "{t}");
    let (secret, accessor) = (
        t["SecretID"].as_str().unwrap().to_string(),
        t["AccessorID"].as_str().unwrap().to_string(),
    );
    let api = Api::new(Some(&secret));
    assert_eq!(api.get(&agent.url("/v1/nodes")).status, 200);
    assert_eq!(
        api.get(&agent.url("/v1/acl/token/self")).json()["AccessorID"],
        accessor.as_str()
    );
    std::thread::sleep(Duration::from_millis(2500));
    let r = api.get(&agent.url("/v1/nodes"));
    assert_eq!(r.status, 403, "an expired token is refused");
    assert!(
        r.body == "ACL token expired" || r.body == "ACL token not found",
        "{}",
        r.body
    );
    wait_for(Duration::from_secs(20), "the expired token reaped", || {
        (mgmt
            .get(&agent.url(&format!("/v1/acl/token/{accessor}")))
            .status
            == 404)
            .then_some(())
    });
    // A client token without policies, or a TTL below the minimum, is refused.
    let r = mgmt.post(&agent.url("/v1/acl/token"), &json!({"Type": "client"}));
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "client token missing policies or roles")
    );
    let r = mgmt.post(
        &agent.url("/v1/acl/token"),
        &json!({"Type": "client", "Policies": ["nodes"], "ExpirationTTL": 100_000_000i64}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.starts_with("expiration time cannot be less than 1s"),
        "{}",
        r.body
    );

    // A one-time token is exchanged once for the token it was made for.
    let r = mgmt.post(&agent.url("/v1/acl/token/onetime"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let once = r.json()["OneTimeToken"].clone();
    assert!(once["ExpiresAt"].as_str().is_some(), "{once}");
    let exchange = json!({"OneTimeSecretID": once["OneTimeSecretID"]});
    let anon = Api::new(None);
    let r = anon.post(&agent.url("/v1/acl/token/onetime/exchange"), &exchange);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["Token"]["SecretID"],
        mgmt.token.as_deref().unwrap()
    );
    let r = anon.post(&agent.url("/v1/acl/token/onetime/exchange"), &exchange);
    assert_eq!((r.status, r.body.as_str()), (403, "Permission denied"));
    let r = anon.post(&agent.url("/v1/acl/token/onetime"), &json!({}));
    assert_eq!((r.status, r.body.as_str()), (403, "ACL token not found"));
}

/// The endpoint families × {token with the capability, token without it, no token}.
#[test]
fn endpoint_matrix_list_filtering_and_exec_capabilities() {
    let agent = acl_agent(AgentOpts::dev());
    let root = bootstrap(&agent);
    let mgmt = Api::new(Some(&root));
    // A dev agent with ACLs runs the client flows with a management token.
    let job = shell_job("web", &[("main", "echo hello; exec sleep 1000")]);
    let r = mgmt.put(&agent.url("/v1/jobs"), &json!({"Job": job}));
    assert_eq!(r.status, 200, "{}", r.body);
    let alloc = wait_for(Duration::from_secs(60), "the alloc running", || {
        let allocs = mgmt.get(&agent.url("/v1/job/web/allocations")).json();
        allocs.as_array()?.iter().find_map(|a| {
            (a["TaskStates"]["main"]["State"] == "running")
                .then(|| a["ID"].as_str().map(str::to_string))?
        })
    });
    // Namespaces are objects: a job needs its namespace to exist, and creating one takes a
    // management token.
    let ns = json!({"Name": "other"});
    let r = Api::new(None).post(&agent.url("/v1/namespace/other"), &ns);
    assert_eq!((r.status, r.body.as_str()), (403, "Permission denied"));
    let r = mgmt.post(&agent.url("/v1/namespace/other"), &ns);
    assert_eq!(r.status, 200, "{}", r.body);
    let mut other = service_job("elsewhere", 0);
    other["Namespace"] = json!("other");
    let r = mgmt.put(
        &agent.url("/v1/jobs?namespace=other"),
        &json!({"Job": other}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let eval = mgmt.get(&agent.url("/v1/job/web/evaluations")).json()[0]["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let node = mgmt.get(&agent.url("/v1/nodes")).json()[0]["ID"]
        .as_str()
        .unwrap()
        .to_string();

    let reader = token_with(
        &agent,
        &mgmt,
        "reader",
        "namespace \"default\" {\n  policy = \"read\"\n}\nnode {\n  policy = \"read\"\n}\nagent {\n  policy = \"read\"\n}\n",
    );
    let writer = token_with(
        &agent,
        &mgmt,
        "writer",
        "namespace \"default\" {\n  policy = \"write\"\n}\nnode {\n  policy = \"write\"\n}\n",
    );
    let unrelated = token_with(
        &agent,
        &mgmt,
        "unrelated",
        "namespace \"other\" {\n  policy = \"write\"\n}\n",
    );

    let fs = |op: &str| format!("/v1/client/fs/{op}/{alloc}?path=/");
    let logs = format!("/v1/client/fs/logs/{alloc}?task=main&type=stdout&plain=true");
    // (method, path, body, the token that has the capability)
    let cases: Vec<(&str, String, Option<Value>, &str)> = vec![
        ("GET", "/v1/jobs".into(), None, &reader),
        ("GET", "/v1/job/web".into(), None, &reader),
        ("GET", "/v1/job/web/allocations".into(), None, &reader),
        ("GET", "/v1/job/web/summary".into(), None, &reader),
        ("GET", "/v1/job/web/versions".into(), None, &reader),
        (
            "POST",
            "/v1/job/web/evaluate".into(),
            Some(json!({})),
            &writer,
        ),
        ("GET", "/v1/allocations".into(), None, &reader),
        ("GET", format!("/v1/allocation/{alloc}"), None, &reader),
        ("GET", "/v1/evaluations".into(), None, &reader),
        ("GET", format!("/v1/evaluation/{eval}"), None, &reader),
        ("GET", "/v1/nodes".into(), None, &reader),
        ("GET", format!("/v1/node/{node}"), None, &reader),
        ("GET", "/v1/agent/self".into(), None, &reader),
        ("GET", "/v1/client/stats".into(), None, &reader),
        (
            "GET",
            format!("/v1/client/allocation/{alloc}/stats"),
            None,
            &reader,
        ),
        ("GET", fs("ls"), None, &writer),
        ("GET", logs.clone(), None, &writer),
        (
            "POST",
            format!("/v1/client/allocation/{alloc}/signal"),
            Some(json!({"Signal": "SIGCONT", "Task": "main"})),
            &writer,
        ),
        ("GET", "/v1/acl/tokens".into(), None, &root),
        ("GET", "/v1/acl/policies".into(), None, &root),
        (
            "PUT",
            "/v1/jobs".into(),
            Some(json!({"Job": service_job("registered", 0)})),
            &writer,
        ),
        ("GET", "/v1/job/web/deployments".into(), None, &reader),
        (
            "POST",
            "/v1/jobs/parse".into(),
            Some(
                json!({"JobHCL": "job \"parsed\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"raw_exec\"\n    }\n  }\n}\n"}),
            ),
            &reader,
        ),
        (
            "POST",
            "/v1/validate/job".into(),
            Some(json!({"Job": service_job("validated", 0)})),
            &reader,
        ),
        ("GET", "/v1/namespace/default".into(), None, &reader),
        (
            "POST",
            "/v1/namespace/team".into(),
            Some(json!({"Name": "team"})),
            &root,
        ),
    ];
    let no_token = Api::new(None);
    for (method, path, body, capable) in &cases {
        let url = agent.url(path);
        let with = Api::new(Some(capable)).send(method, &url, body.as_ref());
        assert_eq!(
            with.status, 200,
            "{method} {path} with the capability: {}",
            with.body
        );
        let without = Api::new(Some(&unrelated)).send(method, &url, body.as_ref());
        assert_eq!(
            (without.status, without.body.as_str()),
            (403, "Permission denied"),
            "{method} {path} without the capability"
        );
        let none = no_token.send(method, &url, body.as_ref());
        assert_eq!(
            none.status, 403,
            "{method} {path} without a token: {}",
            none.body
        );
    }
    // The reader may read but not write or read logs.
    let r = Api::new(Some(&reader)).put(
        &agent.url("/v1/jobs"),
        &json!({"Job": service_job("w2", 0)}),
    );
    assert_eq!((r.status, r.body.as_str()), (403, "Permission denied"));
    assert_eq!(Api::new(Some(&reader)).get(&agent.url(&logs)).status, 403);
    // A job body naming another namespace is checked against that namespace.
    let mut sneaky = service_job("sneaky", 0);
    sneaky["Namespace"] = json!("other");
    let r = Api::new(Some(&writer)).put(&agent.url("/v1/jobs"), &json!({"Job": sneaky}));
    assert_eq!(r.status, 403, "{}", r.body);
    // An unknown token is told so.
    let r = Api::new(Some("00000000-0000-4000-8000-000000000000")).get(&agent.url("/v1/jobs"));
    assert_eq!((r.status, r.body.as_str()), (403, "ACL token not found"));
    // Public endpoints stay open.
    assert_eq!(no_token.get(&agent.url("/v1/agent/health")).status, 200);
    assert_eq!(no_token.get(&agent.url("/v1/status/leader")).status, 200);

    // namespace=* lists only what the token may see.
    let ids = |api: &Api, path: &str| -> Vec<String> {
        let r = api.get(&agent.url(path));
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let mut v: Vec<String> = r
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|j| {
                format!(
                    "{}/{}",
                    j["Namespace"].as_str().unwrap(),
                    j["ID"].as_str().unwrap()
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        ids(&mgmt, "/v1/jobs?namespace=*"),
        ["default/registered", "default/web", "other/elsewhere"]
    );
    assert_eq!(
        ids(&Api::new(Some(&reader)), "/v1/jobs?namespace=*"),
        ["default/registered", "default/web"]
    );
    assert_eq!(
        ids(&Api::new(Some(&unrelated)), "/v1/jobs?namespace=*"),
        ["other/elsewhere"]
    );
    let names = |api: &Api| -> Vec<String> {
        let list = api.get(&agent.url("/v1/namespaces")).json();
        list.as_array()
            .expect("a namespace list")
            .iter()
            .map(|n| n["Name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(names(&mgmt), ["default", "other", "team"]);
    assert_eq!(names(&Api::new(Some(&unrelated))), ["other"]);
    assert_eq!(names(&Api::new(Some(&reader))), ["default"]);
    let allocs = Api::new(Some(&unrelated)).get(&agent.url("/v1/allocations?namespace=*"));
    assert_eq!(
        allocs.json(),
        json!([]),
        "no default allocations for the other namespace"
    );
    // The anonymous policy applies to requests without a token.
    token_with(
        &agent,
        &mgmt,
        "anonymous",
        "namespace \"default\" {\n  policy = \"read\"\n}\n",
    );
    assert_eq!(no_token.get(&agent.url("/v1/jobs")).status, 200);
    assert_eq!(no_token.get(&agent.url("/v1/nodes")).status, 403);

    // exec into a raw_exec task: alloc-exec alone is not enough.
    let exec_only = token_with(
        &agent,
        &mgmt,
        "exec-only",
        "namespace \"default\" {\n  capabilities = [\"alloc-exec\"]\n}\n",
    );
    let node_exec = token_with(
        &agent,
        &mgmt,
        "node-exec",
        "namespace \"default\" {\n  capabilities = [\"alloc-exec\", \"alloc-node-exec\"]\n}\n",
    );
    let base = agent.url("");
    ws::rt().block_on(async {
        let url = ws::exec_url(&base, &alloc, "main", &["echo", "hi"], "");
        assert_eq!(ws_status(&url, Some(&exec_only)).await, Some(403));
        assert_eq!(ws_status(&url, None).await, Some(403));
        let out = ws_run(&url, Some(&node_exec)).await;
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n", "{out:?}");
        // The token may also come in the handshake frame; it is checked there.
        let hs = ws::exec_url(&base, &alloc, "main", &["echo", "hs"], "&ws_handshake=true");
        let out = ws_handshake_run(&hs, &exec_only).await;
        assert_eq!(out.close.as_ref().map(|c| c.0), Some(1008), "{out:?}");
        assert_eq!(
            out.close.as_ref().map(|c| c.1.as_str()),
            Some("Permission denied")
        );
        let out = ws_handshake_run(&hs, &node_exec).await;
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hs\n", "{out:?}");
    });
}

/// Runs an exec session with the token in the handshake frame.
async fn ws_handshake_run(url: &str, token: &str) -> ws::Outcome {
    let mut socket = ws::connect(url).await;
    ws::send(&mut socket, json!({"version": 1, "auth_token": token})).await;
    ws::collect(&mut socket).await
}

/// The HTTP status a WebSocket upgrade was refused with (None: it was accepted).
async fn ws_status(url: &str, token: Option<&str>) -> Option<u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().expect("ws request");
    if let Some(t) = token {
        req.headers_mut()
            .insert("X-Nomad-Token", t.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Some(resp.status().as_u16()),
        Err(e) => panic!("exec connect: {e}"),
    }
}

async fn ws_run(url: &str, token: Option<&str>) -> ws::Outcome {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().expect("ws request");
    if let Some(t) = token {
        req.headers_mut()
            .insert("X-Nomad-Token", t.parse().unwrap());
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("exec connect");
    ws::collect(&mut socket).await
}

/// A request forwarded to the agent that runs the allocation is checked there too, with the
/// token it carries; a client-only agent resolves tokens through its server.
#[test]
fn forwarded_requests_are_checked_by_the_agent_that_answers() {
    let server = acl_agent(AgentOpts::server());
    let root = bootstrap(&server);
    let client = acl_agent(AgentOpts::client(vec![server.rpc_addr()], "c1"));
    let mgmt = Api::new(Some(&root));
    let job = shell_job("fwd", &[("main", "echo forwarded; exec sleep 1000")]);
    let r = mgmt.put(&server.url("/v1/jobs"), &json!({"Job": job}));
    assert_eq!(r.status, 200, "{}", r.body);
    let alloc = wait_for(Duration::from_secs(60), "the remote alloc running", || {
        let allocs = mgmt.get(&server.url("/v1/job/fwd/allocations")).json();
        allocs.as_array()?.iter().find_map(|a| {
            (a["TaskStates"]["main"]["State"] == "running")
                .then(|| a["ID"].as_str().map(str::to_string))?
        })
    });
    let reader = token_with(
        &server,
        &mgmt,
        "reader",
        "namespace \"default\" {\n  policy = \"read\"\n}\n",
    );
    let logger = token_with(
        &server,
        &mgmt,
        "logger",
        "namespace \"default\" {\n  capabilities = [\"read-logs\"]\n}\n",
    );
    let logs = format!("/v1/client/fs/logs/{alloc}?task=main&type=stdout&plain=true");
    for agent in [&server, &client] {
        let r = Api::new(Some(&reader)).get(&agent.url(&logs));
        assert_eq!(
            (r.status, r.body.as_str()),
            (403, "Permission denied"),
            "{}",
            agent.url("")
        );
        assert_eq!(Api::new(None).get(&agent.url(&logs)).status, 403);
        let r = Api::new(Some("00000000-0000-4000-8000-000000000000")).get(&agent.url(&logs));
        assert_eq!((r.status, r.body.as_str()), (403, "ACL token not found"));
        let r = Api::new(Some(&logger)).get(&agent.url(&logs));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, "forwarded\n");
    }
    // The client-only agent proxies server endpoints with the caller's token.
    assert_eq!(
        Api::new(Some(&reader)).get(&client.url("/v1/jobs")).status,
        200
    );
    assert_eq!(Api::new(None).get(&client.url("/v1/jobs")).status, 403);
}

/// exec into an `exec`-driver task needs `alloc-exec` only (seed 002).
#[test]
fn exec_driver_task_needs_only_alloc_exec() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the exec driver needs root; run this test as root"
    );
    let mut opts = AgentOpts::dev();
    opts.extra_hcl =
        "plugin \"exec\" {\n  config {\n    default_pid_mode = \"private\"\n  }\n}\n".into();
    let agent = acl_agent(opts);
    let mgmt = Api::new(Some(&bootstrap(&agent)));
    let job = json!({
        "ID": "iso",
        "Name": "iso",
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "g",
            "Count": 1,
            "Tasks": [{
                "Name": "iso",
                "Driver": "exec",
                "Config": {"command": "/bin/sleep", "args": ["1000"]},
                "Resources": {"CPU": 100, "MemoryMB": 64},
            }],
        }],
    });
    let r = mgmt.put(&agent.url("/v1/jobs"), &json!({"Job": job}));
    assert_eq!(r.status, 200, "{}", r.body);
    let alloc = wait_for(Duration::from_secs(60), "the exec alloc running", || {
        let allocs = mgmt.get(&agent.url("/v1/job/iso/allocations")).json();
        allocs.as_array()?.iter().find_map(|a| {
            (a["TaskStates"]["iso"]["State"] == "running")
                .then(|| a["ID"].as_str().map(str::to_string))?
        })
    });
    let exec_only = token_with(
        &agent,
        &mgmt,
        "exec-only",
        "namespace \"default\" {\n  capabilities = [\"alloc-exec\"]\n}\n",
    );
    let reader = token_with(
        &agent,
        &mgmt,
        "reader",
        "namespace \"default\" {\n  policy = \"read\"\n}\n",
    );
    let base = agent.url("");
    ws::rt().block_on(async {
        let url = ws::exec_url(&base, &alloc, "iso", &["/bin/echo", "inside"], "");
        assert_eq!(ws_status(&url, Some(&reader)).await, Some(403));
        let out = ws_run(&url, Some(&exec_only)).await;
        assert_eq!(String::from_utf8_lossy(&out.stdout), "inside\n", "{out:?}");
    });
    let r = mgmt.send("DELETE", &agent.url("/v1/job/iso?purge=true"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(Duration::from_secs(30), "the exec task stopped", || {
        let a = mgmt
            .get(&agent.url(&format!("/v1/allocation/{alloc}")))
            .json();
        (a["ClientStatus"] != "running").then_some(())
    });
}

/// Runs the CLI against `addr` with `token` in NOMAD_TOKEN (or none).
fn yurt_cli(addr: &str, env_token: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_yurt"));
    cmd.args(args)
        .env("NOMAD_ADDR", addr)
        .env_remove("NOMAD_NAMESPACE")
        .env_remove("NOMAD_REGION");
    match env_token {
        Some(t) => cmd.env("NOMAD_TOKEN", t),
        None => cmd.env_remove("NOMAD_TOKEN"),
    };
    let out = cmd.output().expect("run yurt");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value of `key` in the CLI's `Key = Value` output.
fn kv<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {key:?} in {out}"))
}

#[test]
fn cli_manages_acls_with_the_token_flag_or_nomad_token() {
    let agent = acl_agent(AgentOpts::server());
    let addr = agent.url("");
    let (code, out, err) = yurt_cli(&addr, None, &["acl", "bootstrap"]);
    assert_eq!(code, 0, "{out}{err}");
    let root = kv(&out, "Secret ID").to_string();
    assert_eq!(kv(&out, "Type"), "management");

    let rules = agent.data_dir.path().join("readers.hcl");
    std::fs::write(&rules, "node {\n  policy = \"read\"\n}\n").unwrap();
    let rules = rules.to_string_lossy().into_owned();
    let (code, out, err) = yurt_cli(
        &addr,
        None,
        &["acl", "policy", "apply", "-token", &root, "readers", &rules],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = yurt_cli(&addr, Some(&root), &["acl", "policy", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("readers"), "{out}");
    let (code, out, _) = yurt_cli(&addr, Some(&root), &["acl", "policy", "info", "readers"]);
    assert_eq!(code, 0);
    assert!(out.contains("policy = \"read\""), "{out}");

    let (code, out, err) = yurt_cli(
        &addr,
        Some(&root),
        &[
            "acl", "token", "create", "-name", "ops", "-policy", "readers",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (accessor, secret) = (
        kv(&out, "Accessor ID").to_string(),
        kv(&out, "Secret ID").to_string(),
    );
    let (code, out, _) = yurt_cli(&addr, None, &["acl", "token", "self", "-token", &secret]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(kv(&out, "Accessor ID"), accessor);
    assert_eq!(kv(&out, "Policies"), "readers");
    // The readers token may not manage ACLs.
    let (code, out, err) = yurt_cli(&addr, Some(&secret), &["acl", "token", "list"]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("Permission denied"), "{err}");

    let (code, out, err) = yurt_cli(
        &addr,
        Some(&root),
        &[
            "acl", "role", "create", "-name", "ops", "-policy", "readers",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let role = kv(&out, "ID").to_string();
    let (code, out, _) = yurt_cli(&addr, Some(&root), &["acl", "role", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains(&role), "{out}");
    let (code, out, err) = yurt_cli(
        &addr,
        Some(&root),
        &[
            "acl",
            "token",
            "update",
            "-name",
            "ops2",
            "-role-name",
            "ops",
            &accessor,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(kv(&out, "Roles"), "ops");
    assert_eq!(kv(&out, "Secret ID"), secret, "an update keeps the secret");
    let (code, _, _) = yurt_cli(&addr, Some(&root), &["acl", "token", "delete", &accessor]);
    assert_eq!(code, 0);
    let (code, _, err) = yurt_cli(&addr, Some(&secret), &["acl", "token", "self"]);
    assert_ne!(code, 0);
    assert!(err.contains("ACL token not found"), "{err}");
    let (code, _, _) = yurt_cli(&addr, Some(&root), &["acl", "role", "delete", &role]);
    assert_eq!(code, 0);
    let (code, _, _) = yurt_cli(&addr, Some(&root), &["acl", "policy", "delete", "readers"]);
    assert_eq!(code, 0);
}
