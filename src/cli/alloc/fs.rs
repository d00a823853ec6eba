//! `yurt alloc fs [-stat] <alloc> [path]`: a directory's listing or a file's contents.

use std::io::Write;

use clap::Args;
use futures::StreamExt;
use serde_json::Value;

use super::resolve_alloc;
use crate::cli::api_client::ApiClient;
use crate::cli::output::{CliError, format_list};

/// `yurt alloc fs`.
#[derive(Debug, Args)]
pub struct FsArgs {
    /// Show the file's (or directory's) information instead of its contents.
    #[arg(long)]
    stat: bool,
    /// Allocation ID or prefix.
    alloc: String,
    /// Path inside the allocation directory (default `/`).
    path: Option<String>,
}

fn size_text(v: &Value) -> String {
    let n = v["Size"].as_u64().unwrap_or(0);
    format!("{n} B")
}

fn info_row(f: &Value) -> Vec<String> {
    let name = f["Name"].as_str().unwrap_or_default();
    let shown = if f["IsDir"] == true {
        format!("{name}/")
    } else {
        name.to_string()
    };
    vec![
        f["FileMode"].as_str().unwrap_or_default().to_string(),
        size_text(f),
        f["ModTime"].as_str().unwrap_or_default().to_string(),
        shown,
    ]
}

fn header() -> Vec<String> {
    ["Mode", "Size", "Modified Time", "Name"]
        .map(str::to_string)
        .to_vec()
}

/// Lists or prints.
pub async fn run(api: &ApiClient, a: FsArgs) -> Result<(), CliError> {
    let alloc = resolve_alloc(api, &a.alloc).await?;
    let id = alloc["ID"].as_str().unwrap_or_default();
    let path = a.path.unwrap_or_else(|| "/".to_string());
    let info: Value = api
        .get_json(
            &format!("/v1/client/fs/stat/{id}"),
            &[("path", path.as_str())],
        )
        .await
        .map_err(|e| CliError(format!("Error querying allocation: {e}")))?;
    if a.stat {
        println!("{}", format_list(&[header(), info_row(&info)]));
        return Ok(());
    }
    if info["IsDir"] == true {
        let files: Vec<Value> = api
            .get_json(
                &format!("/v1/client/fs/ls/{id}"),
                &[("path", path.as_str())],
            )
            .await
            .map_err(|e| CliError(format!("Error listing alloc dir: {e}")))?;
        let mut rows = vec![header()];
        rows.extend(files.iter().map(info_row));
        println!("{}", format_list(&rows));
        return Ok(());
    }
    let resp = api
        .get_stream(
            &format!("/v1/client/fs/cat/{id}"),
            &[("path", path.as_str())],
        )
        .await
        .map_err(|e| CliError(format!("Error reading file: {e}")))?;
    let mut body = resp.bytes_stream();
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| CliError(format!("Error reading file: {e}")))?;
        let _ = out.write_all(&chunk);
    }
    let _ = out.flush();
    Ok(())
}
