//! The restart policy tracker: decides after each exit or start failure whether a task
//! restarts, after how long, and with which of Nomad's reason strings.

use std::time::{Duration, Instant};

use crate::structs::{
    JOB_TYPE_SERVICE, JOB_TYPE_SYSTEM, LIFECYCLE_POSTSTART, LIFECYCLE_POSTSTOP, LIFECYCLE_PRESTART,
    Lifecycle, RESTART_MODE_DELAY, RestartPolicy,
};
use yurt_drivers::ExitResult;

use super::super::util::go_duration;
use super::events::REASON_WITHIN_POLICY;

/// Reason when the policy has zero attempts.
pub const REASON_NO_RESTARTS_ALLOWED: &str = "Policy allows no restarts";
/// Reason when the start error cannot be retried.
pub const REASON_UNRECOVERABLE: &str = "Error was unrecoverable";
/// Reason when mode `delay` waits out the interval.
pub const REASON_DELAY: &str = "Exceeded allowed attempts, applying a delay";
/// Reason when a task that need not restart exited successfully.
pub const REASON_SUCCESS: &str = "Restart unnecessary as task terminated successfully";

/// The smallest interval Nomad accepts; shorter ones would make attempts meaningless.
const MIN_INTERVAL: Duration = Duration::from_secs(5);

/// What the task runner does next.
#[derive(Debug, Clone, PartialEq)]
pub enum RestartDecision {
    /// Start again after `delay` (`Restarting` event).
    Restart {
        /// How long to wait before starting.
        delay: Duration,
        /// `restart_reason` of the event.
        reason: String,
    },
    /// Give up and fail the task (`Not Restarting` event).
    NotRestart {
        /// `restart_reason` of the event.
        reason: String,
    },
    /// Done without failing (no event).
    Terminated {
        /// Why, for logs.
        reason: String,
    },
    /// The task was killed on purpose (`Killed` event).
    Killed,
}

/// Per-task restart bookkeeping; in memory only, like Nomad's.
#[derive(Debug)]
pub struct RestartTracker {
    attempts: i64,
    interval: Duration,
    delay: Duration,
    mode_fail: bool,
    on_success: bool,
    count: i64,
    start_time: Instant,
    exit: Option<ExitResult>,
    start_error: Option<bool>,
    killed: bool,
    restart_triggered: bool,
}

impl RestartTracker {
    /// A tracker for a task of a `job_type` job with `lifecycle`, under `policy`.
    pub fn new(policy: &RestartPolicy, job_type: &str, lifecycle: Option<&Lifecycle>) -> Self {
        let mut on_success = matches!(job_type, JOB_TYPE_SERVICE | JOB_TYPE_SYSTEM);
        if let Some(lc) = lifecycle {
            match lc.hook.as_str() {
                LIFECYCLE_PRESTART | LIFECYCLE_POSTSTART => on_success = lc.sidecar,
                LIFECYCLE_POSTSTOP => on_success = false,
                _ => {}
            }
        }
        let nanos = |n: i64| Duration::from_nanos(u64::try_from(n).unwrap_or(0));
        RestartTracker {
            attempts: policy.attempts,
            interval: nanos(policy.interval).max(MIN_INTERVAL),
            delay: nanos(policy.delay),
            mode_fail: policy.mode != RESTART_MODE_DELAY,
            on_success,
            count: 0,
            start_time: Instant::now(),
            exit: None,
            start_error: None,
            killed: false,
            restart_triggered: false,
        }
    }

    /// Records how the task exited.
    pub fn set_exit_result(&mut self, res: ExitResult) {
        self.exit = Some(res);
    }

    /// Records a failed start and whether retrying could help.
    pub fn set_start_error(&mut self, recoverable: bool) {
        self.start_error = Some(recoverable);
    }

    /// The task is being killed on purpose; it must not restart.
    pub fn set_killed(&mut self) {
        self.killed = true;
    }

    /// A user or template asked for a restart; it does not use up an attempt.
    pub fn set_restart_triggered(&mut self) {
        self.restart_triggered = true;
    }

    /// Decides what follows the last exit or start error, then forgets it.
    pub fn decide(&mut self) -> RestartDecision {
        let decision = self.decide_at(Instant::now());
        self.exit = None;
        self.start_error = None;
        self.killed = false;
        self.restart_triggered = false;
        decision
    }

    fn decide_at(&mut self, now: Instant) -> RestartDecision {
        if self.killed {
            return RestartDecision::Killed;
        }
        if self.restart_triggered {
            return RestartDecision::Restart {
                delay: Duration::ZERO,
                reason: String::new(),
            };
        }
        let succeeded = self.exit.as_ref().is_some_and(ExitResult::successful);
        if self.attempts == 0 {
            if !self.on_success && succeeded {
                return RestartDecision::Terminated {
                    reason: REASON_NO_RESTARTS_ALLOWED.into(),
                };
            }
            return RestartDecision::NotRestart {
                reason: REASON_NO_RESTARTS_ALLOWED.into(),
            };
        }
        let end = self.start_time + self.interval;
        if now > end {
            self.count = 0;
            self.start_time = now;
        }
        self.count += 1;

        match self.start_error {
            Some(false) => {
                return RestartDecision::NotRestart {
                    reason: REASON_UNRECOVERABLE.into(),
                };
            }
            Some(true) => {}
            None => {
                if succeeded && !self.on_success {
                    return RestartDecision::Terminated {
                        reason: REASON_SUCCESS.into(),
                    };
                }
            }
        }

        if self.count > self.attempts {
            if self.mode_fail {
                return RestartDecision::NotRestart {
                    reason: format!(
                        "Exceeded allowed attempts {} in interval {} and mode is \"fail\"",
                        self.attempts,
                        go_duration(self.interval)
                    ),
                };
            }
            let end = self.start_time + self.interval;
            return RestartDecision::Restart {
                delay: end.saturating_duration_since(now),
                reason: REASON_DELAY.into(),
            };
        }
        RestartDecision::Restart {
            delay: self.jittered_delay(),
            reason: REASON_WITHIN_POLICY.into(),
        }
    }

    /// `Delay` plus up to 25 % of it, so the delay lies in [Delay, 1.25·Delay).
    fn jittered_delay(&self) -> Duration {
        let d = self.delay.as_nanos() as u64;
        if d == 0 {
            return Duration::ZERO;
        }
        let u = rand::random_range(0..d);
        Duration::from_nanos(d + (u as f64 * 0.25) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::{JOB_TYPE_BATCH, RESTART_MODE_FAIL};

    const S: i64 = 1_000_000_000;

    fn policy(attempts: i64, interval_s: i64, delay_ms: i64, mode: &str) -> RestartPolicy {
        RestartPolicy {
            attempts,
            interval: interval_s * S,
            delay: delay_ms * 1_000_000,
            mode: mode.into(),
            render_templates: false,
        }
    }

    fn failed() -> ExitResult {
        ExitResult {
            exit_code: 1,
            ..Default::default()
        }
    }

    #[test]
    fn attempts_then_fail_mode_reason() {
        let mut t = RestartTracker::new(
            &policy(2, 1800, 1000, RESTART_MODE_FAIL),
            JOB_TYPE_SERVICE,
            None,
        );
        for _ in 0..2 {
            t.set_exit_result(failed());
            match t.decide() {
                RestartDecision::Restart { delay, reason } => {
                    assert_eq!(reason, REASON_WITHIN_POLICY);
                    assert!(delay >= Duration::from_secs(1));
                    assert!(delay < Duration::from_millis(1250));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        t.set_exit_result(failed());
        assert_eq!(
            t.decide(),
            RestartDecision::NotRestart {
                reason: "Exceeded allowed attempts 2 in interval 30m0s and mode is \"fail\"".into()
            }
        );
    }

    #[test]
    fn delay_mode_waits_out_the_interval() {
        let mut t = RestartTracker::new(
            &policy(1, 60, 10, RESTART_MODE_DELAY),
            JOB_TYPE_SERVICE,
            None,
        );
        let start = t.start_time;
        t.set_exit_result(failed());
        assert!(matches!(
            t.decide_at(start),
            RestartDecision::Restart { .. }
        ));
        t.set_exit_result(failed());
        match t.decide_at(start + Duration::from_secs(20)) {
            RestartDecision::Restart { delay, reason } => {
                assert_eq!(reason, REASON_DELAY);
                assert_eq!(delay, Duration::from_secs(40));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn interval_resets_the_count() {
        let mut t =
            RestartTracker::new(&policy(1, 10, 0, RESTART_MODE_FAIL), JOB_TYPE_SERVICE, None);
        let start = t.start_time;
        t.set_exit_result(failed());
        assert!(matches!(
            t.decide_at(start),
            RestartDecision::Restart { .. }
        ));
        t.set_exit_result(failed());
        assert!(matches!(
            t.decide_at(start + Duration::from_secs(11)),
            RestartDecision::Restart { .. }
        ));
    }

    #[test]
    fn batch_success_is_not_restarted_but_service_is() {
        let p = policy(3, 60, 10, RESTART_MODE_FAIL);
        let mut batch = RestartTracker::new(&p, JOB_TYPE_BATCH, None);
        batch.set_exit_result(ExitResult::default());
        assert_eq!(
            batch.decide(),
            RestartDecision::Terminated {
                reason: REASON_SUCCESS.into()
            }
        );
        let mut service = RestartTracker::new(&p, JOB_TYPE_SERVICE, None);
        service.set_exit_result(ExitResult::default());
        assert!(matches!(service.decide(), RestartDecision::Restart { .. }));
        // A prestart non-sidecar task of a service job behaves like batch.
        let lc = Lifecycle {
            hook: LIFECYCLE_PRESTART.into(),
            sidecar: false,
        };
        let mut pre = RestartTracker::new(&p, JOB_TYPE_SERVICE, Some(&lc));
        pre.set_exit_result(ExitResult::default());
        assert!(matches!(pre.decide(), RestartDecision::Terminated { .. }));
    }

    #[test]
    fn zero_attempts_and_special_cases() {
        let p = policy(0, 60, 10, RESTART_MODE_FAIL);
        let mut t = RestartTracker::new(&p, JOB_TYPE_BATCH, None);
        t.set_exit_result(failed());
        assert_eq!(
            t.decide(),
            RestartDecision::NotRestart {
                reason: REASON_NO_RESTARTS_ALLOWED.into()
            }
        );
        t.set_exit_result(ExitResult::default());
        assert!(matches!(t.decide(), RestartDecision::Terminated { .. }));

        let mut t = RestartTracker::new(&policy(3, 60, 10, "fail"), JOB_TYPE_BATCH, None);
        t.set_start_error(false);
        assert_eq!(
            t.decide(),
            RestartDecision::NotRestart {
                reason: REASON_UNRECOVERABLE.into()
            }
        );
        t.set_start_error(true);
        assert!(matches!(t.decide(), RestartDecision::Restart { .. }));
        t.set_killed();
        assert_eq!(t.decide(), RestartDecision::Killed);
        t.set_restart_triggered();
        assert_eq!(
            t.decide(),
            RestartDecision::Restart {
                delay: Duration::ZERO,
                reason: String::new()
            }
        );
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        let t = RestartTracker::new(&policy(2, 60, 100, "fail"), JOB_TYPE_SERVICE, None);
        for _ in 0..200 {
            let d = t.jittered_delay();
            assert!(d >= Duration::from_millis(100) && d < Duration::from_millis(125));
        }
    }
}
