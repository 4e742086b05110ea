//! Topic lifecycle (issue 24): implicit topics expire after `TOPIC_IDLE_TTL_SECS` without a
//! subscriber or a publish, and events older than `HISTORY_TTL_SECS` are no longer replayed.
//!
//! # Cost
//! A publish pays nothing for expiry: the sweep notices activity by comparing a topic's message
//! count with the one it saw last time. Subscribe and unsubscribe (not the fan-out path) bump one
//! counter inside the sequencer they already hold. The sweep (`sweep.rs`) visits a bounded number
//! of topics per tick, from a queue that only implicit topics enter, once, when they are created.
//!
//! # The race with subscribe and publish
//! A topic is removed by `DashMap::remove_if`, whose condition runs under the shard's write lock
//! and takes the topic's sequencer: there it re-checks that nothing happened since the sweep
//! looked (no subscriber, the same count of messages, subscribes and unsubscribes) and marks the topic
//! deleted. Publish and subscribe take the same sequencer and check that mark, so each either ran
//! before (and the re-check refuses) or runs after and sees a deleted topic; `Broker` then looks
//! the name up again, finds it gone from the map (removed under the same shard lock) and creates
//! a fresh topic with a new epoch. `loom_tests.rs` models this.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::event::StoredEvent;
use crate::sync::AtomicU64;

/// `idle_since` before the sweep first looked at the topic.
const NOT_SEEN: u64 = u64::MAX;

/// What the sweep knows about one topic.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    /// Created by subscribe or publish (it may expire), not by `POST /topics`.
    implicit: bool,
    /// Subscribes and unsubscribes so far; only the sequencer's holder writes it.
    changes: AtomicU64,
    /// Messages plus `changes` when the sweep last looked; only the sweep writes it. Both only
    /// grow, so any publish, subscribe or unsubscribe since then changes the sum.
    seen: AtomicU64,
    /// Sweep clock (ms) when the sweep last saw activity; [`NOT_SEEN`] before its first look.
    idle_since: AtomicU64,
}

impl Lifecycle {
    /// State of a new topic; `implicit` as for the field.
    pub(crate) fn new(implicit: bool) -> Self {
        Self {
            implicit,
            changes: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            idle_since: AtomicU64::new(NOT_SEEN),
        }
    }

    /// Whether the topic was created by subscribe or publish.
    pub(crate) fn is_implicit(&self) -> bool {
        self.implicit
    }

    /// Records a subscribe or unsubscribe; the caller holds the topic's sequencer (so a plain
    /// load and store, no locked read-modify-write).
    pub(crate) fn touch(&self) {
        let changes = self.changes.load(Ordering::Relaxed);
        self.changes.store(changes + 1, Ordering::Relaxed);
    }

    /// The activity mark of a topic with `messages` messages: grows with every publish,
    /// subscribe and unsubscribe.
    pub(crate) fn mark(&self, messages: u64) -> u64 {
        messages.wrapping_add(self.changes.load(Ordering::Relaxed))
    }

    /// The sweep's look at a topic at sweep clock `now`: `Some(mark)` when it has been idle for
    /// `ttl` ms with that activity mark (then `Topic::retire_if_idle` decides under the lock).
    pub(crate) fn idle(&self, now: u64, ttl: u64, mark: u64, subscribers: usize) -> Option<u64> {
        let since = self.idle_since.load(Ordering::Relaxed);
        if subscribers > 0 || since == NOT_SEEN || mark != self.seen.load(Ordering::Relaxed) {
            self.seen.store(mark, Ordering::Relaxed);
            self.idle_since.store(now, Ordering::Relaxed);
            return None;
        }
        (now.saturating_sub(since) >= ttl).then_some(mark)
    }
}

/// Drops the events older than `ttl_ms` (0 = keep all) at `now_ms`; returns whether any went.
/// Events are in publish order, so the old ones are a prefix.
pub(crate) fn drop_aged(events: &mut Vec<Arc<StoredEvent>>, ttl_ms: u64, now_ms: u64) -> bool {
    if ttl_ms == 0 {
        return false;
    }
    let cutoff = now_ms.saturating_sub(ttl_ms);
    let old = events.partition_point(|e| e.at_ms <= cutoff);
    events.drain(..old);
    old > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_needs_two_looks_and_the_ttl_between() {
        let life = Lifecycle::new(true);
        let look =
            |now, messages, subscribers| life.idle(now, 100, life.mark(messages), subscribers);
        assert_eq!(look(0, 0, 0), None, "first look starts the clock");
        assert_eq!(look(50, 0, 0), None);
        assert_eq!(look(100, 0, 0), Some(0));
        assert_eq!(look(150, 1, 0), None, "a publish restarts it");
        assert_eq!(look(260, 1, 1), None, "a subscriber keeps it");
        life.touch();
        life.touch();
        assert_eq!(look(400, 1, 0), None, "a subscriber that came and left too");
        assert_eq!(look(499, 1, 0), None);
        assert_eq!(look(500, 1, 0), Some(3));
    }

    #[test]
    fn aged_events_are_a_dropped_prefix() {
        let at = |seq, at_ms| {
            let mut e = StoredEvent::numbered(seq);
            e.at_ms = at_ms;
            Arc::new(e)
        };
        let mut events = vec![at(1, 100), at(2, 200), at(3, 300)];
        assert!(!drop_aged(&mut events, 0, 10_000));
        assert_eq!(events.len(), 3);
        assert!(drop_aged(&mut events, 150, 360));
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3]);
        assert!(!drop_aged(&mut events, 150, 360));
    }
}
