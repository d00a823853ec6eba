//! Nomad's own job files (`tests/fixtures/nomad/`: `nomad job init`'s example and files from
//! Nomad's e2e suite, see the README there) parsed by yurt's jobspec parser, each compared
//! with what an independent HCL2 parser read from it (`expected.json`): job ID and type,
//! every group's name and count, every task's name and driver. Each must also convert to
//! yurt's job type, as `yurt job run` and `/v1/jobs/parse` do.

use std::path::PathBuf;

use serde_json::Value;
use yurt::jobspec::{ErrorKind, ParseConfig, parse};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nomad")
}

/// Parses `name`, giving a placeholder to each variable the file requires (Nomad's e2e suite
/// passes them with `-var`), as a user would.
fn parse_file(name: &str) -> yurt::jobspec::Parsed {
    let path = dir().join(name);
    let mut cfg = ParseConfig {
        body: std::fs::read_to_string(&path).expect("fixture readable"),
        path: path.display().to_string(),
        ..ParseConfig::default()
    };
    loop {
        match parse(&cfg) {
            Ok(parsed) => return parsed,
            Err(e) => match &e.kind {
                ErrorKind::RequiredVariable(var) if cfg.envs.len() < 8 => {
                    cfg.envs.push((format!("NOMAD_VAR_{var}"), "1".to_string()));
                }
                _ => panic!("{name} did not parse: {e}"),
            },
        }
    }
}

#[test]
fn nomads_own_job_files_parse_with_the_fields_they_set() {
    let expected: serde_json::Map<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(dir().join("expected.json")).expect("expected.json"),
    )
    .expect("expected.json is JSON");
    let on_disk = std::fs::read_dir(dir())
        .expect("fixture dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".nomad") || n.ends_with(".nomad.hcl"))
        .count();
    assert_eq!(on_disk, expected.len(), "every job file has expectations");
    assert!(expected.len() >= 20);
    for (name, want) in &expected {
        let parsed = parse_file(name);
        let job = &parsed.job;
        assert_eq!(job["ID"], want["ID"], "{name}: ID");
        // Null where the file leaves it to the default: the parser must not invent one.
        assert_eq!(job["Type"], want["Type"], "{name}: Type");
        let groups = job["TaskGroups"].as_array().cloned().unwrap_or_default();
        let want_groups = want["TaskGroups"].as_array().expect("groups");
        assert_eq!(groups.len(), want_groups.len(), "{name}: groups");
        for (g, wg) in groups.iter().zip(want_groups) {
            assert_eq!(g["Name"], wg["Name"], "{name}: group name");
            if !wg["Count"].is_null() {
                assert_eq!(g["Count"], wg["Count"], "{name}: count of {}", wg["Name"]);
            }
            let tasks = g["Tasks"].as_array().cloned().unwrap_or_default();
            let want_tasks = wg["Tasks"].as_array().expect("tasks");
            assert_eq!(
                tasks.len(),
                want_tasks.len(),
                "{name}: tasks of {}",
                wg["Name"]
            );
            for (t, wt) in tasks.iter().zip(want_tasks) {
                assert_eq!(t["Name"], wt["Name"], "{name}: task name");
                assert_eq!(
                    t["Driver"], wt["Driver"],
                    "{name}: driver of {}",
                    wt["Name"]
                );
            }
        }
        let typed = parsed
            .to_job()
            .unwrap_or_else(|e| panic!("{name}: does not fit yurt's job type: {e}"));
        assert_eq!(
            Some(typed.id.as_str()),
            want["ID"].as_str(),
            "{name}: typed ID"
        );
    }
}
