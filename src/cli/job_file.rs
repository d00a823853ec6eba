//! Reading the job file a command names, as Nomad's CLI does: a JSON job (`-json`, a `.json`
//! file, or text that is a JSON object) is sent as it is; anything else is an HCL2 job file
//! parsed here with `-var`, `-var-file` and `NOMAD_VAR_<name>` values. `-` reads stdin.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use serde_json::Value;

use super::output::CliError;
use crate::jobspec::{self, ParseConfig};

/// The flags of every command that reads a job file.
#[derive(Debug, Clone, Default, Args)]
pub struct JobFileArgs {
    /// Set an HCL variable: `-var 'name=value'` (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Read HCL variable values from a file (repeatable; later files win).
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
    /// The file is a JSON job, not HCL.
    #[arg(long)]
    pub json: bool,
    /// Parse with the legacy HCL1 syntax (refused: yurt reads HCL2 only).
    #[arg(long)]
    pub hcl1: bool,
}

/// The API job (`{"Job": ...}` content) the file describes.
pub fn load_job(file: &str, args: &JobFileArgs) -> Result<Value, CliError> {
    let text = read_source(file)?;
    if args.json || file.ends_with(".json") {
        return json_job(file, &text);
    }
    // Text that is a JSON object is a JSON job whatever its name (as before HCL support).
    if text.trim_start().starts_with('{')
        && let Ok(v) = serde_json::from_str::<Value>(&text)
    {
        return Ok(unwrap_job(v));
    }
    let cfg = ParseConfig {
        path: if file == "-" {
            "<stdin>".to_string()
        } else {
            file.to_string()
        },
        base_dir: (file == "-").then(|| std::env::current_dir().unwrap_or_default()),
        body: text,
        allow_fs: true,
        arg_vars: args.vars.clone(),
        var_files: args.var_files.clone(),
        envs: std::env::vars().collect(),
        hcl1: args.hcl1,
        ..ParseConfig::default()
    };
    let parsed = jobspec::parse(&cfg)
        .map_err(|e| CliError(format!("Error parsing job file from {file}:\n{e}")))?;
    let job = parsed
        .to_job()
        .map_err(|e| CliError(format!("Error parsing job file from {file}:\n{e}")))?;
    serde_json::to_value(job).map_err(|e| CliError(format!("Error encoding job from {file}: {e}")))
}

fn read_source(file: &str) -> Result<String, CliError> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError(format!("Error reading job from stdin: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(file)
        .map_err(|e| CliError(format!("Error reading job file {file:?}: {e}")))
}

fn json_job(file: &str, text: &str) -> Result<Value, CliError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| CliError(format!("Error parsing job file from {file}: {e}")))?;
    Ok(unwrap_job(v))
}

/// `{"Job": {...}}` or the job itself.
fn unwrap_job(v: Value) -> Value {
    match v.get("Job") {
        Some(job) if job.is_object() => job.clone(),
        _ => v,
    }
}
