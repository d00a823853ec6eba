//! `yurt status [<prefix>]`, Nomad's top-level status: without an argument it lists jobs;
//! with one it finds what the prefix names (a job, allocation, node, evaluation, deployment
//! or namespace) through the search API and runs that kind's `status` command.

use std::ffi::OsString;

use clap::Args;
use serde_json::{Value, json};

use super::api_client::ApiClient;
use super::api_flags::ApiFlags;
use super::output::CliError;

/// `yurt status [-verbose] [<prefix>]`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    api: ApiFlags,
    /// Show full IDs.
    #[arg(long)]
    verbose: bool,
    /// An ID (or prefix) of a job, allocation, node, evaluation, deployment or namespace.
    id: Option<String>,
}

/// The search contexts `status` resolves, and the command each one's status runs.
const KINDS: &[(&str, &str)] = &[
    ("allocs", "alloc"),
    ("deployment", "deployment"),
    ("evals", "eval"),
    ("jobs", "job"),
    ("namespaces", "namespace"),
    ("nodes", "node"),
];

/// The argv of the status command the user meant: `yurt <kind> status [flags] <id>`,
/// built from `argv` (`yurt status [flags] <prefix>`).
pub async fn target(a: &StatusArgs, argv: &[OsString]) -> Result<Vec<OsString>, CliError> {
    let Some(prefix) = a.id.as_deref() else {
        return Ok(rewrite(argv, "job", None));
    };
    let api = ApiClient::from_flags(&a.api)?;
    let resp: Value = api
        .post_json("/v1/search", &json!({"Prefix": prefix, "Context": "all"}))
        .await
        .map_err(|e| CliError(format!("Error querying search with id: {e}")))?;
    let (kind, id) = pick(prefix, &resp["Matches"])?;
    Ok(rewrite(argv, kind, Some((prefix, &id))))
}

/// The one object `prefix` names: an exact ID wins; otherwise exactly one context may hold
/// exactly one match.
fn pick(prefix: &str, matches: &Value) -> Result<(&'static str, String), CliError> {
    let found: Vec<(&str, &str, Vec<String>)> = KINDS
        .iter()
        .map(|(ctx, cmd)| {
            let ids = matches[*ctx]
                .as_array()
                .map(|ids| {
                    ids.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            (*ctx, *cmd, ids)
        })
        .filter(|(_, _, ids): &(&str, &str, Vec<String>)| !ids.is_empty())
        .collect();
    let exact: Vec<_> = found
        .iter()
        .filter(|(_, _, ids)| ids.first().is_some_and(|id| id == prefix))
        .collect();
    let ambiguous = || {
        let mut msg = format!("Multiple matches found for id {prefix:?}");
        for (ctx, _, ids) in &found {
            let mut title = ctx.to_string();
            if let Some(first) = title.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            msg.push_str(&format!("\n\n{title}:\n{}", ids.join(", ")));
        }
        CliError(msg)
    };
    match exact.as_slice() {
        [(_, cmd, _)] => return Ok((cmd, prefix.to_string())),
        [_, _, ..] => return Err(ambiguous()),
        [] => {}
    }
    match found.as_slice() {
        [] => Err(format!("No matches found for id {prefix:?}").into()),
        [(_, cmd, ids)] if ids.len() == 1 => Ok((cmd, ids[0].clone())),
        _ => Err(ambiguous()),
    }
}

/// `argv` with `status` turned into `<kind> status` and the prefix into the full ID.
fn rewrite(argv: &[OsString], kind: &str, id: Option<(&str, &str)>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(argv.len() + 1);
    let mut rest = argv.iter();
    if let Some(program) = rest.next() {
        out.push(program.clone());
    }
    let mut seen_status = false;
    let mut tail: Vec<OsString> = Vec::new();
    for arg in rest {
        // `namespace status` has no -verbose (namespaces have no IDs to shorten).
        if kind == "namespace" && (arg == "-verbose" || arg == "--verbose") {
            continue;
        }
        if !seen_status && arg == "status" {
            seen_status = true;
            out.push(OsString::from(kind));
            out.push(arg.clone());
            continue;
        }
        tail.push(arg.clone());
    }
    if let Some((prefix, full)) = id
        && let Some(last) = tail.iter().rposition(|a| a == prefix)
    {
        tail[last] = OsString::from(full);
    }
    out.extend(tail);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_prefix_resolves_to_one_kind_or_fails_listing_all() {
        let m = json!({"jobs": ["web"], "allocs": [], "nodes": ["web1234"]});
        assert_eq!(pick("web", &m).unwrap(), ("job", "web".to_string()));
        let m = json!({"allocs": ["abcd-1"], "evals": []});
        assert_eq!(pick("ab", &m).unwrap(), ("alloc", "abcd-1".to_string()));
        let m = json!({"allocs": ["abcd-1"], "evals": ["abce-2"]});
        let err = pick("ab", &m).unwrap_err().0;
        assert!(
            err.starts_with("Multiple matches found for id \"ab\""),
            "{err}"
        );
        assert!(
            err.contains("Allocs:\nabcd-1") && err.contains("Evals:\nabce-2"),
            "{err}"
        );
        assert!(pick("zz", &json!({})).is_err());
    }

    #[test]
    fn the_status_command_is_rewritten_for_the_kind() {
        assert_eq!(
            rewrite(
                &os(&["yurt", "status", "-verbose", "ab"]),
                "alloc",
                Some(("ab", "abcd"))
            ),
            os(&["yurt", "alloc", "status", "-verbose", "abcd"])
        );
        assert_eq!(
            rewrite(&os(&["yurt", "status"]), "job", None),
            os(&["yurt", "job", "status"])
        );
    }
}
