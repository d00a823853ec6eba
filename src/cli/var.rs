//! `yurt var get|put|list|purge|lock`, with Nomad's flags, messages and layouts.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::api_client::{ApiClient, ApiError};
use super::api_flags::ApiFlags;
use super::output::{CliError, format_kv, format_list, run};
use crate::http::to_json_bytes;
use crate::structs::variable::{VariableDecrypted, VariableLock, VariableMetadata};
use yurt_drivers::go_duration::parse_go_duration;

/// `yurt var` subcommands.
#[derive(Debug, Subcommand)]
pub enum VarCommand {
    /// Read a variable.
    Get(GetArgs),
    /// Create or update a variable.
    Put(PutArgs),
    /// List variables.
    List(ListArgs),
    /// Purge a variable.
    Purge(PurgeArgs),
    /// Hold a lock on a variable while a command runs.
    Lock(LockArgs),
}

/// `yurt var`.
#[derive(Debug, Args)]
pub struct VarArgs {
    /// The subcommand.
    #[command(subcommand)]
    pub command: VarCommand,
}

/// Flags every `var` command takes.
#[derive(Debug, Args)]
pub struct Common {
    #[command(flatten)]
    api: ApiFlags,
    /// The namespace of the variable (overrides NOMAD_NAMESPACE).
    #[arg(long)]
    namespace: Option<String>,
}

impl Common {
    fn client(&self) -> Result<ApiClient, CliError> {
        if self.namespace.as_deref() == Some("*") {
            return Err(CliError(
                "The wildcard namespace (\"*\") is not valid for this command.".into(),
            ));
        }
        Ok(self.api.client()?.with_namespace(self.namespace.clone()))
    }
}

/// `yurt var get [-item k] [-out json|table|go-template] [-template T] <path>`.
#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    common: Common,
    /// Print only the value of this item, without a trailing newline.
    #[arg(long)]
    item: Option<String>,
    /// Output format: json, table or go-template (default: go-template with -template,
    /// else table on a terminal, json otherwise).
    #[arg(long)]
    out: Option<String>,
    /// A Go template to format the variable with (`-template '{{.Items.user}}'`).
    #[arg(long)]
    template: Option<String>,
    /// The variable's path.
    path: String,
}

/// `yurt var put [-force] [-check-index n] [-in json] [-out none|json|table] <path> [k=v…]`.
#[derive(Debug, Args)]
pub struct PutArgs {
    #[command(flatten)]
    common: Common,
    /// Write whatever the current index is (no check-and-set).
    #[arg(long)]
    force: bool,
    /// Write only if the variable's modify index is this (0: only if it does not exist).
    #[arg(long = "check-index")]
    check_index: Option<u64>,
    /// Format of a specification read from a file or stdin: json.
    #[arg(long = "in", default_value = "json")]
    input: String,
    /// Output format: none, json or table (default: none on a terminal, json otherwise).
    #[arg(long)]
    out: Option<String>,
    /// The path, or `@file`/`-` for a whole specification; then `key=value` items (an empty
    /// value removes the item).
    #[arg(required = true, num_args = 1..)]
    args: Vec<String>,
}

/// `yurt var list [-out json|table] [-per-page n] [-page-token t] [prefix]`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    common: Common,
    /// Output format: json or table (default: table on a terminal, json otherwise).
    #[arg(long)]
    out: Option<String>,
    /// How many variables per page.
    #[arg(long = "per-page")]
    per_page: Option<u32>,
    /// Where to start the page (from a previous `Next page token`).
    #[arg(long = "page-token")]
    page_token: Option<String>,
    /// Show only the paths starting with this.
    prefix: Option<String>,
}

/// `yurt var purge [-check-index n] <path>`.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    common: Common,
    /// Purge only if the variable's modify index is this.
    #[arg(long = "check-index")]
    check_index: Option<u64>,
    /// The variable's path.
    path: String,
}

/// `yurt var lock [-ttl d] [-delay d] [-shell=false] <path> <command…>`.
#[derive(Debug, Args)]
pub struct LockArgs {
    #[command(flatten)]
    common: Common,
    /// The lock's TTL (default 15s); it is renewed every half of it.
    #[arg(long)]
    ttl: Option<String>,
    /// How long the lock stays blocked after a lease runs out (default 15s).
    #[arg(long)]
    delay: Option<String>,
    /// Run the command through $SHELL (default) rather than directly.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    shell: bool,
    /// How long to wait between attempts to take a lock someone else holds.
    #[arg(long)]
    backoff: Option<String>,
    /// Print progress to stderr.
    #[arg(long)]
    verbose: bool,
    /// The variable's path.
    path: String,
    /// The command to run while the lock is held.
    #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Runs a `var` subcommand.
pub fn main(args: VarArgs) -> ExitCode {
    if let VarCommand::Lock(a) = args.command {
        return lock_main(a);
    }
    run(async move {
        match args.command {
            VarCommand::Get(a) => get(&a).await,
            VarCommand::Put(a) => put(&a).await,
            VarCommand::List(a) => list(&a).await,
            VarCommand::Purge(a) => purge(&a).await,
            VarCommand::Lock(_) => Ok(()),
        }
    })
}

/// The default output format: a table for a person, JSON for a pipe.
fn out_format(flag: &Option<String>, terminal: &str) -> Result<String, CliError> {
    let out = flag.clone().unwrap_or_else(|| {
        if std::io::stdout().is_terminal() {
            terminal.to_string()
        } else {
            "json".to_string()
        }
    });
    match out.as_str() {
        "json" | "table" | "none" => Ok(out),
        _ => Err(CliError(
            "Invalid value for \"-out\"; valid values are [json, none, table]".into(),
        )),
    }
}

fn var_url(path: &str) -> String {
    format!("/v1/var/{}", path.trim_matches('/'))
}

fn pretty(v: &impl serde::Serialize) -> Result<String, CliError> {
    let bytes =
        to_json_bytes(v, true).map_err(|e| CliError(format!("Error formatting the data: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).trim_end().to_string())
}

/// Nomad's variable table: its metadata, then its items.
fn table(v: &VariableDecrypted) -> String {
    let m = &v.meta;
    let mut meta = vec![
        ("Namespace", m.namespace.clone()),
        ("Path", m.path.clone()),
        (
            "Create Time",
            crate::cli::output::format_unix_nanos(m.create_time),
        ),
    ];
    if m.create_time != m.modify_time {
        meta.push((
            "Modify Time",
            crate::cli::output::format_unix_nanos(m.modify_time),
        ));
    }
    meta.push(("Check Index", m.modify_index.to_string()));
    let items: Vec<(&str, String)> = v
        .items
        .iter()
        .map(|(k, val)| (k.as_str(), val.clone()))
        .collect();
    format!("{}\n\nItems\n{}", format_kv(&meta), format_kv(&items))
}

async fn get(a: &GetArgs) -> Result<(), CliError> {
    let out = match (a.out.as_deref(), &a.template) {
        (None | Some("go-template"), Some(_)) => "go-template".to_string(),
        (Some("go-template"), None) => {
            return Err(
                "A template must be supplied using '-template' when using go-template formatting"
                    .into(),
            );
        }
        (Some(_), Some(_)) => {
            return Err(
                "The '-template' flag is only valid when using 'go-template' formatting".into(),
            );
        }
        (_, None) => out_format(&a.out, "table")?,
    };
    let client = a.common.client()?;
    let var: VariableDecrypted = match client.get_json(&var_url(&a.path), &[]).await {
        Ok(v) => v,
        Err(ApiError::Status { status: 404, .. }) => return Err("Variable not found".into()),
        Err(e) => return Err(CliError(format!("Error retrieving variable: {e}"))),
    };
    if let Some(item) = &a.item {
        return match var.items.get(item) {
            Some(v) => {
                print!("{v}");
                Ok(())
            }
            None => Err(CliError(format!("Variable does not contain {item:?} item"))),
        };
    }
    match out.as_str() {
        "json" => println!("{}", pretty(&var)?),
        "table" => println!("{}", table(&var)),
        "go-template" => {
            let format = crate::cli::output::FormatArgs {
                json: false,
                template: a.template.clone(),
            };
            println!("{}", format.render(&var)?);
        }
        _ => {}
    }
    Ok(())
}

/// The variable a `put` starts from: a specification from a file or stdin, else empty.
fn put_spec(a: &PutArgs) -> Result<VariableDecrypted, CliError> {
    if a.input != "json" {
        return Err(CliError(format!(
            "Invalid value for \"-in\"; only json is supported, got {:?}",
            a.input
        )));
    }
    let (first, mut rest) = a.args.split_first().ok_or("Must supply data")?;
    let read_spec = |arg: &str| -> Result<VariableDecrypted, CliError> {
        let text = if arg == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| CliError(format!("Error reading from stdin: {e}")))?;
            s
        } else {
            let file = &arg[1..];
            std::fs::read_to_string(file)
                .map_err(|e| CliError(format!("Error reading {file:?}: {e}")))?
        };
        serde_json::from_str(&text).map_err(|e| {
            CliError(format!(
                "Failed to parse variable data: error unmarshaling json: {e}"
            ))
        })
    };
    let is_spec = |s: &str| s == "-" || s.starts_with('@');
    let mut var = if is_spec(first) {
        read_spec(first)?
    } else {
        let mut var = VariableDecrypted::default();
        var.meta.path = first.trim_matches('/').to_string();
        if let Some(next) = rest.first().filter(|n| is_spec(n)) {
            let spec = read_spec(next)?;
            var.items = spec.items;
            rest = &rest[1..];
        }
        var
    };
    if rest.is_empty() && var.items.is_empty() && !is_spec(first) {
        return Err("Must supply data".into());
    }
    for kv in rest {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            CliError(format!("Failed to parse K=V data: invalid argument {kv:?}"))
        })?;
        if v.is_empty() {
            var.items.remove(k);
        } else {
            var.items.insert(k.to_string(), v.to_string());
        }
    }
    Ok(var)
}

/// Nomad's explanation of a check-and-set conflict.
fn cas_conflict(check_index: u64, body: &str) -> CliError {
    let current: VariableMetadata = serde_json::from_str(body).unwrap_or_default();
    let mut msg = format!(
        "\nCheck-and-Set conflict\n\n    Your provided check-index ({check_index}) does not match the server-side index ({}).\n",
        current.modify_index
    );
    if current.modify_index > 0 {
        msg.push_str(&format!(
            "    The server-side item was last updated on {}.\n",
            crate::cli::output::format_unix_nanos(current.modify_time)
        ));
    }
    msg.push_str(&format!(
        "    If you are sure you want to perform this operation, add the -force or -check-index={} flag before the positional arguments.",
        current.modify_index
    ));
    CliError(msg)
}

async fn put(a: &PutArgs) -> Result<(), CliError> {
    let out = out_format(&a.out, "none")?;
    let var = put_spec(a)?;
    let client = a.common.client()?;
    // Like Nomad, a put is a check-and-set unless forced: against the index given, else
    // the specification's, else 0 (create only).
    let check = a.check_index.unwrap_or(var.meta.modify_index);
    let check_text = check.to_string();
    let query: Vec<(&str, &str)> = if a.force {
        vec![]
    } else {
        vec![("cas", check_text.as_str())]
    };
    let written: VariableDecrypted = match client
        .put_json_query(&var_url(&var.meta.path), &query, &var)
        .await
    {
        Ok(v) => v,
        Err(ApiError::Status { status: 409, body }) => return Err(cas_conflict(check, &body)),
        Err(e) => return Err(CliError(format!("Error creating variable: {e}"))),
    };
    match out.as_str() {
        "json" => println!("{}", pretty(&written)?),
        "table" => println!("{}", table(&written)),
        _ => println!(
            "Created variable {:?} with modify index {}",
            written.meta.path, written.meta.modify_index
        ),
    }
    Ok(())
}

async fn list(a: &ListArgs) -> Result<(), CliError> {
    let out = out_format(&a.out, "table")?;
    let client = a.common.client()?;
    let per_page = a.per_page.map(|n| n.to_string());
    let mut query: Vec<(&str, &str)> = vec![("prefix", a.prefix.as_deref().unwrap_or(""))];
    if let Some(n) = &per_page {
        query.push(("per_page", n));
    }
    if let Some(t) = &a.page_token {
        query.push(("next_token", t));
    }
    let resp = client
        .get_stream("/v1/vars", &query)
        .await
        .map_err(|e| CliError(format!("Error retrieving vars: {e}")))?;
    let next = resp
        .headers()
        .get(crate::http::respond::HEADER_NEXT_TOKEN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let vars: Vec<VariableMetadata> = resp
        .json()
        .await
        .map_err(|e| CliError(format!("Error retrieving vars: {e}")))?;
    if out == "json" {
        println!("{}", pretty(&vars)?);
        return Ok(());
    }
    if vars.is_empty() {
        println!("No matching variables found");
    } else {
        let mut rows = vec![vec![
            "Namespace".to_string(),
            "Path".to_string(),
            "Last Updated".to_string(),
        ]];
        rows.extend(vars.iter().map(|v| {
            vec![
                v.namespace.clone(),
                v.path.clone(),
                crate::cli::output::format_unix_nanos(v.modify_time),
            ]
        }));
        println!("{}", format_list(&rows));
    }
    if let Some(token) = next {
        eprintln!("Next page token: {token}");
    }
    Ok(())
}

async fn purge(a: &PurgeArgs) -> Result<(), CliError> {
    let client = a.common.client()?;
    let check = a.check_index.map(|i| i.to_string());
    let query: Vec<(&str, &str)> = check.iter().map(|c| ("cas", c.as_str())).collect();
    match client
        .delete_json::<serde_json::Value>(&var_url(&a.path), &query)
        .await
    {
        Ok(_) => {
            println!("Successfully purged variable {:?}!", a.path);
            Ok(())
        }
        Err(ApiError::Status { status: 409, body }) => {
            Err(cas_conflict(a.check_index.unwrap_or(0), &body))
        }
        Err(e) => Err(CliError(format!("Error purging variable: {e}"))),
    }
}

fn duration_flag(name: &str, v: &Option<String>) -> Result<Option<Duration>, CliError> {
    v.as_deref()
        .map(|t| parse_go_duration(t).map_err(|e| CliError(format!("Invalid {name}: {e}"))))
        .transpose()
}

fn lock_main(a: LockArgs) -> ExitCode {
    run(async move { lock(&a).await })
}

/// Takes the lock (waiting while someone else holds it), runs the command while renewing
/// the lease every half TTL, and releases the lock when the command ends. A lost lease
/// stops the command.
async fn lock(a: &LockArgs) -> Result<(), CliError> {
    let client = a.common.client()?;
    let verbose = |m: &str| {
        if a.verbose {
            eprintln!("{m}");
        }
    };
    let mut var = VariableDecrypted::default();
    var.meta.path = a.path.trim_matches('/').to_string();
    var.meta.lock = Some(VariableLock {
        ttl: duration_flag("TTL", &a.ttl)?.unwrap_or_default(),
        lock_delay: duration_flag("Lock Delay", &a.delay)?.unwrap_or_default(),
        ..VariableLock::default()
    });
    // A lock taken on an existing variable keeps its items (an acquire writes them).
    let url = var_url(&var.meta.path);
    if let Ok(current) = client.get_json::<VariableDecrypted>(&url, &[]).await {
        var.items = current.items;
    }
    let backoff = duration_flag("backoff", &a.backoff)?;
    verbose("Attempting to acquire lock");
    let held: VariableDecrypted = loop {
        match client
            .put_json_query(&url, &[("lock-acquire", "")], &var)
            .await
        {
            Ok(v) => break v,
            Err(ApiError::Status { status: 409, .. }) => {
                let wait = backoff.unwrap_or(Duration::from_secs(5));
                verbose(&format!("Lock is held elsewhere, retrying in {wait:?}"));
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(CliError(format!("Lock error:{e}"))),
        }
    };
    let Some(lock) = held.meta.lock.clone() else {
        return Err("Lock error:the server returned no lock".into());
    };
    verbose(&format!(
        "Variable locked, ready to execute: {}",
        a.command.join(" ")
    ));
    let mut child = child_command(a)
        .spawn()
        .map_err(|e| CliError(format!("Lock error:{e}")))?;
    let mut renewed = var.clone();
    renewed.meta.lock = Some(VariableLock {
        id: lock.id.clone(),
        ..VariableLock::default()
    });
    let every = (lock.ttl / 2).max(Duration::from_secs(1));
    let outcome = loop {
        tokio::select! {
            status = child.wait() => break status.map_err(|e| format!("{e}")),
            _ = tokio::time::sleep(every) => {
                let renewal: Result<VariableMetadata, _> = client
                    .put_json_query(&url, &[("lock-renew", "")], &renewed)
                    .await;
                if let Err(e) = renewal {
                    let _ = child.kill().await;
                    return Err(CliError(format!("Lock error:lock lost: {e}")));
                }
            }
        }
    };
    verbose("Releasing the lock");
    let mut release = VariableDecrypted::default();
    release.meta.lock = Some(VariableLock {
        id: lock.id,
        ..VariableLock::default()
    });
    let released: Result<VariableDecrypted, _> = client
        .put_json_query(&url, &[("lock-release", "")], &release)
        .await;
    if let Err(e) = released {
        eprintln!("Lock error:releasing the lock: {e}");
    }
    match outcome {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(CliError(format!(
            "Lock error:exit status {}",
            status.code().unwrap_or(-1)
        ))),
        Err(e) => Err(CliError(format!("Lock error:{e}"))),
    }
}

/// The child: through `$SHELL -c` (default `/bin/sh`), or run directly with `-shell=false`.
fn child_command(a: &LockArgs) -> tokio::process::Command {
    let mut cmd = if a.shell {
        let shell = std::env::var("SHELL")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".to_string());
        let mut c = tokio::process::Command::new(shell);
        c.arg("-c").arg(a.command.join(" "));
        c
    } else {
        let mut c = tokio::process::Command::new(&a.command[0]);
        c.args(&a.command[1..]);
        c
    };
    cmd.kill_on_drop(true);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn put_args(args: &[&str]) -> PutArgs {
        PutArgs {
            common: Common {
                api: ApiFlags::default(),
                namespace: None,
            },
            force: false,
            check_index: None,
            input: "json".into(),
            out: None,
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn put_reads_key_values_and_removals() {
        let a = put_args(&["/app/db/", "user=me", "pw=x=y", "gone="]);
        let var = put_spec(&a).unwrap();
        assert_eq!(var.meta.path, "app/db");
        let want: BTreeMap<String, String> = [("user", "me"), ("pw", "x=y")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(var.items, want);
        assert_eq!(
            put_spec(&put_args(&["p"])).unwrap_err().0,
            "Must supply data"
        );
        assert!(put_spec(&put_args(&["p", "novalue"])).is_err());
        let mut hcl = put_args(&["p", "a=b"]);
        hcl.input = "hcl".into();
        assert!(put_spec(&hcl).is_err());
    }

    #[test]
    fn conflicts_explain_the_server_index() {
        let e = cas_conflict(3, r#"{"ModifyIndex": 9, "ModifyTime": 0}"#);
        assert!(e.0.contains("Check-and-Set conflict"), "{}", e.0);
        assert!(e.0.contains("check-index (3) does not match the server-side index (9)"));
        assert!(e.0.contains("-check-index=9"));
    }
}
