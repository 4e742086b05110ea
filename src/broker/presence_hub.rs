//! The broker's side of presence (issue 21, `presence.rs`): the queue of topics with notices to
//! send or local changes to report, and the flush that empties it every `PRESENCE_COALESCE_MS`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::outbox::{Outgoing, Pushed};
use super::presence::PresenceDelta;
use super::topic::Topic;
use crate::protocol::presence::info_presence;

/// The broker's side: the queue of topics with presence work, and notice counts for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct PresenceHub {
    /// Topics with notices to send or local changes to report.
    queue: parking_lot::Mutex<Vec<Arc<Topic>>>,
    /// Notices queued to watchers.
    sent: AtomicU64,
    /// Notices not queued because the watcher's queue had no room.
    dropped: AtomicU64,
}

impl PresenceHub {
    /// Queues `topic` for the next flush when `claimed` says it just got work.
    pub(crate) fn queue(&self, topic: &Arc<Topic>, claimed: bool) {
        if claimed {
            self.queue.lock().push(topic.clone());
        }
    }

    /// Sends every pending notice of the queued topics (each built once, pushed to every watcher
    /// but the identity's own while its queue has room) and returns their local changes.
    pub(crate) fn flush(&self) -> Vec<PresenceDelta> {
        let topics = std::mem::take(&mut *self.queue.lock());
        let mut deltas = Vec::new();
        let (mut sent, mut dropped) = (0, 0);
        for topic in topics {
            let flush = topic.take_presence();
            for (identity, joined) in &flush.notices {
                let frame = info_presence(topic.name(), *joined, identity);
                for (outbox, own) in &flush.watchers {
                    // A quiet (seed) connection gets no info frames at all (PROTOCOL.md §2).
                    if own == identity || outbox.is_quiet() {
                        continue;
                    }
                    // One slot stays free for replies: a notice never makes a slow consumer.
                    let room = outbox.has_room(2);
                    let pushed = room
                        && outbox.push(Outgoing::Notice(Box::new(frame.clone())))
                            != Pushed::Rejected;
                    if pushed {
                        sent += 1;
                    } else {
                        dropped += 1;
                    }
                }
            }
            if !flush.changed.is_empty() {
                deltas.push((topic.name().clone(), flush.changed));
            }
        }
        self.sent.fetch_add(sent, Ordering::Relaxed);
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
        deltas
    }

    /// Notices queued to watchers since start, and those dropped for want of room.
    pub(crate) fn notices(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }
}
