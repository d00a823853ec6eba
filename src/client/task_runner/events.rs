//! Task event constructors that fill the same `Details` keys, deprecated mirror fields and
//! `DisplayMessage` texts Nomad does, so UIs and scripts that parse them keep working.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::structs::{TaskEvent, event};
use yurt_drivers::ExitResult;

use super::super::util::go_duration;

/// `Restarting` reason for an ordinary restart; it is not repeated in the display message.
pub const REASON_WITHIN_POLICY: &str = "Restart within policy";

/// `Received`: the client accepted the task.
pub fn received() -> TaskEvent {
    TaskEvent::new(event::RECEIVED)
}

/// `Task Setup` with `Building Task Directory`.
pub fn building_task_dir() -> TaskEvent {
    message(TaskEvent::new(event::TASK_SETUP), event::BUILDING_TASK_DIR)
}

/// `Started`: the driver started the task.
pub fn started() -> TaskEvent {
    TaskEvent::new(event::STARTED)
}

/// `Terminated` with the exit code, signal, OOM flag and the driver's error if any.
pub fn terminated(res: &ExitResult) -> TaskEvent {
    let mut ev = TaskEvent::new(event::TERMINATED)
        .detail("exit_code", res.exit_code.to_string())
        .detail("signal", res.signal.to_string())
        .detail("oom_killed", res.oom_killed.to_string());
    ev.exit_code = i64::from(res.exit_code);
    ev.signal = i64::from(res.signal);
    if let Some(err) = &res.err {
        ev.message = err.clone();
        ev = ev.detail("exit_message", err.clone());
    }
    ev
}

/// `Killing` with the effective kill timeout (already capped by the client's maximum).
pub fn killing(kill_timeout: Duration) -> TaskEvent {
    let mut ev = TaskEvent::new(event::KILLING).detail("kill_timeout", go_duration(kill_timeout));
    ev.kill_timeout = duration_nanos(kill_timeout);
    ev
}

/// `Killed`: the kill finished; `err` is the stop error if the driver reported one.
pub fn killed(err: Option<&str>) -> TaskEvent {
    let mut ev = TaskEvent::new(event::KILLED);
    if let Some(err) = err {
        ev.kill_error = err.to_string();
        ev = ev.detail("kill_error", err);
    }
    ev
}

/// `Restarting` after `delay` for `reason`.
pub fn restarting(delay: Duration, reason: &str) -> TaskEvent {
    let mut ev = TaskEvent::new(event::RESTARTING)
        .detail("start_delay", duration_nanos(delay).to_string())
        .detail("restart_reason", reason);
    ev.start_delay = duration_nanos(delay);
    ev.restart_reason = reason.to_string();
    ev
}

/// `Not Restarting`: the policy gave up; fails the task.
pub fn not_restarting(reason: &str) -> TaskEvent {
    let mut ev = fails_task(TaskEvent::new(event::NOT_RESTARTING)).detail("restart_reason", reason);
    ev.restart_reason = reason.to_string();
    ev
}

/// `Driver Failure`: starting the task failed.
pub fn driver_failure(err: &str) -> TaskEvent {
    let mut ev = TaskEvent::new(event::DRIVER_FAILURE).detail("driver_error", err);
    ev.driver_error = err.to_string();
    ev
}

/// `Driver`: a message the driver raised on its own (image download), its annotations as
/// `Details`, like Nomad's alloc runner does with a driver's task events.
pub fn driver_message(msg: &str, annotations: &BTreeMap<String, String>) -> TaskEvent {
    let mut ev = TaskEvent::new(event::DRIVER_MESSAGE);
    ev.driver_message = msg.to_string();
    ev.details = (!annotations.is_empty()).then(|| annotations.clone());
    ev
}

/// `Downloading Artifacts`: the artifact hook started fetching.
pub fn downloading_artifacts() -> TaskEvent {
    TaskEvent::new(event::DOWNLOADING_ARTIFACTS)
}

/// `Failed Artifact Download` with the error (`download_error`).
pub fn artifact_failed(err: &str) -> TaskEvent {
    let mut ev = TaskEvent::new(event::ARTIFACT_DOWNLOAD_FAILED).detail("download_error", err);
    ev.download_error = err.to_string();
    ev
}

/// `Task hook failed` with `<hook>: <err>`.
pub fn hook_failed(hook: &str, err: &str) -> TaskEvent {
    message(
        TaskEvent::new("Task hook failed"),
        &format!("{hook}: {err}"),
    )
}

/// `Setup Failure`: the allocation could not be prepared; fails the task.
pub fn setup_failure(err: &str) -> TaskEvent {
    let mut ev = fails_task(TaskEvent::new(event::SETUP_FAILURE)).detail("setup_error", err);
    ev.setup_error = err.to_string();
    ev
}

/// `Sibling Task Failed` naming the failed task.
pub fn sibling_failed(sibling: &str) -> TaskEvent {
    let mut ev = TaskEvent::new(event::SIBLING_FAILED).detail("failed_sibling", sibling);
    ev.failed_sibling = sibling.to_string();
    ev
}

/// `Leader Task Dead`.
pub fn leader_dead() -> TaskEvent {
    TaskEvent::new(event::LEADER_DEAD)
}

/// `Main Tasks Dead`: only sidecars remain.
pub fn main_dead() -> TaskEvent {
    TaskEvent::new(event::MAIN_DEAD)
}

/// `Waiting for shutdown delay` of `delay`.
pub fn waiting_shutdown_delay(delay: Duration) -> TaskEvent {
    let mut ev = TaskEvent::new(event::WAITING_SHUTDOWN_DELAY);
    ev.display_message = format!(
        "Waiting for shutdown_delay of {} before killing the task.",
        go_duration(delay)
    );
    ev
}

/// `Skipping shutdown delay` of `delay` (the server asked for no shutdown delay).
pub fn skipping_shutdown_delay(delay: Duration) -> TaskEvent {
    let mut ev = TaskEvent::new("Skipping shutdown delay");
    ev.display_message = format!(
        "Skipping shutdown_delay of {} before killing the task.",
        go_duration(delay)
    );
    ev
}

/// `Signaling` with the signal name.
pub fn signaling(signal: &str) -> TaskEvent {
    TaskEvent::new(event::SIGNALING).detail("signal", signal)
}

/// `Restart Signaled` for `reason`.
pub fn restart_signaled(reason: &str) -> TaskEvent {
    let mut ev = TaskEvent::new(event::RESTART_SIGNAL).detail("restart_reason", reason);
    ev.restart_reason = reason.to_string();
    ev
}

/// `Failed Restoring Task`: the task could not be reattached after an agent restart; it
/// waits for the servers before starting again.
pub fn failed_restoring(err: &str) -> TaskEvent {
    message(TaskEvent::new(event::FAILED_RESTORING), err)
}

fn message(mut ev: TaskEvent, msg: &str) -> TaskEvent {
    ev.message = msg.to_string();
    ev.detail("message", msg)
}

fn fails_task(mut ev: TaskEvent) -> TaskEvent {
    ev.fails_task = true;
    ev.detail("fails_task", "true")
}

fn duration_nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Fills `DisplayMessage` when the constructor left it empty, with Nomad's texts.
pub fn populate_display_message(ev: &mut TaskEvent) {
    if !ev.display_message.is_empty() {
        return;
    }
    let or = |s: &str, default: &str| {
        if s.is_empty() {
            default.to_string()
        } else {
            s.to_string()
        }
    };
    let nanos = |n: i64| go_duration(Duration::from_nanos(u64::try_from(n).unwrap_or(0)));
    ev.display_message = match ev.r#type.as_str() {
        event::TASK_SETUP => ev.message.clone(),
        event::STARTED => "Task started by client".into(),
        event::RECEIVED => "Task received by client".into(),
        event::FAILED_VALIDATION => or(&ev.validation_error, "Validation of task failed"),
        event::SETUP_FAILURE => or(&ev.setup_error, "Task setup failed"),
        event::DRIVER_FAILURE => or(&ev.driver_error, "Failed to start task"),
        event::DOWNLOADING_ARTIFACTS => "Client is downloading artifacts".into(),
        event::ARTIFACT_DOWNLOAD_FAILED => or(&ev.download_error, "Failed to download artifacts"),
        event::KILLING => {
            if !ev.kill_reason.is_empty() {
                ev.kill_reason.clone()
            } else if ev.kill_timeout != 0 {
                format!(
                    "Sent interrupt. Waiting {} before force killing",
                    nanos(ev.kill_timeout)
                )
            } else {
                "Sent interrupt".into()
            }
        }
        event::KILLED => or(&ev.kill_error, "Task successfully killed"),
        event::TERMINATED => {
            let mut parts = vec![format!("Exit Code: {}", ev.exit_code)];
            if ev.signal != 0 {
                parts.push(format!("Signal: {}", ev.signal));
            }
            if !ev.message.is_empty() {
                parts.push(format!("Exit Message: {:?}", ev.message));
            }
            parts.join(", ")
        }
        event::RESTARTING => {
            let within = format!("Task restarting in {}", nanos(ev.start_delay));
            if !ev.restart_reason.is_empty() && ev.restart_reason != REASON_WITHIN_POLICY {
                format!("{} - {within}", ev.restart_reason)
            } else {
                within
            }
        }
        event::NOT_RESTARTING => or(&ev.restart_reason, "Task exceeded restart policy"),
        event::SIBLING_FAILED => {
            if ev.failed_sibling.is_empty() {
                "Task's sibling failed".into()
            } else {
                format!("Task's sibling {:?} failed", ev.failed_sibling)
            }
        }
        event::SIGNALING => {
            let sig = ev
                .details
                .as_ref()
                .and_then(|d| d.get("signal").cloned())
                .unwrap_or_else(|| ev.task_signal.clone());
            match (sig.is_empty(), ev.task_signal_reason.is_empty()) {
                (true, true) => "Task being sent a signal".into(),
                (true, false) => ev.task_signal_reason.clone(),
                (false, true) => format!("Task being sent signal {sig}"),
                (false, false) => {
                    format!("Task being sent signal {sig}: {}", ev.task_signal_reason)
                }
            }
        }
        event::RESTART_SIGNAL => or(&ev.restart_reason, "Task signaled to restart"),
        event::DRIVER_MESSAGE => ev.driver_message.clone(),
        event::LEADER_DEAD => "Leader Task in Group dead".into(),
        event::MAIN_DEAD => "Main tasks in the group died".into(),
        event::CLIENT_RECONNECTED => "Client reconnected".into(),
        event::FAILED_RESTORING => {
            "failed to restore task; will not run until server is contacted".into()
        }
        _ => ev.message.clone(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(mut ev: TaskEvent) -> TaskEvent {
        populate_display_message(&mut ev);
        ev
    }

    #[test]
    fn display_messages_match_nomad() {
        assert_eq!(
            shown(killing(Duration::from_secs(5))).display_message,
            "Sent interrupt. Waiting 5s before force killing"
        );
        let ev = shown(restarting(Duration::from_secs(15), REASON_WITHIN_POLICY));
        assert_eq!(ev.display_message, "Task restarting in 15s");
        assert_eq!(ev.details.as_ref().unwrap()["start_delay"], "15000000000");
        let ev = shown(restarting(
            Duration::from_secs(2),
            "Exceeded allowed attempts, applying a delay",
        ));
        assert_eq!(
            ev.display_message,
            "Exceeded allowed attempts, applying a delay - Task restarting in 2s"
        );
        let ev = shown(terminated(&ExitResult {
            exit_code: 1,
            signal: 9,
            ..Default::default()
        }));
        assert_eq!(ev.display_message, "Exit Code: 1, Signal: 9");
        assert_eq!(ev.details.as_ref().unwrap()["exit_code"], "1");
        assert_eq!(ev.details.as_ref().unwrap()["oom_killed"], "false");
        let ev = shown(building_task_dir());
        assert_eq!(ev.display_message, "Building Task Directory");
        assert_eq!(ev.message, "Building Task Directory");
        let ev = shown(not_restarting("Policy allows no restarts"));
        assert!(ev.fails_task);
        assert_eq!(ev.details.as_ref().unwrap()["fails_task"], "true");
        let ann = BTreeMap::from([("image".to_string(), "busybox:1".to_string())]);
        let ev = shown(driver_message("Downloading image busybox:1", &ann));
        assert_eq!(ev.r#type, "Driver");
        assert_eq!(ev.display_message, "Downloading image busybox:1");
        assert_eq!(ev.details.as_ref().unwrap()["image"], "busybox:1");
        assert_eq!(
            shown(sibling_failed("web")).display_message,
            "Task's sibling \"web\" failed"
        );
    }
}
