//! Small helpers shared by the client loops: Go-style duration strings and jittered backoff.

use std::time::Duration;

pub use crate::structs::time::format_go_duration as go_duration;

/// Adds up to `fraction` of `d` at random, so many agents retrying do not march in step.
pub fn jitter(d: Duration, fraction: f64) -> Duration {
    let max = d.as_secs_f64() * fraction;
    if max <= 0.0 {
        return d;
    }
    d + Duration::from_secs_f64(rand::random_range(0.0..max))
}

/// Exponential backoff between `min` and `max`, doubling per failure, with 25 % jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// A backoff starting at `min` and never exceeding `max` (before jitter).
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            current: min,
        }
    }

    /// The next wait; each call doubles the base until it reaches the cap.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(self.max);
        jitter(d, 0.25)
    }

    /// Back to the shortest wait after a success.
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_secs(5)), "5s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(30 * 60)), "30m0s");
        assert_eq!(go_duration(Duration::from_secs(24 * 3600)), "24h0m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go_duration(Duration::from_nanos(1500)), "1.5µs");
        assert_eq!(go_duration(Duration::from_nanos(15)), "15ns");
        assert_eq!(
            go_duration(Duration::from_nanos(16_123_456_789)),
            "16.123456789s"
        );
    }

    #[test]
    fn backoff_grows_and_caps() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(4));
        let d1 = b.next_delay();
        assert!(d1 >= Duration::from_secs(1) && d1 < Duration::from_millis(1250));
        let d2 = b.next_delay();
        assert!(d2 >= Duration::from_secs(2) && d2 < Duration::from_millis(2500));
        b.next_delay();
        let d4 = b.next_delay();
        assert!(d4 >= Duration::from_secs(4) && d4 < Duration::from_secs(5));
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(1250));
    }
}
