//! Where a container's log stream stands, so a restarted agent resumes it exactly once.
//!
//! The engine's log API can only restart a stream at a whole second (`since`), and stdout and
//! stderr messages are not strictly time-ordered in the engine's log file (each stream stamps
//! its messages before they are serialized into the file). So the position is not "the last
//! timestamp" but a count in stream order:
//!
//! * `anchor` is a whole second, kept about one second behind the newest timestamp seen;
//! * `written` is how many messages with a timestamp at or after `anchor` were written, in
//!   the order the engine streamed them.
//!
//! Resuming asks for `since = anchor` and skips the first `written` messages: the engine
//! streams the same file in the same order with the same filter, so those are exactly the
//! messages already written. The second of slack absorbs the small timestamp inversions
//! between stdout and stderr.
//!
//! Bytes reach the log files before the checkpoint is saved, so after a crash the files may
//! hold a little more than the checkpoint says. The checkpoint therefore also records the
//! rotated files' index and length, and recovery truncates the files back to it before
//! resuming: what was written after the checkpoint is fetched and written again, once.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::logrotate::existing_indexes;

/// Seconds the anchor stays behind the newest timestamp.
const ANCHOR_SLACK_SECS: i64 = 1;

/// Index and length of the file a rotated stream was writing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePos {
    /// The `<n>` of `<task>.stdout.<n>`.
    pub index: u64,
    /// Bytes in that file.
    pub len: u64,
}

/// The persisted position of one container's log stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The container the position belongs to (a new container starts from zero).
    pub container_id: String,
    /// Unix second the resumed stream starts at.
    pub anchor: i64,
    /// Messages at or after `anchor` already written, in stream order.
    pub written: u64,
    /// Where `<task>.stdout` stood.
    pub stdout: FilePos,
    /// Where `<task>.stderr` stood.
    pub stderr: FilePos,
}

impl Checkpoint {
    /// Reads a checkpoint; a missing or unreadable file gives None (start from zero).
    pub fn load(path: &Path) -> Option<Checkpoint> {
        let text = fs::read(path).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Atomically replaces the checkpoint file; `durable` also fsyncs it.
    pub fn save(&self, path: &Path, durable: bool) -> io::Result<()> {
        let tmp = tmp_path(path);
        let data = serde_json::to_vec(self).map_err(io::Error::other)?;
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(&data)?;
        if durable {
            file.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if durable && let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Cuts a rotated stream back to `pos`: later files are deleted, the file at `pos` truncated.
pub fn truncate_stream(dir: &Path, base: &str, pos: FilePos) -> io::Result<()> {
    for index in existing_indexes(dir, base)? {
        if index > pos.index {
            match fs::remove_file(dir.join(format!("{base}.{index}"))) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    let current = dir.join(format!("{base}.{}", pos.index));
    match OpenOptions::new().write(true).open(&current) {
        Ok(file) => {
            if file.metadata()?.len() > pos.len {
                file.set_len(pos.len)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Position of a rotated stream's current file.
pub fn file_pos(index: u64, path: &Path) -> FilePos {
    FilePos {
        index,
        len: fs::metadata(path).map_or(0, |m| m.len()),
    }
}

/// The in-memory side of the position: decides which streamed messages to write.
#[derive(Debug, Clone, Default)]
pub struct Cursor {
    anchor: i64,
    /// Timestamps (ns) of written messages at or after `anchor`; its length is `written`.
    recent: VecDeque<i64>,
    newest: i64,
    /// Messages still to skip in the stream being read (already written before).
    skip: u64,
}

impl Cursor {
    /// A cursor resuming from a checkpoint (a fresh one starts at anchor 0, nothing written).
    pub fn resume(cp: &Checkpoint) -> Self {
        Cursor {
            anchor: cp.anchor,
            recent: VecDeque::new(),
            newest: cp.anchor.saturating_mul(1_000_000_000),
            skip: cp.written,
        }
    }

    /// Starts reading a new stream from `since()`: everything already written is skipped.
    pub fn restart_stream(&mut self) {
        self.skip += self.recent.len() as u64;
        self.recent.clear();
    }

    /// The `since` (unix seconds) to request the stream from.
    pub fn since(&self) -> i64 {
        self.anchor
    }

    /// Takes one streamed message with timestamp `ts` (ns; None if it had none): true when it
    /// must be written, false when it was written before.
    pub fn admit(&mut self, ts: Option<i64>) -> bool {
        let ts = ts.unwrap_or(self.newest);
        if ts < self.anchor.saturating_mul(1_000_000_000) {
            // Older than the anchor: the engine filtered such messages out of any replay, so
            // it cannot have been written by an earlier stream; it is not counted either.
            return self.skip == 0;
        }
        self.recent.push_back(ts);
        self.newest = self.newest.max(ts);
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        true
    }

    /// Moves the anchor up behind the newest timestamp and forgets what falls before it.
    pub fn advance_anchor(&mut self) {
        if self.skip > 0 {
            // Still replaying: the count refers to the old anchor.
            return;
        }
        let anchor = self.newest.div_euclid(1_000_000_000) - ANCHOR_SLACK_SECS;
        if anchor <= self.anchor {
            return;
        }
        self.anchor = anchor;
        let cutoff = anchor.saturating_mul(1_000_000_000);
        self.recent.retain(|ts| *ts >= cutoff);
    }

    /// The checkpoint for the current position, with the files' positions.
    pub fn checkpoint(&self, container_id: &str, stdout: FilePos, stderr: FilePos) -> Checkpoint {
        Checkpoint {
            container_id: container_id.to_string(),
            anchor: self.anchor,
            written: self.recent.len() as u64 + self.skip,
            stdout,
            stderr,
        }
    }
}

/// Splits the engine's `<RFC3339Nano timestamp> <message>` into (ns, message).
pub fn split_timestamp(frame: &[u8]) -> (Option<i64>, &[u8]) {
    let Some(space) = frame.iter().position(|&b| b == b' ') else {
        return (None, frame);
    };
    let parsed = std::str::from_utf8(&frame[..space])
        .ok()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .and_then(|t| t.timestamp_nanos_opt());
    match parsed {
        Some(ns) => (Some(ns), &frame[space + 1..]),
        None => (None, frame),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn splits_engine_timestamps() {
        let (ts, msg) = split_timestamp(b"2024-01-02T03:04:05.000000007Z hello world\n");
        assert_eq!(msg, b"hello world\n");
        assert_eq!(ts.map(|t| t % S), Some(7));
        let (ts, msg) = split_timestamp(b"no timestamp here");
        assert!(ts.is_none());
        assert_eq!(msg, b"no timestamp here");
    }

    /// Streams `log` (timestamps, in file order) with `since`, as the engine would.
    fn replay(log: &[i64], since: i64) -> Vec<(usize, i64)> {
        log.iter()
            .copied()
            .enumerate()
            .filter(|(_, ts)| *ts >= since * S)
            .collect()
    }

    #[test]
    fn resume_writes_every_message_once_with_equal_and_inverted_timestamps() {
        // File order with equal timestamps and a small stdout/stderr inversion across a second.
        let log: Vec<i64> = vec![
            10 * S,
            10 * S + 5,
            10 * S + 5,
            11 * S - 2,
            11 * S + 1,
            11 * S - 1, // inverted: stamped before its predecessor
            11 * S + 1,
            12 * S + 3,
            12 * S + 3,
            12 * S + 3,
            13 * S,
            14 * S + 9,
        ];
        for crash_after in 0..=log.len() {
            for advance_every in 1..4 {
                let mut written = Vec::new();
                let mut cursor = Cursor::resume(&Checkpoint::default());
                let mut cp = cursor.checkpoint("c", FilePos::default(), FilePos::default());
                let mut at_checkpoint = 0;
                for (i, ts) in replay(&log, cursor.since()) {
                    if written.len() == crash_after {
                        break;
                    }
                    if cursor.admit(Some(ts)) {
                        written.push(i);
                    }
                    if i % advance_every == 0 {
                        cursor.advance_anchor();
                        cp = cursor.checkpoint("c", FilePos::default(), FilePos::default());
                        at_checkpoint = written.len();
                    }
                }
                // Recovery truncates the files back to the checkpoint.
                written.truncate(at_checkpoint);
                let mut resumed = Cursor::resume(&cp);
                for (i, ts) in replay(&log, resumed.since()) {
                    if resumed.admit(Some(ts)) {
                        written.push(i);
                    }
                }
                let expect: Vec<usize> = (0..log.len()).collect();
                assert_eq!(
                    written, expect,
                    "crash after {crash_after}, advance every {advance_every}"
                );
            }
        }
    }

    #[test]
    fn reconnect_in_the_same_run_skips_what_was_written() {
        let log: Vec<i64> = vec![5 * S, 5 * S, 6 * S + 1, 8 * S];
        let mut cursor = Cursor::resume(&Checkpoint::default());
        let mut written = Vec::new();
        for (i, ts) in replay(&log, cursor.since()).into_iter().take(3) {
            if cursor.admit(Some(ts)) {
                written.push(i);
            }
        }
        cursor.advance_anchor();
        cursor.restart_stream();
        for (i, ts) in replay(&log, cursor.since()) {
            if cursor.admit(Some(ts)) {
                written.push(i);
            }
        }
        assert_eq!(written, vec![0, 1, 2, 3]);
    }

    #[test]
    fn checkpoint_round_trips_and_truncation_cuts_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".web.docker.logpos");
        let cp = Checkpoint {
            container_id: "abc".into(),
            anchor: 42,
            written: 3,
            stdout: FilePos { index: 1, len: 4 },
            stderr: FilePos::default(),
        };
        cp.save(&path, true).unwrap();
        assert_eq!(Checkpoint::load(&path), Some(cp.clone()));
        fs::write(dir.path().join("web.stdout.0"), b"old").unwrap();
        fs::write(dir.path().join("web.stdout.1"), b"12345678").unwrap();
        fs::write(dir.path().join("web.stdout.2"), b"later").unwrap();
        truncate_stream(dir.path(), "web.stdout", cp.stdout).unwrap();
        assert_eq!(fs::read(dir.path().join("web.stdout.1")).unwrap(), b"1234");
        assert!(!dir.path().join("web.stdout.2").exists());
        assert_eq!(fs::read(dir.path().join("web.stdout.0")).unwrap(), b"old");
    }
}
