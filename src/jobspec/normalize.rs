//! What Nomad's parser does after decoding: names from labels, the periodic spec type,
//! top-level tasks as groups, the job-level `vault` and `secret` copied into tasks, ports
//! with a static value moved to the reserved list, template and vault defaults, the group
//! scaling type and the default identity; plus the full set of API keys (unset ones `null`) for the reply.

use serde_json::{Map, Value as Json, json};

const SECOND: i64 = 1_000_000_000;

/// Applies Nomad's post-parse normalization to the decoded `job` object.
pub fn normalize(job: &mut Map<String, Json>, label: &str) {
    job.entry("ID")
        .or_insert_with(|| Json::String(label.to_string()));
    job.entry("Name")
        .or_insert_with(|| Json::String(label.to_string()));
    if let Some(Json::Object(p)) = job.get_mut("Periodic")
        && (p.contains_key("Spec") || p.contains_key("Specs"))
    {
        p.insert("SpecType".to_string(), json!("cron"));
    }
    let vault = job.remove("Vault").map(|mut v| {
        vault_defaults(&mut v);
        v
    });
    let secrets = job.remove("Secrets");
    if let Some(Json::Array(tasks)) = job.remove("Tasks") {
        let mut groups: Vec<Json> = tasks
            .into_iter()
            .map(|t| {
                let name = t.get("Name").cloned().unwrap_or(Json::Null);
                json!({ "Name": name, "Tasks": [t] })
            })
            .collect();
        if let Some(Json::Array(existing)) = job.remove("TaskGroups") {
            groups.extend(existing);
        }
        job.insert("TaskGroups".to_string(), Json::Array(groups));
    }
    for group in job
        .get_mut("TaskGroups")
        .and_then(Json::as_array_mut)
        .into_iter()
        .flatten()
    {
        ports(group.get_mut("Networks"));
        // A group scales horizontally; both of Nomad's parsers write the type out.
        if let Some(Json::Object(s)) = group.get_mut("Scaling") {
            s.entry("Type").or_insert(json!("horizontal"));
        }
        let group_vault = group.as_object_mut().and_then(|g| g.remove("Vault"));
        for task in group
            .get_mut("Tasks")
            .and_then(Json::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(task) = task.as_object_mut() else {
                continue;
            };
            if let Some(v) = &group_vault {
                task.entry("Vault").or_insert_with(|| v.clone());
            }
            if let Some(Json::Object(r)) = task.get_mut("Resources") {
                ports(r.get_mut("Networks"));
            }
            for t in task
                .get_mut("Templates")
                .and_then(Json::as_array_mut)
                .into_iter()
                .flatten()
            {
                template_defaults(t);
            }
            match task.get_mut("Vault") {
                Some(v) => vault_defaults(v),
                None => {
                    if let Some(v) = &vault {
                        task.insert("Vault".to_string(), v.clone());
                    }
                }
            }
            if let Some(Json::Array(shared)) = &secrets {
                match task.get_mut("Secrets") {
                    Some(Json::Array(own)) => own.extend(shared.iter().cloned()),
                    _ => {
                        task.insert("Secrets".to_string(), Json::Array(shared.clone()));
                    }
                }
            }
            default_identity(task);
        }
    }
}

fn ports(networks: Option<&mut Json>) {
    for n in networks.and_then(Json::as_array_mut).into_iter().flatten() {
        let Some(Json::Array(dynamic)) = n.get_mut("DynamicPorts").map(std::mem::take) else {
            continue;
        };
        let (reserved, dynamic): (Vec<Json>, Vec<Json>) = dynamic
            .into_iter()
            .map(|mut p| {
                // Go encodes a port's unset ints and strings as zero values.
                if let Some(o) = p.as_object_mut() {
                    o.entry("Value").or_insert(json!(0));
                    o.entry("To").or_insert(json!(0));
                    o.entry("HostNetwork").or_insert(json!(""));
                }
                p
            })
            .partition(|p| p.get("Value").and_then(Json::as_i64).unwrap_or(0) > 0);
        let o = n.as_object_mut();
        if let Some(o) = o {
            o.insert(
                "DynamicPorts".to_string(),
                if dynamic.is_empty() {
                    Json::Null
                } else {
                    Json::Array(dynamic)
                },
            );
            if !reserved.is_empty() {
                match o.get_mut("ReservedPorts") {
                    Some(Json::Array(r)) => r.extend(reserved),
                    _ => {
                        o.insert("ReservedPorts".to_string(), Json::Array(reserved));
                    }
                }
            }
        }
    }
}

fn template_defaults(t: &mut Json) {
    let Some(t) = t.as_object_mut() else { return };
    t.entry("ChangeMode").or_insert(json!("restart"));
    t.entry("Perms").or_insert(json!("0644"));
    t.entry("Splay").or_insert(json!(5 * SECOND));
    t.entry("ErrMissingKey").or_insert(json!(false));
    if let Some(Json::Object(cs)) = t.get_mut("ChangeScript") {
        cs.entry("Args").or_insert(json!([]));
        cs.entry("Timeout").or_insert(json!(5 * SECOND));
        cs.entry("FailOnError").or_insert(json!(false));
        cs.entry("RunOnFirstRender").or_insert(json!(false));
    }
}

fn vault_defaults(v: &mut Json) {
    let Some(v) = v.as_object_mut() else { return };
    v.entry("Env").or_insert(json!(true));
    v.entry("DisableFile").or_insert(json!(false));
    v.entry("ChangeMode").or_insert(json!("restart"));
}

/// Nomad moves the default identity (unnamed or `default`) to `Identity`.
fn default_identity(task: &mut Map<String, Json>) {
    let Some(Json::Array(ids)) = task.get_mut("Identities") else {
        return;
    };
    let Some(i) = ids.iter().position(|w| {
        matches!(
            w.get("Name").and_then(Json::as_str),
            None | Some("") | Some("default")
        )
    }) else {
        return;
    };
    let id = ids.remove(i);
    if ids.is_empty() {
        task.remove("Identities");
    }
    task.insert("Identity".to_string(), id);
}

fn job_skeleton() -> Vec<(&'static str, Json)> {
    let null = Json::Null;
    let mut keys: Vec<(&'static str, Json)> = [
        "Region",
        "Namespace",
        "ID",
        "Name",
        "Type",
        "Priority",
        "AllAtOnce",
        "Datacenters",
        "NodePool",
        "Constraints",
        "Affinities",
        "TaskGroups",
        "Update",
        "Multiregion",
        "Spreads",
        "Periodic",
        "ParameterizedJob",
        "Reschedule",
        "Migrate",
        "Meta",
        "UI",
        "Stop",
        "ParentID",
        "DispatchIdempotencyToken",
        "Payload",
        "ConsulNamespace",
        "VaultNamespace",
        "NomadTokenID",
        "Status",
        "StatusDescription",
        "Stable",
        "Version",
        "SubmitTime",
        "CreateIndex",
        "ModifyIndex",
        "JobModifyIndex",
        "VersionTag",
    ]
    .into_iter()
    .map(|k| (k, null.clone()))
    .collect();
    keys.push(("Dispatched", json!(false)));
    keys
}

fn group_skeleton() -> Vec<(&'static str, Json)> {
    [
        "Name",
        "Count",
        "Constraints",
        "Affinities",
        "Tasks",
        "Spreads",
        "Volumes",
        "RestartPolicy",
        "Disconnect",
        "ReschedulePolicy",
        "EphemeralDisk",
        "Update",
        "Migrate",
        "Networks",
        "Meta",
        "Services",
        "ShutdownDelay",
        "StopAfterClientDisconnect",
        "MaxClientDisconnect",
        "Scaling",
        "Consul",
        "PreventRescheduleOnLost",
    ]
    .into_iter()
    .map(|k| (k, Json::Null))
    .collect()
}

fn task_skeleton() -> Vec<(&'static str, Json)> {
    let mut keys: Vec<(&'static str, Json)> = [
        "Lifecycle",
        "Config",
        "Constraints",
        "Affinities",
        "Env",
        "Services",
        "Resources",
        "RestartPolicy",
        "Meta",
        "KillTimeout",
        "LogConfig",
        "Artifacts",
        "Vault",
        "Consul",
        "Templates",
        "DispatchPayload",
        "VolumeMounts",
        "ScalingPolicies",
        "Identity",
        "Identities",
        "Actions",
        "Schedule",
    ]
    .into_iter()
    .map(|k| (k, Json::Null))
    .collect();
    keys.extend([
        ("Name", json!("")),
        ("Driver", json!("")),
        ("User", json!("")),
        ("Leader", json!(false)),
        ("ShutdownDelay", json!(0)),
        ("KillSignal", json!("")),
        ("Kind", json!("")),
    ]);
    keys
}

fn fill(obj: &mut Map<String, Json>, keys: Vec<(&'static str, Json)>) {
    for (k, v) in keys {
        obj.entry(k).or_insert(v);
    }
}

/// The job as Nomad's API encodes a parsed, uncanonicalized job: every key present, unset
/// ones `null`.
pub fn with_unset_keys(job: &Json) -> Json {
    let mut job = job.clone();
    if let Some(o) = job.as_object_mut() {
        fill(o, job_skeleton());
        for g in o
            .get_mut("TaskGroups")
            .and_then(Json::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(g) = g.as_object_mut() else { continue };
            fill(g, group_skeleton());
            for t in g
                .get_mut("Tasks")
                .and_then(Json::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(t) = t.as_object_mut() {
                    fill(t, task_skeleton());
                }
            }
        }
    }
    job
}

/// Job-level `reschedule` and `migrate` apply to every group that does not set them (yurt's
/// job type keeps them per group, as Nomad's canonicalized job does).
pub fn push_job_policies_into_groups(job: &mut Map<String, Json>) {
    let reschedule = job.remove("Reschedule");
    let migrate = job.remove("Migrate");
    for g in job
        .get_mut("TaskGroups")
        .and_then(Json::as_array_mut)
        .into_iter()
        .flatten()
    {
        let Some(g) = g.as_object_mut() else { continue };
        for (from, field) in [(&reschedule, "ReschedulePolicy"), (&migrate, "Migrate")] {
            let Some(Json::Object(job_level)) = from else {
                continue;
            };
            let mut merged = job_level.clone();
            if let Some(Json::Object(own)) = g.get(field) {
                merged.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            g.insert(field.to_string(), Json::Object(merged));
        }
    }
}
