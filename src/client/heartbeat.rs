//! Heartbeats: tells the servers the node is alive well within the TTL they return, and
//! re-registers when a server no longer knows the node.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::rpc::{NodeStatusRequest, RpcError, ServerApi};
use crate::structs::NodeStatus;

use super::node_state::NodeState;
use super::util::{Backoff, jitter};

/// The shortest gap between heartbeats, whatever the TTL says.
const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// The wait before the next heartbeat: about half the TTL, jittered so nodes spread out.
pub fn interval(ttl: Duration) -> Duration {
    jitter(ttl / 2, 0.2).max(MIN_INTERVAL)
}

/// The floor of a retry after a failed heartbeat: however short the TTL, a node whose
/// servers are away asks at most about once a second.
const MIN_RETRY: Duration = Duration::from_secs(1);
/// The ceiling of a retry once the node is long overdue.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// The wait before retrying a failed heartbeat, given how long ago one last succeeded and the
/// TTL it brought. While the TTL still runs, a random point in what is left of it (so a fleet
/// spreads out, and still gets in before it expires); once overdue, one to two seconds; once
/// more than 30 s overdue, a random point in the time overdue, clamped to 1–30 s: a long
/// outage slows every node down rather than have them all hammer a returning server.
pub fn retry_interval(since_ok: Duration, ttl: Duration) -> Duration {
    let about_a_second = || jitter(MIN_RETRY, 1.0);
    let left = if since_ok <= ttl {
        ttl - since_ok
    } else {
        let overdue = since_ok - ttl;
        if overdue <= MAX_RETRY {
            return about_a_second();
        }
        overdue
    };
    let stagger = left.mul_f64(rand::random_range(0.0..1.0));
    if stagger < MIN_RETRY {
        about_a_second()
    } else if stagger > MAX_RETRY {
        MAX_RETRY - Duration::from_secs(5) + Duration::from_secs_f64(rand::random_range(0.0..5.0))
    } else {
        stagger
    }
}

/// Heartbeats until `shutdown` flips.
pub async fn run(
    server: Arc<dyn ServerApi>,
    node: NodeState,
    backoff: (Duration, Duration),
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(backoff.0, backoff.1);
    // The first heartbeat goes out as soon as the node is registered: it is what moves the
    // node from `initializing` to `ready`, and nothing is placed before that.
    let mut delay = Some(Duration::ZERO);
    // Until one heartbeat got through, a failure is treated like a failed registration.
    let mut last_ok: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = node.wait_registered() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let wait = delay.take().unwrap_or_else(|| interval(node.ttl()));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if !node.is_registered() {
            continue;
        }
        let (node_id, secret_id) = node.identity();
        let req = NodeStatusRequest {
            node_id,
            secret_id,
            status: NodeStatus::Ready.to_string(),
        };
        match server.update_status(req).await {
            Ok(resp) => {
                backoff.reset();
                last_ok = Some(Instant::now());
                node.heartbeat_ok();
                if let Some(ttl) = u64::try_from(resp.heartbeat_ttl)
                    .ok()
                    .filter(|n| *n > 0)
                    .map(Duration::from_nanos)
                {
                    node.set_registered(ttl);
                }
            }
            Err(RpcError::NodeNotFound) => {
                tracing::warn!("server does not know this node; re-registering");
                node.request_register(true);
                delay = Some(Duration::ZERO);
            }
            Err(e) => {
                node.heartbeat_failed();
                let d = match last_ok {
                    Some(at) => retry_interval(at.elapsed(), node.ttl()),
                    None => backoff.next_delay(),
                };
                tracing::warn!(error = %e, retry_in = ?d, "heartbeat failed");
                delay = Some(d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn retries_fall_in_the_time_left_and_never_under_a_second() {
        for _ in 0..200 {
            // 10 s left of the TTL: somewhere in it, at least a second.
            let d = retry_interval(secs(5.0), secs(15.0));
            assert!(d >= secs(1.0) && d <= secs(10.0), "{d:?}");
            // A tiny TTL (tests) still never retries faster than once a second.
            let d = retry_interval(secs(0.1), secs(0.5));
            assert!(d >= secs(1.0) && d < secs(2.0), "{d:?}");
            // Just overdue: one to two seconds.
            let d = retry_interval(secs(20.0), secs(10.0));
            assert!(d >= secs(1.0) && d < secs(2.0), "{d:?}");
            // Long overdue: spread over up to 30 s.
            let d = retry_interval(secs(600.0), secs(10.0));
            assert!(d >= secs(1.0) && d <= secs(30.0), "{d:?}");
        }
    }

    #[test]
    fn retries_are_jittered() {
        let seen: std::collections::BTreeSet<u128> = (0..50)
            .map(|_| retry_interval(secs(20.0), secs(10.0)).as_micros())
            .collect();
        assert!(seen.len() > 1, "50 retries all waited the same: {seen:?}");
        let long: std::collections::BTreeSet<u128> = (0..50)
            .map(|_| retry_interval(secs(600.0), secs(10.0)).as_micros())
            .collect();
        assert!(long.len() > 1);
    }
}
