//! The idle sweep's side of topic lifecycle (`lifecycle.rs` has the per-topic part): a queue of
//! the implicit topics, visited round-robin, at most [`SWEEP_BATCH`] per tick. `Broker::sweep`
//! runs a tick and removes what it finds idle with `Broker::expire`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::topic::Topic;

/// Most topics the sweep looks at per tick.
pub const SWEEP_BATCH: usize = 4096;

/// Time between sweep ticks for an idle TTL: a tenth of it, between 10 ms and 1 s, so a topic
/// goes at most about a tenth of its TTL late when there are few topics.
pub fn sweep_interval(idle_ttl: Duration) -> Duration {
    (idle_ttl / 10).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// What the sweep keeps between ticks.
#[derive(Debug)]
pub(crate) struct Sweeper {
    /// `TOPIC_IDLE_TTL_SECS` in ms.
    ttl_ms: u64,
    /// The implicit topics.
    queue: SweepQueue,
    /// Topics removed for being idle.
    expired: AtomicU64,
}

impl Sweeper {
    /// A sweeper removing topics idle for `ttl`.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            queue: SweepQueue::default(),
            expired: AtomicU64::new(0),
        }
    }

    /// Adds a newly created implicit topic.
    pub(crate) fn watch(&self, topic: &Arc<Topic>) {
        self.queue.push(topic);
    }

    /// Topics removed so far.
    pub(crate) fn expired(&self) -> u64 {
        self.expired.load(Ordering::Relaxed)
    }

    /// One tick at sweep clock `now` (ms): looks at up to [`SWEEP_BATCH`] topics and calls
    /// `expire(topic, mark)` for each found idle, which removes it if still idle at `mark`.
    /// Returns how many went.
    pub(crate) fn tick(&self, now: u64, mut expire: impl FnMut(&Arc<Topic>, u64) -> bool) -> usize {
        let mut kept = Vec::new();
        let mut expired = 0;
        for weak in self.queue.take(SWEEP_BATCH) {
            // A topic deleted (or expired) meanwhile is dropped from the queue here.
            let Some(topic) = weak.upgrade().filter(|t| !t.is_deleted()) else {
                continue;
            };
            let mark = topic.life().mark(topic.messages());
            match topic
                .life()
                .idle(now, self.ttl_ms, mark, topic.subscriber_count())
            {
                Some(mark) if expire(&topic, mark) => expired += 1,
                _ => kept.push(weak),
            }
        }
        self.queue.put_back(kept);
        self.expired.fetch_add(expired as u64, Ordering::Relaxed);
        expired
    }
}

/// The sweep's queue: every implicit topic, visited round-robin.
#[derive(Debug, Default)]
struct SweepQueue {
    /// Topics not yet visited this round, and visited ones pushed back for the next.
    topics: parking_lot::Mutex<VecDeque<Weak<Topic>>>,
}

impl SweepQueue {
    /// Adds a newly created implicit topic.
    fn push(&self, topic: &Arc<Topic>) {
        self.topics.lock().push_back(Arc::downgrade(topic));
    }

    /// Takes up to `n` topics off the front.
    fn take(&self, n: usize) -> Vec<Weak<Topic>> {
        let mut topics = self.topics.lock();
        let n = n.min(topics.len());
        topics.drain(..n).collect()
    }

    /// Puts topics that stay back at the end.
    fn put_back(&self, kept: Vec<Weak<Topic>>) {
        self.topics.lock().extend(kept);
    }
}
