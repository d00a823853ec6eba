//! The job file parser: job file text and variable values in, the API's job out (as Nomad's
//! `api.Job` JSON, and as yurt's [`Job`]). Used by `POST /v1/jobs/parse` and by every CLI
//! command that reads a job file.
//!
//! HCL2 is the default. HCL1 (`HCLv1`, `-hcl1`) is read from the same syntax tree with HCL1
//! semantics: values are literals, strings are kept verbatim, blocks may be assignments. The
//! few HCL1 forms hcl-rs cannot parse are named in the error (`hcl1_syntax`).
//!
//! Errors name the file, line and column. Runtime interpolations (`${attr.x}`,
//! `${NOMAD_ALLOC_ID}`, `${meta.x}`, ...) are left in the strings for the client.

mod decode;
mod error;
mod eval;
mod functions;
mod hcl1_syntax;
mod literal;
mod normalize;
mod schema;
mod source;
mod variables;

use std::collections::BTreeSet;
use std::path::PathBuf;

use hcl::Value;
use hcl_edit::Span;
use hcl_edit::structure::{Block, Body, Structure};
use serde_json::{Map, Value as Json};

pub use error::{ErrorKind, JobspecError, Pos};
pub use hcl1_syntax::{Hcl1Form, hcl1_form};
pub use variables::VarType;

use crate::structs::Job;
use eval::Scope;
use source::Source;

/// The prefix of environment variables that set job variables (`NOMAD_VAR_<name>`).
pub const VAR_ENV_PREFIX: &str = "NOMAD_VAR_";

/// What to parse and with which variable values.
#[derive(Debug, Clone, Default)]
pub struct ParseConfig {
    /// The file name shown in errors (and the base of relative `file()` paths when
    /// `base_dir` is unset).
    pub path: String,
    pub base_dir: Option<PathBuf>,
    /// The job file's text.
    pub body: String,
    /// File functions (`file`, `fileexists`, ...) may read the disk: the CLI allows them, the
    /// HTTP API does not.
    pub allow_fs: bool,
    /// `-var name=value` arguments.
    pub arg_vars: Vec<String>,
    /// `-var-file` paths.
    pub var_files: Vec<PathBuf>,
    /// Variable assignments in var-file syntax (the API's `Variables`).
    pub var_content: String,
    /// The environment (`NOMAD_VAR_<name>` entries are used, others ignored).
    pub envs: Vec<(String, String)>,
    /// `HCLv1`/`-hcl1`: read the file with HCL1 semantics (no variables; variable values
    /// are ignored).
    pub hcl1: bool,
}

/// A declared variable, as the submission records it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredVariable {
    pub name: String,
    pub ty: VarType,
    pub sensitive: bool,
}

/// The result of a parse.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The job as Nomad's parser returns it, with only the fields the file sets.
    pub job: Json,
    pub variables: Vec<DeclaredVariable>,
    /// The file name errors name.
    pub file: String,
}

impl Parsed {
    /// The job with every API key present (unset ones `null`), as `/v1/jobs/parse` returns
    /// it without `Canonicalize`.
    pub fn api_json(&self) -> Json {
        normalize::with_unset_keys(&self.job)
    }

    /// The job as yurt's type (not canonicalized).
    pub fn to_job(&self) -> Result<Job, JobspecError> {
        let mut job = self.job.clone();
        if let Some(o) = job.as_object_mut() {
            normalize::push_job_policies_into_groups(o);
        }
        serde_json::from_value(job).map_err(|e| JobspecError {
            file: self.file.clone(),
            pos: Pos::default(),
            kind: ErrorKind::Unsupported(format!("the parsed job does not fit the API job: {e}")),
        })
    }
}

/// Parses a job file.
pub fn parse(cfg: &ParseConfig) -> Result<Parsed, JobspecError> {
    let name = if cfg.path.is_empty() {
        "input.hcl".to_string()
    } else {
        cfg.path.clone()
    };
    let src = Source::new(name, cfg.body.clone());
    if cfg.body.trim_start().starts_with('{') {
        return Err(src.error(None, ErrorKind::Unsupported(
            "HCL's JSON syntax is not supported: submit a JSON job to /v1/jobs, or write the job file in HCL".to_string(),
        )));
    }
    let base_dir = cfg.base_dir.clone().unwrap_or_else(|| {
        std::path::Path::new(&cfg.path)
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default()
    });
    let access = functions::FileAccess {
        base_dir,
        allowed: cfg.allow_fs,
    };
    if cfg.hcl1 {
        return parse_hcl1(&src);
    }
    functions::with_file_access(access, || parse_source(cfg, &src))
}

/// An HCL1 job file: one `job` block, values read literally.
fn parse_hcl1(src: &Source) -> Result<Parsed, JobspecError> {
    let body = hcl_edit::parser::parse_body(&src.text).map_err(|e| {
        match hcl1_form(&src.text) {
            Some(form) => src.error(
                Some(form.offset..form.offset),
                ErrorKind::Unsupported(format!(
                    "this HCL1 file uses {}, an HCL1 form yurt's parser cannot read: rewrite it in the HCL2 form (see Nomad's HCL2 upgrade notes)",
                    form.what
                )),
            ),
            None => variables::syntax(src, &e),
        }
    })?;
    for s in body.iter() {
        match s {
            Structure::Block(b) if b.ident.as_str() == "job" => {}
            Structure::Block(b)
                if matches!(b.ident.as_str(), "variable" | "variables" | "locals") =>
            {
                return Err(src.error(
                    b.ident.span(),
                    ErrorKind::Unsupported(format!(
                        "a {:?} block is HCL2: HCL1 job files have no variables or locals (parse the file as HCL2 without HCLv1/-hcl1)",
                        b.ident.as_str()
                    )),
                ));
            }
            Structure::Block(b) => {
                return Err(src.error(
                    b.ident.span(),
                    ErrorKind::UnknownBlock {
                        name: b.ident.as_str().to_string(),
                        expected: "job".to_string(),
                    },
                ));
            }
            Structure::Attribute(a) => {
                return Err(src.error(
                    a.key.span(),
                    ErrorKind::UnknownArgument {
                        name: a.key.as_str().to_string(),
                        expected: "no arguments at the top level (one job block)".to_string(),
                    },
                ));
            }
        }
    }
    let (block, label) = job_block(src, &body)?;
    let mut job = Map::new();
    decode::Decoder { src, hcl1: true }.body(
        &block.body,
        &schema::JOB,
        &hcl::eval::Context::new(),
        &Scope::default(),
        &mut job,
    )?;
    normalize::normalize(&mut job, &label);
    Ok(Parsed {
        job: Json::Object(job),
        variables: Vec::new(),
        file: src.name.clone(),
    })
}

/// The file's single `job` block and its label.
fn job_block<'b>(src: &Source, body: &'b Body) -> Result<(&'b Block, String), JobspecError> {
    let mut jobs = body.blocks().filter(|b| b.ident.as_str() == "job");
    let Some(block) = jobs.next() else {
        return Err(src.error(None, ErrorKind::MissingJob));
    };
    if let Some(dup) = jobs.next() {
        return Err(src.error(dup.ident.span(), ErrorKind::Duplicate("job".to_string())));
    }
    let [label] = block.labels.as_slice() else {
        return Err(src.error(
            block.ident.span(),
            ErrorKind::Labels {
                block: "job".to_string(),
                want: 1,
                got: block.labels.len(),
            },
        ));
    };
    Ok((block, label.as_str().to_string()))
}

fn parse_source(cfg: &ParseConfig, src: &Source) -> Result<Parsed, JobspecError> {
    let body = hcl_edit::parser::parse_body(&src.text).map_err(|e| variables::syntax(src, &e))?;
    check_top_level(src, &body)?;

    let mut vars = variables::declare(src, &body)?;
    for (k, v) in &cfg.envs {
        if let Some(name) = k.strip_prefix(VAR_ENV_PREFIX).filter(|n| !n.is_empty()) {
            let origin = Source::new(format!("environment variable {k}"), "");
            variables::assign_text(&mut vars, name, v, variables::From::Env, &origin)?;
        }
    }
    for path in &cfg.var_files {
        let text = std::fs::read_to_string(path).map_err(|e| JobspecError {
            file: path.display().to_string(),
            pos: Pos::default(),
            kind: ErrorKind::Io {
                path: path.display().to_string(),
                message: e.to_string(),
            },
        })?;
        variables::assign_file(&mut vars, &Source::new(path.display().to_string(), text))?;
    }
    if !cfg.var_content.trim().is_empty() {
        variables::assign_file(
            &mut vars,
            &Source::new("variables.hcl", cfg.var_content.clone()),
        )?;
    }
    for arg in &cfg.arg_vars {
        let origin = Source::new(format!("-var {arg:?}"), "");
        let Some((name, value)) = arg.split_once('=') else {
            return Err(origin.error_without_position(ErrorKind::InvalidValue {
                field: "-var".to_string(),
                message: "expected name=value".to_string(),
            }));
        };
        variables::assign_text(&mut vars, name.trim(), value, variables::From::Arg, &origin)?;
    }
    let var_values = variables::finish(src, &vars)?;
    let local_values = variables::locals(src, &body, &var_values)?;

    let mut ctx = variables::base_context();
    ctx.declare_var("var", Value::Object(var_values.clone()));
    ctx.declare_var("local", Value::Object(local_values.clone()));
    let scope = Scope {
        vars: Some(var_values.keys().cloned().collect::<BTreeSet<_>>()),
        locals: Some(local_values.keys().cloned().collect::<BTreeSet<_>>()),
        bound: Vec::new(),
    };

    let (block, label) = job_block(src, &body)?;
    let mut job = Map::new();
    decode::Decoder { src, hcl1: false }.body(&block.body, &schema::JOB, &ctx, &scope, &mut job)?;
    normalize::normalize(&mut job, &label);

    Ok(Parsed {
        job: Json::Object(job),
        variables: vars
            .iter()
            .map(|v| DeclaredVariable {
                name: v.name.clone(),
                ty: v.ty.clone(),
                sensitive: v.sensitive,
            })
            .collect(),
        file: src.name.clone(),
    })
}

/// The file holds `job`, `variable`, `variables` and `locals` blocks only.
fn check_top_level(src: &Source, body: &Body) -> Result<(), JobspecError> {
    for s in body.iter() {
        match s {
            Structure::Block(b)
                if matches!(
                    b.ident.as_str(),
                    "job" | "variable" | "variables" | "locals"
                ) => {}
            Structure::Block(b) => {
                return Err(src.error(
                    b.ident.span(),
                    ErrorKind::UnknownBlock {
                        name: b.ident.as_str().to_string(),
                        expected: "job, variable, variables, locals".to_string(),
                    },
                ));
            }
            Structure::Attribute(a) => {
                return Err(src.error(a.key.span(), ErrorKind::UnknownArgument {
                    name: a.key.as_str().to_string(),
                    expected: "no arguments at the top level (blocks job, variable, variables, locals)".to_string(),
                }));
            }
        }
    }
    Ok(())
}
