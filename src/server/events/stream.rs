//! One subscriber's stream: newline-delimited JSON frames `{"Index":…,"Events":[…]}` of
//! the events its filter passes, a `{}` heartbeat at the start and every interval, and an
//! error frame before the end when it was dropped.
//!
//! A pump task reads the broker, filters and encodes (so no writer ever does), and hands
//! frames to the response body through a small queue. A subscriber that does not read
//! fills the queue; the pump then drops it at once rather than wait, and lets go of the
//! broker's feed, so a stalled connection holds nothing but the frames already queued.
//! Before each write's frame the pump asks whether the subscriber's token still allows the
//! subscription (it may have expired, been deleted, or lost a policy), and ends it if not.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use super::broker::EventBroker;
use super::event::{EventBatch, EventJson, latest_per_object};
use super::subscription::Filter;

/// How often a subscriber gets a `{}` (Nomad's event stream heartbeat).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// Frames queued for a subscriber before it counts as not reading.
const FRAME_QUEUE: usize = 256;

const HEARTBEAT: &[u8] = b"{}\n";

/// Why a subscription ended early, as its last frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dropped {
    /// The subscriber did not read its frames.
    TooSlow,
    /// The subscriber fell further behind than the broker's buffer.
    Lagged,
    /// The subscriber's token no longer allows the subscription.
    Revoked,
}

impl Dropped {
    fn frame(self) -> Bytes {
        let message = match self {
            Dropped::TooSlow => {
                "subscription closed by server: the subscriber is not reading its events"
            }
            Dropped::Lagged => {
                "subscription closed by server: the subscriber fell behind the event buffer"
            }
            Dropped::Revoked => {
                "subscription closed by server: its ACL token no longer allows it, client should resubscribe"
            }
        };
        let mut out = serde_json::to_vec(&serde_json::json!({ "Error": message }))
            .unwrap_or_else(|_| b"{}".to_vec());
        out.push(b'\n');
        Bytes::from(out)
    }
}

/// Whether the subscriber's token still allows its subscription.
pub type StillAllowed = Box<dyn Fn(&Filter) -> bool + Send + Sync>;

/// Starts streaming `broker`'s events from `index` through `filter`; the returned stream
/// is the response body. The pump stops when the body is dropped (the client left).
pub fn subscribe(
    broker: &EventBroker,
    filter: Filter,
    index: u64,
    heartbeat: Duration,
    allowed: StillAllowed,
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static {
    let sub = broker.subscribe(index);
    let (tx, rx) = mpsc::channel(FRAME_QUEUE);
    let dropped = Arc::new(DropFlag::default());
    let pump = Pump {
        filter,
        allowed,
        tx,
        dropped: dropped.clone(),
    };
    tokio::spawn(pump.run(sub.backlog, sub.live));
    body(rx, dropped, heartbeat)
}

/// Why the pump stopped, for the body to say: 0 while it has not.
#[derive(Default)]
struct DropFlag(AtomicU8);

impl DropFlag {
    fn set(&self, why: Dropped) {
        self.0.store(why as u8 + 1, Ordering::Release);
    }

    fn get(&self) -> Option<Dropped> {
        match self.0.load(Ordering::Acquire) {
            1 => Some(Dropped::TooSlow),
            2 => Some(Dropped::Lagged),
            3 => Some(Dropped::Revoked),
            _ => None,
        }
    }
}

struct Pump {
    filter: Filter,
    allowed: StillAllowed,
    tx: mpsc::Sender<Bytes>,
    dropped: Arc<DropFlag>,
}

impl Pump {
    async fn run(
        self,
        backlog: Vec<Arc<EventBatch>>,
        mut live: broadcast::Receiver<Arc<EventBatch>>,
    ) {
        for batch in &backlog {
            if let Err(why) = self.offer(batch) {
                self.dropped.set(why);
                return;
            }
        }
        drop(backlog);
        loop {
            tokio::select! {
                got = live.recv() => match got {
                    Ok(batch) => {
                        if let Err(why) = self.offer(&batch) {
                            self.dropped.set(why);
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.dropped.set(Dropped::Lagged);
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = self.tx.closed() => return,
            }
        }
    }

    /// Queues the frame of `batch` for the subscriber.
    fn offer(&self, batch: &EventBatch) -> Result<(), Dropped> {
        if !(self.allowed)(&self.filter) {
            return Err(Dropped::Revoked);
        }
        let Some(frame) = frame(batch, &self.filter) else {
            return Ok(());
        };
        self.tx.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Dropped::TooSlow,
            // The body is gone: nobody to tell.
            mpsc::error::TrySendError::Closed(_) => Dropped::TooSlow,
        })
    }
}

/// The frame of `batch`'s events that `filter` passes; None when it passes none.
fn frame(batch: &EventBatch, filter: &Filter) -> Option<Bytes> {
    let passed = batch.events.iter().filter(|e| filter.matches(e)).collect();
    let events: Vec<EventJson<'_>> = latest_per_object(passed)
        .into_iter()
        .map(|event| EventJson {
            event,
            index: batch.index,
        })
        .collect();
    if events.is_empty() {
        return None;
    }
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Frame<'a> {
        index: u64,
        events: Vec<EventJson<'a>>,
    }
    let mut out = match serde_json::to_vec(&Frame {
        index: batch.index,
        events,
    }) {
        Ok(out) => out,
        Err(e) => {
            tracing::error!(error = %e, index = batch.index, "encoding an event frame");
            return None;
        }
    };
    out.push(b'\n');
    Some(Bytes::from(out))
}

struct Body {
    rx: mpsc::Receiver<Bytes>,
    dropped: Arc<DropFlag>,
    tick: tokio::time::Interval,
    greeted: bool,
    ended: bool,
}

fn body(
    rx: mpsc::Receiver<Bytes>,
    dropped: Arc<DropFlag>,
    heartbeat: Duration,
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = Body {
        rx,
        dropped,
        tick,
        greeted: false,
        ended: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.ended {
            return None;
        }
        if !st.greeted {
            // The subscriber learns at once that it is connected, as Nomad's first
            // heartbeat tells it.
            st.greeted = true;
            return Some((Ok(Bytes::from_static(HEARTBEAT)), st));
        }
        let next = tokio::select! {
            _ = st.tick.tick() => Bytes::from_static(HEARTBEAT),
            got = st.rx.recv() => match got {
                Some(frame) => frame,
                None => {
                    st.ended = true;
                    st.dropped.get()?.frame()
                }
            },
        };
        Some((Ok(next), st))
    })
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::acl::Acl;
    use crate::server::events::event::{Event, Object};
    use crate::structs::Job;

    fn batch(index: u64, id: &str) -> EventBatch {
        EventBatch {
            index,
            events: vec![Event::new(
                Object::Job(Arc::new(Job {
                    id: id.into(),
                    namespace: "default".into(),
                    ..Default::default()
                })),
                false,
                None,
            )],
        }
    }

    fn filter(topics: &[&str]) -> Filter {
        Filter::parse(topics.iter().copied())
            .unwrap()
            .authorize(&Acl::management(), "default", Vec::new())
            .unwrap()
    }

    fn text(b: Bytes) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn frames_follow_a_heartbeat_and_pass_the_filter() {
        let broker = EventBroker::new(10);
        broker.publish(batch(5, "api"));
        broker.publish(batch(6, "web"));
        let mut s = Box::pin(subscribe(
            &broker,
            filter(&["Job:web"]),
            0,
            Duration::from_secs(60),
            Box::new(|_| true),
        ));
        assert_eq!(text(s.next().await.unwrap().unwrap()), "{}\n");
        let first = text(s.next().await.unwrap().unwrap());
        let v: serde_json::Value = serde_json::from_str(first.trim_end()).unwrap();
        assert_eq!(v["Index"], 6);
        assert_eq!(v["Events"][0]["Key"], "web");
        broker.publish(batch(7, "web"));
        let live = text(s.next().await.unwrap().unwrap());
        assert!(live.starts_with("{\"Index\":7,"), "{live}");
    }

    #[tokio::test]
    async fn a_subscriber_that_does_not_read_is_dropped_with_an_error_frame() {
        let broker = EventBroker::new(FRAME_QUEUE * 4);
        let s = subscribe(
            &broker,
            filter(&[]),
            0,
            Duration::from_secs(60),
            Box::new(|_| true),
        );
        // Let the pump take its live feed before the burst.
        tokio::task::yield_now().await;
        for i in 1..=(FRAME_QUEUE as u64 + 10) {
            broker.publish(batch(i, "web"));
            tokio::task::yield_now().await;
        }
        let frames: Vec<String> = s.map(|f| text(f.unwrap())).collect().await;
        let last = frames.last().unwrap();
        assert!(last.contains("\"Error\""), "{last}");
        assert!(frames.len() <= FRAME_QUEUE + 2, "{}", frames.len());
        assert_eq!(broker.subscribers(), 0, "the pump let go of the feed");
    }

    #[tokio::test]
    async fn a_subscriber_whose_token_stops_allowing_it_is_dropped() {
        let broker = EventBroker::new(10);
        let allowed = Arc::new(AtomicBool::new(true));
        let check = allowed.clone();
        let mut s = Box::pin(subscribe(
            &broker,
            filter(&[]),
            0,
            Duration::from_secs(60),
            Box::new(move |_| check.load(Ordering::SeqCst)),
        ));
        assert_eq!(text(s.next().await.unwrap().unwrap()), "{}\n");
        tokio::task::yield_now().await;
        broker.publish(batch(1, "web"));
        assert!(text(s.next().await.unwrap().unwrap()).starts_with("{\"Index\":1"));
        allowed.store(false, Ordering::SeqCst);
        broker.publish(batch(2, "web"));
        let last = text(s.next().await.unwrap().unwrap());
        assert!(last.contains("no longer allows it"), "{last}");
        assert!(s.next().await.is_none());
    }
}
