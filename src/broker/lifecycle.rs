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
//!
//! # Cluster mode
//! No node may remove a topic on its own: the registry entry goes, at its revision, once every
//! live node voted the topic idle (`cluster/nats/expiry.rs`). A node's vote *leases* the topic:
//! until the outcome is known, a publish or subscribe arriving there waits instead of using a
//! topic that may be about to go. Each operation holds an `InFlight` (`topic/lease.rs`) mark while it runs. The
//! marks and the lease share one atomic word, and both sides change it with one read-modify-write
//! (the operation adds its mark and reads the lease bit, the vote sets the bit and reads the
//! marks), so one of them always sees the other: either the vote says busy or the operation
//! waits. `loom_tests.rs` models this too.

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
    /// Cluster mode: [`LEASED`] while this node's idle vote stands, plus one per publish or
    /// subscribe running on this node (see `InFlight` (`topic/lease.rs`)).
    gate: AtomicU64,
    /// Cluster mode: sweep clock (ms) when this node's idle vote stops holding operations back.
    lease_until: AtomicU64,
}

/// The bit of `Lifecycle::gate` that says this node's idle vote stands.
const LEASED: u64 = 1 << 63;

/// Where a topic's expiry lease stands on this node (cluster mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// No vote is pending: operations go ahead.
    Free,
    /// This node voted the topic idle and the outcome is not known yet: operations wait.
    Pending,
    /// A vote's lease ran out with no outcome heard: the registry says whether the topic went.
    Lapsed,
}

impl Lifecycle {
    /// State of a new topic; `implicit` as for the field.
    pub(crate) fn new(implicit: bool) -> Self {
        Self {
            implicit,
            changes: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            idle_since: AtomicU64::new(NOT_SEEN),
            gate: AtomicU64::new(0),
            lease_until: AtomicU64::new(0),
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

    /// Cluster expiry's vote: leases the topic until sweep clock `until` and says whether no
    /// operation is in flight. Both sides use one read-modify-write each on `gate`.
    fn lease(&self, until: u64) -> bool {
        // Stored before the bit is set, so an operation that sees the bit sees this deadline.
        self.lease_until.store(until, Ordering::Relaxed);
        self.gate.fetch_or(LEASED, Ordering::AcqRel) & !LEASED == 0
    }

    /// Ends this node's lease: the topic stays (or the vote said busy).
    pub(crate) fn release(&self) {
        self.gate.fetch_and(!LEASED, Ordering::AcqRel);
    }

    /// An operation starts (see `InFlight` (`topic/lease.rs`)): whether this node's idle vote stood then.
    pub(crate) fn enter(&self) -> bool {
        self.gate.fetch_add(1, Ordering::AcqRel) & LEASED != 0
    }

    /// An operation is done.
    pub(crate) fn leave(&self) {
        self.gate.fetch_sub(1, Ordering::AcqRel);
    }

    /// The lease at sweep clock `now`, for an operation that found it set when it started.
    pub(crate) fn lease_at(&self, now: u64) -> Lease {
        if now < self.lease_until.load(Ordering::Relaxed) {
            Lease::Pending
        } else {
            Lease::Lapsed
        }
    }

    /// Cluster expiry's vote at sweep clock `now` for a topic with `messages` messages and
    /// `subscribers` subscribers: whether it has been idle here for `ttl` ms with nothing in
    /// flight. An idle vote leases the topic until `lease_until`.
    pub(crate) fn vote_idle(
        &self,
        now: u64,
        ttl: u64,
        lease_until: u64,
        messages: impl FnOnce() -> u64,
        subscribers: impl FnOnce() -> usize,
    ) -> bool {
        let idle = self.lease(lease_until)
            && self
                .idle(now, ttl, self.mark(messages()), subscribers())
                .is_some();
        if !idle {
            self.release();
        }
        idle
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
