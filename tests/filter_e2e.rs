//! `?filter=` on list endpoints: Nomad's expression language, applied before paging, and a
//! 400 for an expression that does not parse or names a field the items do not have.

mod common;

use common::{Agent, AgentOpts, Http};
use serde_json::{Value, json};

fn job(id: &str, kind: &str, priority: i64) -> Value {
    json!({"Job": {
        "ID": id, "Type": kind, "Priority": priority, "Datacenters": ["dc1"],
        "Meta": {"team": if priority > 50 { "ops" } else { "web" }},
        "TaskGroups": [{"Name": "g", "Count": 1,
            "Tasks": [{"Name": "t", "Driver": "raw_exec",
                       "Config": {"command": "/bin/true"}}]}],
    }})
}

fn ids(http: &Http, agent: &Agent, path: &str, filter: &str) -> Vec<String> {
    let url = format!(
        "{}{}filter={}",
        agent.url(path),
        if path.contains('?') { "&" } else { "?" },
        urlencode(filter)
    );
    let r = http.get(&url);
    assert_eq!(r.status, 200, "{filter}: {}", r.body);
    r.json()
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|j| j["ID"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn lists_take_nomads_filter_expressions() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    for (id, kind, prio) in [("a", "service", 50), ("b", "batch", 70), ("c", "batch", 30)] {
        let r = http.put(&agent.url("/v1/jobs"), &job(id, kind, prio));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(
        ids(&http, &agent, "/v1/jobs", r#"Type == "batch""#),
        ["b", "c"]
    );
    assert_eq!(ids(&http, &agent, "/v1/jobs", r#"Type != "batch""#), ["a"]);
    assert_eq!(
        ids(
            &http,
            &agent,
            "/v1/jobs",
            r#"Priority == 70 or ID matches "^a""#
        ),
        ["a", "b"]
    );
    assert_eq!(
        ids(&http, &agent, "/v1/jobs", r#"not (Type == "batch")"#),
        ["a"]
    );
    // Evaluations carry the job's ID.
    let of_c = ids(&http, &agent, "/v1/evaluations", r#"JobID == "c""#);
    let all = ids(&http, &agent, "/v1/evaluations", r#"JobID is not empty"#);
    assert!(
        !of_c.is_empty() && of_c.len() < all.len(),
        "{of_c:?} of {all:?}"
    );
    // Filtering comes before paging: one page of one batch job, then the next.
    let r = http.get(&format!(
        "{}?per_page=1&filter={}",
        agent.url("/v1/jobs"),
        urlencode(r#"Type == "batch""#)
    ));
    assert_eq!(r.json()[0]["ID"], "b");
    assert_eq!(r.header("X-Nomad-NextToken").as_deref(), Some("default.c"));

    for (bad, needle) in [
        ("NotValid", "failed to read filter expression"),
        (r#"Type = "batch""#, "failed to read filter expression"),
        (r#"Priority > 50"#, "failed to read filter expression"),
        (r#"InvalidField == "value""#, "error finding value in datum"),
    ] {
        let r = http.get(&format!(
            "{}?filter={}",
            agent.url("/v1/jobs"),
            urlencode(bad)
        ));
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.body.contains(needle), "{bad}: {}", r.body);
    }
}
