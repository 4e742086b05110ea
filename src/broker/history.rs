//! A topic's stored events in either numbering: dense (single node, `seq` = 1, 2, 3, ...) kept in
//! the lock-free [`Ring`], or sparse (cluster mode, `seq` = the JetStream stream sequence shared by
//! every topic, so one topic's numbers skip) kept in [`SparseRing`].
//!
//! The sparse ring takes a mutex: its only writer is the node's one backplane consumer task and its
//! readers are subscribes and history requests, never the per-delivery fan-out, so the lock is
//! uncontended in practice and the single-node path keeps its lock-free ring.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::ring::Ring;
use super::StoredEvent;

/// Where a topic keeps its last `RING_BUFFER_SIZE` events.
#[derive(Debug)]
pub(crate) enum History {
    /// Single node: `seq`s are contiguous, so slot `seq % capacity` works.
    Dense(Ring),
    /// Cluster mode: `seq`s are increasing but not contiguous.
    Sparse(SparseRing),
}

impl History {
    /// Newest stored `seq` (0 when empty).
    pub(crate) fn head(&self) -> u64 {
        match self {
            Self::Dense(ring) => ring.head(),
            Self::Sparse(ring) => ring.head(),
        }
    }

    /// Messages stored since the topic was created (dense: the head; sparse: a count).
    pub(crate) fn messages(&self) -> u64 {
        match self {
            Self::Dense(ring) => ring.head(),
            Self::Sparse(ring) => ring.count.load(Ordering::Relaxed),
        }
    }

    /// Appends `event`; callers serialize appends and give increasing `seq`s.
    pub(crate) fn push(&self, event: Arc<StoredEvent>) {
        match self {
            Self::Dense(ring) => ring.push(event),
            Self::Sparse(ring) => ring.push(event),
        }
    }

    /// Up to `n` newest events, oldest first.
    pub(crate) fn last_n(&self, n: usize) -> Vec<Arc<StoredEvent>> {
        match self {
            Self::Dense(ring) => ring.last_n(n),
            Self::Sparse(ring) => ring.last_n(n),
        }
    }

    /// Every stored event with `seq > after`, oldest first, and whether nothing after `after` was
    /// already evicted.
    pub(crate) fn since(&self, after: u64) -> (Vec<Arc<StoredEvent>>, bool) {
        match self {
            Self::Dense(ring) => ring.since(after),
            Self::Sparse(ring) => ring.since(after),
        }
    }
}

/// The last `capacity` events of a topic whose `seq`s skip numbers.
#[derive(Debug)]
pub(crate) struct SparseRing {
    /// Oldest first; never longer than `capacity`.
    events: Mutex<VecDeque<Arc<StoredEvent>>>,
    /// Most events kept.
    capacity: usize,
    /// Newest stored `seq`, readable without the lock.
    head: AtomicU64,
    /// Events stored since creation, evicted ones included.
    count: AtomicU64,
    /// `seq` of the newest evicted event: a resume from before it has a gap.
    evicted: AtomicU64,
    /// Whether the ring was filled from a stream that may have discarded older events (a node
    /// that joined after the topic had messages), rather than from the topic's first event.
    rebuilt: bool,
}

impl SparseRing {
    /// An empty ring of `capacity` (at least 1) events; `rebuilt` as for the field.
    pub(crate) fn new(capacity: usize, rebuilt: bool) -> Self {
        Self {
            events: Mutex::new(VecDeque::with_capacity(capacity.clamp(1, 1024))),
            capacity: capacity.max(1),
            head: AtomicU64::new(0),
            count: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            rebuilt,
        }
    }

    fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    fn push(&self, event: Arc<StoredEvent>) {
        let seq = event.seq;
        let mut events = self.events.lock();
        if events.len() == self.capacity {
            if let Some(old) = events.pop_front() {
                self.evicted.store(old.seq, Ordering::Relaxed);
            }
        }
        events.push_back(event);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.head.store(seq, Ordering::Release);
    }

    fn last_n(&self, n: usize) -> Vec<Arc<StoredEvent>> {
        let events = self.events.lock();
        let skip = events.len().saturating_sub(n);
        events.iter().skip(skip).cloned().collect()
    }

    fn since(&self, after: u64) -> (Vec<Arc<StoredEvent>>, bool) {
        let events = self.events.lock();
        let start = events.partition_point(|e| e.seq <= after);
        let out: Vec<_> = events.iter().skip(start).cloned().collect();
        // A ring rebuilt full from the stream cannot know whether the stream discarded events
        // before its first one (the stream keeps as many per topic as the ring), so it only
        // vouches from its first `seq` on. One rebuilt but not full saw everything.
        let unknown_before = self.rebuilt
            && events.len() == self.capacity
            && self.evicted.load(Ordering::Relaxed) == 0;
        let floor = match events.front() {
            Some(first) if unknown_before => first.seq.saturating_sub(1),
            _ => self.evicted.load(Ordering::Relaxed),
        };
        (out, after >= floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64) -> Arc<StoredEvent> {
        Arc::new(StoredEvent::numbered(seq))
    }

    fn seqs(v: &[Arc<StoredEvent>]) -> Vec<u64> {
        v.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn sparse_last_n_and_since() {
        let r = SparseRing::new(3, false);
        for s in [2, 5, 9] {
            r.push(ev(s));
        }
        assert_eq!(seqs(&r.last_n(2)), vec![5, 9]);
        let (e, complete) = r.since(0);
        assert_eq!((seqs(&e), complete), (vec![2, 5, 9], true));
        r.push(ev(12));
        assert_eq!(r.head(), 12);
        assert_eq!(r.count.load(Ordering::Relaxed), 4);
        let (e, complete) = r.since(3);
        assert_eq!((seqs(&e), complete), (vec![5, 9, 12], true));
        let (e, complete) = r.since(1);
        assert_eq!((seqs(&e), complete), (vec![5, 9, 12], false));
        let (e, complete) = r.since(12);
        assert_eq!((seqs(&e), complete), (vec![], true));
    }

    #[test]
    fn a_full_rebuilt_ring_vouches_only_from_its_first_event() {
        let r = SparseRing::new(2, true);
        for s in [4, 7] {
            r.push(ev(s));
        }
        assert!(!r.since(2).1);
        assert!(r.since(3).1);
        let half = SparseRing::new(3, true);
        half.push(ev(4));
        assert!(half.since(0).1);
    }
}
