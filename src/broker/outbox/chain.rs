//! An outbox's storage: a short chain of bounded `ArrayQueue` segments, made on the first push,
//! grown under a burst and given back once the connection is idle.
//!
//! Pushers take the chain's lock shared and push into the last segment, lock-free among
//! themselves; only a full last segment (grow), an emptied first one (shrink) and an idle
//! connection (give back) take it exclusive, so they are rare. The lock is what makes freeing a
//! segment safe while other threads may be pushing: no `unsafe` reclamation scheme.
//!
//! FIFO across segments: pushers only ever push into the current last segment, and a new last one
//! is appended under the exclusive lock, after every push into the old one has finished. So once
//! a segment is not the last, it only empties, and the writer drains the segments in order.

use std::collections::VecDeque;

use super::Outgoing;
use crate::sync::{ArrayQueue, RwLock};

/// Slots of a chain's first segment: an ack and a few events, what most connections ever hold.
#[cfg(not(all(test, herald_loom)))]
pub(super) const FIRST_SEGMENT: usize = 16;
/// One slot under loom, so a model's second push already grows the chain.
#[cfg(all(test, herald_loom))]
pub(super) const FIRST_SEGMENT: usize = 1;
/// Slots of the largest segment (96 KiB): a queue of 10,000 frames is a dozen segments.
const MAX_SEGMENT: usize = 4096;

/// Segments, oldest first; none while idle.
type Segments = VecDeque<Box<ArrayQueue<Outgoing>>>;

/// The queued items of one outbox, oldest first. Limits are the outbox's business: the chain
/// holds whatever it is given.
#[derive(Debug)]
pub(super) struct Chain {
    segments: RwLock<Segments>,
}

impl Chain {
    /// An empty chain: no segment until the first push.
    pub(super) fn new() -> Self {
        Self {
            segments: RwLock::new(VecDeque::new()),
        }
    }

    /// Appends `item`, growing the chain when its last segment is full.
    pub(super) fn push(&self, item: Outgoing) {
        let item = match self.segments.read().back() {
            Some(last) => match last.push(item) {
                Ok(()) => return,
                Err(item) => item,
            },
            None => item,
        };
        let mut segments = self.segments.write();
        // Another pusher may have grown the chain while this one waited.
        let item = match segments.back() {
            Some(last) => match last.push(item) {
                Ok(()) => return,
                Err(item) => item,
            },
            None => item,
        };
        let size = segments
            .back()
            .map_or(FIRST_SEGMENT, |last| (last.capacity() * 2).min(MAX_SEGMENT));
        let segment = Box::new(ArrayQueue::new(size));
        // A fresh segment has room, and nobody else can see it yet.
        let _ = segment.push(item);
        segments.push_back(segment);
    }

    /// Moves up to `max` of the oldest items into `out`; returns how many. The items are taken
    /// under the shared lock and handled after it, so a writer never holds up a growing pusher
    /// while it frames or compresses.
    pub(super) fn pop_into(&self, max: usize, out: &mut Vec<Outgoing>) -> usize {
        let mut taken = 0;
        let mut spent = false;
        {
            let segments = self.segments.read();
            let last = segments.len().saturating_sub(1);
            for (i, segment) in segments.iter().enumerate() {
                while taken < max {
                    let Some(item) = segment.pop() else { break };
                    out.push(item);
                    taken += 1;
                }
                if taken == max {
                    break;
                }
                // Empty and not the last: nothing can be pushed into it any more.
                spent |= i < last;
            }
        }
        if spent {
            self.drop_spent();
        }
        taken
    }

    /// Takes the oldest item (the writer's, or a `drop_oldest` pusher's eviction).
    pub(super) fn pop(&self) -> Option<Outgoing> {
        let segments = self.segments.read();
        segments.iter().find_map(|segment| segment.pop())
    }

    /// Whether nothing is queued. Items counted by the outbox but not pushed yet do not count:
    /// their pusher wakes the writer once they are.
    pub(super) fn is_empty(&self) -> bool {
        self.segments
            .read()
            .iter()
            .all(|segment| segment.is_empty())
    }

    /// Gives every segment back if nothing is queued; returns whether it did. The next push
    /// starts a first segment again.
    pub(super) fn release_if_empty(&self) -> bool {
        let mut segments = self.segments.write();
        if segments.is_empty() || !segments.iter().all(|segment| segment.is_empty()) {
            return false;
        }
        *segments = VecDeque::new();
        true
    }

    /// Slots held now.
    #[cfg(test)]
    pub(super) fn slots(&self) -> usize {
        self.segments.read().iter().map(|s| s.capacity()).sum()
    }

    /// Drops emptied segments from the front, keeping the last.
    fn drop_spent(&self) {
        let mut segments = self.segments.write();
        while segments.len() > 1 && segments.front().is_some_and(|s| s.is_empty()) {
            segments.pop_front();
        }
    }
}
