//! Streams a container's stdout/stderr from the engine into the task's rotated log files.
//!
//! Messages are requested with timestamps; the timestamp is stripped before writing and fed
//! to the [`Cursor`], whose position is checkpointed beside the logs (see `logpos` for why
//! that gives exactly-once output across agent restarts).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures::StreamExt;
use tokio::sync::watch;

use super::client::{Engine, is_not_found, message};
use super::logpos::{Checkpoint, Cursor, file_pos, split_timestamp, truncate_stream};
use crate::logrotate::FileRotator;
use crate::{DriverError, LogSink};

/// How often the position is saved (not fsync'd) while output flows.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);
/// Every this many checkpoints, the log files and the checkpoint are fsync'd.
const DURABLE_EVERY: u32 = 8;
/// Reconnect backoff bounds when the stream breaks while the container still runs.
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Reads of a stopped container's remaining output after a broken stream.
const FINAL_READS: u32 = 3;
/// Engine answers that mean its log driver cannot be read: no point retrying.
const TERMINAL_ERRORS: &[&str] = &[
    "configured logging driver does not support reading",
    "not implemented",
];

/// The checkpoint file of a task's container log stream, hidden beside its logs.
pub fn position_path(sink: &LogSink) -> PathBuf {
    sink.dir.join(format!(".{}.docker.logpos", sink.prefix))
}

/// The two rotated files of a task.
pub struct Streams {
    stdout: FileRotator,
    stderr: FileRotator,
}

impl Streams {
    fn positions(&self) -> (super::logpos::FilePos, super::logpos::FilePos) {
        (
            file_pos(self.stdout.current_index(), &self.stdout.current_path()),
            file_pos(self.stderr.current_index(), &self.stderr.current_path()),
        )
    }

    fn sync(&self) -> std::io::Result<()> {
        for path in [self.stdout.current_path(), self.stderr.current_path()] {
            std::fs::File::open(path)?.sync_all()?;
        }
        Ok(())
    }
}

fn open_streams(sink: &LogSink) -> Result<Streams, DriverError> {
    let size = sink.max_file_size_mb.max(1) * 1024 * 1024;
    let open = |suffix: &str| {
        FileRotator::open(
            &sink.dir,
            &format!("{}.{suffix}", sink.prefix),
            sink.max_files,
            size,
        )
        .map_err(|e| {
            DriverError::io(
                format!("opening {} logs in {}", suffix, sink.dir.display()),
                e,
            )
        })
    };
    Ok(Streams {
        stdout: open("stdout")?,
        stderr: open("stderr")?,
    })
}

/// Opens the log files and the starting position of `container_id`'s stream.
///
/// On recovery a checkpoint of the same container is honoured: the files are cut back to it
/// and the stream resumes after it. Otherwise the stream starts at the container's first byte,
/// appending to whatever earlier attempts left, and that starting point is saved at once so a
/// crash before the first checkpoint cannot duplicate output.
pub fn prepare(
    sink: &LogSink,
    container_id: &str,
    recovering: bool,
) -> Result<(Streams, Cursor), DriverError> {
    let path = position_path(sink);
    let saved = if recovering {
        Checkpoint::load(&path).filter(|cp| cp.container_id == container_id)
    } else {
        None
    };
    if let Some(cp) = &saved {
        for (stream, pos) in [("stdout", cp.stdout), ("stderr", cp.stderr)] {
            truncate_stream(&sink.dir, &format!("{}.{stream}", sink.prefix), pos).map_err(|e| {
                DriverError::io(format!("rewinding {stream} logs to the saved position"), e)
            })?;
        }
    }
    let streams = open_streams(sink)?;
    let cursor = Cursor::resume(&saved.unwrap_or_default());
    let (out, err) = streams.positions();
    // Not fsync'd: against an agent crash the page cache is enough, and the pump makes it
    // durable within a few checkpoints; this keeps fsyncs off the task start path.
    cursor
        .checkpoint(container_id, out, err)
        .save(&path, false)
        .map_err(|e| DriverError::io(format!("saving log position {}", path.display()), e))?;
    Ok((streams, cursor))
}

/// Everything the pump needs.
pub struct Pump {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The container to follow.
    pub container_id: String,
    /// Where the checkpoint lives.
    pub position_path: PathBuf,
    /// The files.
    pub streams: Streams,
    /// The position.
    pub cursor: Cursor,
}

impl Pump {
    /// Follows the container's logs until it stops; sets `done` when all output is written.
    pub async fn run(mut self, done: watch::Sender<bool>) {
        let mut backoff = BACKOFF_START;
        let mut final_reads = 0;
        loop {
            // Only a stream the engine ended itself has delivered everything up to the
            // container's exit; one that broke may have left output behind.
            let complete = match self.follow_once().await {
                Ok(()) => {
                    backoff = BACKOFF_START;
                    true
                }
                Err(StreamEnd::Terminal(msg)) => {
                    tracing::warn!(container = %self.container_id, %msg, "container logs cannot be read");
                    break;
                }
                Err(StreamEnd::Retry(msg)) => {
                    tracing::debug!(container = %self.container_id, %msg, "log stream broke");
                    false
                }
            };
            match self.still_running().await {
                Some(true) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    self.cursor.restart_stream();
                }
                Some(false) if complete => break,
                // The stream broke and the container has stopped since: what it wrote after
                // the break is still in the engine, so read up to its end once more (a few
                // tries) instead of reporting the task dead with its last output missing.
                Some(false) if final_reads < FINAL_READS => {
                    final_reads += 1;
                    self.cursor.restart_stream();
                }
                Some(false) => {
                    tracing::warn!(container = %self.container_id, "the stopped container's last output could not be read");
                    break;
                }
                // The engine is unreachable: keep trying, the container may still be running.
                None => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    self.cursor.restart_stream();
                }
            }
        }
        self.save_checkpoint(true);
        done.send_replace(true);
    }

    async fn still_running(&self) -> Option<bool> {
        let client = self.engine.client().await.ok()?;
        match client.inspect_container(&self.container_id, None).await {
            Ok(c) => Some(c.state.and_then(|s| s.running).unwrap_or(false)),
            Err(e) if is_not_found(&e) => Some(false),
            Err(_) => None,
        }
    }

    async fn follow_once(&mut self) -> Result<(), StreamEnd> {
        let client = self
            .engine
            .client()
            .await
            .map_err(|e| StreamEnd::Retry(e.to_string()))?;
        let since = i32::try_from(self.cursor.since()).unwrap_or(i32::MAX);
        let options = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .since(since)
            .build();
        let mut stream = client.logs(&self.container_id, Some(options));
        let mut ticker = tokio::time::interval(CHECKPOINT_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u32;
        let mut dirty = false;
        let mut unsynced = false;
        loop {
            tokio::select! {
                item = stream.next() => match item {
                    None => return Ok(()),
                    Some(Ok(output)) => {
                        self.write(output);
                        dirty = true;
                    }
                    Some(Err(e)) => {
                        let msg = message(&e);
                        if TERMINAL_ERRORS.iter().any(|t| msg.contains(t)) {
                            return Err(StreamEnd::Terminal(msg));
                        }
                        return Err(StreamEnd::Retry(msg));
                    }
                },
                _ = ticker.tick() => {
                    ticks = ticks.wrapping_add(1);
                    let durable = ticks.is_multiple_of(DURABLE_EVERY);
                    if dirty || (durable && unsynced) {
                        self.save_checkpoint(durable);
                        unsynced = !durable;
                        dirty = false;
                    }
                }
            }
        }
    }

    fn write(&mut self, output: LogOutput) {
        let (is_stderr, frame) = match output {
            LogOutput::StdErr { message } => (true, message),
            LogOutput::StdOut { message } | LogOutput::Console { message } => (false, message),
            LogOutput::StdIn { .. } => return,
        };
        let (ts, payload) = split_timestamp(&frame);
        if !self.cursor.admit(ts) {
            return;
        }
        let file = if is_stderr {
            &mut self.streams.stderr
        } else {
            &mut self.streams.stdout
        };
        if let Err(e) = file.write_all(payload) {
            tracing::warn!(container = %self.container_id, error = %e, "writing container log");
        }
    }

    fn save_checkpoint(&mut self, durable: bool) {
        self.cursor.advance_anchor();
        if durable && let Err(e) = self.streams.sync() {
            tracing::warn!(error = %e, "syncing container log files");
        }
        let (out, err) = self.streams.positions();
        let cp = self.cursor.checkpoint(&self.container_id, out, err);
        if let Err(e) = cp.save(&self.position_path, durable) {
            tracing::warn!(path = %self.position_path.display(), error = %e, "saving log position");
        }
    }
}

enum StreamEnd {
    Terminal(String),
    Retry(String),
}

/// Removes a task's checkpoint (the task is gone for good).
pub fn forget(sink: &LogSink) {
    let path = position_path(sink);
    if let Err(e) = std::fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::debug!(path = %path.display(), error = %e, "removing log position");
    }
}
