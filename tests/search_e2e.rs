//! End to end: `POST /v1/search` and `/v1/search/fuzzy` on a real server: prefixes across
//! contexts with the 20-per-context truncation, fuzzy matches (20 objects looked at) inside jobs with their scope,
//! bad input, and a token that may read only one namespace.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_str().expect("ID").to_string())
        .collect()
}

fn register(http: &Http, agent: &Agent, job: Value) {
    let r = http.put(&agent.url("/v1/jobs"), &json!({"Job": job}));
    assert_eq!(r.status, 200, "register: {}", r.body);
}

#[test]
fn prefix_and_fuzzy_search_across_contexts() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let node = SimNode::register(&agent.rpc_addr(), "edge-1", "dc1", 8000, 16384);
    for i in 0..22 {
        register(&http, &agent, service_job(&format!("zz-api-{i:02}"), 0));
    }
    let mut web = service_job("webshop", 1);
    web["TaskGroups"][0]["Name"] = json!("storefront");
    web["TaskGroups"][0]["Tasks"][0]["Name"] = json!("checkout");
    register(&http, &agent, web);
    let alloc = wait_for(Duration::from_secs(30), "webshop placed", || {
        let allocs = http.get(&agent.url("/v1/job/webshop/allocations")).json();
        allocs.as_array()?.first()?["ID"]
            .as_str()
            .map(str::to_string)
    });

    // Prefixes: 20 jobs and a truncation flag; one allocation, one node, by their IDs.
    let r = http.post(
        &agent.url("/v1/search"),
        &json!({"Prefix": "zz-api-", "Context": "jobs"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(ids(&v["Matches"]["jobs"]).len(), 20);
    assert_eq!(v["Truncations"]["jobs"], true);
    assert!(r.index() >= 1);
    assert!(v["Index"].as_u64().is_some_and(|i| i > 1));

    let r = http.post(
        &agent.url("/v1/search"),
        &json!({"Prefix": &alloc[..6], "Context": "all"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert!(ids(&v["Matches"]["allocs"]).contains(&alloc), "{v}");
    for ctx in ["jobs", "evals", "nodes", "deployment", "namespaces"] {
        assert!(v["Matches"][ctx].is_array(), "{ctx} in {v}");
        assert_eq!(v["Truncations"][ctx], false, "{ctx}");
    }

    let r = http.put(
        &agent.url("/v1/search"),
        &json!({"Prefix": &node.id[..4], "Context": "nodes"}),
    );
    assert_eq!(ids(&r.json()["Matches"]["nodes"]), vec![node.id.clone()]);

    // Fuzzy: names anywhere in jobs, with the IDs they live in; nodes by name.
    let r = http.post(
        &agent.url("/v1/search/fuzzy"),
        &json!({"Text": "CHECK", "Context": "all"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        v["Matches"]["tasks"],
        json!([{"ID": "checkout", "Scope": ["default", "webshop", "storefront"]}])
    );
    // A fuzzy search looks at 20 jobs (webshop sorts first) and says it stopped there.
    let r = http.post(
        &agent.url("/v1/search/fuzzy"),
        &json!({"Text": "api", "Context": "jobs"}),
    );
    let v = r.json();
    assert_eq!(
        v["Matches"]["jobs"].as_array().map(Vec::len),
        Some(19),
        "{v}"
    );
    assert_eq!(v["Truncations"]["jobs"], true);
    let r = http.post(
        &agent.url("/v1/search/fuzzy"),
        &json!({"Text": "shop", "Context": "jobs"}),
    );
    assert_eq!(
        r.json()["Matches"]["jobs"],
        json!([{"ID": "webshop", "Scope": ["default", "webshop"]}])
    );
    let r = http.post(
        &agent.url("/v1/search/fuzzy"),
        &json!({"Text": "sleep", "Context": "all"}),
    );
    let commands = &r.json()["Matches"]["commands"];
    assert_eq!(commands[0]["ID"], "/bin/sleep", "{commands}");
    let r = http.post(
        &agent.url("/v1/search/fuzzy"),
        &json!({"Text": "edge", "Context": "nodes"}),
    );
    assert_eq!(
        r.json()["Matches"]["nodes"],
        json!([{"ID": "edge-1", "Scope": [node.id]}])
    );
    let r = http.post(
        &agent.url("/v1/search/fuzzy"),
        &json!({"Text": "storefront[", "Context": "allocs"}),
    );
    assert_eq!(
        r.json()["Matches"]["allocs"][0]["Scope"],
        json!(["default", alloc])
    );

    // Bad input names what is wrong.
    let r = http.post(
        &agent.url("/v1/search"),
        &json!({"Prefix": "a", "Context": "bogus"}),
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("Context"), "{}", r.body);
    let r = http.post(
        &agent.url("/v1/search/fuzzy"),
        &json!({"Text": "a", "Context": "all"}),
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("at least 2 characters"), "{}", r.body);
    let r = http.post_raw(&agent.url("/v1/search"), b"{\"Prefix\": 7}".to_vec());
    assert_eq!(r.status, 400);
    let r = http.post(
        &agent.url("/v1/search"),
        &json!({"Prefix": null, "Context": "jobs"}),
    );
    assert_eq!(r.status, 200, "null is absent: {}", r.body);
}

fn send(http: &Http, path_url: &str, token: &str, body: &Value) -> Resp {
    http.request_as(reqwest::Method::POST, path_url, token, body)
}

#[test]
fn search_shows_a_token_only_what_it_may_read() {
    let mut opts = AgentOpts::server();
    opts.extra_hcl.push_str("acl {\n  enabled = true\n}\n");
    let agent = Agent::start(opts);
    let http = Http::default();
    let r = http.post(&agent.url("/v1/acl/bootstrap"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let mgmt = r.json()["SecretID"].as_str().expect("SecretID").to_string();
    let ok = |r: Resp| {
        assert_eq!(r.status, 200, "{}", r.body);
        r
    };
    ok(send(
        &http,
        &agent.url("/v1/namespace/prod"),
        &mgmt,
        &json!({"Name": "prod"}),
    ));
    ok(send(
        &http,
        &agent.url("/v1/acl/policy/dev"),
        &mgmt,
        &json!({"Name": "dev", "Rules": "namespace \"default\" {\n  policy = \"read\"\n}\n"}),
    ));
    let token = ok(send(
        &http,
        &agent.url("/v1/acl/token"),
        &mgmt,
        &json!({"Name": "dev", "Type": "client", "Policies": ["dev"]}),
    ))
    .json()["SecretID"]
        .as_str()
        .expect("SecretID")
        .to_string();
    let mut hidden = service_job("secret-job", 0);
    hidden["Namespace"] = json!("prod");
    for job in [hidden, service_job("secret-plan", 0)] {
        let r = http.request_as(
            reqwest::Method::PUT,
            &agent.url("/v1/jobs"),
            &mgmt,
            &json!({"Job": job}),
        );
        assert_eq!(r.status, 200);
    }

    let search = |token: &str, body: Value| send(&http, &agent.url("/v1/search"), token, &body);
    let r = ok(search(
        &token,
        json!({"Prefix": "secret", "Context": "jobs"}),
    ));
    assert_eq!(ids(&r.json()["Matches"]["jobs"]), vec!["secret-plan"]);
    let r = search(
        &token,
        json!({"Prefix": "secret", "Context": "jobs", "Namespace": "prod"}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = search(&token, json!({"Prefix": "", "Context": "nodes"}));
    assert_eq!(r.status, 403, "no node:read");
    let r = ok(search(&token, json!({"Prefix": "", "Context": "all"})));
    let v = r.json();
    assert!(v["Matches"].get("nodes").is_none(), "{v}");
    assert_eq!(ids(&v["Matches"]["namespaces"]), vec!["default"]);

    let r = ok(send(
        &http,
        &agent.url("/v1/search/fuzzy?namespace=*"),
        &token,
        &json!({"Text": "secret", "Context": "jobs"}),
    ));
    let jobs = &r.json()["Matches"]["jobs"];
    assert_eq!(
        jobs,
        &json!([{"ID": "secret-plan", "Scope": ["default", "secret-plan"]}])
    );
    let r = send(
        &http,
        &agent.url("/v1/search"),
        "",
        &json!({"Prefix": "", "Context": "jobs"}),
    );
    assert_eq!(r.status, 403, "anonymous");
}

#[test]
fn variables_are_found_by_path_prefix_and_only_where_a_token_may_list() {
    let mut opts = AgentOpts::server();
    opts.extra_hcl.push_str("acl {\n  enabled = true\n}\n");
    let agent = Agent::start(opts);
    let http = Http::default();
    let r = http.post(&agent.url("/v1/acl/bootstrap"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let mgmt = Http::with_token(r.json()["SecretID"].as_str().expect("SecretID"));
    for path in ["app/db", "app/cache", "other/x"] {
        let r = mgmt.put(
            &agent.url(&format!("/v1/var/{path}")),
            &json!({"Items": {"k": "v"}}),
        );
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let search = |who: &Http, prefix: &str, ctx: &str| {
        let r = who.post(
            &agent.url("/v1/search"),
            &json!({"Prefix": prefix, "Context": ctx}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    assert_eq!(
        ids(&search(&mgmt, "app/", "vars")["Matches"]["vars"]),
        vec!["app/cache", "app/db"]
    );
    assert_eq!(
        ids(&search(&mgmt, "oth", "all")["Matches"]["vars"]),
        vec!["other/x"]
    );

    let r = mgmt.post(
        &agent.url("/v1/acl/policy/app"),
        &json!({"Name": "app", "Rules":
            "namespace \"default\" {\n  variables {\n    path \"app/*\" { capabilities = [\"list\"] }\n  }\n}\n"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = mgmt.post(
        &agent.url("/v1/acl/token"),
        &json!({"Type": "client", "Policies": ["app"]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let app = Http::with_token(r.json()["SecretID"].as_str().expect("SecretID"));
    assert_eq!(
        ids(&search(&app, "", "vars")["Matches"]["vars"]),
        vec!["app/cache", "app/db"]
    );
}
