//! `yurt acl bootstrap | policy … | token … | role …`: managing ACLs from the command line,
//! with the token from `-token` or `NOMAD_TOKEN` (and the other API flags of [`ApiFlags`]).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::api_client::ApiClient;
use super::api_flags::ApiFlags;
use super::output::{CliError, format_kv, format_list, run};

/// `yurt acl`.
#[derive(Debug, Args)]
pub struct AclArgs {
    /// Address, token, region and TLS flags.
    #[command(flatten)]
    api: ApiFlags,
    /// The subcommand.
    #[command(subcommand)]
    command: AclCommand,
}

#[derive(Debug, Subcommand)]
enum AclCommand {
    /// Create the initial management token.
    Bootstrap,
    /// Manage policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Manage tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage roles.
    #[command(subcommand)]
    Role(RoleCommand),
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Create or update a policy from a file of rules (HCL or JSON; `-` for stdin).
    Apply {
        #[arg(long)]
        description: Option<String>,
        name: String,
        file: String,
    },
    /// List policies.
    List,
    /// Show a policy and its rules.
    Info { name: String },
    /// Delete a policy.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token.
    Create(TokenFields),
    /// List tokens.
    List,
    /// Show a token by accessor ID.
    Info { accessor: String },
    /// Show the token in use.
    #[command(name = "self")]
    Self_,
    /// Update a token's name, type, policies or roles.
    Update {
        #[command(flatten)]
        fields: TokenFields,
        accessor: String,
    },
    /// Delete a token by accessor ID.
    Delete { accessor: String },
}

#[derive(Debug, Args)]
struct TokenFields {
    #[arg(long)]
    name: Option<String>,
    /// `client` (default) or `management`.
    #[arg(long = "type")]
    r#type: Option<String>,
    /// A policy to attach (repeatable).
    #[arg(long = "policy")]
    policies: Vec<String>,
    /// A role to attach by name (repeatable).
    #[arg(long = "role-name")]
    role_names: Vec<String>,
    /// A role to attach by ID (repeatable).
    #[arg(long = "role-id")]
    role_ids: Vec<String>,
    /// Expiration TTL (a duration, e.g. 1h).
    #[arg(long)]
    ttl: Option<String>,
}

#[derive(Debug, Subcommand)]
enum RoleCommand {
    /// Create a role.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// A policy the role grants (repeatable).
        #[arg(long = "policy")]
        policies: Vec<String>,
    },
    /// List roles.
    List,
    /// Show a role by ID.
    Info { id: String },
    /// Delete a role by ID.
    Delete { id: String },
}

/// Runs an `acl` subcommand.
pub fn main(args: AclArgs) -> ExitCode {
    run(async move {
        let api = ApiClient::from_flags(&args.api)?;
        match args.command {
            AclCommand::Bootstrap => {
                let t: Value = api
                    .post_json("/v1/acl/bootstrap", &json!({}))
                    .await
                    .map_err(|e| CliError(format!("Error bootstrapping: {e}")))?;
                println!("{}", token_kv(&t));
                Ok(())
            }
            AclCommand::Policy(c) => policy(&api, c).await,
            AclCommand::Token(c) => token(&api, c).await,
            AclCommand::Role(c) => role(&api, c).await,
        }
    })
}

fn s(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::String(x) => x.clone(),
        Value::Null => "<none>".to_string(),
        other => other.to_string(),
    }
}

fn names(v: &Value, k: &str, field: Option<&str>) -> String {
    let items: Vec<String> = v[k]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| match field {
                    Some(f) => i[f].as_str().map(str::to_string),
                    None => i.as_str().map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default();
    if items.is_empty() {
        "n/a".to_string()
    } else {
        items.join(",")
    }
}

fn token_kv(t: &Value) -> String {
    format_kv(&[
        ("Accessor ID", s(t, "AccessorID")),
        ("Secret ID", s(t, "SecretID")),
        ("Name", s(t, "Name")),
        ("Type", s(t, "Type")),
        ("Global", s(t, "Global")),
        ("Create Time", s(t, "CreateTime")),
        ("Expiry Time", s(t, "ExpirationTime")),
        ("Policies", names(t, "Policies", None)),
        ("Roles", names(t, "Roles", Some("Name"))),
    ])
}

async fn policy(api: &ApiClient, c: PolicyCommand) -> Result<(), CliError> {
    match c {
        PolicyCommand::Apply {
            description,
            name,
            file,
        } => {
            let rules = if file == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&file)
            }
            .map_err(|e| CliError(format!("Error reading policy file {file:?}: {e}")))?;
            let _: Value = api
                .post_json(
                    &format!("/v1/acl/policy/{name}"),
                    &json!({"Name": name, "Description": description.unwrap_or_default(), "Rules": rules}),
                )
                .await
                .map_err(|e| CliError(format!("Error writing ACL policy: {e}")))?;
            println!("Successfully wrote {name:?} ACL policy!");
        }
        PolicyCommand::List => {
            let list: Vec<Value> = api.get_json("/v1/acl/policies", &[]).await?;
            if list.is_empty() {
                println!("No policies found");
                return Ok(());
            }
            let mut rows = vec![vec!["Name".to_string(), "Description".to_string()]];
            rows.extend(list.iter().map(|p| vec![s(p, "Name"), s(p, "Description")]));
            println!("{}", format_list(&rows));
        }
        PolicyCommand::Info { name } => {
            let p: Value = api.get_json(&format!("/v1/acl/policy/{name}"), &[]).await?;
            println!(
                "{}\n\nRules\n\n{}",
                format_kv(&[
                    ("Name", s(&p, "Name")),
                    ("Description", s(&p, "Description")),
                    ("CreateIndex", s(&p, "CreateIndex")),
                    ("ModifyIndex", s(&p, "ModifyIndex")),
                ]),
                s(&p, "Rules")
            );
        }
        PolicyCommand::Delete { name } => {
            let _: Value = api
                .delete_json(&format!("/v1/acl/policy/{name}"), &[])
                .await
                .map_err(|e| CliError(format!("Error deleting ACL policy: {e}")))?;
            println!("Successfully deleted {name:?} ACL policy!");
        }
    }
    Ok(())
}

fn token_body(f: TokenFields, accessor: Option<&str>) -> Result<Value, CliError> {
    let mut roles: Vec<Value> = f.role_names.iter().map(|n| json!({"Name": n})).collect();
    roles.extend(f.role_ids.iter().map(|i| json!({"ID": i})));
    let mut body = json!({
        "Name": f.name.unwrap_or_default(),
        "Type": f.r#type.unwrap_or_else(|| "client".to_string()),
        "Policies": f.policies,
        "Roles": roles,
    });
    if let Some(ttl) = f.ttl {
        let nanos = yurt_drivers::go_duration::parse_go_duration_nanos(&ttl).map_err(|_| {
            CliError(format!(
                "Invalid -ttl {ttl:?}: expected a duration such as 1h"
            ))
        })?;
        body["ExpirationTTL"] = json!(nanos);
    }
    if let Some(a) = accessor {
        body["AccessorID"] = json!(a);
    }
    Ok(body)
}

async fn token(api: &ApiClient, c: TokenCommand) -> Result<(), CliError> {
    let t: Value = match c {
        TokenCommand::Create(f) => api
            .post_json("/v1/acl/token", &token_body(f, None)?)
            .await
            .map_err(|e| CliError(format!("Error creating token: {e}")))?,
        TokenCommand::Update { fields, accessor } => api
            .post_json(
                &format!("/v1/acl/token/{accessor}"),
                &token_body(fields, Some(&accessor))?,
            )
            .await
            .map_err(|e| CliError(format!("Error updating token: {e}")))?,
        TokenCommand::Info { accessor } => {
            api.get_json(&format!("/v1/acl/token/{accessor}"), &[])
                .await?
        }
        TokenCommand::Self_ => api.get_json("/v1/acl/token/self", &[]).await?,
        TokenCommand::Delete { accessor } => {
            let _: Value = api
                .delete_json(&format!("/v1/acl/token/{accessor}"), &[])
                .await
                .map_err(|e| CliError(format!("Error deleting token: {e}")))?;
            println!("Token {accessor} successfully deleted");
            return Ok(());
        }
        TokenCommand::List => {
            let list: Vec<Value> = api.get_json("/v1/acl/tokens", &[]).await?;
            let mut rows = vec![
                ["Name", "Type", "Global", "Accessor ID", "Expired"]
                    .map(str::to_string)
                    .to_vec(),
            ];
            rows.extend(list.iter().map(|t| {
                vec![
                    s(t, "Name"),
                    s(t, "Type"),
                    s(t, "Global"),
                    s(t, "AccessorID"),
                    "false".to_string(),
                ]
            }));
            println!("{}", format_list(&rows));
            return Ok(());
        }
    };
    println!("{}", token_kv(&t));
    Ok(())
}

async fn role(api: &ApiClient, c: RoleCommand) -> Result<(), CliError> {
    let r: Value = match c {
        RoleCommand::Create {
            name,
            description,
            policies,
        } => {
            let policies: Vec<Value> = policies.iter().map(|p| json!({"Name": p})).collect();
            api.post_json(
                "/v1/acl/role",
                &json!({"Name": name, "Description": description.unwrap_or_default(), "Policies": policies}),
            )
            .await
            .map_err(|e| CliError(format!("Error creating ACL role: {e}")))?
        }
        RoleCommand::Info { id } => api.get_json(&format!("/v1/acl/role/{id}"), &[]).await?,
        RoleCommand::Delete { id } => {
            let _: Value = api
                .delete_json(&format!("/v1/acl/role/{id}"), &[])
                .await
                .map_err(|e| CliError(format!("Error deleting ACL role: {e}")))?;
            println!("ACL role {id} successfully deleted");
            return Ok(());
        }
        RoleCommand::List => {
            let list: Vec<Value> = api.get_json("/v1/acl/roles", &[]).await?;
            let mut rows = vec![
                ["ID", "Name", "Description", "Policies"]
                    .map(str::to_string)
                    .to_vec(),
            ];
            rows.extend(list.iter().map(|r| {
                vec![
                    s(r, "ID"),
                    s(r, "Name"),
                    s(r, "Description"),
                    names(r, "Policies", Some("Name")),
                ]
            }));
            println!("{}", format_list(&rows));
            return Ok(());
        }
    };
    println!(
        "{}",
        format_kv(&[
            ("ID", s(&r, "ID")),
            ("Name", s(&r, "Name")),
            ("Description", s(&r, "Description")),
            ("Policies", names(&r, "Policies", Some("Name"))),
            ("Create Index", s(&r, "CreateIndex")),
            ("Modify Index", s(&r, "ModifyIndex")),
        ])
    );
    Ok(())
}
