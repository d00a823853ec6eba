//! Nomad's annotated job diff as `job plan` and `job history -p` print it: `+` added,
//! `-` deleted, `+/-` edited, fields aligned under their object, groups with the scheduler's
//! decisions (`(1 create, 2 in-place update)`). Works on the API's `JobDiff` JSON.

use serde_json::Value;

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

fn list(v: &Value, key: &str) -> Vec<Value> {
    v[key].as_array().cloned().unwrap_or_default()
}

/// The marker of a diff type and its printed width.
fn marker(diff_type: &str) -> (&'static str, usize) {
    match diff_type {
        "Added" => ("+ ", 2),
        "Deleted" => ("- ", 2),
        "Edited" => ("+/- ", 4),
        _ => ("", 0),
    }
}

fn spaces(n: usize) -> String {
    " ".repeat(n)
}

/// The longest field name and the longest marker among `fields` and `objects`.
fn longest(fields: &[Value], objects: &[Value]) -> (usize, usize) {
    let mut field = 0;
    let mut mark = 0;
    for f in fields {
        field = field.max(text(f, "Name").len());
        mark = mark.max(marker(&text(f, "Type")).1);
    }
    for o in objects {
        mark = mark.max(marker(&text(o, "Type")).1);
    }
    (field, mark)
}

/// The whole job's diff; `verbose` expands added and deleted groups and tasks.
pub fn format_job_diff(job: &Value, verbose: bool) -> String {
    let ty = text(job, "Type");
    let mut out = format!("{}Job: {:?}\n", marker(&ty).0, text(job, "ID"));
    let fields = list(job, "Fields");
    let objects = list(job, "Objects");
    let groups = list(job, "TaskGroups");
    let (long_field, mut long_mark) = longest(&fields, &objects);
    for g in &groups {
        long_mark = long_mark.max(marker(&text(g, "Type")).1);
    }
    if ty == "Edited" || verbose {
        let fo = aligned(&fields, &objects, 0, long_field, long_mark);
        if !fo.is_empty() {
            out.push_str(&fo);
            out.push('\n');
        }
    }
    for g in &groups {
        let pad = long_mark - marker(&text(g, "Type")).1;
        out.push_str(&format_group(g, pad, verbose));
        out.push('\n');
    }
    out
}

fn format_group(g: &Value, pad: usize, verbose: bool) -> String {
    let ty = text(g, "Type");
    let mut out = format!(
        "{}{}Task Group: {:?}",
        marker(&ty).0,
        spaces(pad),
        text(g, "Name")
    );
    // serde_json keeps object keys sorted, the order Nomad sorts the update types in.
    match g["Updates"].as_object() {
        Some(updates) if !updates.is_empty() => {
            let parts: Vec<String> = updates
                .iter()
                .map(|(kind, n)| format!("{} {kind}", n.as_u64().unwrap_or(0)))
                .collect();
            out.push_str(&format!(" ({})\n", parts.join(", ")));
        }
        _ => out.push('\n'),
    }
    let fields = list(g, "Fields");
    let objects = list(g, "Objects");
    let tasks = list(g, "Tasks");
    let (long_field, mut long_mark) = longest(&fields, &objects);
    for t in &tasks {
        long_mark = long_mark.max(marker(&text(t, "Type")).1);
    }
    let start = pad + 2;
    if ty == "Edited" || verbose {
        let fo = aligned(&fields, &objects, start, long_field, long_mark);
        if !fo.is_empty() {
            out.push_str(&fo);
            out.push('\n');
        }
    }
    for t in &tasks {
        let task_pad = long_mark - marker(&text(t, "Type")).1;
        out.push_str(&format_task(t, start, task_pad, verbose));
        out.push('\n');
    }
    out
}

fn annotations(v: &Value) -> Vec<String> {
    v["Annotations"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn format_task(t: &Value, start: usize, pad: usize, verbose: bool) -> String {
    let ty = text(t, "Type");
    let mut out = format!(
        "{}{}{}Task: {:?}",
        spaces(start),
        marker(&ty).0,
        spaces(pad),
        text(t, "Name")
    );
    let notes = annotations(t);
    if !notes.is_empty() {
        out.push_str(&format!(" ({})", notes.join(", ")));
    }
    if ty == "None" || ty.is_empty() || ((ty == "Added" || ty == "Deleted") && !verbose) {
        return out;
    }
    out.push('\n');
    let fields = list(t, "Fields");
    let objects = list(t, "Objects");
    let (long_field, long_mark) = longest(&fields, &objects);
    out.push_str(&aligned(
        &fields,
        &objects,
        start + 2,
        long_field,
        long_mark,
    ));
    out
}

fn format_object(o: &Value, start: usize, pad: usize) -> String {
    let (mark, mark_len) = marker(&text(o, "Type"));
    let mut out = format!(
        "{}{}{}{} {{\n",
        spaces(start),
        mark,
        spaces(pad),
        text(o, "Name")
    );
    let fields = list(o, "Fields");
    let objects = list(o, "Objects");
    let (long_field, long_mark) = longest(&fields, &objects);
    out.push_str(&aligned(
        &fields,
        &objects,
        start + pad + 2,
        long_field,
        long_mark,
    ));
    format!("{out}\n{}}}", spaces(start + mark_len + pad))
}

fn format_field(f: &Value, start: usize, pad: usize, value_pad: usize) -> String {
    let ty = text(f, "Type");
    let mut out = format!(
        "{}{}{}{}: {}",
        spaces(start),
        marker(&ty).0,
        spaces(pad),
        text(f, "Name"),
        spaces(value_pad)
    );
    let (old, new) = (text(f, "Old"), text(f, "New"));
    match ty.as_str() {
        "Deleted" => out.push_str(&format!("{old:?}")),
        "Edited" => out.push_str(&format!("{old:?} => {new:?}")),
        _ => out.push_str(&format!("{new:?}")),
    }
    let notes = annotations(f);
    if !notes.is_empty() {
        out.push_str(&format!(" ({})", notes.join(", ")));
    }
    out
}

fn aligned(
    fields: &[Value],
    objects: &[Value],
    start: usize,
    long_field: usize,
    long_mark: usize,
) -> String {
    let mut out = String::new();
    for (i, f) in fields.iter().enumerate() {
        let pad = long_mark - marker(&text(f, "Type")).1;
        let value_pad = long_field - text(f, "Name").len();
        out.push_str(&format_field(f, start, pad, value_pad));
        if i + 1 != fields.len() || !objects.is_empty() {
            out.push('\n');
        }
    }
    for (i, o) in objects.iter().enumerate() {
        let pad = long_mark - marker(&text(o, "Type")).1;
        out.push_str(&format_object(o, start, pad));
        if i + 1 != objects.len() {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_edited_count_and_an_added_task() {
        let diff = json!({
            "Type": "Edited", "ID": "web", "Fields": null, "Objects": null,
            "TaskGroups": [{
                "Type": "Edited", "Name": "cache",
                "Updates": {"create": 1, "in-place update": 2},
                "Fields": [{"Type": "Edited", "Name": "Count", "Old": "2", "New": "3",
                            "Annotations": null}],
                "Objects": null,
                "Tasks": [
                    {"Type": "Added", "Name": "sidecar", "Fields": [], "Objects": [],
                     "Annotations": ["forces create/destroy update"]},
                    {"Type": "Edited", "Name": "redis", "Annotations": null,
                     "Fields": [{"Type": "Added", "Name": "Env[A]", "Old": "", "New": "1"}],
                     "Objects": [{"Type": "Edited", "Name": "Config", "Objects": null,
                       "Fields": [{"Type": "Edited", "Name": "image", "Old": "r:6", "New": "r:7"}]}]}
                ]
            }]
        });
        let out = format_job_diff(&diff, false);
        let want = "+/- Job: \"web\"\n\
                    +/- Task Group: \"cache\" (1 create, 2 in-place update)\n\
                    \x20 +/- Count: \"2\" => \"3\"\n\
                    \x20 +   Task: \"sidecar\" (forces create/destroy update)\n\
                    \x20 +/- Task: \"redis\"\n\
                    \x20   +   Env[A]: \"1\"\n\
                    \x20   +/- Config {\n\
                    \x20     +/- image: \"r:6\" => \"r:7\"\n\
                    \x20       }\n\n";
        assert_eq!(out, want);
    }

    #[test]
    fn verbose_expands_added_tasks() {
        let diff = json!({"Type": "Added", "ID": "new", "TaskGroups": [{
            "Type": "Added", "Name": "g", "Updates": {"create": 1},
            "Fields": [{"Type": "Added", "Name": "Count", "Old": "", "New": "1"}],
            "Tasks": [{"Type": "Added", "Name": "t",
                       "Fields": [{"Type": "Added", "Name": "Driver", "Old": "", "New": "raw_exec"}]}]
        }]});
        assert_eq!(
            format_job_diff(&diff, false),
            "+ Job: \"new\"\n+ Task Group: \"g\" (1 create)\n  + Task: \"t\"\n\n"
        );
        assert_eq!(
            format_job_diff(&diff, true),
            "+ Job: \"new\"\n+ Task Group: \"g\" (1 create)\n  + Count: \"1\"\n  \
             + Task: \"t\"\n    + Driver: \"raw_exec\"\n\n"
        );
    }

    #[test]
    fn an_unchanged_job_lists_its_groups_only() {
        let diff = json!({"Type": "None", "ID": "web", "TaskGroups": [
            {"Type": "None", "Name": "cache", "Updates": {"ignore": 3}, "Tasks": null}]});
        assert_eq!(
            format_job_diff(&diff, false),
            "Job: \"web\"\nTask Group: \"cache\" (3 ignore)\n\n"
        );
    }
}
