//! `yurt namespace apply|list|status|delete`, with Nomad's flags, messages and layouts.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::Deserialize;

use super::api_client::{ApiClient, ApiError};
use super::api_flags::ApiFlags;
use super::output::{CliError, FormatArgs, format_kv, format_list, run};
use crate::structs::{Namespace, NamespaceCapabilities, NamespaceNodePoolConfiguration};

/// `yurt namespace` subcommands.
#[derive(Debug, Subcommand)]
pub enum NamespaceCommand {
    /// Create or update a namespace from a specification file (HCL, or JSON with -json), or
    /// by name.
    Apply(ApplyArgs),
    /// List namespaces.
    List(ListArgs),
    /// Display a namespace's status.
    Status(StatusArgs),
    /// Delete a namespace.
    Delete(DeleteArgs),
}

/// `yurt namespace`.
#[derive(Debug, Args)]
pub struct NamespaceArgs {
    /// The subcommand.
    #[command(subcommand)]
    pub command: NamespaceCommand,
}

/// `yurt namespace apply [-description d] [-quota q] [-json] <input>`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    api: ApiFlags,
    /// An optional description for the namespace (when applying by name).
    #[arg(long)]
    description: Option<String>,
    /// The quota to attach to the namespace (when applying by name).
    #[arg(long)]
    quota: Option<String>,
    /// Parse the input as a JSON namespace specification.
    #[arg(long)]
    json: bool,
    /// A specification file, `-` for stdin, or the name of the namespace.
    input: String,
}

/// `yurt namespace list [-json|-t T]`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    api: ApiFlags,
    #[command(flatten)]
    format: FormatArgs,
}

/// `yurt namespace status [-json|-t T] <namespace>`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    api: ApiFlags,
    #[command(flatten)]
    format: FormatArgs,
    /// The namespace's name or a unique prefix of it.
    namespace: String,
}

/// `yurt namespace delete <namespace>`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    api: ApiFlags,
    /// The namespace to delete.
    namespace: String,
}

/// Runs a `namespace` subcommand.
pub fn main(args: NamespaceArgs) -> ExitCode {
    run(async move {
        match args.command {
            NamespaceCommand::Apply(a) => apply(&a.api.client()?, &a).await,
            NamespaceCommand::List(a) => list(&a.api.client()?, &a.format).await,
            NamespaceCommand::Status(a) => status(&a.api.client()?, &a).await,
            NamespaceCommand::Delete(a) => delete(&a.api.client()?, &a.namespace).await,
        }
    })
}

/// A namespace specification as Nomad's CLI reads it from HCL.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct HclSpec {
    name: String,
    description: String,
    quota: String,
    capabilities: Option<HclCapabilities>,
    node_pool_config: Option<HclNodePool>,
    meta: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct HclCapabilities {
    enabled_task_drivers: Option<Vec<String>>,
    disabled_task_drivers: Option<Vec<String>>,
    enabled_network_modes: Option<Vec<String>>,
    disabled_network_modes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct HclNodePool {
    default: String,
    allowed: Option<Vec<String>>,
    denied: Option<Vec<String>>,
}

/// Reads a namespace specification: JSON in the API's shape with `json`, HCL otherwise.
fn parse_spec(text: &str, json: bool) -> Result<Namespace, CliError> {
    if json {
        return serde_json::from_str(text)
            .map_err(|e| CliError(format!("Failed to parse namespace: {e}")));
    }
    let spec: HclSpec = hcl::from_str(text)
        .map_err(|e| CliError(format!("Error parsing namespace specification: {e}")))?;
    Ok(Namespace {
        name: spec.name,
        description: spec.description,
        quota: spec.quota,
        capabilities: spec.capabilities.map(|c| NamespaceCapabilities {
            enabled_task_drivers: c.enabled_task_drivers,
            disabled_task_drivers: c.disabled_task_drivers,
            enabled_network_modes: c.enabled_network_modes,
            disabled_network_modes: c.disabled_network_modes,
        }),
        node_pool_configuration: spec
            .node_pool_config
            .map(|n| NamespaceNodePoolConfiguration {
                default: n.default,
                allowed: n.allowed,
                denied: n.denied,
            }),
        meta: spec.meta,
        ..Namespace::default()
    })
}

/// The namespace `name` names, if it exists.
async fn existing(api: &ApiClient, name: &str) -> Result<Option<Namespace>, CliError> {
    match api.get_json(&format!("/v1/namespace/{name}"), &[]).await {
        Ok(ns) => Ok(Some(ns)),
        Err(ApiError::Status { status: 404, .. }) => Ok(None),
        Err(e) => Err(CliError(format!("Error looking up namespace: {e}"))),
    }
}

async fn apply(api: &ApiClient, a: &ApplyArgs) -> Result<(), CliError> {
    let is_file = a.input == "-" || std::fs::metadata(&a.input).is_ok_and(|m| !m.is_dir());
    let ns = if is_file {
        if a.description.is_some() || a.quota.is_some() {
            eprintln!("Flags are ignored when a file is specified!");
        }
        let text = if a.input == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| CliError(format!("Failed to read stdin: {e}")))?;
            s
        } else {
            std::fs::read_to_string(&a.input)
                .map_err(|e| CliError(format!("Failed to read file: {e}")))?
        };
        parse_spec(&text, a.json)?
    } else {
        if a.input.is_empty() {
            return Err("Namespace name required".into());
        }
        let mut ns = existing(api, &a.input).await?.unwrap_or_else(|| Namespace {
            name: a.input.clone(),
            ..Namespace::default()
        });
        if let Some(d) = &a.description {
            ns.description = d.clone();
        }
        if let Some(q) = &a.quota {
            ns.quota = q.clone();
        }
        ns
    };
    let _: serde_json::Value = api
        .put_json(&format!("/v1/namespace/{}", ns.name), &ns)
        .await
        .map_err(|e| CliError(format!("Error applying namespace: {e}")))?;
    println!("Successfully applied namespace {:?}!", ns.name);
    Ok(())
}

fn namespaces_table(namespaces: &[Namespace]) -> String {
    if namespaces.is_empty() {
        return "No namespaces found".to_string();
    }
    let mut sorted: Vec<&Namespace> = namespaces.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut rows = vec![vec!["Name".to_string(), "Description".to_string()]];
    rows.extend(
        sorted
            .iter()
            .map(|n| vec![n.name.clone(), n.description.clone()]),
    );
    format_list(&rows)
}

async fn list(api: &ApiClient, format: &FormatArgs) -> Result<(), CliError> {
    format.check()?;
    let namespaces: Vec<Namespace> = api
        .get_json("/v1/namespaces", &[])
        .await
        .map_err(|e| CliError(format!("Error retrieving namespaces: {e}")))?;
    if format.print(&namespaces)? {
        return Ok(());
    }
    println!("{}", namespaces_table(&namespaces));
    Ok(())
}

/// A comma-joined list, or `empty` when there is none.
fn joined(list: &Option<Vec<String>>, empty: &str) -> String {
    match list.as_deref() {
        Some(items) if !items.is_empty() => items.join(","),
        _ => empty.to_string(),
    }
}

/// What `namespace status` prints for a namespace (without -json).
fn status_text(ns: &Namespace) -> String {
    let caps = ns.capabilities.clone().unwrap_or_default();
    let mut out = format_kv(&[
        ("Name", ns.name.clone()),
        ("Description", ns.description.clone()),
        ("Quota", ns.quota.clone()),
        ("Enabled Drivers", joined(&caps.enabled_task_drivers, "*")),
        ("Disabled Drivers", joined(&caps.disabled_task_drivers, "")),
        (
            "Enabled Network Modes",
            joined(&caps.enabled_network_modes, "*"),
        ),
        (
            "Disabled Network Modes",
            joined(&caps.disabled_network_modes, ""),
        ),
    ]);
    if let Some(meta) = ns.meta.as_ref().filter(|m| !m.is_empty()) {
        let rows: Vec<(&str, String)> = meta.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        out.push_str("\n\nMetadata\n");
        out.push_str(&format_kv(&rows));
    }
    if let Some(np) = &ns.node_pool_configuration {
        let mut rows = vec![("Default", np.default.clone())];
        if let Some(allowed) = np.allowed.as_ref().filter(|a| !a.is_empty()) {
            rows.push(("Allowed", allowed.join(", ")));
        }
        if let Some(denied) = np.denied.as_ref().filter(|d| !d.is_empty()) {
            rows.push(("Denied", denied.join(", ")));
        }
        out.push_str("\n\nNode Pool Configuration\n");
        out.push_str(&format_kv(&rows));
    }
    out
}

async fn status(api: &ApiClient, a: &StatusArgs) -> Result<(), CliError> {
    a.format.check()?;
    let retrieving = |e: String| CliError(format!("Error retrieving namespaces: {e}"));
    let matches: Vec<Namespace> = api
        .get_json("/v1/namespaces", &[("prefix", a.namespace.as_str())])
        .await
        .map_err(|e| retrieving(e.to_string()))?;
    let ns = match matches.as_slice() {
        [] => {
            return Err(retrieving(format!(
                "Namespace {:?} matched no namespaces",
                a.namespace
            )));
        }
        [one] => one,
        many => match many.iter().find(|n| n.name == a.namespace) {
            Some(exact) => exact,
            None => {
                return Err(CliError(format!(
                    "Prefix matched multiple namespaces\n\n{}",
                    namespaces_table(many)
                )));
            }
        },
    };
    if a.format.print(ns)? {
        return Ok(());
    }
    println!("{}", status_text(ns));
    Ok(())
}

async fn delete(api: &ApiClient, name: &str) -> Result<(), CliError> {
    let _: serde_json::Value = api
        .delete_json(&format!("/v1/namespace/{name}"), &[])
        .await
        .map_err(|e| CliError(format!("Error deleting namespace: {e}")))?;
    println!("Successfully deleted namespace {name:?}!");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hcl_and_json_specifications() {
        let ns = parse_spec(
            r#"
name        = "api-prod"
description = "Production API"
capabilities {
  enabled_task_drivers  = ["docker", "exec"]
  disabled_task_drivers = ["raw_exec"]
}
node_pool_config {
  default = "prod"
  allowed = ["prod", "shared"]
}
meta {
  owner = "ops"
}
"#,
            false,
        )
        .unwrap();
        assert_eq!(ns.name, "api-prod");
        assert_eq!(ns.description, "Production API");
        let caps = ns.capabilities.as_ref().unwrap();
        assert_eq!(
            caps.enabled_task_drivers.as_deref(),
            Some(&["docker".to_string(), "exec".to_string()][..])
        );
        assert_eq!(caps.enabled_network_modes, None);
        assert_eq!(ns.node_pool_configuration.as_ref().unwrap().default, "prod");
        assert_eq!(ns.meta.as_ref().unwrap()["owner"], "ops");

        let json = parse_spec(r#"{"Name": "x", "Description": "d"}"#, true).unwrap();
        assert_eq!((json.name.as_str(), json.description.as_str()), ("x", "d"));

        let err = parse_spec("name = \"x\"\nbogus = 1\n", false).unwrap_err();
        assert!(
            err.0.starts_with("Error parsing namespace specification"),
            "{}",
            err.0
        );
        let err = parse_spec("{", true).unwrap_err();
        assert!(err.0.starts_with("Failed to parse namespace"), "{}", err.0);
    }

    #[test]
    fn status_and_list_layouts() {
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "Name": "team", "Description": "A team",
            "Capabilities": {"DisabledTaskDrivers": ["raw_exec", "docker"]},
            "Meta": {"owner": "ops", "cost-center": "42"}}))
        .unwrap();
        assert_eq!(
            status_text(&ns),
            "Name                   = team\n\
             Description            = A team\n\
             Quota                  = \n\
             Enabled Drivers        = *\n\
             Disabled Drivers       = raw_exec,docker\n\
             Enabled Network Modes  = *\n\
             Disabled Network Modes = \n\
             \n\
             Metadata\n\
             cost-center = 42\n\
             owner       = ops"
        );
        let list = namespaces_table(&[ns, Namespace::default_namespace()]);
        assert_eq!(
            list,
            "Name     Description\ndefault  Default shared namespace\nteam     A team"
        );
        assert_eq!(namespaces_table(&[]), "No namespaces found");
    }
}
