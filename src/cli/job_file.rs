//! Reading the job file a command names, as Nomad's CLI does: a JSON job (`-json`, a `.json`
//! file, or text that is a JSON object) is sent as it is; anything else is an HCL2 job file
//! parsed here with `-var`, `-var-file` and `NOMAD_VAR_<name>` values. `-` reads stdin.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use serde_json::Value;

use std::collections::BTreeMap;

use super::output::CliError;
use crate::jobspec::{self, DeclaredVariable, ParseConfig};
use crate::structs::JobSubmission;

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
    /// Parse the file as HCL1 (literal values, no variables; the few HCL1-only forms hcl-rs
    /// cannot read are named in the error).
    #[arg(long)]
    pub hcl1: bool,
}

/// A job read from a file, and the submission (source and variables) kept with it.
#[derive(Debug, Clone)]
pub struct LoadedJob {
    pub job: Value,
    pub submission: JobSubmission,
}

/// The API job (`{"Job": ...}` content) the file describes.
pub fn load_job(file: &str, args: &JobFileArgs) -> Result<LoadedJob, CliError> {
    let text = read_source(file)?;
    let json_submission = |text: &str| JobSubmission {
        source: text.to_string(),
        format: "json".to_string(),
        ..JobSubmission::default()
    };
    if args.json || file.ends_with(".json") {
        return Ok(LoadedJob {
            job: json_job(file, &text)?,
            submission: json_submission(&text),
        });
    }
    // Text that is a JSON object is a JSON job whatever its name (as before HCL support).
    if text.trim_start().starts_with('{')
        && let Ok(v) = serde_json::from_str::<Value>(&text)
    {
        return Ok(LoadedJob {
            job: unwrap_job(v),
            submission: json_submission(&text),
        });
    }
    let cfg = ParseConfig {
        path: if file == "-" {
            "<stdin>".to_string()
        } else {
            file.to_string()
        },
        base_dir: (file == "-").then(|| std::env::current_dir().unwrap_or_default()),
        body: text.clone(),
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
    let job = serde_json::to_value(job)
        .map_err(|e| CliError(format!("Error encoding job from {file}: {e}")))?;
    // An HCL1 file has no variables: its submission is the source alone.
    let submission = if cfg.hcl1 {
        JobSubmission {
            source: text,
            format: "hcl1".to_string(),
            ..JobSubmission::default()
        }
    } else {
        hcl_submission(text, &cfg, &parsed.variables)?
    };
    Ok(LoadedJob { job, submission })
}

/// Nomad's record of an HCL2 submission: `-var` and `NOMAD_VAR_` values of simple types as
/// flags; var files, then complex-typed values as HCL text, in `Variables`.
fn hcl_submission(
    source: String,
    cfg: &ParseConfig,
    declared: &[DeclaredVariable],
) -> Result<JobSubmission, CliError> {
    let mut given: BTreeMap<String, String> = cfg
        .envs
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix(jobspec::VAR_ENV_PREFIX)?;
            (!name.is_empty()).then(|| (name.to_string(), v.clone()))
        })
        .collect();
    for arg in &cfg.arg_vars {
        let (k, v) = arg.split_once('=').unwrap_or((arg.as_str(), ""));
        given.insert(k.trim().to_string(), v.to_string());
    }
    let mut variables = String::new();
    for f in &cfg.var_files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| CliError(format!("Error reading var file {}: {e}", f.display())))?;
        variables.push_str(&text);
        variables.push('\n');
    }
    let mut flags = BTreeMap::new();
    for (name, value) in given {
        match declared.iter().find(|d| d.name == name) {
            Some(d) if !d.ty.is_primitive() => {
                variables.push_str(&format!("{name} = {value}\n"));
            }
            _ => {
                flags.insert(name, value);
            }
        }
    }
    Ok(JobSubmission {
        source,
        format: "hcl2".to_string(),
        variable_flags: Some(flags),
        variables,
        ..JobSubmission::default()
    })
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
