//! One connection's outbound queue: a bounded lock-free `ArrayQueue` of ready-to-send frames and
//! the wake-up of the writer task that drains it.
//!
//! Publishers push from any thread and never wait. When the queue is full the connection's
//! [`SlowConsumerPolicy`] decides: `disconnect` marks the outbox overflowed (the writer then sends
//! `SLOW_CONSUMER` and closes), `drop_oldest` evicts the oldest queued item and counts it.

use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;

use super::{Frame, StoredEvent};
use crate::config::SlowConsumerPolicy;
use crate::sync::{ArrayQueue, AtomicBool, AtomicU64, AtomicWaker};

/// What a writer sends: one frame, or frames that must stay together and in order (a subscribe
/// ack followed by its replay), which take a single queue slot so a replay cannot overflow it.
///
/// Two words, so a queue slot (with its stamp) is 24 bytes: `SUBSCRIBER_QUEUE_SIZE` slots are
/// allocated up front for every connection, and a 32-byte `Bytes` per slot would double that.
/// An event shares the topic's ring entry (one reference count per subscriber, as before).
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
    /// and not sent at all to a quiet connection (a seed client's, see [`Outbox::set_quiet`]).
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
}

/// What happened to a pushed item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for the writer.
    Queued,
    /// Queued after evicting the oldest item (`drop_oldest`).
    DroppedOldest,
    /// Not queued: the queue overflowed under `disconnect`, or the connection is closing.
    Rejected,
}

/// A connection's bounded outbound queue plus its writer's wake-up.
#[derive(Debug)]
pub struct Outbox {
    /// Frames waiting for the writer; capacity is `SUBSCRIBER_QUEUE_SIZE`.
    queue: ArrayQueue<Outgoing>,
    /// The writer task parks here when the queue is empty. `AtomicWaker` hands the waker out once
    /// per park, so a burst of pushes costs one task wake-up, not one per frame.
    waker: AtomicWaker,
    /// The connection's reader parks here while the queue is at its high-water mark, so a client
    /// that pipelines requests is slowed down by TCP backpressure instead of being disconnected.
    space: AtomicWaker,
    /// Overflow policy, fixed for the connection's life.
    policy: SlowConsumerPolicy,
    /// Set when the queue overflowed under `disconnect`; the writer closes with `SLOW_CONSUMER`.
    overflowed: AtomicBool,
    /// Set when the connection is going away; pushes are refused so nothing piles up.
    closed: AtomicBool,
    /// Items evicted under `drop_oldest`, reported in stats.
    dropped: AtomicU64,
    /// Set for a seed client, which reads every frame as a message: its writer sends no JSON
    /// `info` frame (heartbeat, shutdown), only WebSocket Pings and close reasons.
    quiet: AtomicBool,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` items.
    pub fn new(capacity: usize, policy: SlowConsumerPolicy) -> Self {
        Self {
            queue: ArrayQueue::new(capacity.max(1)),
            waker: AtomicWaker::new(),
            space: AtomicWaker::new(),
            policy,
            overflowed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            quiet: AtomicBool::new(false),
        }
    }

    /// Queues `item` without waiting, applying the overflow policy, and wakes the writer.
    pub fn push(&self, item: Outgoing) -> Pushed {
        if self.closed.load(Ordering::Relaxed) || self.overflowed.load(Ordering::Relaxed) {
            return Pushed::Rejected;
        }
        let outcome = match self.policy {
            SlowConsumerPolicy::Disconnect => match self.queue.push(item) {
                Ok(()) => Pushed::Queued,
                Err(_) => {
                    self.overflowed.store(true, Ordering::Release);
                    Pushed::Rejected
                }
            },
            SlowConsumerPolicy::DropOldest => match self.queue.force_push(item) {
                None => Pushed::Queued,
                Some(Outgoing::Event(_) | Outgoing::SeedC(_) | Outgoing::Notice(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    Pushed::DroppedOldest
                }
                // The oldest item is a reply (or a subscribe ack with its replay): losing it would
                // leave the client waiting for an answer forever, so a client this far behind is
                // disconnected as under `disconnect`.
                Some(_reply) => {
                    self.overflowed.store(true, Ordering::Release);
                    Pushed::Rejected
                }
            },
        };
        self.waker.wake();
        outcome
    }

    /// Takes the oldest queued item.
    pub fn pop(&self) -> Option<Outgoing> {
        let item = self.queue.pop();
        if item.is_some() {
            // Cheap when nobody waits: one atomic operation, no wake-up.
            self.space.wake();
        }
        item
    }

    /// Queue capacity.
    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    /// Resolves once fewer than `high_water` items are queued (or the outbox overflowed or
    /// closed, so a waiting reader never hangs).
    pub async fn below(&self, high_water: usize) {
        poll_fn(|cx| {
            let done = || {
                self.queue.len() < high_water
                    || self.overflowed.load(Ordering::Acquire)
                    || self.closed.load(Ordering::Acquire)
            };
            if done() {
                return Poll::Ready(());
            }
            self.space.register(cx.waker());
            if done() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Items currently queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether the queue overflowed under policy `disconnect`.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }

    /// Items evicted so far under `drop_oldest`.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Refuses further pushes and wakes the writer so it can finish.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Marks the connection a seed client's: no JSON `info` frames from now on.
    pub fn set_quiet(&self) {
        self.quiet.store(true, Ordering::Relaxed);
    }

    /// Whether the connection gets no JSON `info` frames (see [`Outbox::set_quiet`]).
    pub fn is_quiet(&self) -> bool {
        self.quiet.load(Ordering::Relaxed)
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Resolves once there is something for the writer to do: an item, an overflow or a close.
    pub async fn ready(&self) {
        poll_fn(|cx| {
            if self.has_work() {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // A push between the check above and the registration would have found no waker;
            // checking again after registering closes that window.
            if self.has_work() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Resolves once the queue overflowed under `disconnect`, so a writer stuck on a socket that
    /// does not drain can give up instead of waiting forever.
    pub async fn overflow(&self) {
        poll_fn(|cx| {
            if self.overflowed() {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.overflowed() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    fn has_work(&self) -> bool {
        !self.queue.is_empty()
            || self.overflowed.load(Ordering::Acquire)
            || self.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &'static str) -> Outgoing {
        Outgoing::Event(Arc::new(StoredEvent {
            seq: 1,
            frame: Frame::from_static(s),
            id: 0..0,
            payload: 0..0,
            ts: 0..0,
            seed_c: std::sync::OnceLock::new(),
            deflated: std::sync::OnceLock::new(),
            at_ms: 0,
        }))
    }

    fn text(o: Option<Outgoing>) -> String {
        match o
            .as_ref()
            .map(|o| o.frames().collect::<Vec<_>>())
            .as_deref()
        {
            Some([f]) => f.as_str().to_string(),
            _ => panic!("expected one frame, got {o:?}"),
        }
    }

    #[test]
    fn a_slot_is_two_words() {
        assert_eq!(std::mem::size_of::<Outgoing>(), 16);
    }

    #[test]
    fn disconnect_policy_rejects_and_flags_overflow() {
        let o = Outbox::new(2, SlowConsumerPolicy::Disconnect);
        assert_eq!(o.push(frame("1")), Pushed::Queued);
        assert_eq!(o.push(frame("2")), Pushed::Queued);
        assert!(!o.overflowed());
        assert_eq!(o.push(frame("3")), Pushed::Rejected);
        assert!(o.overflowed());
        // Once overflowed, nothing more is accepted even after the writer pops.
        assert_eq!(text(o.pop()), "1");
        assert_eq!(o.push(frame("4")), Pushed::Rejected);
    }

    #[test]
    fn drop_oldest_policy_evicts_and_counts() {
        let o = Outbox::new(2, SlowConsumerPolicy::DropOldest);
        o.push(frame("1"));
        o.push(frame("2"));
        assert_eq!(o.push(frame("3")), Pushed::DroppedOldest);
        assert_eq!(o.dropped(), 1);
        assert_eq!(text(o.pop()), "2");
        assert_eq!(text(o.pop()), "3");
        assert!(o.pop().is_none());
    }

    #[test]
    fn drop_oldest_never_drops_a_reply() {
        let o = Outbox::new(2, SlowConsumerPolicy::DropOldest);
        o.push(Outgoing::frame(Frame::from_static("ack")));
        o.push(frame("1"));
        assert_eq!(o.push(frame("2")), Pushed::Rejected);
        assert!(o.overflowed());
        assert_eq!(o.dropped(), 0);
    }

    #[test]
    fn closed_outbox_refuses() {
        let o = Outbox::new(2, SlowConsumerPolicy::Disconnect);
        o.close();
        assert_eq!(o.push(frame("1")), Pushed::Rejected);
        assert!(o.is_empty());
    }

    #[tokio::test]
    async fn ready_wakes_on_push_from_another_thread() {
        let o = std::sync::Arc::new(Outbox::new(4, SlowConsumerPolicy::Disconnect));
        let pusher = o.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            pusher.push(frame("x"));
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), o.ready())
            .await
            .expect("writer woken");
        assert_eq!(text(o.pop()), "x");
        t.join().unwrap();
    }
}
