//! What a connection's writer sends: the items an outbox queues, and what each weighs against
//! `SUBSCRIBER_QUEUE_BYTES`.

use std::sync::Arc;

use super::super::{Frame, StoredEvent};

/// What a writer sends: one frame, or frames that must stay together and in order (a subscribe
/// ack followed by its replay), which take a single queue slot so a replay cannot overflow it.
///
/// Two words, so a queue slot (with its stamp) is 24 bytes: a burst fills many slots, and a
/// 32-byte `Bytes` per slot would double what it costs. An event shares the topic's ring entry
/// (one reference count per subscriber).
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A live event: the only kind `drop_oldest` may discard.
    Event(Arc<StoredEvent>),
    /// A live event for a seed-c subscription: sent as [`StoredEvent::seed_c`], which the
    /// first such send renders; discarded like `Event`.
    SeedC(Arc<StoredEvent>),
    /// A reply: one text frame that is not an event; never silently dropped.
    Frame(Box<Frame>),
    /// An `info` frame (`topic_deleted`, `token_expiring`): never dropped under `drop_oldest`,
    /// and not sent at all to a quiet connection (a seed client's, see
    /// [`Outbox::set_quiet`](super::Outbox::set_quiet)).
    Info(Box<Frame>),
    /// Several text frames, sent in order.
    Batch(Box<Vec<Frame>>),
    /// A droppable `info` frame (presence `join` / `leave`): evicted under `drop_oldest` like an
    /// event, and, like `Info`, not sent to a quiet connection.
    Notice(Box<Frame>),
    /// A subscribe ack and the events it replays, in order: the events stay shared with the
    /// ring, so a compressing connection sends their compressed form.
    Replay(Box<Replayed>),
}

/// A subscribe ack (when the subscribe asked for one) and its replayed events.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// The ack, sent first.
    pub ack: Option<Frame>,
    /// The replayed events, oldest first.
    pub events: Vec<Arc<StoredEvent>>,
}

impl Outgoing {
    /// A reply or info frame.
    pub fn frame(frame: Frame) -> Self {
        Self::Frame(Box::new(frame))
    }

    /// An `info` frame.
    pub fn info(frame: Frame) -> Self {
        Self::Info(Box::new(frame))
    }

    /// Frames that go out together, in order.
    pub fn batch(frames: Vec<Frame>) -> Self {
        Self::Batch(Box::new(frames))
    }

    /// The text frames this item sends, in order, uncompressed.
    pub fn frames(&self) -> impl Iterator<Item = &Frame> {
        let (head, events): (&[Frame], &[Arc<StoredEvent>]) = match self {
            Self::Event(event) => (std::slice::from_ref(&event.frame), &[]),
            Self::SeedC(event) => (std::slice::from_ref(event.seed_c()), &[]),
            Self::Frame(frame) | Self::Info(frame) | Self::Notice(frame) => {
                (std::slice::from_ref(frame), &[])
            }
            Self::Batch(frames) => (frames, &[]),
            Self::Replay(replayed) => (replayed.ack.as_slice(), &replayed.events),
        };
        head.iter().chain(events.iter().map(|event| &event.frame))
    }

    /// Bytes this item holds against `SUBSCRIBER_QUEUE_BYTES`: its frames' lengths, the same
    /// when queued and when taken. A seed-c event weighs its canonical frame, which it is
    /// rendered from, so weighing never renders it in the publisher's fan-out.
    pub fn weight(&self) -> u64 {
        let frames = |frames: &[Frame]| frames.iter().map(|f| f.len() as u64).sum::<u64>();
        match self {
            Self::Event(event) | Self::SeedC(event) => event_weight(event),
            Self::Frame(frame) | Self::Info(frame) | Self::Notice(frame) => frame.len() as u64,
            Self::Batch(batch) => frames(batch),
            Self::Replay(replayed) => {
                frames(replayed.ack.as_slice())
                    + replayed.events.iter().map(|e| event_weight(e)).sum::<u64>()
            }
        }
    }

    /// Whether `drop_oldest` may discard it: a live event or a presence notice, never a reply.
    pub(crate) fn droppable(&self) -> bool {
        matches!(self, Self::Event(_) | Self::SeedC(_) | Self::Notice(_))
    }
}

/// What one event weighs in any outbox ([`Outgoing::weight`]): a publish weighs it once for all
/// its subscribers.
pub(crate) fn event_weight(event: &StoredEvent) -> u64 {
    event.frame.len() as u64
}
