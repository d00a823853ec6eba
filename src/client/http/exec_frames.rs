//! The JSON frames of Nomad's exec websocket (snake_case, one object per text message).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserialize;
use yurt_drivers::exec_session::{ExecInput, ExecOutput, TtySize};

/// The optional first frame of a `ws_handshake=true` session.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Handshake {
    /// Must be 1.
    #[serde(default)]
    pub version: i64,
    /// The ACL token (browsers cannot set headers).
    #[serde(default)]
    pub auth_token: String,
}

#[derive(Debug, Deserialize)]
struct RawInput {
    stdin: Option<RawStdin>,
    tty_size: Option<RawSize>,
    setup: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct RawStdin {
    /// Go's `[]byte`: base64 text.
    data: Option<String>,
    #[serde(default)]
    close: bool,
}

#[derive(Debug, Deserialize)]
struct RawSize {
    #[serde(default)]
    height: i64,
    #[serde(default)]
    width: i64,
}

/// Decodes one client frame into session inputs; `{}` and unknown keys are heartbeats (empty).
///
/// Precedence is Nomad's: `stdin` wins over `tty_size`; a frame with only `setup` is refused.
pub fn parse_input(raw: &[u8]) -> Result<Vec<ExecInput>, String> {
    let msg: RawInput = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
    if let Some(stdin) = msg.stdin {
        let mut out = Vec::new();
        if let Some(data) = stdin.data.filter(|d| !d.is_empty()) {
            let bytes = STANDARD
                .decode(data.as_bytes())
                .map_err(|e| format!("illegal base64 data: {e}"))?;
            out.push(ExecInput::Stdin(Bytes::from(bytes)));
        }
        if stdin.close {
            out.push(ExecInput::CloseStdin);
        }
        return Ok(out);
    }
    if let Some(size) = msg.tty_size {
        let clamp = |v: i64| u16::try_from(v.max(0)).unwrap_or(u16::MAX);
        return Ok(vec![ExecInput::Resize(TtySize {
            height: clamp(size.height),
            width: clamp(size.width),
        })]);
    }
    if let Some(setup) = msg.setup {
        return Err(format!("unexpected message type: {setup}"));
    }
    Ok(Vec::new())
}

/// Encodes one session output as its frame.
pub fn output_frame(out: &ExecOutput) -> String {
    let data =
        |stream: &str, b: &Bytes| format!(r#"{{"{stream}":{{"data":"{}"}}}}"#, STANDARD.encode(b));
    match out {
        ExecOutput::Stdout(b) => data("stdout", b),
        ExecOutput::Stderr(b) => data("stderr", b),
        ExecOutput::StdoutClosed => r#"{"stdout":{"close":true}}"#.to_string(),
        ExecOutput::StderrClosed => r#"{"stderr":{"close":true}}"#.to_string(),
        // Go's omitempty drops a zero exit code: `"result":{}`.
        ExecOutput::Exited(r) if r.exit_code == 0 => r#"{"exited":true,"result":{}}"#.to_string(),
        ExecOutput::Exited(r) => {
            format!(
                r#"{{"exited":true,"result":{{"exit_code":{}}}}}"#,
                r.exit_code
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yurt_drivers::ExitResult;

    #[test]
    fn input_frames() {
        assert_eq!(
            parse_input(br#"{"stdin":{"data":"aGk="}}"#).unwrap(),
            vec![ExecInput::Stdin(Bytes::from_static(b"hi"))]
        );
        assert_eq!(
            parse_input(br#"{"stdin":{"close":true},"tty_size":{"height":1,"width":2}}"#).unwrap(),
            vec![ExecInput::CloseStdin]
        );
        assert_eq!(
            parse_input(br#"{"tty_size":{"height":30,"width":100}}"#).unwrap(),
            vec![ExecInput::Resize(TtySize {
                height: 30,
                width: 100
            })]
        );
        assert!(parse_input(b"{}").unwrap().is_empty());
        assert!(parse_input(br#"{"other":1}"#).unwrap().is_empty());
        assert!(
            parse_input(br#"{"setup":{}}"#)
                .unwrap_err()
                .starts_with("unexpected message type")
        );
        assert!(parse_input(b"nope").is_err());
        assert!(parse_input(br#"{"stdin":{"data":"!!"}}"#).is_err());
    }

    #[test]
    fn output_frames() {
        assert_eq!(
            output_frame(&ExecOutput::Stdout(Bytes::from_static(b"out\n"))),
            r#"{"stdout":{"data":"b3V0Cg=="}}"#
        );
        assert_eq!(
            output_frame(&ExecOutput::StderrClosed),
            r#"{"stderr":{"close":true}}"#
        );
        let exit = |c| {
            output_frame(&ExecOutput::Exited(ExitResult {
                exit_code: c,
                ..ExitResult::default()
            }))
        };
        assert_eq!(exit(0), r#"{"exited":true,"result":{}}"#);
        assert_eq!(exit(3), r#"{"exited":true,"result":{"exit_code":3}}"#);
    }
}
