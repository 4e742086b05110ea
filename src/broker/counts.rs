//! What the engine counts per topic and in total, for `/stats` and `/metrics`.

use std::ops::AddAssign;

/// One row of [`Broker::topics`].
#[derive(Debug, Clone)]
pub struct TopicStats {
    /// Topic name.
    pub name: String,
    /// Current subscriptions.
    pub subscribers: usize,
    /// Messages published since the topic was created.
    pub messages: u64,
    /// Events dropped for slow subscribers under `drop_oldest`.
    pub dropped: u64,
}

/// What happened to published events, for `/metrics`: counted per topic, summed at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCounts {
    /// Messages published into topics.
    pub published: u64,
    /// Live events enqueued to subscribers (one per subscriber per message).
    pub delivered: u64,
    /// Events evicted from a full queue under `drop_oldest`.
    pub dropped_oldest: u64,
    /// Events not enqueued because the subscriber's queue had overflowed under `disconnect`.
    pub dropped_slow_consumer: u64,
    /// Events not enqueued because the subscriber's connection was closing.
    pub dropped_closed: u64,
}

impl AddAssign for EventCounts {
    fn add_assign(&mut self, other: Self) {
        self.published += other.published;
        self.delivered += other.delivered;
        self.dropped_oldest += other.dropped_oldest;
        self.dropped_slow_consumer += other.dropped_slow_consumer;
        self.dropped_closed += other.dropped_closed;
    }
}
