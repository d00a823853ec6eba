//! `alloc exec` for docker: an engine exec instance (create, start attached, resize) whose
//! exit code comes from inspecting it once its output ended.
//!
//! The engine has no call to kill an exec process: when the caller goes away the attached
//! connection is dropped, which hangs up a TTY session (SIGHUP) and closes a pipe session's
//! stdin; anything else lives until the container stops, as with Nomad's docker driver.

use std::time::Duration;

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::ResizeExecOptionsBuilder;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::client::failed;
use crate::driver::{DriverError, ExitResult};
use crate::exec_session::{ExecInput, ExecOutput, ExecRequest, ExecSession, TtySize};

/// Inspect attempts while the engine still reports the exec as running after its output ended.
const INSPECT_ATTEMPTS: u32 = 50;
const INSPECT_SPACING: Duration = Duration::from_millis(20);

type Output = std::pin::Pin<
    Box<dyn Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>> + Send>,
>;
type Input = std::pin::Pin<Box<dyn AsyncWrite + Send>>;

/// Starts `req` in `container_id`.
pub async fn exec(
    client: Docker,
    container_id: &str,
    req: &ExecRequest,
) -> Result<ExecSession, DriverError> {
    if req.command.is_empty() {
        return Err(DriverError::Failed("command is not present".into()));
    }
    let env: Vec<String> = req.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let created = client
        .create_exec(
            container_id,
            CreateExecOptions {
                attach_stdin: Some(true),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(req.tty),
                env: (!env.is_empty()).then_some(env),
                cmd: Some(req.command.clone()),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| failed("Failed to create exec object", &e))?;
    let started = client
        .start_exec(
            &created.id,
            Some(StartExecOptions {
                detach: false,
                tty: req.tty,
                output_capacity: None,
            }),
        )
        .await
        .map_err(|e| failed("Failed to start exec", &e))?;
    let StartExecResults::Attached { output, input } = started else {
        return Err(DriverError::Failed("exec started detached".into()));
    };
    if req.tty
        && let Some(size) = req.tty_size
    {
        resize(&client, &created.id, size).await;
    }
    let (session, in_rx, out_tx) = ExecSession::channel();
    tokio::spawn(run(
        client, created.id, req.tty, output, input, in_rx, out_tx,
    ));
    Ok(session)
}

async fn resize(client: &Docker, exec_id: &str, size: TtySize) {
    let opts = ResizeExecOptionsBuilder::new()
        .h(i32::from(size.height))
        .w(i32::from(size.width))
        .build();
    if let Err(e) = client.resize_exec(exec_id, opts).await {
        tracing::debug!(exec_id, error = %e, "exec resize failed");
    }
}

async fn run(
    client: Docker,
    exec_id: String,
    tty: bool,
    mut output: Output,
    input: Input,
    mut in_rx: mpsc::Receiver<ExecInput>,
    out_tx: mpsc::Sender<ExecOutput>,
) {
    // A separate writer, so a command that does not read its stdin cannot stall its output.
    let (stdin_tx, stdin_rx) =
        mpsc::channel::<Option<Bytes>>(crate::exec_session::CHANNEL_CAPACITY);
    let writer = tokio::spawn(write_stdin(input, stdin_rx));
    let mut stdin_tx = Some(stdin_tx);
    loop {
        tokio::select! {
            item = output.next() => match item {
                Some(Ok(log)) => {
                    use bollard::container::LogOutput as L;
                    let out = match log {
                        L::StdOut { message } | L::Console { message } => ExecOutput::Stdout(message),
                        L::StdErr { message } => ExecOutput::Stderr(message),
                        L::StdIn { .. } => continue,
                    };
                    if out_tx.send(out).await.is_err() {
                        break;
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(exec_id, error = %e, "exec output stream failed");
                    break;
                }
                None => break,
            },
            input = in_rx.recv() => match input {
                Some(ExecInput::Stdin(data)) => {
                    if let Some(tx) = &stdin_tx && tx.send(Some(data)).await.is_err() {
                        stdin_tx = None;
                    }
                }
                Some(ExecInput::CloseStdin) => {
                    if let Some(tx) = stdin_tx.take() {
                        let _ = tx.send(None).await;
                    }
                }
                Some(ExecInput::Resize(size)) => {
                    if tty {
                        resize(&client, &exec_id, size).await;
                    }
                }
                None => {
                    writer.abort();
                    return;
                }
            },
        }
    }
    writer.abort();
    for closed in [ExecOutput::StdoutClosed, ExecOutput::StderrClosed] {
        if out_tx.send(closed).await.is_err() {
            return;
        }
    }
    let _ = out_tx
        .send(ExecOutput::Exited(exit_of(&client, &exec_id).await))
        .await;
}

/// Writes stdin; `None` half-closes the connection, which the engine turns into stdin EOF.
async fn write_stdin(mut input: Input, mut rx: mpsc::Receiver<Option<Bytes>>) {
    while let Some(msg) = rx.recv().await {
        let res = match msg {
            Some(data) => input.write_all(&data).await,
            None => {
                let _ = input.shutdown().await;
                // Keep the write half alive (dropping it could end the whole connection).
                std::future::pending::<()>().await;
                return;
            }
        };
        if let Err(e) = res {
            tracing::debug!(error = %e, "exec stdin write failed");
            return;
        }
    }
}

/// The exec's exit code; the engine may lag behind the end of its output a little.
async fn exit_of(client: &Docker, exec_id: &str) -> ExitResult {
    for _ in 0..INSPECT_ATTEMPTS {
        match client.inspect_exec(exec_id).await {
            Ok(info) if info.running != Some(true) => {
                return ExitResult {
                    exit_code: info.exit_code.map_or(-1, |c| c as i32),
                    ..ExitResult::default()
                };
            }
            Ok(_) => tokio::time::sleep(INSPECT_SPACING).await,
            Err(e) => {
                return ExitResult {
                    exit_code: -1,
                    err: Some(format!("inspecting exec: {e}")),
                    ..ExitResult::default()
                };
            }
        }
    }
    ExitResult {
        exit_code: -1,
        err: Some("exec still running after its output ended".into()),
        ..ExitResult::default()
    }
}
