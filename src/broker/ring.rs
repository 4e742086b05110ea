//! A topic's replay ring: the last N serialized events, readable while the topic appends.
//!
//! # Concurrency
//! Appends are serialized by the topic's sequencer (one writer at a time, in `seq` order).
//! Each slot is an `ArcSwapOption`, so a reader sees either the entry before an append or the one
//! after it, never a torn one, and never takes a lock. `head` (the newest stored `seq`) is
//! published with `Release` after its slot is written, so a reader that loads `head` with `Acquire`
//! finds every slot up to `head` written. A reader can still race with later appends that overwrite
//! the oldest slots it is about to read; each entry carries its own `seq`, so such a slot is
//! recognised (its `seq` is newer than the one wanted) and the reader keeps only the contiguous
//! newest run it saw. The result is always a gap-free run of `seq`s ending at the `head` read.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::StoredEvent;
use crate::sync::{ArcSwapOption, AtomicU64};

/// The last `capacity` events of a topic.
#[derive(Debug)]
pub struct Ring {
    /// Slot `seq % capacity` holds the event with that `seq` until `capacity` newer ones arrive.
    slots: Box<[ArcSwapOption<StoredEvent>]>,
    /// Newest stored `seq`; 0 while empty.
    head: AtomicU64,
}

impl Ring {
    /// An empty ring of `capacity` (at least 1) slots.
    pub fn new(capacity: usize) -> Self {
        let slots = (0..capacity.max(1))
            .map(|_| ArcSwapOption::empty())
            .collect();
        Self {
            slots,
            head: AtomicU64::new(0),
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Newest stored `seq` (0 when empty).
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Oldest `seq` the ring can still hold given its head (1 while not yet wrapped).
    pub fn oldest(&self) -> u64 {
        let head = self.head();
        if head == 0 {
            return 0;
        }
        head.saturating_sub(self.slots.len() as u64 - 1).max(1)
    }

    /// Appends `event`. Callers serialize appends and give strictly increasing `seq`s.
    pub fn push(&self, event: Arc<StoredEvent>) {
        let seq = event.seq;
        self.slot(seq).store(Some(event));
        self.head.store(seq, Ordering::Release);
    }

    /// Up to `n` newest events, oldest first.
    pub fn last_n(&self, n: usize) -> Vec<Arc<StoredEvent>> {
        let head = self.head();
        let n = n.min(self.slots.len()) as u64;
        if head == 0 || n == 0 {
            return Vec::new();
        }
        let from = head.saturating_sub(n - 1).max(1);
        self.range(from, head)
    }

    /// Every stored event with `seq > after`, oldest first, and whether that is all of them
    /// (false when some were already overwritten).
    pub fn since(&self, after: u64) -> (Vec<Arc<StoredEvent>>, bool) {
        let head = self.head();
        if after >= head {
            return (Vec::new(), true);
        }
        let from = after + 1;
        let events = self.range(from.max(self.oldest()), head);
        let complete = events.first().map(|e| e.seq) == Some(from);
        (events, complete)
    }

    /// Events `from..=to` that are still present, as a contiguous run ending at `to`.
    fn range(&self, from: u64, to: u64) -> Vec<Arc<StoredEvent>> {
        let mut out = Vec::with_capacity((to + 1 - from) as usize);
        for seq in from..=to {
            match self.slot(seq).load_full() {
                Some(event) if event.seq == seq => out.push(event),
                // Overwritten by a newer append (or not yet visible): everything read so far is
                // older than what the ring holds now, so restart the run after this slot.
                _ => out.clear(),
            }
        }
        out
    }

    fn slot(&self, seq: u64) -> &ArcSwapOption<StoredEvent> {
        &self.slots[(seq % self.slots.len() as u64) as usize]
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
    fn last_n_before_and_after_wrap() {
        let r = Ring::new(4);
        assert!(r.last_n(3).is_empty());
        for s in 1..=3 {
            r.push(ev(s));
        }
        assert_eq!(seqs(&r.last_n(10)), vec![1, 2, 3]);
        for s in 4..=10 {
            r.push(ev(s));
        }
        assert_eq!(seqs(&r.last_n(2)), vec![9, 10]);
        assert_eq!(seqs(&r.last_n(100)), vec![7, 8, 9, 10]);
        assert_eq!(r.oldest(), 7);
    }

    #[test]
    fn since_reports_completeness() {
        let r = Ring::new(4);
        for s in 1..=10 {
            r.push(ev(s));
        }
        let (e, complete) = r.since(8);
        assert_eq!((seqs(&e), complete), (vec![9, 10], true));
        let (e, complete) = r.since(6);
        assert_eq!((seqs(&e), complete), (vec![7, 8, 9, 10], true));
        let (e, complete) = r.since(2);
        assert_eq!((seqs(&e), complete), (vec![7, 8, 9, 10], false));
        let (e, complete) = r.since(10);
        assert_eq!((seqs(&e), complete), (vec![], true));
    }

    #[test]
    fn readers_see_contiguous_runs_while_a_writer_appends() {
        let r = Arc::new(Ring::new(8));
        // Miri (which checks arc-swap's unsafe code under this race) runs ~10^4 times slower.
        let last = if cfg!(miri) { 300 } else { 200_000 };
        let writer = {
            let r = r.clone();
            std::thread::spawn(move || {
                for s in 1..=last {
                    r.push(ev(s));
                }
            })
        };
        while !writer.is_finished() {
            let got = seqs(&r.last_n(8));
            assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "gap in {got:?}");
        }
        writer.join().unwrap();
        assert_eq!(seqs(&r.last_n(3)), vec![last - 2, last - 1, last]);
    }
}
