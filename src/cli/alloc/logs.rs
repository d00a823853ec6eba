//! `yurt alloc logs [-f] [-stderr] [-tail] [-n N] [-c B] <alloc> [task]`.

use std::io::Write;

use clap::Args;
use futures::StreamExt;

use super::{pick_task, resolve_alloc};
use crate::cli::api_client::ApiClient;
use crate::cli::output::CliError;

/// Lines shown by `-tail` without `-n`.
const DEFAULT_TAIL_LINES: i64 = 10;
/// First guess of bytes per line when looking for the last N lines.
const BYTES_PER_LINE: i64 = 120;

/// `yurt alloc logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow the log as it grows.
    #[arg(short = 'f')]
    follow: bool,
    /// Show stderr instead of stdout.
    #[arg(long)]
    stderr: bool,
    /// Show the end of the log (10 lines unless -n or -c says otherwise).
    #[arg(long)]
    tail: bool,
    /// Number of lines to show from the end.
    #[arg(short = 'n', default_value_t = -1, allow_negative_numbers = true)]
    lines: i64,
    /// Number of bytes to show from the end.
    #[arg(short = 'c', default_value_t = -1, allow_negative_numbers = true)]
    bytes: i64,
    /// The task (instead of the positional argument).
    #[arg(long)]
    task: Option<String>,
    /// Allocation ID or prefix.
    alloc: String,
    /// Task whose logs to show; may be omitted when the allocation has one task.
    task_arg: Option<String>,
}

struct Logs<'a> {
    api: &'a ApiClient,
    path: String,
    task: String,
    kind: &'static str,
}

impl Logs<'_> {
    /// Fetches (and with `follow`, keeps streaming) plain log bytes from `origin`/`offset`,
    /// handing each chunk to `sink`.
    async fn fetch(
        &self,
        origin: &str,
        offset: i64,
        follow: bool,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(), CliError> {
        let offset = offset.to_string();
        let follow = follow.to_string();
        let query = [
            ("task", self.task.as_str()),
            ("type", self.kind),
            ("origin", origin),
            ("offset", offset.as_str()),
            ("follow", follow.as_str()),
            ("plain", "true"),
        ];
        let resp = self
            .api
            .get_stream(&self.path, &query)
            .await
            .map_err(|e| CliError(format!("Error reading file: {e}")))?;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| CliError(format!("Error reading file: {e}")))?;
            sink(&chunk);
        }
        Ok(())
    }

    /// The last `lines` lines: asks for more bytes from the end until they hold enough
    /// newlines or the whole log came back.
    async fn last_lines(&self, lines: i64) -> Result<Vec<u8>, CliError> {
        let mut want = (lines.max(1)) * BYTES_PER_LINE;
        loop {
            let mut data = Vec::new();
            self.fetch("end", want, false, |c| data.extend_from_slice(c))
                .await?;
            let newlines = data.iter().filter(|&&b| b == b'\n').count() as i64;
            if newlines > lines || (data.len() as i64) < want {
                return Ok(tail_lines(&data, lines as usize).to_vec());
            }
            want *= 2;
        }
    }
}

/// The suffix of `data` holding its last `n` lines (a trailing newline ends the last line).
fn tail_lines(data: &[u8], n: usize) -> &[u8] {
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &data[i + 1..];
            }
        }
    }
    if n == 0 { &data[data.len()..] } else { data }
}

fn write_out(chunk: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(chunk);
    let _ = out.flush();
}

/// Prints the logs.
pub async fn run(api: &ApiClient, a: LogsArgs) -> Result<(), CliError> {
    let alloc = resolve_alloc(api, &a.alloc).await?;
    let task = pick_task(&alloc, a.task.as_deref().or(a.task_arg.as_deref()))?;
    let id = alloc["ID"].as_str().unwrap_or_default();
    let logs = Logs {
        api,
        path: format!("/v1/client/fs/logs/{id}"),
        task,
        kind: if a.stderr { "stderr" } else { "stdout" },
    };
    if a.bytes >= 0 {
        return logs.fetch("end", a.bytes, a.follow, write_out).await;
    }
    if !a.tail && a.lines < 0 {
        return logs.fetch("start", 0, a.follow, write_out).await;
    }
    let lines = if a.lines >= 0 {
        a.lines
    } else {
        DEFAULT_TAIL_LINES
    };
    let tail = logs.last_lines(lines).await?;
    if !a.follow {
        write_out(&tail);
        return Ok(());
    }
    // Follow from where those lines begin.
    logs.fetch("end", tail.len() as i64, true, write_out).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails() {
        assert_eq!(tail_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail_lines(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(tail_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail_lines(b"a\nb\n", 0), b"");
    }
}
