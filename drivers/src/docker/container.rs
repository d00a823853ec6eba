//! Container operations on the engine: create, start, wait, stop, kill, remove.

use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, EventsOptions, KillContainerOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures::StreamExt;

use super::client::{Engine, failed, is_conflict, is_not_found, is_not_modified, message};
use crate::{DriverError, ExitResult};

/// How often a create that collides with a leftover container is retried.
const CREATE_ATTEMPTS: u32 = 5;
/// Extra time granted to a stop request beyond the kill timeout (Nomad adds 5 minutes).
const STOP_GRACE: Duration = Duration::from_secs(300);
/// Bounds of the retry delay when the engine stops answering a wait.
const WAIT_RETRY_MAX: Duration = Duration::from_secs(10);

/// Creates the container, force-removing a leftover one with the same name first.
pub async fn create(
    client: &Docker,
    name: &str,
    body: &ContainerCreateBody,
) -> Result<String, DriverError> {
    let mut last = None;
    for _ in 0..CREATE_ATTEMPTS {
        let options = CreateContainerOptions {
            name: Some(name.to_string()),
            platform: String::new(),
        };
        match client.create_container(Some(options), body.clone()).await {
            Ok(created) => return Ok(created.id),
            Err(e) if is_conflict(&e) => {
                // A container from an earlier attempt (or a crashed agent) holds the name.
                tracing::info!(
                    container = name,
                    "removing leftover container with the same name"
                );
                remove(client, name).await?;
                last = Some(e);
            }
            Err(e) => return Err(failed("Failed to create container", &e)),
        }
    }
    Err(match last {
        Some(e) => failed("Failed to create container", &e),
        None => DriverError::Failed("Failed to create container".to_string()),
    })
}

/// Starts a created container (already running counts as started).
pub async fn start(client: &Docker, id: &str) -> Result<(), DriverError> {
    match client.start_container(id, None).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_modified(&e) => Ok(()),
        Err(e) => Err(failed("Failed to start container", &e)),
    }
}

/// Force-removes a container (and its anonymous volumes); a missing one is fine.
pub async fn remove(client: &Docker, id: &str) -> Result<(), DriverError> {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match client.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        // Removal already in progress (e.g. a concurrent destroy).
        Err(e) if is_conflict(&e) && message(&e).contains("already in progress") => Ok(()),
        Err(e) => Err(failed("Failed to remove container", &e)),
    }
}

/// `docker stop -t <timeout>`: the image's stop signal (or SIGTERM), then SIGKILL.
pub async fn stop(engine: &Engine, id: &str, timeout: Duration) -> Result<(), DriverError> {
    // Whole seconds, rounded up so a sub-second grace is not turned into an instant kill.
    let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    let client = engine.patient_client(timeout + STOP_GRACE).await?;
    let options = StopContainerOptionsBuilder::default()
        .t(i32::try_from(secs).unwrap_or(i32::MAX))
        .build();
    match client.stop_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_modified(&e) || is_not_found(&e) => Ok(()),
        Err(e) => Err(failed("Failed to stop container", &e)),
    }
}

/// Sends `signal` (a validated name) to the container's main process.
pub async fn kill(client: &Docker, id: &str, signal: &str) -> Result<(), KillError> {
    let options = KillContainerOptionsBuilder::default()
        .signal(signal)
        .build();
    match client.kill_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Err(KillError::Gone),
        Err(e) if is_conflict(&e) => Err(KillError::NotRunning),
        Err(e) => Err(KillError::Engine(failed("Failed to signal container", &e))),
    }
}

/// Why a kill did not reach a process.
pub enum KillError {
    /// The container no longer exists.
    Gone,
    /// The container exists but is not running.
    NotRunning,
    /// Any other engine failure.
    Engine(DriverError),
}

/// Waits for the container to stop and reads its exit code and OOM flag from the engine.
///
/// An unreachable engine is retried: the container keeps running without it, and giving up
/// would report a live task as dead.
pub async fn wait_exit(engine: &Engine, id: &str) -> ExitResult {
    let mut delay = Duration::from_millis(200);
    let code = loop {
        match wait_once(engine, id).await {
            Ok(code) => break code,
            Err(WaitError::Gone) => {
                return ExitResult {
                    exit_code: -1,
                    err: Some(format!("container {id} disappeared")),
                    ..Default::default()
                };
            }
            Err(WaitError::Retry(msg)) => {
                tracing::debug!(container = id, %msg, "waiting for container failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(WAIT_RETRY_MAX);
            }
        }
    };
    let mut result = ExitResult {
        exit_code: i32::try_from(code).unwrap_or(i32::MAX),
        ..Default::default()
    };
    if let Ok(client) = engine.client().await {
        if let Ok(inspected) = client.inspect_container(id, None).await
            && let Some(state) = inspected.state
        {
            result.oom_killed = state.oom_killed.unwrap_or(false);
            if let Some(code) = state.exit_code {
                result.exit_code = i32::try_from(code).unwrap_or(result.exit_code);
            }
        }
        if !result.oom_killed && result.exit_code == SIGKILL_EXIT {
            result.oom_killed = late_oom(&client, id).await;
        }
    }
    result
}

/// Exit code of a process killed by SIGKILL, as the engine reports it.
const SIGKILL_EXIT: i32 = 128 + 9;
/// How long a SIGKILL exit is checked for an OOM kill the engine had not recorded yet
/// (short: a stop that escalated to SIGKILL pays it too).
const OOM_SETTLE: Duration = Duration::from_millis(300);

/// The engine learns of an OOM kill from a separate containerd event that can be handled
/// after the exit, so `State.OOMKilled` may still be false when the wait returns. A SIGKILL
/// exit is therefore checked against the engine's recorded `oom` events for this container,
/// and its flag re-read, for a bounded moment.
async fn late_oom(client: &Docker, id: &str) -> bool {
    let deadline = tokio::time::Instant::now() + OOM_SETTLE;
    loop {
        if oom_event_recorded(client, id).await {
            return true;
        }
        if let Ok(inspected) = client.inspect_container(id, None).await
            && inspected.state.and_then(|s| s.oom_killed) == Some(true)
        {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the engine's event log holds an `oom` event of container `id`.
async fn oom_event_recorded(client: &Docker, id: &str) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let filters = std::collections::HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        ("container".to_string(), vec![id.to_string()]),
        ("event".to_string(), vec!["oom".to_string()]),
    ]);
    // An `until` of now makes the engine answer from its event log and end the stream.
    let options = EventsOptions {
        since: Some("1".into()),
        until: Some(format!("{}.{:09}", now.as_secs(), now.subsec_nanos())),
        filters: Some(filters),
    };
    let events = client.events(Some(options));
    let first = tokio::time::timeout(OOM_SETTLE, events.take(1).collect::<Vec<_>>()).await;
    matches!(first.as_deref(), Ok([Ok(_)]))
}

enum WaitError {
    Gone,
    Retry(String),
}

async fn wait_once(engine: &Engine, id: &str) -> Result<i64, WaitError> {
    let client = engine
        .client()
        .await
        .map_err(|e| WaitError::Retry(e.to_string()))?;
    let options = WaitContainerOptionsBuilder::default()
        .condition("not-running")
        .build();
    let mut stream = client.wait_container(id, Some(options));
    match stream.next().await {
        Some(Ok(resp)) => Ok(resp.status_code),
        // bollard reports a non-zero exit as an error carrying the code.
        Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) if is_not_found(&e) => Err(WaitError::Gone),
        Some(Err(e)) => Err(WaitError::Retry(message(&e))),
        None => Err(WaitError::Retry(
            "wait stream ended without a status".to_string(),
        )),
    }
}

/// Whether the container is running; a missing container is not running.
pub async fn is_running(client: &Docker, id: &str) -> Result<bool, DriverError> {
    match client.inspect_container(id, None).await {
        Ok(c) => Ok(c.state.and_then(|s| s.running).unwrap_or(false)),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(failed("Failed to inspect container", &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the docker CLI, returning trimmed stdout.
    fn docker(args: &[&str]) -> String {
        let out = std::process::Command::new("docker")
            .args(args)
            .output()
            .expect("run docker");
        assert!(out.status.success(), "docker {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The engine's event log tells an OOM kill from a plain SIGKILL, which is what
    /// `wait_exit` falls back on when `State.OOMKilled` lags behind the exit.
    #[test]
    fn engine_event_log_tells_oom_from_sigkill() {
        if std::env::var("YURT_SKIP_DOCKER_TESTS").as_deref() == Ok("1") {
            eprintln!("YURT_SKIP_DOCKER_TESTS=1: docker engine test skipped");
            return;
        }
        let image = std::env::var("YURT_TEST_DOCKER_IMAGE")
            .unwrap_or_else(|_| "yurt-test/busybox:1".to_string());
        let label = format!("yurt.unit.oom={}", std::process::id());
        let oom = docker(&[
            "run",
            "-d",
            "--label",
            &label,
            "--memory",
            "16m",
            "--memory-swap",
            "16m",
            &image,
            "sh",
            "-c",
            "tail /dev/zero",
        ]);
        let killed = docker(&["run", "-d", "--label", &label, &image, "sleep", "300"]);
        docker(&["kill", &killed]);
        assert_eq!(docker(&["wait", &oom]), "137");
        assert_eq!(docker(&["wait", &killed]), "137");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (with_oom, without) = rt.block_on(async {
            let client = Docker::connect_with_local_defaults().expect("engine client");
            (
                oom_event_recorded(&client, &oom).await,
                oom_event_recorded(&client, &killed).await,
            )
        });
        docker(&["rm", "-f", &oom, &killed]);
        assert!(with_oom, "no oom event recorded for {oom}");
        assert!(!without, "a plain SIGKILL counted as OOM");
    }
}
