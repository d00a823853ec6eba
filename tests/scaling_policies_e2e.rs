//! `/v1/scaling/policies` and `/v1/scaling/policy/:id` from groups' `scaling` blocks: Nomad's
//! defaults and validation, an ID that survives new job versions, filters and ACLs.

mod common;

use common::{Agent, AgentOpts, Http};
use serde_json::{Value, json};

fn job(id: &str, count: i64, scaling: Value) -> Value {
    json!({"Job": {
        "ID": id, "Type": "service", "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "web", "Count": count, "Scaling": scaling,
            "Tasks": [{"Name": "t", "Driver": "raw_exec",
                       "Config": {"command": "/bin/sleep", "args": ["1000"]}}],
        }],
    }})
}

fn policies(http: &Http, agent: &Agent, query: &str) -> Vec<Value> {
    let r = http.get(&agent.url(&format!("/v1/scaling/policies{query}")));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().cloned().unwrap_or_default()
}

#[test]
fn group_policies_are_listed_read_and_keep_their_id_across_versions() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let put = |body: &Value| http.put(&agent.url("/v1/jobs"), body);

    let r = put(&job(
        "web",
        2,
        json!({"Max": 10, "Policy": {"cooldown": "1m"}}),
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    let list = policies(&http, &agent, "");
    assert_eq!(list.len(), 1, "{list:?}");
    let stub = &list[0];
    let id = stub["ID"].as_str().unwrap_or_default().to_string();
    assert_eq!(id.len(), 36, "{stub}");
    assert_eq!(stub["Type"], "horizontal");
    assert_eq!(stub["Enabled"], true);
    assert_eq!(
        stub["Target"],
        json!({"Namespace": "default", "Job": "web", "Group": "web"})
    );
    let keys: Vec<&String> = stub
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        [
            "CreateIndex",
            "Enabled",
            "ID",
            "ModifyIndex",
            "Target",
            "Type"
        ]
    );

    let r = http.get(&agent.url(&format!("/v1/scaling/policy/{id}")));
    assert_eq!(r.status, 200, "{}", r.body);
    let full = r.json();
    assert_eq!(full["Min"], 2, "Min defaults to the group's count");
    assert_eq!(full["Max"], 10);
    assert_eq!(full["Policy"], json!({"cooldown": "1m"}));
    assert_eq!(r.index(), full["ModifyIndex"].as_u64().unwrap_or(0));
    let created = full["CreateIndex"].clone();
    // The job shows the same policy in its group.
    let stored = http.get(&agent.url("/v1/job/web")).json();
    assert_eq!(stored["TaskGroups"][0]["Scaling"]["ID"], id.as_str());

    // The same spec again: no new version, the policy untouched.
    let r = put(&job(
        "web",
        2,
        json!({"Max": 10, "Policy": {"cooldown": "1m"}}),
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(http.get(&agent.url("/v1/job/web")).json()["Version"], 0);
    let again = http
        .get(&agent.url(&format!("/v1/scaling/policy/{id}")))
        .json();
    assert_eq!(again, full);

    // A changed policy keeps its ID and CreateIndex; its ModifyIndex moves.
    let r = put(&job(
        "web",
        2,
        json!({"Max": 12, "Policy": {"cooldown": "1m"}}),
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    let changed = http
        .get(&agent.url(&format!("/v1/scaling/policy/{id}")))
        .json();
    assert_eq!(changed["Max"], 12);
    assert_eq!(changed["CreateIndex"], created);
    assert!(changed["ModifyIndex"].as_u64() > full["ModifyIndex"].as_u64());

    // Filters: job, type, prefix; another job's policy; a namespace that has none.
    let r = put(&job(
        "api",
        1,
        json!({"Min": 1, "Max": 3, "Enabled": false}),
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(policies(&http, &agent, "").len(), 2);
    let api = policies(&http, &agent, "?job=api");
    assert_eq!(api.len(), 1);
    assert_eq!(api[0]["Enabled"], false);
    assert_eq!(policies(&http, &agent, "?type=horiz").len(), 2);
    assert!(policies(&http, &agent, "?type=vertical_cpu").is_empty());
    assert_eq!(
        policies(&http, &agent, &format!("?prefix={}", &id[..6])).len(),
        1
    );
    assert_eq!(policies(&http, &agent, "?namespace=*").len(), 2);

    // Gone with its job; unknown IDs are a 404.
    let r = http.delete(&agent.url("/v1/job/api?purge=true"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(policies(&http, &agent, "").len(), 1);
    let r = http.get(&agent.url("/v1/scaling/policy/00000000-0000-0000-0000-000000000000"));
    assert_eq!(r.status, 404);
    assert_eq!(r.body, "policy not found");
}

#[test]
fn invalid_policies_are_refused_with_nomads_messages() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    for (count, scaling, needle) in [
        (
            1,
            json!({"Min": 1}),
            "maximum count must be specified and non-negative",
        ),
        (
            3,
            json!({"Min": 1, "Max": 2}),
            "task group count must not be greater than maximum count",
        ),
        (
            1,
            json!({"Min": 4, "Max": 2}),
            "maximum count must not be less than minimum count",
        ),
        (
            1,
            json!({"Max": 2, "Type": "sideways"}),
            "scaling policy type \"sideways\" is not valid",
        ),
        (1, json!({"Max": "many"}), "Scaling policy invalid"),
    ] {
        let r = http.put(&agent.url("/v1/jobs"), &job("bad", count, scaling.clone()));
        assert_eq!(r.status, 400, "{scaling}: {}", r.body);
        assert!(r.body.contains(needle), "{scaling}: {}", r.body);
    }
    assert!(policies(&http, &agent, "").is_empty());
}

#[test]
fn acl_tokens_see_the_policies_of_namespaces_they_may_list() {
    let agent = Agent::start(AgentOpts {
        extra_args: vec!["-acl-enabled".into()],
        ..AgentOpts::server()
    });
    let anon = Http::default();
    let r = anon.post(&agent.url("/v1/acl/bootstrap"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let mgmt = Http::with_token(r.json()["SecretID"].as_str().unwrap_or_default());
    let r = mgmt.put(&agent.url("/v1/jobs"), &job("web", 1, json!({"Max": 3})));
    assert_eq!(r.status, 200, "{}", r.body);
    let id = policies(&mgmt, &agent, "")[0]["ID"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let token = |rules: &str| {
        let r = mgmt.post(
            &agent.url("/v1/acl/policy/p"),
            &json!({"Name": "p", "Rules": rules}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let r = mgmt.post(
            &agent.url("/v1/acl/token"),
            &json!({"Type": "client", "Policies": ["p"]}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        Http::with_token(r.json()["SecretID"].as_str().unwrap_or_default())
    };
    let lister = token(r#"namespace "default" { capabilities = ["list-scaling-policies"] }"#);
    assert_eq!(policies(&lister, &agent, "").len(), 1);
    let r = lister.get(&agent.url(&format!("/v1/scaling/policy/{id}")));
    assert_eq!(r.status, 200, "{}", r.body);

    let submitter = token(r#"namespace "default" { capabilities = ["submit-job"] }"#);
    let r = submitter.get(&agent.url("/v1/scaling/policies"));
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(anon.get(&agent.url("/v1/scaling/policies")).status, 403);
}
