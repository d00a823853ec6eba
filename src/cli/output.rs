//! What user commands share: running an async command to an exit code, Nomad's error
//! output, and its `key = value` and column layouts.

use std::future::Future;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use super::api_client::ApiError;

/// A command's failure: the message printed to stderr (exit code 1).
#[derive(Debug)]
pub struct CliError(pub String);

impl From<ApiError> for CliError {
    fn from(e: ApiError) -> Self {
        CliError(e.to_string())
    }
}

impl From<String> for CliError {
    fn from(s: String) -> Self {
        CliError(s)
    }
}

impl From<&str> for CliError {
    fn from(s: &str) -> Self {
        CliError(s.to_string())
    }
}

/// Runs `fut` on a fresh runtime; errors go to stderr with exit code 1.
pub fn run(fut: impl Future<Output = Result<(), CliError>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error starting runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError(msg)) => {
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

/// Nomad's machine-readable output flags of the read commands: `-json` prints the API
/// object, `-t` renders it with a Go template.
#[derive(Debug, Clone, Default, Args)]
pub struct FormatArgs {
    /// Print the API object as JSON.
    #[arg(long)]
    pub json: bool,
    /// Format the API object with a Go template (`-t '{{.ID}}'`).
    #[arg(short = 't', value_name = "TEMPLATE")]
    pub template: Option<String>,
}

impl FormatArgs {
    /// Whether machine-readable output was asked for (the human layout is skipped).
    pub fn requested(&self) -> bool {
        self.json || self.template.is_some()
    }

    /// Refuses `-json` with `-t`, as Nomad does; call before any request is made.
    pub fn check(&self) -> Result<(), CliError> {
        if self.json && self.template.is_some() {
            return Err("Both json and template formatting are not allowed".into());
        }
        Ok(())
    }

    /// `data` as `-json` (4-space indented, as Nomad's encoder) or `-t` asks.
    pub fn render(&self, data: &impl Serialize) -> Result<String, CliError> {
        self.check()?;
        let value = serde_json::to_value(data)
            .map_err(|e| CliError(format!("Error formatting the data: {e}")))?;
        match &self.template {
            Some(text) if !text.is_empty() => {
                crate::gotemplate::render(text, &value).map_err(|e| CliError(e.to_string()))
            }
            Some(_) => {
                Err("template needs to be specified in golang's text/template format.".into())
            }
            None => json_indented(&value),
        }
    }

    /// Prints `data` when machine-readable output was asked for; returns whether it did.
    pub fn print(&self, data: &impl Serialize) -> Result<bool, CliError> {
        if !self.requested() {
            return Ok(false);
        }
        println!("{}", self.render(data)?);
        Ok(true)
    }
}

/// JSON indented by four spaces, as Nomad's CLI prints it.
pub fn json_indented(value: &impl Serialize) -> Result<String, CliError> {
    let bytes = crate::http::to_json_bytes(value, true)
        .map_err(|e| CliError(format!("Error formatting the data: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| CliError(format!("Error formatting the data: {e}")))?;
    Ok(text.trim_end().to_string())
}

/// Nomad's `formatKV`: keys padded so the `=` signs line up.
pub fn format_kv(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$} = {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Nomad's `formatList`: columns separated by two spaces, padded to the widest cell.
pub fn format_list(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    if i + 1 == r.len() {
                        cell.clone()
                    } else {
                        format!("{cell:<w$}", w = widths[i])
                    }
                })
                .collect();
            cells.join("  ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first 8 characters of an ID, as Nomad shows IDs without `-verbose`.
pub fn short_id(id: &str, verbose: bool) -> String {
    if verbose {
        id.to_string()
    } else {
        id.chars().take(8).collect()
    }
}

/// Nomad's `formatTime` of unix nanoseconds: ISO 8601 in local time, empty for the epoch
/// and zero times (less confusing than 1970).
pub fn format_unix_nanos(nanos: i64) -> String {
    if nanos < 1_000_000_000 {
        return String::new();
    }
    let t = chrono::DateTime::from_timestamp_nanos(nanos).with_timezone(&chrono::Local);
    if t.offset().local_minus_utc() == 0 {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// Nomad's `prettyTimeDiff` for a past instant in unix nanoseconds (`5m3s ago`).
pub fn ago(nanos: i64) -> String {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    let secs = (now.saturating_sub(nanos) / 1_000_000_000).max(0);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let d = h / 24;
    let text = if d > 0 {
        format!("{d}d{}h", h % 24)
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    };
    format!("{text} ago")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_template_output() {
        let data = serde_json::json!({"ID": "abc", "N": 1});
        let json = FormatArgs {
            json: true,
            template: None,
        };
        assert_eq!(
            json.render(&data).unwrap(),
            "{\n    \"ID\": \"abc\",\n    \"N\": 1\n}"
        );
        let tmpl = FormatArgs {
            json: false,
            template: Some("{{.ID}}/{{.N}}".into()),
        };
        assert_eq!(tmpl.render(&data).unwrap(), "abc/1");
        let both = FormatArgs {
            json: true,
            template: Some("{{.ID}}".into()),
        };
        assert!(both.check().is_err());
        assert!(!FormatArgs::default().requested());
    }

    #[test]
    fn layouts() {
        let kv = format_kv(&[("ID", "x".into()), ("Job ID", "web".into())]);
        assert_eq!(kv, "ID     = x\nJob ID = web");
        let rows = vec![
            vec!["ID".to_string(), "Status".to_string()],
            vec!["abcdef12".to_string(), "running".to_string()],
        ];
        assert_eq!(format_list(&rows), "ID        Status\nabcdef12  running");
    }
}
