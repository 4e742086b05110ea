//! The counters every task of a fan-out run shares: what each topic has had published, what
//! each subscription has received, and the flow-control window that keeps publishers from
//! running further ahead of the slowest subscriber than the server's queues hold.
//!
//! Each counter has one writer (a publisher per topic slot, a subscriber per subscription), so
//! writers use plain load/store and readers tolerate a slightly stale value.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::topic::Layout;

/// Shared counters of one run.
pub struct Board {
    /// Per topic: messages queued by its publishers (the window compares against this).
    topic_sent: Vec<AtomicU64>,
    /// Per subscription (subscriber × its local topic): messages received. `u64::MAX` once the
    /// subscriber is gone, so a closed subscriber never holds a window shut.
    received: Vec<AtomicU64>,
    /// Per subscriber: messages received over all its topics, for the progress line.
    delivered: Vec<AtomicU64>,
    /// Per topic: indices into `received` of its subscriptions.
    subscriptions: Vec<Vec<u32>>,
    /// Subscribers still connected.
    alive: AtomicUsize,
    per_subscriber: usize,
}

impl Board {
    pub fn new(layout: &Layout) -> Self {
        let mut subscriptions = vec![Vec::new(); layout.topics];
        for sub in 0..layout.subscribers {
            for (j, topic) in layout.subscriber_topics(sub).enumerate() {
                subscriptions[topic].push((sub * layout.per_subscriber + j) as u32);
            }
        }
        let counters = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect();
        Self {
            topic_sent: counters(layout.topics),
            received: counters(layout.subscribers * layout.per_subscriber),
            delivered: counters(layout.subscribers),
            subscriptions,
            alive: AtomicUsize::new(layout.subscribers),
            per_subscriber: layout.per_subscriber,
        }
    }

    /// Subscriptions of `topic`.
    pub fn subscriber_count(&self, topic: usize) -> usize {
        self.subscriptions[topic].len()
    }

    /// A publisher queued one more message on `topic`.
    pub fn sent(&self, topic: usize) {
        self.topic_sent[topic].fetch_add(1, Relaxed);
    }

    pub fn topic_sent(&self, topic: usize) -> u64 {
        self.topic_sent[topic].load(Relaxed)
    }

    /// Subscriber `sub` received one message of its local topic `j`.
    pub fn received(&self, sub: usize, j: usize) {
        let r = &self.received[sub * self.per_subscriber + j];
        r.store(r.load(Relaxed).saturating_add(1), Relaxed);
        let d = &self.delivered[sub];
        d.store(d.load(Relaxed) + 1, Relaxed);
    }

    /// Subscriber `sub` is gone: it no longer holds back any window.
    pub fn gone(&self, sub: usize) {
        let first = sub * self.per_subscriber;
        for r in &self.received[first..first + self.per_subscriber] {
            r.store(u64::MAX, Relaxed);
        }
        self.alive.fetch_sub(1, Relaxed);
    }

    pub fn alive(&self) -> usize {
        self.alive.load(Relaxed)
    }

    /// Whether one more message may be published on `topic` with at most `window` in flight.
    /// `floor` caches the slowest subscription's count between calls, so the subscriptions
    /// are scanned only when the cached value says the window may be full.
    pub fn window_open(&self, topic: usize, floor: &mut u64, window: u64) -> bool {
        let sent = self.topic_sent(topic);
        if sent.saturating_sub(*floor) < window {
            return true;
        }
        *floor = self.subscriptions[topic]
            .iter()
            .map(|&i| self.received[i as usize].load(Relaxed))
            .min()
            .unwrap_or(u64::MAX);
        sent.saturating_sub(*floor) < window
    }

    /// Whether every live subscription has received everything published on its topic.
    pub fn caught_up(&self) -> bool {
        self.subscriptions.iter().enumerate().all(|(topic, subs)| {
            let sent = self.topic_sent(topic);
            subs.iter()
                .all(|&i| self.received[i as usize].load(Relaxed) >= sent)
        })
    }

    pub fn total_sent(&self) -> u64 {
        self.topic_sent.iter().map(|c| c.load(Relaxed)).sum()
    }

    pub fn total_delivered(&self) -> u64 {
        self.delivered.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Deliveries owed if every subscription gets every message of its topic.
    pub fn expected_deliveries(&self) -> u64 {
        (0..self.topic_sent.len())
            .map(|t| self.topic_sent(t) * self.subscriber_count(t) as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_follows_the_slowest_live_subscriber() {
        let layout = Layout {
            topics: 1,
            subscribers: 2,
            per_subscriber: 1,
            publishers: 1,
        };
        let board = Board::new(&layout);
        let mut floor = 0;
        for _ in 0..4 {
            assert!(board.window_open(0, &mut floor, 4));
            board.sent(0);
        }
        assert!(!board.window_open(0, &mut floor, 4));
        board.received(0, 0);
        assert!(
            !board.window_open(0, &mut floor, 4),
            "subscriber 1 still behind"
        );
        board.received(1, 0);
        assert!(board.window_open(0, &mut floor, 4));
        assert!(!board.caught_up());
        board.gone(1);
        for _ in 0..3 {
            board.received(0, 0);
        }
        assert!(board.caught_up());
        assert_eq!(board.alive(), 1);
        assert_eq!(board.expected_deliveries(), 8);
    }
}
