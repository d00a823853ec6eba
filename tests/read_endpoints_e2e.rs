//! Small read endpoints of issue 15: `GET /v1/evaluations/count`, `GET|POST /v1/jobs/statuses`,
//! `GET /v1/agent/schedulers`, `GET /v1/agent/host`.

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
    // Blocked follow-up evaluations may still appear: compare a count with the lists read
    // on either side of it at the same index.
    let agree = |query: &str| -> (u64, Vec<serde_json::Value>) {
        wait_for(Duration::from_secs(20), "count and list agree", || {
            let before = http.get(&agent.url(&format!("/v1/evaluations?{query}")));
            let r = http.get(&agent.url(&format!("/v1/evaluations/count?{query}")));
            assert_eq!(r.status, 200, "{}", r.body);
            let after = http.get(&agent.url(&format!("/v1/evaluations?{query}")));
            let body = r.json();
            assert_eq!(body["Index"].as_u64(), Some(r.index()), "{body}");
            assert_eq!(body["KnownLeader"], true);
            let list = after.json().as_array()?.clone();
            let stable = before.index() == after.index() && r.index() == after.index();
            let count = body["Count"].as_u64()?;
            (stable && count == list.len() as u64).then_some((count, list))
        })
    };
    let (all, listed) = agree("");
    assert!(all >= 2, "{listed:?}");
    let (of_a, _) = agree("filter=JobID%20%3D%3D%20%22count-a%22");
    assert!(of_a >= 1 && of_a < all, "{of_a} of {all}");
    let prefix = listed[0]["ID"].as_str().expect("ID")[..8].to_string();
    let (by_prefix, _) = agree(&format!("prefix={prefix}"));
    assert_eq!(by_prefix, 1);
    let (elsewhere, _) = agree("namespace=elsewhere");
    assert_eq!(elsewhere, 0);
    let (everywhere, _) = agree("namespace=*");
    assert!(everywhere >= all, "{everywhere} < {all}");

    let r = http.get(&agent.url("/v1/evaluations/count?filter=JobID%20%3D%3D"));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = http.put(&agent.url("/v1/evaluations/count"), &serde_json::json!({}));
    assert_eq!(r.status, 405, "{}", r.body);
}

fn ids(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|j| j["ID"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn job_statuses_list_jobs_with_their_allocations_newest_first() {
    let agent = Agent::start(AgentOpts::dev());
    let http = Http::default();
    run_job_and_wait(&http, &agent.url(""), &service_job("st-a", 2));
    run_job_and_wait(&http, &agent.url(""), &service_job("st-b", 1));

    let list = wait_for(Duration::from_secs(30), "both jobs running", || {
        let list = http.get(&agent.url("/v1/jobs/statuses")).json();
        let running = list.as_array()?.iter().all(|j| {
            j["Allocs"]
                .as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(|a| a["ClientStatus"] == "running"))
        });
        (running && ids(&list).len() == 2).then_some(list)
    });
    let jobs = list.as_array().expect("list");
    let indexes: Vec<u64> = jobs
        .iter()
        .filter_map(|j| j["ModifyIndex"].as_u64())
        .collect();
    assert!(
        indexes.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {indexes:?}"
    );
    let a = jobs.iter().find(|j| j["ID"] == "st-a").expect("st-a");
    assert_eq!(a["Namespace"], "default");
    assert_eq!(a["Name"], "st-a");
    assert_eq!(a["Type"], "service");
    assert_eq!(a["Datacenters"], serde_json::json!(["dc1"]));
    assert_eq!(a["GroupCountSum"], 2);
    assert_eq!(a["Status"], "running");
    assert_eq!(a["ParentID"], "");
    assert!(a["ChildStatuses"].is_null(), "{a}");
    let allocs = a["Allocs"].as_array().expect("Allocs");
    assert_eq!(allocs.len(), 2, "{a}");
    for alloc in allocs {
        assert_eq!(alloc["Group"], "web");
        assert!(
            alloc["NodeID"].as_str().is_some_and(|n| n.len() == 36),
            "{alloc}"
        );
        assert_eq!(alloc["JobVersion"], 0);
        assert!(alloc["DeploymentStatus"]["Canary"].is_boolean(), "{alloc}");
    }

    // Paging by ModifyIndex, and the reverse order.
    let r = http.get(&agent.url("/v1/jobs/statuses?per_page=1"));
    assert_eq!(r.status, 200, "{}", r.body);
    let first = ids(&r.json());
    let token = r.header("X-Nomad-NextToken").expect("next token");
    assert!(token.parse::<u64>().is_ok(), "{token}");
    let second = ids(&http
        .get(&agent.url(&format!("/v1/jobs/statuses?per_page=1&next_token={token}")))
        .json());
    assert_eq!([first.clone(), second.clone()].concat(), ids(&list));
    let reversed = ids(&http
        .get(&agent.url("/v1/jobs/statuses?reverse=true"))
        .json());
    assert_eq!(reversed, [second, first].concat());

    // Named jobs, a filter, bad input.
    let r = http.post(
        &agent.url("/v1/jobs/statuses"),
        &serde_json::json!({"Jobs": [{"ID": "st-b"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ids(&r.json()), vec!["st-b".to_string()]);
    let filtered = http.get(&agent.url("/v1/jobs/statuses?filter=Name%20%3D%3D%20%22st-a%22"));
    assert_eq!(ids(&filtered.json()), vec!["st-a".to_string()]);
    let r = http.post(
        &agent.url("/v1/jobs/statuses"),
        &serde_json::json!({"Jobs": []}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body, "no jobs in request");
    let r = http.get(&agent.url("/v1/jobs/statuses?next_token=soon"));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = http.get(&agent.url("/v1/jobs/statuses?include_children=maybe"));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = http.get(&agent.url("/v1/jobs/statuses?namespace=elsewhere"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), serde_json::json!([]));
}

#[test]
fn agent_schedulers_lists_the_servers_workers() {
    let server = Agent::start(AgentOpts::server());
    let http = Http::default();
    let body = wait_for(Duration::from_secs(20), "workers waiting", || {
        let r = http.get(&server.url("/v1/agent/schedulers"));
        assert_eq!(r.status, 200, "{}", r.body);
        let body = r.json();
        body["schedulers"]
            .as_array()?
            .iter()
            .all(|w| w["workload_status"] == "WaitingToDequeue")
            .then_some(body)
    });
    assert!(
        body["server_id"]
            .as_str()
            .is_some_and(|s| s.ends_with(".global")),
        "{body}"
    );
    let workers = body["schedulers"].as_array().expect("schedulers");
    assert!(!workers.is_empty(), "{body}");
    for w in workers {
        assert_eq!(w["id"].as_str().map(str::len), Some(36), "{w}");
        assert_eq!(w["status"], "Started");
        assert_eq!(
            w["enabled_schedulers"],
            serde_json::json!(["service", "batch", "system", "sysbatch"])
        );
        let started = w["started"].as_str().expect("started");
        assert!(
            started.ends_with('Z') && chrono_like(started),
            "RFC 3339 UTC: {started}"
        );
    }

    // Pausing the broker pauses the workers.
    let r = http.put(
        &server.url("/v1/operator/scheduler/configuration"),
        &serde_json::json!({"SchedulerAlgorithm": "binpack", "PauseEvalBroker": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http.put(
        &server.url("/v1/jobs"),
        &serde_json::json!({ "Job": service_job("paused", 1) }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(Duration::from_secs(20), "a paused worker", || {
        let body = http.get(&server.url("/v1/agent/schedulers")).json();
        body["schedulers"]
            .as_array()?
            .iter()
            .any(|w| w["status"] == "Paused" && w["workload_status"] == "Paused")
            .then_some(())
    });

    let client = Agent::start(AgentOpts::client(vec![server.rpc_addr()], "c1"));
    let r = http.get(&client.url("/v1/agent/schedulers"));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body, "Server only endpoint");
}

/// `YYYY-MM-DDTHH:MM:SS[.frac]Z`.
fn chrono_like(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':'
}

#[test]
fn agent_host_shows_the_machine_with_secrets_redacted_and_needs_enable_debug() {
    let mut opts = AgentOpts::dev();
    opts.extra_hcl = "enable_debug = true\n".to_string();
    // The agent inherits a secret-looking variable through a wrapper that sets it and execs
    // the real binary.
    let wrapper_dir = TempDir::new("host-wrapper");
    let wrapper = wrapper_dir.path().join("yurt-with-env");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nYURT_TEST_SECRET_VALUE=hunter2 exec {:?} \"$@\"\n",
            env!("CARGO_BIN_EXE_yurt")
        ),
    )
    .expect("write wrapper");
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod wrapper");
    let agent = Agent::start_exe(opts, wrapper);
    let http = Http::default();
    let r = http.get(&agent.url("/v1/agent/host"));
    assert_eq!(r.status, 200, "{}", r.body);
    let data = r.json();
    let os = data["OS"].as_str().expect("OS");
    assert!(os.contains("Linux"), "{os}");
    assert!(
        data["Hosts"]
            .as_str()
            .is_some_and(|h| h.contains("localhost")),
        "{data}"
    );
    assert!(data["ResolvConf"].is_string());
    assert_eq!(data["Environment"]["YURT_TEST_SECRET_VALUE"], "<redacted>");
    assert!(!r.body.contains("hunter2"));
    assert!(data["Environment"]["PATH"].is_string(), "{data}");
    let loopback = data["Network"]
        .as_array()
        .expect("Network")
        .iter()
        .find(|n| n["address"] == "127.0.0.1")
        .unwrap_or_else(|| panic!("no loopback in {data}"));
    assert_eq!(loopback["type"], "IPv4");
    assert_eq!(loopback["network"], "127.0.0.0/8");
    let disks = data["Disk"].as_object().expect("Disk");
    assert!(
        disks
            .values()
            .any(|d| d["DiskMB"].as_i64().unwrap_or(0) > 0),
        "{data}"
    );
    let r = http.get(&agent.url("/v1/agent/host?node_id=abc&server_id=def"));
    assert_eq!(r.status, 400, "{}", r.body);

    // Without ACLs and without enable_debug, Nomad refuses it.
    let plain = Agent::start(AgentOpts::server());
    let r = http.get(&plain.url("/v1/agent/host"));
    assert_eq!(r.status, 403, "{}", r.body);
}
