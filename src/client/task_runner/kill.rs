//! The kill sequence: shutdown delay, kill signal, SIGKILL after the kill timeout (done by
//! the driver), retries when the driver fails, and the wait for the exit.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::structs::TaskStateName;
use yurt_drivers::{DriverError, ExitResult};

use super::{KillOpts, TaskRunner, events, exit_result};

/// Stop attempts before giving up (Nomad retries with a growing backoff too).
const STOP_ATTEMPTS: u32 = 3;
/// First wait between failed stop attempts; multiplied by 4 each time.
const STOP_RETRY_BASE: Duration = Duration::from_secs(5);

impl TaskRunner {
    /// Kills the running task on behalf of the alloc runner; the restart tracker is told so
    /// that the exit is reported as `Killed` rather than restarted.
    pub(super) async fn handle_kill<F>(
        &mut self,
        task_id: &str,
        mut wait: Pin<&mut F>,
        opts: KillOpts,
    ) -> ExitResult
    where
        F: Future<Output = Result<ExitResult, DriverError>>,
    {
        let delay = Duration::from_nanos(u64::try_from(self.cfg.task.shutdown_delay).unwrap_or(0));
        if !delay.is_zero() {
            if opts.no_shutdown_delay {
                self.shared.emit(events::skipping_shutdown_delay(delay));
            } else {
                self.shared.update(
                    TaskStateName::Pending,
                    Some(events::waiting_shutdown_delay(delay)),
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    res = &mut wait => {
                        self.tracker.set_killed();
                        return exit_result(res);
                    }
                }
            }
        }
        self.tracker.set_killed();
        self.stop_and_wait(task_id, wait).await
    }

    /// Stops the task for a user-requested restart.
    pub(super) async fn stop_for_restart<F>(
        &mut self,
        task_id: &str,
        wait: Pin<&mut F>,
    ) -> ExitResult
    where
        F: Future<Output = Result<ExitResult, DriverError>>,
    {
        self.stop_and_wait(task_id, wait).await
    }

    async fn stop_and_wait<F>(&mut self, task_id: &str, mut wait: Pin<&mut F>) -> ExitResult
    where
        F: Future<Output = Result<ExitResult, DriverError>>,
    {
        let timeout = self.kill_timeout();
        let signal = self.kill_signal().to_string();
        let mut last_err = None;
        for attempt in 0..STOP_ATTEMPTS {
            let stop = self.cfg.driver.stop_task(task_id, timeout, &signal);
            tokio::select! {
                // The task may exit while the driver is still stopping it.
                res = &mut wait => return exit_result(res),
                r = stop => match r {
                    Ok(()) | Err(DriverError::TaskNotFound(_)) | Err(DriverError::TaskNotRunning) => {
                        last_err = None;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(task_id, attempt, error = %e, "stopping task failed");
                        last_err = Some(e.to_string());
                    }
                }
            }
            if attempt + 1 < STOP_ATTEMPTS {
                let backoff = STOP_RETRY_BASE * 4u32.pow(attempt);
                tokio::select! {
                    res = &mut wait => return exit_result(res),
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
        if let Some(err) = last_err {
            // Resources may leak; force the driver to release what it can and say so.
            if let Err(e) = self.cfg.driver.destroy_task(task_id, true).await {
                tracing::error!(task_id, error = %e, "forced destroy after failed stops also failed; the task's resources may leak");
            }
            self.kill_error = Some(err);
            return match tokio::time::timeout(timeout + Duration::from_secs(5), wait).await {
                Ok(res) => exit_result(res),
                Err(_) => ExitResult {
                    err: Some("task did not exit after being killed".into()),
                    ..Default::default()
                },
            };
        }
        exit_result(wait.await)
    }
}
