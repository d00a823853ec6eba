//! Reschedule policy arithmetic: is a failed allocation eligible for a replacement, when,
//! and what reschedule history does the replacement carry?

use crate::structs::time::is_zero;
use crate::structs::{Allocation, RescheduleEvent, ReschedulePolicy, RescheduleTracker};

/// Delay functions of a reschedule policy.
pub const DELAY_CONSTANT: &str = "constant";
/// Each delay doubles the previous one.
pub const DELAY_EXPONENTIAL: &str = "exponential";
/// Each delay is the sum of the previous two.
pub const DELAY_FIBONACCI: &str = "fibonacci";

/// Reschedules due within this window of now happen now (absorbs clock skew).
pub const RESCHEDULE_WINDOW_NS: i64 = 1_000_000_000;
/// Unlimited policies keep only this many past events in a replacement's tracker.
pub const MAX_PAST_EVENTS: usize = 5;

fn events(alloc: &Allocation) -> &[RescheduleEvent] {
    alloc
        .reschedule_tracker
        .as_ref()
        .and_then(|t| t.events.as_deref())
        .unwrap_or(&[])
}

/// When the allocation failed: the latest task finish time, else its last modification.
pub fn fail_time(alloc: &Allocation) -> i64 {
    alloc
        .task_states
        .iter()
        .flat_map(|m| m.values())
        .filter(|s| !is_zero(&s.finished_at))
        .filter_map(|s| s.finished_at.timestamp_nanos_opt())
        .max()
        .unwrap_or(alloc.modify_time)
}

/// The delay before the next replacement: the base delay, grown by the delay function
/// from the previous reschedule delays and capped by `MaxDelay`. Once capped, the series
/// restarts from the base delay if the allocation ran longer than the cap since its last
/// reschedule (it was healthy for a while).
pub fn next_delay(alloc: &Allocation, policy: &ReschedulePolicy) -> i64 {
    let evs = events(alloc);
    let Some(last) = evs.last() else {
        return policy.delay;
    };
    let mut delay = match policy.delay_function.as_str() {
        DELAY_EXPONENTIAL => last.delay.saturating_mul(2),
        DELAY_FIBONACCI if evs.len() >= 2 => {
            let prev = evs[evs.len() - 2].delay;
            // A series that was reset after hitting the cap starts over.
            if prev == policy.max_delay && last.delay == policy.delay {
                last.delay
            } else {
                last.delay.saturating_add(prev)
            }
        }
        DELAY_FIBONACCI => policy.delay,
        _ => return policy.delay,
    };
    if policy.max_delay > 0 && delay > policy.max_delay {
        delay = policy.max_delay;
        if fail_time(alloc) - last.reschedule_time > delay {
            delay = policy.delay;
        }
    }
    delay
}

/// True when the policy allows another attempt for an allocation that failed at `failed_at`:
/// unlimited, or fewer than `Attempts` reschedules within the trailing `Interval`.
pub fn eligible(alloc: &Allocation, policy: &ReschedulePolicy, failed_at: i64) -> bool {
    if policy.unlimited {
        return true;
    }
    if policy.attempts <= 0 {
        return false;
    }
    let recent = events(alloc)
        .iter()
        .filter(|e| failed_at - e.reschedule_time < policy.interval)
        .count();
    (recent as i64) < policy.attempts
}

/// When the failed allocation may be replaced, or `None` when the policy forbids it.
pub fn next_reschedule_time(alloc: &Allocation, policy: &ReschedulePolicy) -> Option<i64> {
    let failed_at = fail_time(alloc);
    eligible(alloc, policy, failed_at).then(|| failed_at + next_delay(alloc, policy))
}

/// The tracker of a replacement for `prev`: the relevant past events plus this reschedule.
pub fn replacement_tracker(
    prev: &Allocation,
    policy: Option<&ReschedulePolicy>,
    now: i64,
) -> RescheduleTracker {
    let past = events(prev);
    let mut kept: Vec<RescheduleEvent> = match policy {
        Some(p) if !p.unlimited => past
            .iter()
            .filter(|e| now - e.reschedule_time < p.interval)
            .cloned()
            .collect(),
        _ => past[past.len().saturating_sub(MAX_PAST_EVENTS)..].to_vec(),
    };
    kept.push(RescheduleEvent {
        reschedule_time: now,
        prev_alloc_id: prev.id.clone(),
        prev_node_id: prev.node_id.to_string(),
        delay: policy.map_or(0, |p| next_delay(prev, p)),
    });
    RescheduleTracker { events: Some(kept) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn policy(func: &str, attempts: i64, unlimited: bool) -> ReschedulePolicy {
        ReschedulePolicy {
            attempts,
            interval: 3600 * S,
            delay: 5 * S,
            delay_function: func.into(),
            max_delay: 60 * S,
            unlimited,
        }
    }

    fn failed(at: i64, delays: &[i64]) -> Allocation {
        Allocation {
            id: "a".into(),
            node_id: "n".into(),
            modify_time: at,
            client_status: crate::structs::AllocClientStatus::Failed,
            reschedule_tracker: Some(RescheduleTracker {
                events: Some(
                    delays
                        .iter()
                        .enumerate()
                        .map(|(i, d)| RescheduleEvent {
                            reschedule_time: at - (delays.len() - i) as i64 * S,
                            delay: *d,
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn delay_functions() {
        let now = 1_000_000 * S;
        assert_eq!(
            next_delay(&failed(now, &[]), &policy(DELAY_CONSTANT, 3, false)),
            5 * S
        );
        assert_eq!(
            next_delay(&failed(now, &[5 * S]), &policy(DELAY_CONSTANT, 3, false)),
            5 * S
        );
        let exp = policy(DELAY_EXPONENTIAL, 0, true);
        assert_eq!(next_delay(&failed(now, &[5 * S, 10 * S]), &exp), 20 * S);
        // Capped at MaxDelay.
        assert_eq!(next_delay(&failed(now, &[40 * S]), &exp), 60 * S);
        let fib = policy(DELAY_FIBONACCI, 0, true);
        assert_eq!(next_delay(&failed(now, &[5 * S]), &fib), 5 * S);
        assert_eq!(
            next_delay(&failed(now, &[5 * S, 5 * S, 10 * S]), &fib),
            15 * S
        );
    }

    #[test]
    fn capped_delay_resets_after_a_long_healthy_run() {
        let exp = policy(DELAY_EXPONENTIAL, 0, true);
        let mut a = failed(0, &[40 * S]);
        if let Some(e) = a
            .reschedule_tracker
            .as_mut()
            .and_then(|t| t.events.as_mut())
        {
            e[0].reschedule_time = 0;
        }
        a.modify_time = 3600 * S;
        assert_eq!(next_delay(&a, &exp), 5 * S);
    }

    #[test]
    fn attempts_within_interval() {
        let now = 1_000_000 * S;
        let p = policy(DELAY_CONSTANT, 2, false);
        assert!(eligible(&failed(now, &[]), &p, now));
        assert!(eligible(&failed(now, &[5 * S]), &p, now));
        assert!(!eligible(&failed(now, &[5 * S, 5 * S]), &p, now));
        // Events older than the interval do not count.
        let mut old = failed(now, &[5 * S, 5 * S]);
        if let Some(e) = old
            .reschedule_tracker
            .as_mut()
            .and_then(|t| t.events.as_mut())
        {
            e[0].reschedule_time = now - 7200 * S;
        }
        assert!(eligible(&old, &p, now));
        assert!(eligible(
            &failed(now, &[1; 50]),
            &policy(DELAY_CONSTANT, 0, true),
            now
        ));
        assert!(!eligible(
            &failed(now, &[]),
            &policy(DELAY_CONSTANT, 0, false),
            now
        ));
        assert_eq!(
            next_reschedule_time(&failed(now, &[]), &p),
            Some(now + 5 * S)
        );
    }

    #[test]
    fn tracker_carries_history_and_new_event() {
        let now = 1_000_000 * S;
        let prev = failed(now, &[5 * S]);
        let t = replacement_tracker(&prev, Some(&policy(DELAY_EXPONENTIAL, 5, false)), now);
        let ev = t.events.unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1].prev_alloc_id, "a");
        assert_eq!(ev[1].prev_node_id, "n");
        assert_eq!(ev[1].reschedule_time, now);
        assert_eq!(ev[1].delay, 10 * S);
        let many = failed(now, &[1; 9]);
        let t = replacement_tracker(&many, Some(&policy(DELAY_CONSTANT, 0, true)), now);
        assert_eq!(t.events.unwrap().len(), MAX_PAST_EVENTS + 1);
    }
}
