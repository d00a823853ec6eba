//! The event broker: the last `event_buffer_size` writes' events, for subscribers that
//! resume from an index, and a live feed for the ones already streaming. Publishing never
//! waits for a subscriber: the live feed is a bounded broadcast, and a subscriber that
//! falls further behind than it holds learns so on its next read.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::event::EventBatch;

/// Nomad's default `event_buffer_size`.
pub const DEFAULT_EVENT_BUFFER_SIZE: usize = 100;

pub struct EventBroker {
    /// The buffered writes, oldest first. Publishing and subscribing both hold it, so a
    /// new subscriber's backlog and its live feed neither overlap nor leave a gap.
    buffer: Mutex<VecDeque<Arc<EventBatch>>>,
    live: broadcast::Sender<Arc<EventBatch>>,
    size: usize,
}

/// A new subscriber's start: the buffered writes it asked for, then the live feed.
pub struct Subscription {
    pub backlog: Vec<Arc<EventBatch>>,
    pub live: broadcast::Receiver<Arc<EventBatch>>,
}

impl EventBroker {
    /// A broker keeping the events of the last `size` writes (at least one).
    pub fn new(size: usize) -> Self {
        let size = size.max(1);
        let (live, _) = broadcast::channel(size);
        EventBroker {
            buffer: Mutex::new(VecDeque::with_capacity(size)),
            live,
            size,
        }
    }

    /// Publishes the events of one write. Called in index order, once the write is
    /// visible to readers.
    pub fn publish(&self, batch: EventBatch) {
        if batch.events.is_empty() {
            return;
        }
        let batch = Arc::new(batch);
        let mut buffer = self.lock();
        if buffer.len() == self.size {
            buffer.pop_front();
        }
        buffer.push_back(batch.clone());
        // No receivers is not an error: nobody is streaming.
        let _ = self.live.send(batch);
    }

    /// Subscribes from `index`: the buffered writes at or after it (all of them for 0, as
    /// Nomad starts an index-0 subscriber at the head of its buffer), then what follows.
    pub fn subscribe(&self, index: u64) -> Subscription {
        let buffer = self.lock();
        let backlog = buffer
            .iter()
            .filter(|b| b.index >= index)
            .cloned()
            .collect();
        Subscription {
            backlog,
            live: self.live.subscribe(),
        }
    }

    /// How many subscribers are streaming.
    pub fn subscribers(&self) -> usize {
        self.live.receiver_count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<EventBatch>>> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::events::event::{Event, Object};
    use crate::structs::Job;

    fn batch(index: u64) -> EventBatch {
        EventBatch {
            index,
            events: vec![Event::new(
                Object::Job(Arc::new(Job::default())),
                false,
                None,
            )],
        }
    }

    #[test]
    fn the_buffer_keeps_the_last_writes_and_resumes_at_an_index() {
        let b = EventBroker::new(3);
        for i in 1..=5 {
            b.publish(batch(i));
        }
        b.publish(EventBatch {
            index: 6,
            events: Vec::new(),
        });
        let all: Vec<u64> = b.subscribe(0).backlog.iter().map(|b| b.index).collect();
        assert_eq!(all, vec![3, 4, 5]);
        let from: Vec<u64> = b.subscribe(4).backlog.iter().map(|b| b.index).collect();
        assert_eq!(from, vec![4, 5]);
        assert!(b.subscribe(9).backlog.is_empty());
    }

    #[tokio::test]
    async fn a_live_subscriber_gets_what_follows_its_backlog() {
        let b = EventBroker::new(10);
        b.publish(batch(1));
        let mut sub = b.subscribe(0);
        assert_eq!(sub.backlog.len(), 1);
        b.publish(batch(2));
        assert_eq!(sub.live.recv().await.unwrap().index, 2);
        assert_eq!(b.subscribers(), 1);
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_the_buffer_is_told_so() {
        let b = EventBroker::new(2);
        let mut sub = b.subscribe(0);
        for i in 1..=5 {
            b.publish(batch(i));
        }
        assert!(matches!(
            sub.live.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
    }
}
