//! Structural diffs between job versions (`GET /v1/job/:id/versions?diffs=true`), in Nomad's
//! JobDiff shape: job fields and objects, task groups matched by name, tasks by name.

use serde_json::{Map, Value, json};

use crate::structs::Job;

/// Fields the server sets; they are not part of a user's change.
const SERVER_FIELDS: &[&str] = &[
    "CreateIndex",
    "ModifyIndex",
    "JobModifyIndex",
    "Version",
    "Status",
    "StatusDescription",
    "SubmitTime",
    "Stable",
    // A name given to a stored version, never part of a submitted spec.
    "VersionTag",
];

fn scalar_str(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Object(_) | Value::Array(_))
}

fn change_type(old: &Value, new: &Value) -> &'static str {
    match (old.is_null(), new.is_null()) {
        (true, false) => "Added",
        (false, true) => "Deleted",
        _ => "Edited",
    }
}

fn field(kind: &str, name: &str, old: &Value, new: &Value) -> Value {
    json!({"Annotations": null, "Name": name, "New": scalar_str(new), "Old": scalar_str(old), "Type": kind})
}

/// Field and object diffs of two JSON objects, skipping `skip` keys.
fn diff_members(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    skip: &[&str],
) -> (Vec<Value>, Vec<Value>) {
    let mut fields = Vec::new();
    let mut objects = Vec::new();
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let null = Value::Null;
    for key in keys {
        if skip.contains(&key.as_str()) {
            continue;
        }
        let o = old.get(key).unwrap_or(&null);
        let n = new.get(key).unwrap_or(&null);
        if o == n {
            continue;
        }
        match (o, n) {
            (a, b) if is_scalar(a) && is_scalar(b) => {
                fields.push(field(change_type(a, b), key, a, b));
            }
            (Value::Object(_), _) | (_, Value::Object(_)) => {
                let om = o.as_object().cloned().unwrap_or_default();
                let nm = n.as_object().cloned().unwrap_or_default();
                if om.values().chain(nm.values()).all(is_scalar) {
                    // Maps of strings (Env, Meta, Config scalars) diff as `Key[sub]` fields.
                    let (sub_fields, _) = diff_members(&om, &nm, &[]);
                    for mut f in sub_fields {
                        if let Some(name) =
                            f.get("Name").and_then(Value::as_str).map(str::to_string)
                        {
                            f["Name"] = Value::String(format!("{key}[{name}]"));
                        }
                        fields.push(f);
                    }
                } else {
                    let (f, ob) = diff_members(&om, &nm, &[]);
                    objects.push(
                        json!({"Type": change_type(o, n), "Name": key, "Fields": f, "Objects": ob}),
                    );
                }
            }
            _ => {
                let oa = o.as_array().cloned().unwrap_or_default();
                let na = n.as_array().cloned().unwrap_or_default();
                if oa.iter().chain(na.iter()).all(is_scalar) {
                    for v in oa.iter().filter(|v| !na.contains(v)) {
                        fields.push(field("Deleted", key, v, &Value::Null));
                    }
                    for v in na.iter().filter(|v| !oa.contains(v)) {
                        fields.push(field("Added", key, &Value::Null, v));
                    }
                } else {
                    for i in 0..oa.len().max(na.len()) {
                        let a = oa.get(i).cloned().unwrap_or(Value::Null);
                        let b = na.get(i).cloned().unwrap_or(Value::Null);
                        if a == b {
                            continue;
                        }
                        let (f, ob) = diff_members(
                            &a.as_object().cloned().unwrap_or_default(),
                            &b.as_object().cloned().unwrap_or_default(),
                            &[],
                        );
                        objects.push(json!({"Type": change_type(&a, &b), "Name": key, "Fields": f, "Objects": ob}));
                    }
                }
            }
        }
    }
    (fields, objects)
}

fn named(list: &Value) -> Vec<(String, Map<String, Value>)> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let m = v.as_object()?.clone();
            let name = m.get("Name").and_then(Value::as_str)?.to_string();
            Some((name, m))
        })
        .collect()
}

fn diff_named(old: &Value, new: &Value, skip: &[&str], inner: Option<&str>) -> Vec<Value> {
    let olds = named(old);
    let news = named(new);
    let mut names: Vec<String> = olds
        .iter()
        .chain(news.iter())
        .map(|(n, _)| n.clone())
        .collect();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        let o = olds
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| m.clone());
        let n = news
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| m.clone());
        let kind = match (&o, &n) {
            (None, Some(_)) => "Added",
            (Some(_), None) => "Deleted",
            _ => "Edited",
        };
        let om = o.unwrap_or_default();
        let nm = n.unwrap_or_default();
        let mut skip_all: Vec<&str> = skip.to_vec();
        if let Some(i) = inner {
            skip_all.push(i);
        }
        let (fields, objects) = diff_members(&om, &nm, &skip_all);
        let mut entry = json!({"Type": kind, "Name": name, "Fields": nullable(fields), "Objects": nullable(objects)});
        let mut changed =
            kind != "Edited" || !entry["Fields"].is_null() || !entry["Objects"].is_null();
        if let Some(i) = inner {
            let tasks = diff_named(
                om.get(i).unwrap_or(&Value::Null),
                nm.get(i).unwrap_or(&Value::Null),
                &[],
                None,
            );
            changed |= !tasks.is_empty();
            entry[i] = nullable(tasks);
            entry["Updates"] = Value::Null;
        } else {
            entry["Annotations"] = Value::Null;
        }
        if changed {
            out.push(entry);
        }
    }
    out
}

fn nullable(v: Vec<Value>) -> Value {
    if v.is_empty() {
        Value::Null
    } else {
        Value::Array(v)
    }
}

/// The diff from `old` to `new`.
pub fn job_diff(old: &Job, new: &Job) -> Value {
    job_diff_from(Some(old), new)
}

/// The diff from `old` (None: the job is new, every field `Added`) to `new`.
pub fn job_diff_from(old: Option<&Job>, new: &Job) -> Value {
    let o = old.map_or(Value::Null, |j| {
        serde_json::to_value(j).unwrap_or(Value::Null)
    });
    let n = serde_json::to_value(new).unwrap_or(Value::Null);
    let empty = Map::new();
    let om = o.as_object().unwrap_or(&empty);
    let nm = n.as_object().unwrap_or(&empty);
    let mut skip: Vec<&str> = SERVER_FIELDS.to_vec();
    skip.push("TaskGroups");
    let (fields, objects) = diff_members(om, nm, &skip);
    let groups = diff_named(
        om.get("TaskGroups").unwrap_or(&Value::Null),
        nm.get("TaskGroups").unwrap_or(&Value::Null),
        &[],
        Some("Tasks"),
    );
    let kind = if old.is_none() {
        "Added"
    } else if fields.is_empty() && objects.is_empty() && groups.is_empty() {
        "None"
    } else {
        "Edited"
    };
    json!({
        "Fields": nullable(fields),
        "ID": new.id,
        "Objects": nullable(objects),
        "TaskGroups": nullable(groups),
        "Type": kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_change_in_a_task_is_reported_like_nomad() {
        let mk = |env: serde_json::Value| -> Job {
            serde_json::from_value(json!({"ID": "example", "TaskGroups": [{"Name": "cache",
                "Tasks": [{"Name": "redis", "Driver": "docker", "Env": env}]}]}))
            .unwrap()
        };
        let d = job_diff(&mk(Value::Null), &mk(json!({"foo": "bar"})));
        assert_eq!(d["Type"], "Edited");
        let tg = &d["TaskGroups"][0];
        assert_eq!(tg["Name"], "cache");
        assert_eq!(tg["Type"], "Edited");
        let task = &tg["Tasks"][0];
        assert_eq!(task["Name"], "redis");
        assert_eq!(task["Fields"][0]["Name"], "Env[foo]");
        assert_eq!(task["Fields"][0]["Type"], "Added");
        assert_eq!(task["Fields"][0]["New"], "bar");
    }

    #[test]
    fn identical_jobs_have_no_diff() {
        let j: Job = serde_json::from_value(json!({"ID": "a", "Priority": 10})).unwrap();
        let mut k = j.clone();
        k.version = 3;
        assert_eq!(job_diff(&j, &k)["Type"], "None");
    }
}
