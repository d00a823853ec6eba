//! Reading config sources from disk: `-config` names a file or a directory (every `*.hcl`
//! and `*.json` in it, in lexical order), may be repeated, and later sources merge over
//! earlier ones.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ConfigError;
use super::config_file::ConfigFile;

/// How a config file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    /// Nomad's HCL agent config.
    Hcl,
    /// The same structure as JSON.
    Json,
}

impl ConfigFormat {
    /// JSON for `*.json`, HCL for anything else (as Nomad does for an explicit file).
    pub fn for_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Self::Json,
            _ => Self::Hcl,
        }
    }
}

/// A parsed source plus the warnings it produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// The merged config.
    pub config: ConfigFile,
    /// Unknown keys and similar non-fatal findings, one line each.
    pub warnings: Vec<String>,
}

/// Parses config text; `origin` names the source in errors and warnings.
pub fn parse_config(text: &str, format: ConfigFormat, origin: &str) -> Result<Loaded, ConfigError> {
    let parse_err = |message: String| ConfigError::Parse {
        origin: origin.to_string(),
        message,
    };
    let value: Value = match format {
        ConfigFormat::Hcl => hcl::from_str(text).map_err(|e| parse_err(e.to_string()))?,
        ConfigFormat::Json => serde_json::from_str(text).map_err(|e| parse_err(e.to_string()))?,
    };
    // An empty file is a valid, empty config.
    let value = match value {
        Value::Null => Value::Object(Default::default()),
        v => v,
    };
    let config: ConfigFile = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            parse_err(inner.to_string())
        } else {
            parse_err(format!("{path}: {inner}"))
        }
    })?;
    let warnings = config
        .unknown_keys()
        .into_iter()
        .map(|k| format!("{origin}: unknown configuration key {k:?} ignored"))
        .collect();
    Ok(Loaded { config, warnings })
}

/// Loads and parses one file.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_config(
        &text,
        ConfigFormat::for_path(path),
        &path.display().to_string(),
    )
}

/// The `*.hcl` and `*.json` files of a directory, sorted by name.
fn config_files_in(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let io_err = |source| ConfigError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let path = entry.map_err(io_err)?.path();
        let is_config = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("hcl" | "json")
        );
        // Editors' hidden swap/backup files are never config.
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if is_config && !hidden && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads every `-config` path in order (files or directories) and merges them.
pub fn load_paths(paths: &[PathBuf]) -> Result<Loaded, ConfigError> {
    let mut out = Loaded::default();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        let files = if meta.is_dir() {
            let files = config_files_in(path)?;
            if files.is_empty() {
                out.warnings.push(format!(
                    "{}: no *.hcl or *.json files found",
                    path.display()
                ));
            }
            files
        } else {
            vec![path.clone()]
        };
        for file in files {
            let loaded = load_file(&file)?;
            out.config = std::mem::take(&mut out.config).merge(loaded.config);
            out.warnings.extend(loaded.warnings);
        }
    }
    Ok(out)
}
