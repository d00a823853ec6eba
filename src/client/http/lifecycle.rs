//! `/v1/client/allocation/:id/signal` and `/restart` (facts §9).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ClientApp;
use super::alloc_lookup::multierror;
use crate::client::task_runner::{TaskRunnerError, TaskRunnerHandle};
use crate::http::body::from_slice_null_absent;
use crate::http::{HttpError, JsonReply};
use crate::structs::TaskStateName;

/// `{"Task","Signal"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct SignalRequest {
    task: String,
    signal: String,
}

/// `{"TaskName","AllTasks"}`; the API docs' sample spells the task `Task`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RestartRequest {
    task_name: String,
    task: String,
    all_tasks: bool,
}

/// Nomad's empty success body for lifecycle calls (`GenericResponse`).
fn ok() -> Response {
    JsonReply::new(serde_json::json!({"Index": 0})).into_response()
}

/// An empty signal is what Nomad's exec and raw_exec turn into SIGINT.
fn effective_signal(task: &TaskRunnerHandle, name: &str) -> String {
    let is_exec = matches!(task.task().driver.as_str(), "raw_exec" | "exec");
    if is_exec && name.is_empty() {
        return "SIGINT".to_string();
    }
    name.to_string()
}

/// Refuses a signal name no driver can deliver. Nomad's exec drivers quietly send SIGINT for
/// one and its docker driver answers 500; both hide a typo from the caller, so yurt answers
/// 400 before anything is signalled.
fn check_signal_name(name: &str) -> Result<(), HttpError> {
    if name.is_empty() || yurt_drivers::supervisor::signals::parse_signal(name).is_some() {
        return Ok(());
    }
    Err(HttpError::bad_request(format!(
        "invalid signal: {name:?} is not a signal name (such as SIGHUP, SIGUSR1 or SIGTERM)"
    )))
}

/// `POST|PUT /v1/client/allocation/:id/signal`.
pub async fn signal(
    State(app): State<ClientApp>,
    Path(id): Path<String>,
    method: Method,
    body: Bytes,
) -> Result<Response, HttpError> {
    if method != Method::POST && method != Method::PUT {
        return Err(HttpError::invalid_method());
    }
    let req: SignalRequest = from_slice_null_absent(&body)
        .map_err(|e| HttpError::bad_request(format!("Failed to decode body: {e}")))?;
    check_signal_name(&req.signal)?;
    let runner = app.runner(&id)?;
    if !req.task.is_empty() {
        let task = runner
            .task(&req.task)
            .ok_or_else(|| HttpError::internal("Task not found"))?;
        let sig = effective_signal(task, &req.signal);
        task.signal(&sig)
            .await
            .map_err(|e| HttpError::internal(e.to_string()))?;
        return Ok(ok());
    }
    let mut errors = Vec::new();
    for (name, task) in runner.tasks() {
        let sig = effective_signal(task, &req.signal);
        if let Err(e) = task.signal(&sig).await {
            errors.push(format!("Failed to signal task: {name}, err: {e}"));
        }
    }
    if errors.is_empty() {
        Ok(ok())
    } else {
        Err(HttpError::internal(multierror(&errors)))
    }
}

/// `/v1/client/allocation/:id/restart` (any method, like Nomad).
pub async fn restart(
    State(app): State<ClientApp>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let req: RestartRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RestartRequest::default()
    } else {
        // Nomad returns the decode failure uncoded, hence 500.
        from_slice_null_absent(&body).map_err(|e| HttpError::internal(e.to_string()))?
    };
    let runner = app.runner(&id)?;
    let name = if req.task_name.is_empty() {
        req.task
    } else {
        req.task_name
    };
    if !name.is_empty() && req.all_tasks {
        return Err(HttpError::internal(
            "task name cannot be set when restarting all tasks",
        ));
    }
    if !name.is_empty() {
        let task = runner.task(&name).ok_or_else(|| {
            HttpError::internal(format!("Could not find task runner for task: {name}"))
        })?;
        task.restart("User requested task to restart")
            .await
            .map_err(|e| HttpError::internal(e.to_string()))?;
        return Ok(ok());
    }
    let alloc = runner.alloc();
    let all_dead = runner
        .tasks()
        .values()
        .all(|t| t.state().state == TaskStateName::Dead);
    if alloc.server_terminal() || (all_dead && !req.all_tasks) {
        return Err(HttpError::internal(
            "restart of an alloc that should not run",
        ));
    }
    let results = if req.all_tasks {
        runner
            .restart_all("User requested all tasks to restart")
            .await
    } else {
        let reason = "User requested running tasks to restart";
        let restarts = runner
            .tasks()
            .iter()
            .map(|(name, t)| async move { (name.clone(), t.restart(reason).await) });
        futures::future::join_all(restarts).await
    };
    let errors: Vec<String> = results
        .into_iter()
        .filter_map(|(name, res)| match res {
            Ok(()) | Err(TaskRunnerError::NotRunning) => None,
            Err(e) => Some(format!("failed to restart task {name}: {e}")),
        })
        .collect();
    if errors.is_empty() {
        Ok(ok())
    } else {
        Err(HttpError::internal(multierror(&errors)))
    }
}
