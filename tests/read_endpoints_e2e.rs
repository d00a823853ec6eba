//! Small read endpoints of issue 15: `GET /v1/evaluations/count`.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn evaluation_count_agrees_with_the_list_under_the_same_query() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    for id in ["count-a", "count-b"] {
        let r = http.put(
            &agent.url("/v1/jobs"),
            &serde_json::json!({ "Job": service_job(id, 1) }),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let listed = wait_for(Duration::from_secs(20), "two evaluations", || {
        let evals = http.get(&agent.url("/v1/evaluations")).json();
        let evals = evals.as_array()?.clone();
        (evals.len() >= 2).then_some(evals)
    });

    let r = http.get(&agent.url("/v1/evaluations/count"));
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["Count"].as_u64(), Some(listed.len() as u64), "{body}");
    assert_eq!(body["Index"].as_u64(), Some(r.index()), "{body}");
    assert_eq!(body["KnownLeader"], true);

    let filter = "filter=JobID%20%3D%3D%20%22count-a%22";
    let list = http.get(&agent.url(&format!("/v1/evaluations?{filter}"))).json();
    let count = http
        .get(&agent.url(&format!("/v1/evaluations/count?{filter}")))
        .json();
    let expected = list.as_array().map(Vec::len).unwrap_or(0) as u64;
    assert!(expected >= 1, "{list}");
    assert_eq!(count["Count"].as_u64(), Some(expected), "{count}");

    let prefix = listed[0]["ID"].as_str().expect("ID")[..8].to_string();
    let count = http
        .get(&agent.url(&format!("/v1/evaluations/count?prefix={prefix}")))
        .json();
    assert_eq!(count["Count"].as_u64(), Some(1), "{count}");

    let count = http
        .get(&agent.url("/v1/evaluations/count?namespace=elsewhere"))
        .json();
    assert_eq!(count["Count"].as_u64(), Some(0), "{count}");
    let count = http.get(&agent.url("/v1/evaluations/count?namespace=*")).json();
    assert_eq!(count["Count"].as_u64(), Some(listed.len() as u64), "{count}");

    let r = http.get(&agent.url("/v1/evaluations/count?filter=JobID%20%3D%3D"));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = http.put(&agent.url("/v1/evaluations/count"), &serde_json::json!({}));
    assert_eq!(r.status, 405, "{}", r.body);
}
