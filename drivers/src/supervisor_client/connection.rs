//! Calls to a supervisor over its unix socket, from the agent (tokio).

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::supervisor::ExitRecord;
use crate::supervisor::protocol::{Request, Response, Status};

/// Why a call to a supervisor failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody listens on the socket: the supervisor is gone.
    #[error("supervisor unreachable at {path}: {source}")]
    Unreachable {
        /// The socket path.
        path: String,
        /// The connect error.
        #[source]
        source: std::io::Error,
    },
    /// The connection broke mid-call (the supervisor died or exited).
    #[error("supervisor connection: {0}")]
    Io(#[from] std::io::Error),
    /// The supervisor answered something unparsable.
    #[error("supervisor protocol: {0}")]
    Protocol(String),
    /// The supervisor refused the request.
    #[error("{0}")]
    Refused(String),
    /// No answer in time.
    #[error("supervisor did not answer within {0:?}")]
    Timeout(Duration),
}

/// Read buffer of a connection. Answers are one short JSON line (longer ones take more reads);
/// every running task keeps a `wait` connection open, so tokio's 8 KiB default would cost
/// the agent 8 KiB per task.
const READ_BUF: usize = 1024;

/// One connection to a supervisor.
pub struct SupervisorClient {
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
}

impl SupervisorClient {
    /// Connects to the socket at `path`.
    pub async fn connect(path: &Path) -> Result<Self, ClientError> {
        let sock = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Unreachable {
                path: path.display().to_string(),
                source,
            })?;
        let (r, w) = sock.into_split();
        Ok(SupervisorClient {
            reader: BufReader::with_capacity(READ_BUF, r),
            writer: w,
        })
    }

    /// Sends one request and reads its answer; a refusal becomes [`ClientError::Refused`].
    pub async fn call(&mut self, req: &Request) -> Result<Status, ClientError> {
        let mut line = serde_json::to_vec(req).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.writer.write_all(&line).await?;
        let mut answer = String::new();
        let n = (&mut self.reader)
            .take(64 * 1024)
            .read_line(&mut answer)
            .await?;
        if n == 0 {
            return Err(ClientError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "supervisor closed the connection",
            )));
        }
        let resp: Response = serde_json::from_str(answer.trim_end())
            .map_err(|e| ClientError::Protocol(format!("{e}: {answer:?}")))?;
        if resp.ok {
            Ok(resp.status)
        } else {
            Err(ClientError::Refused(
                resp.error.unwrap_or_else(|| "refused".into()),
            ))
        }
    }

    /// Waits for EOF: the supervisor has exited (used after `shutdown`).
    pub async fn closed(&mut self) -> Result<(), ClientError> {
        let mut sink = [0u8; 256];
        while self.reader.read(&mut sink).await? > 0 {}
        Ok(())
    }
}

/// Connects, makes one call and closes, all within `timeout`.
pub async fn call(path: &Path, req: &Request, timeout: Duration) -> Result<Status, ClientError> {
    tokio::time::timeout(timeout, async {
        SupervisorClient::connect(path).await?.call(req).await
    })
    .await
    .map_err(|_| ClientError::Timeout(timeout))?
}

/// Blocks until the task exits and returns its record (no timeout: tasks run for months).
pub async fn wait(path: &Path) -> Result<ExitRecord, ClientError> {
    let status = SupervisorClient::connect(path)
        .await?
        .call(&Request::Wait)
        .await?;
    status
        .exit
        .ok_or_else(|| ClientError::Protocol("wait answered without an exit".into()))
}

/// Asks the supervisor to exit and waits (≤ `timeout`) until it has.
pub async fn shutdown(path: &Path, timeout: Duration) -> Result<(), ClientError> {
    tokio::time::timeout(timeout, async {
        let mut c = SupervisorClient::connect(path).await?;
        c.call(&Request::Shutdown).await?;
        c.closed().await
    })
    .await
    .map_err(|_| ClientError::Timeout(timeout))?
}
