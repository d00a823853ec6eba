//! Variables against real `yurt agent -server` processes: CRUD, a check-and-set race, locks
//! (acquire, renew, conflicts, expiry), items encrypted at rest, the keyring (rotate, full
//! rotation, delete rules, restart), per-path ACLs, and the `yurt var` CLI.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn keys(http: &Http, agent: &Agent) -> Vec<Value> {
    let r = http.get(&agent.url("/v1/operator/keyring/keys"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().expect("a list").clone()
}

fn active_key(http: &Http, agent: &Agent) -> String {
    let keys = keys(http, agent);
    let active: Vec<&Value> = keys.iter().filter(|k| k["State"] == "active").collect();
    assert_eq!(active.len(), 1, "{keys:?}");
    active[0]["KeyID"].as_str().expect("KeyID").to_string()
}

#[test]
fn variables_crud_cas_race_encryption_at_rest_and_keyring() {
    let mut agent = Agent::start(AgentOpts::server());
    let http = Http::default();

    // The first root key exists from the first start.
    let first_key = wait_for(Duration::from_secs(10), "the first root key", || {
        let keys = keys(&http, &agent);
        (keys.len() == 1).then(|| keys[0].clone())
    });
    assert_eq!(first_key["State"], "active");
    assert_eq!(first_key["Algorithm"], "aes256-gcm");
    let first_id = first_key["KeyID"].as_str().expect("KeyID").to_string();

    let secret = "plaintext-f00d-c0ffee-4242";
    let created = http.put(
        &agent.url("/v1/var/app/db"),
        &json!({"Namespace": null, "Path": "ignored/by/url", "Items": {"password": secret, "user": "app"},
            "Unknown": true}),
    );
    assert_eq!(created.status, 200, "{}", created.body);
    let v = created.json();
    assert_eq!(v["Path"], "app/db", "the URL's path wins");
    assert_eq!(v["Namespace"], "default");
    assert_eq!(v["Items"]["password"], secret);
    let index = v["ModifyIndex"].as_u64().expect("ModifyIndex");
    assert_eq!(v["CreateIndex"], index);
    assert_eq!(created.index(), index);
    assert!(v["CreateTime"].as_i64().expect("CreateTime") > 0);

    let read = http.get(&agent.url("/v1/var/app/db"));
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.json()["Items"]["password"], secret);
    assert_eq!(read.index(), index);

    let missing = http.get(&agent.url("/v1/var/nope"));
    assert_eq!(
        (missing.status, missing.body.as_str()),
        (404, "variable not found")
    );

    for (path, body, want) in [
        (
            "/v1/var/app/x",
            json!({"Items": {}}),
            "variable missing required Items object",
        ),
        (
            "/v1/var/app/x",
            json!({"Items": null}),
            "variable missing required Items object",
        ),
        (
            "/v1/var/a.b",
            json!({"Items": {"k": "v"}}),
            "invalid path \"a.b\"",
        ),
        (
            "/v1/var/nomad/other",
            json!({"Items": {"k": "v"}}),
            "only paths at",
        ),
        ("/v1/var/app/x", json!({"Items": {"k": 5}}), "Items"),
        (
            "/v1/var/app/x?cas=abc",
            json!({"Items": {"k": "v"}}),
            "can not parse cas",
        ),
        (
            "/v1/var/app/x",
            json!({"Items": {"k": "x".repeat(70_000)}}),
            "variables are limited to 64KiB in total size",
        ),
    ] {
        let r = http.put(&agent.url(path), &body);
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(r.body.contains(want), "{path}: {}", r.body);
    }
    let r = http.put(&agent.url("/v1/var/"), &json!({"Items": {"k": "v"}}));
    assert_eq!((r.status, r.body.as_str()), (400, "missing variable path"));

    // A list shows metadata only, by prefix.
    let r = http.put(
        &agent.url("/v1/var/other/thing"),
        &json!({"Items": {"k": "v"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let list = http.get(&agent.url("/v1/vars?prefix=app"));
    assert_eq!(list.status, 200, "{}", list.body);
    let list = list.json();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["Path"], "app/db");
    assert!(list[0].get("Items").is_none(), "{list}");
    let all = http.get(&agent.url("/v1/vars?namespace=*")).json();
    assert_eq!(all.as_array().map(Vec::len), Some(2));
    let filtered = http.get(&agent.url(
        "/v1/vars?namespace=*&filter=Path%20contains%20%22thing%22%20and%20Namespace%20%3D%3D%20default",
    ));
    assert_eq!(filtered.status, 200, "{}", filtered.body);
    let filtered = filtered.json();
    assert_eq!(filtered.as_array().map(Vec::len), Some(1), "{filtered}");
    assert_eq!(filtered[0]["Path"], "other/thing");
    let r = http.get(&agent.url("/v1/vars?filter=Path%20%3D%3D"));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.starts_with("failed to read filter expression"),
        "{}",
        r.body
    );
    let page = http.get(&agent.url("/v1/vars?per_page=1"));
    assert_eq!(
        page.header("X-Nomad-NextToken").as_deref(),
        Some("default.other/thing")
    );

    // Two writers at the same check-and-set index: exactly one wins, the other gets a 409
    // carrying the variable the winner wrote.
    let barrier = Arc::new(Barrier::new(2));
    let url = agent.url(&format!("/v1/var/app/db?cas={index}"));
    let writers: Vec<_> = ["alpha", "beta"]
        .into_iter()
        .map(|who| {
            let (barrier, url) = (barrier.clone(), url.clone());
            std::thread::spawn(move || {
                let http = Http::default();
                barrier.wait();
                let r = http.put(&url, &json!({"Items": {"writer": who}}));
                (who, r.status, r.body)
            })
        })
        .collect();
    let results: Vec<(&str, u16, String)> = writers
        .into_iter()
        .map(|h| h.join().expect("writer thread"))
        .collect();
    let winners: Vec<_> = results.iter().filter(|r| r.1 == 200).collect();
    let losers: Vec<_> = results.iter().filter(|r| r.1 == 409).collect();
    assert_eq!((winners.len(), losers.len()), (1, 1), "{results:?}");
    let current: Value = serde_json::from_str(&losers[0].2).expect("conflict body");
    assert_eq!(current["Items"]["writer"], winners[0].0);
    let won_index = current["ModifyIndex"].as_u64().expect("ModifyIndex");
    assert!(won_index > index);

    // Create-only on an existing variable conflicts too; a blocking read wakes on a write.
    let r = http.put(
        &agent.url("/v1/var/app/db?cas=0"),
        &json!({"Items": {"k": "v"}}),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    let blocked = {
        let url = agent.url(&format!("/v1/var/app/db?index={won_index}&wait=20s"));
        std::thread::spawn(move || Http::default().get(&url))
    };
    std::thread::sleep(Duration::from_millis(300));
    let r = http.put(
        &agent.url(&format!("/v1/var/app/db?cas={won_index}")),
        &json!({"Items": {"password": secret}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let latest = r.json()["ModifyIndex"].as_u64().expect("ModifyIndex");
    let woke = blocked.join().expect("blocking read");
    assert_eq!(woke.index(), latest);
    assert_eq!(woke.json()["Items"]["password"], secret);

    // Deletes: a stale check-and-set conflicts; a plain one answers 204.
    let r = http.delete(&agent.url("/v1/var/other/thing?cas=1"));
    assert_eq!(r.status, 409, "{}", r.body);
    let r = http.delete(&agent.url("/v1/var/other/thing"));
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    assert_eq!(http.get(&agent.url("/v1/var/other/thing")).status, 404);

    // Rotation: a new active key; the variable sealed with the old one still reads, and the
    // old key cannot go while it seals a variable.
    let r = http.put(&agent.url("/v1/operator/keyring/rotate"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let second_id = r.json()["Key"]["KeyID"]
        .as_str()
        .expect("KeyID")
        .to_string();
    assert_eq!(active_key(&http, &agent), second_id);
    assert_eq!(
        http.get(&agent.url("/v1/var/app/db")).json()["Items"]["password"],
        secret
    );
    let r = http.delete(&agent.url(&format!("/v1/operator/keyring/key/{first_id}")));
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "root key in use, cannot delete")
    );
    let r = http.delete(&agent.url(&format!("/v1/operator/keyring/key/{second_id}")));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("active root key cannot be deleted"));
    let r = http.delete(&agent.url("/v1/operator/keyring/key/nope"));
    assert_eq!(r.status, 404, "{}", r.body);

    // A full rotation seals every variable again, so the old keys can go.
    let r = http.put(&agent.url("/v1/operator/keyring/rotate?full"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let third_id = r.json()["Key"]["KeyID"]
        .as_str()
        .expect("KeyID")
        .to_string();
    for old in [&first_id, &second_id] {
        let r = http.delete(&agent.url(&format!("/v1/operator/keyring/key/{old}")));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(keys(&http, &agent).len(), 1);

    // The plaintext is nowhere in the data dir (state, keystore) nor in the log.
    let data_dir = agent.data_dir.path().join("data");
    let files = files_under(&data_dir);
    // The state's writes live in the Raft log (docs/raft.md §3).
    assert!(
        files.iter().any(|f| f.ends_with("raft/log.redb")),
        "{files:?}"
    );
    for f in &files {
        let bytes = std::fs::read(f).expect("read data file");
        assert!(
            !contains(&bytes, secret.as_bytes()),
            "{} holds the plaintext",
            f.display()
        );
    }
    let log = agent.log();
    assert!(!log.contains(secret), "the log holds the plaintext");

    // Key files are the owner's only, one per key.
    use std::os::unix::fs::PermissionsExt;
    let key_files = files_under(&data_dir.join("server/keystore"));
    assert_eq!(key_files.len(), 1, "{key_files:?}");
    let mode = std::fs::metadata(&key_files[0])
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // A restart keeps the keys and the variables.
    agent.restart();
    let r = http.get(&agent.url("/v1/var/app/db"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["Items"]["password"], secret);
    assert_eq!(active_key(&http, &agent), third_id);
}

#[test]
fn locks_are_acquired_renewed_guarded_and_expire() {
    let agent = Agent::start(AgentOpts::server());
    let http = Http::default();
    let url = |q: &str| agent.url(&format!("/v1/var/locks/leader?{q}"));

    let r = http.put(
        &url("lock-acquire"),
        &json!({"Items": {"holder": "a"}, "Lock": {"TTL": "10s", "LockDelay": "1s"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let lock = r.json()["Lock"].clone();
    let id = lock["ID"].as_str().expect("Lock.ID").to_string();
    assert_eq!(
        (lock["TTL"].as_str(), lock["LockDelay"].as_str()),
        (Some("10s"), Some("1s"))
    );

    // Only the holder writes a locked variable; no one else takes the lock.
    let r = http.put(&url(""), &json!({"Items": {"holder": "b"}}));
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["Path"], "locks/leader");
    assert!(r.json().get("Items").is_none(), "{}", r.body);
    let r = http.put(&url("lock-acquire"), &json!({"Lock": {"TTL": "10s"}}));
    assert_eq!(r.status, 409, "{}", r.body);
    let r = http.delete(&url(""));
    assert_eq!(r.status, 409, "{}", r.body);
    let r = http.put(
        &url(""),
        &json!({"Items": {"holder": "a2"}, "Lock": {"ID": id}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // Renewal by the holder; a wrong ID, or a release by someone else, conflicts.
    let r = http.put(&url("lock-renew"), &json!({"Lock": {"ID": id}}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["Lock"]["ID"], id.as_str());
    let r = http.put(&url("lock-renew"), &json!({"Lock": {"ID": "someone-else"}}));
    assert_eq!(
        (r.status, r.body.as_str()),
        (409, "attempting to modify locked variable")
    );
    let r = http.put(
        &url("lock-release"),
        &json!({"Lock": {"ID": "someone-else"}}),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    let r = http.put(&url("lock-release&cas=3"), &json!({"Lock": {"ID": id}}));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = http.put(
        &url("lock-release&lock-renew"),
        &json!({"Lock": {"ID": id}}),
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "multiple lock operations")
    );
    let r = http.put(&url("lock-acquire"), &json!({"Lock": {"TTL": "1s"}}));
    assert_eq!(r.status, 400, "{}", r.body);

    // Released: anyone may write again, and the items stay.
    let r = http.put(&url("lock-release"), &json!({"Lock": {"ID": id}}));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = http.get(&url("")).json();
    assert!(v.get("Lock").is_none(), "{v}");
    assert_eq!(v["Items"]["holder"], "a2");
    let r = http.put(&url("lock-renew"), &json!({"Lock": {"ID": id}}));
    assert_eq!(
        (r.status, r.body.as_str()),
        (409, "variable doesn't hold a lock")
    );

    // A lock nobody renews goes after twice its TTL plus its delay.
    let r = http.put(
        &url("lock-acquire"),
        &json!({"Items": {"holder": "c"}, "Lock": {"TTL": "10s", "LockDelay": "1s"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let taken = Instant::now();
    wait_for(Duration::from_secs(40), "the lock to expire", || {
        http.get(&url(""))
            .json()
            .get("Lock")
            .is_none()
            .then_some(())
    });
    let held_for = taken.elapsed();
    assert!(
        held_for >= Duration::from_secs(20),
        "expired after {held_for:?}"
    );
    let r = http.put(&url(""), &json!({"Items": {"holder": "d"}}));
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn an_acl_token_sees_and_writes_only_its_paths() {
    let mut opts = AgentOpts::server();
    opts.extra_hcl
        .push_str("acl {\n  enabled = true\n  token_min_expiration_ttl = \"1s\"\n}\n");
    let agent = Agent::start(opts);
    let anon = Http::default();
    let r = anon.post(&agent.url("/v1/acl/bootstrap"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let mgmt_secret = r.json()["SecretID"].as_str().expect("SecretID").to_string();
    let call = |method: &str, secret: &str, path: &str, body: Option<Value>| {
        let client = reqwest::blocking::Client::new();
        let mut req = client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                agent.url(path),
            )
            .header("X-Nomad-Token", secret);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().expect("request");
        let status = r.status().as_u16();
        (status, r.text().unwrap_or_default())
    };
    let rules = "namespace \"default\" {\n  variables {\n    path \"team/*\" {\n      capabilities = [\"write\", \"read\", \"list\"]\n    }\n  }\n}\n";
    let (s, b) = call(
        "POST",
        &mgmt_secret,
        "/v1/acl/policy/team",
        Some(json!({"Name": "team", "Rules": rules})),
    );
    assert_eq!(s, 200, "{b}");
    let (s, b) = call(
        "POST",
        &mgmt_secret,
        "/v1/acl/token",
        Some(json!({"Name": "team", "Type": "client", "Policies": ["team"]})),
    );
    assert_eq!(s, 200, "{b}");
    let team: Value = serde_json::from_str(&b).expect("token");
    let team = team["SecretID"].as_str().expect("SecretID").to_string();

    for path in ["team/a", "other/b"] {
        let (s, b) = call(
            "PUT",
            &mgmt_secret,
            &format!("/v1/var/{path}"),
            Some(json!({"Items": {"k": "v"}})),
        );
        assert_eq!(s, 200, "{b}");
    }
    let (s, b) = call(
        "PUT",
        &team,
        "/v1/var/team/c",
        Some(json!({"Items": {"k": "v"}})),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        call(
            "PUT",
            &team,
            "/v1/var/other/c",
            Some(json!({"Items": {"k": "v"}}))
        )
        .0,
        403
    );
    // The body's namespace is the one checked.
    let (s, _) = call(
        "PUT",
        &team,
        "/v1/var/team/d",
        Some(json!({"Namespace": "prod", "Items": {"k": "v"}})),
    );
    assert_eq!(s, 403);
    assert_eq!(call("GET", &team, "/v1/var/team/a", None).0, 200);
    assert_eq!(call("GET", &team, "/v1/var/other/b", None).0, 403);
    assert_eq!(
        call("DELETE", &team, "/v1/var/team/a", None).0,
        403,
        "no destroy"
    );
    let (s, b) = call("GET", &team, "/v1/vars", None);
    assert_eq!(s, 200, "{b}");
    let listed: Value = serde_json::from_str(&b).expect("list");
    let paths: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v["Path"].as_str().expect("Path"))
        .collect();
    assert_eq!(paths, ["team/a", "team/c"]);
    // Without a token nothing is listed, and the keyring is an operator's.
    let (s, b) = (
        anon.get(&agent.url("/v1/vars")).status,
        anon.get(&agent.url("/v1/vars")).body,
    );
    assert_eq!((s, b.as_str()), (200, "[]"));
    assert_eq!(call("GET", &team, "/v1/operator/keyring/keys", None).0, 403);
    assert_eq!(
        call("PUT", &team, "/v1/operator/keyring/rotate", None).0,
        403
    );
    assert_eq!(
        call("GET", &mgmt_secret, "/v1/operator/keyring/keys", None).0,
        200
    );
}

fn yurt(agent: &Agent, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_yurt"))
        .args(args)
        .env("NOMAD_ADDR", agent.url(""))
        .env_remove("NOMAD_TOKEN")
        .env_remove("NOMAD_NAMESPACE")
        .output()
        .expect("run yurt");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_var_cli_round_trips() {
    let agent = Agent::start(AgentOpts::server());
    let (code, out, err) = yurt(
        &agent,
        &[
            "var",
            "put",
            "-out",
            "none",
            "app/cfg",
            "user=me",
            "pw=hunter2",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("Created variable \"app/cfg\" with modify index "),
        "{out}"
    );
    let (code, out, err) = yurt(&agent, &["var", "get", "-item", "pw", "app/cfg"]);
    assert_eq!((code, out.as_str()), (0, "hunter2"), "{err}");
    let (code, out, _) = yurt(&agent, &["var", "get", "app/cfg"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).expect("JSON when piped");
    assert_eq!(v["Items"]["user"], "me");
    let (code, out, _) = yurt(&agent, &["var", "get", "-out", "table", "app/cfg"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Path        = app/cfg") && out.contains("pw   = hunter2"),
        "{out}"
    );
    let (code, _, err) = yurt(&agent, &["var", "get", "-item", "nope", "app/cfg"]);
    assert_eq!(
        (code, err.trim()),
        (1, "Variable does not contain \"nope\" item")
    );
    let (code, _, err) = yurt(&agent, &["var", "get", "missing"]);
    assert_eq!((code, err.trim()), (1, "Variable not found"));

    // Without -force or -check-index, a put only creates.
    let (code, _, err) = yurt(&agent, &["var", "put", "app/cfg", "pw=new"]);
    assert_eq!(code, 1);
    assert!(err.contains("Check-and-Set conflict"), "{err}");
    let (code, out, err) = yurt(
        &agent,
        &["var", "put", "-force", "-out", "json", "app/cfg", "pw=new"],
    );
    assert_eq!(code, 0, "{err}");
    let written: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(written["Items"]["pw"], "new");
    let index = written["ModifyIndex"]
        .as_u64()
        .expect("ModifyIndex")
        .to_string();
    let (code, _, err) = yurt(
        &agent,
        &["var", "put", "-check-index", &index, "app/cfg", "pw=newer"],
    );
    assert_eq!(code, 0, "{err}");

    let (code, out, _) = yurt(&agent, &["var", "list", "-out", "table"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("Namespace  Path     Last Updated\ndefault    app/cfg  "),
        "{out}"
    );
    let (code, out, _) = yurt(&agent, &["var", "list", "-out", "table", "nothing"]);
    assert_eq!((code, out.trim()), (0, "No matching variables found"));

    // The lock is held while the command runs, and released after.
    let (code, out, err) = yurt(
        &agent,
        &["var", "lock", "-ttl", "10s", "app/lock", "echo held"],
    );
    assert_eq!((code, out.trim()), (0, "held"), "{err}");
    let lock = Http::default().get(&agent.url("/v1/var/app/lock"));
    assert_eq!(lock.status, 200, "{}", lock.body);
    assert!(lock.json().get("Lock").is_none(), "released: {}", lock.body);
    let (code, _, err) = yurt(&agent, &["var", "lock", "app/lock", "exit 3"]);
    assert_eq!((code, err.trim()), (1, "Lock error:exit status 3"));

    let (code, out, err) = yurt(&agent, &["var", "purge", "app/cfg"]);
    assert_eq!(
        (code, out.trim()),
        (0, "Successfully purged variable \"app/cfg\"!"),
        "{err}"
    );
    assert_eq!(
        Http::default().get(&agent.url("/v1/var/app/cfg")).status,
        404
    );
}
