//! One connection's outbound queue: ready-to-send frames, bounded in frames and in bytes, and the
//! wake-up of the writer task that drains it.
//!
//! Publishers push from any thread and never wait for the connection. The storage ([`Chain`]) is
//! made on the first push, grows in bounded `ArrayQueue` segments under a burst and is given back
//! when the connection is idle, so a large `SUBSCRIBER_QUEUE_SIZE` costs nothing until used. One
//! packed counter holds the frames and bytes queued: a push adds to it once and reads both limits
//! from what it returns. When either limit is reached the connection's [`SlowConsumerPolicy`]
//! decides: `disconnect` marks the outbox overflowed (the writer then sends `SLOW_CONSUMER` and
//! closes), `drop_oldest` evicts the oldest queued items and counts them.

mod chain;
mod outgoing;

use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::task::Poll;

use crate::config::SlowConsumerPolicy;
use crate::sync::{AtomicBool, AtomicU64, AtomicWaker};
use chain::Chain;
pub(crate) use outgoing::event_weight;
pub use outgoing::{Outgoing, Replayed};

/// `SUBSCRIBER_QUEUE_BYTES`' default, for outboxes made without one (tests, embedders).
pub const DEFAULT_QUEUE_BYTES: u64 = 1 << 20;

/// The counter's low bits count bytes (up to 1 TiB), its high bits frames (up to 16 M): both well
/// past the configurable limits, so concurrent pushes overshooting a limit cannot carry over.
const BYTE_BITS: u32 = 40;
const BYTES: u64 = (1 << BYTE_BITS) - 1;
const ONE_FRAME: u64 = 1 << BYTE_BITS;

/// What happened to a pushed item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for the writer.
    Queued,
    /// Queued after evicting older items (`drop_oldest`).
    DroppedOldest,
    /// Not queued: the queue overflowed under `disconnect`, or the connection is closing.
    Rejected,
}

/// Frames and bytes queued, as the packed counter holds them.
#[derive(Debug, Clone, Copy)]
struct Load(u64);

impl Load {
    fn frames(self) -> u64 {
        self.0 >> BYTE_BITS
    }

    fn bytes(self) -> u64 {
        self.0 & BYTES
    }
}

/// A connection's bounded outbound queue plus its writer's wake-up.
#[derive(Debug)]
pub struct Outbox {
    /// Queued items, oldest first; no memory while idle.
    chain: Chain,
    /// Frames and bytes queued (see [`Load`]). A push counts its item before storing it and the
    /// writer uncounts after taking it, so the count never falls below what is stored.
    load: AtomicU64,
    /// `SUBSCRIBER_QUEUE_SIZE`.
    max_frames: u64,
    /// `SUBSCRIBER_QUEUE_BYTES`.
    max_bytes: u64,
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
    /// The writer's last take found nothing (see `has_work`); only the writer touches it.
    starved: AtomicBool,
    /// Set for a seed client, which reads every frame as a message: its writer sends no JSON
    /// `info` frame (heartbeat, shutdown), only WebSocket Pings and close reasons.
    quiet: AtomicBool,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` items and [`DEFAULT_QUEUE_BYTES`] bytes.
    pub fn new(capacity: usize, policy: SlowConsumerPolicy) -> Self {
        Self {
            chain: Chain::new(),
            load: AtomicU64::new(0),
            max_frames: capacity.max(1) as u64,
            max_bytes: DEFAULT_QUEUE_BYTES,
            waker: AtomicWaker::new(),
            space: AtomicWaker::new(),
            policy,
            overflowed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            starved: AtomicBool::new(false),
            quiet: AtomicBool::new(false),
        }
    }

    /// The same outbox holding at most `bytes` bytes of frames (`SUBSCRIBER_QUEUE_BYTES`).
    pub fn with_max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes.clamp(1, BYTES / 2);
        self
    }

    /// Whether a queue holding `load` (a new item included) is past a limit. An item alone in
    /// the queue always fits, so one frame larger than the byte limit still reaches a client
    /// that keeps up.
    fn over(&self, load: Load) -> bool {
        load.frames() > self.max_frames || (load.frames() > 1 && load.bytes() > self.max_bytes)
    }

    /// Queues `item` without waiting, applying the overflow policy, and wakes the writer.
    pub fn push(&self, item: Outgoing) -> Pushed {
        let weight = item.weight();
        self.push_weighed(item, weight)
    }

    /// [`Outbox::push`] for an item whose [`Outgoing::weight`] the caller computed once for
    /// many outboxes (a publish's fan-out).
    pub fn push_weighed(&self, item: Outgoing, weight: u64) -> Pushed {
        if self.closed.load(Ordering::Relaxed) || self.overflowed.load(Ordering::Relaxed) {
            return Pushed::Rejected;
        }
        let add = ONE_FRAME | weight.min(BYTES / 2);
        let before = self.load.fetch_add(add, Ordering::AcqRel);
        let mut outcome = Pushed::Queued;
        if self.over(Load(before.wrapping_add(add))) {
            outcome = match self.policy {
                SlowConsumerPolicy::Disconnect => Pushed::Rejected,
                SlowConsumerPolicy::DropOldest => self.make_room(),
            };
            if outcome == Pushed::Rejected {
                self.load.fetch_sub(add, Ordering::AcqRel);
                self.overflowed.store(true, Ordering::Release);
                self.waker.wake();
                return Pushed::Rejected;
            }
        }
        self.chain.push(item);
        self.waker.wake();
        outcome
    }

    /// `drop_oldest`: evicts the oldest items until the queue (with the item being pushed,
    /// already counted) is within its limits. The oldest being a reply (or a subscribe ack with
    /// its replay) rejects instead: losing it would leave the client waiting for an answer
    /// forever, so a client this far behind is disconnected as under `disconnect`.
    fn make_room(&self) -> Pushed {
        let mut outcome = Pushed::Queued;
        while self.over(Load(self.load.load(Ordering::Acquire))) {
            // The writer may have taken everything meanwhile: then there is room.
            let Some(oldest) = self.chain.pop() else {
                break;
            };
            self.uncount(1, oldest.weight());
            if !oldest.droppable() {
                return Pushed::Rejected;
            }
            self.dropped.fetch_add(1, Ordering::Relaxed);
            outcome = Pushed::DroppedOldest;
        }
        outcome
    }

    /// Takes `frames` items of `bytes` bytes off the count; wakes a reader waiting for room.
    fn uncount(&self, frames: u64, bytes: u64) {
        if frames > 0 {
            let before = self
                .load
                .fetch_sub(frames * ONE_FRAME + bytes, Ordering::AcqRel);
            // A reader only waits past the high-water mark, and the first take after it checked
            // sees at least what it saw: no wake-up (nor its atomic operation) below it.
            if self.past(Load(before)) {
                self.space.wake();
            }
        }
    }

    /// Whether `load` is past half of either limit.
    fn past(&self, load: Load) -> bool {
        load.frames() >= self.max_frames.div_ceil(2) || load.bytes() >= self.max_bytes / 2
    }

    /// Moves up to `max` of the oldest items into `out` (the writer's batch); returns how many.
    pub fn pop_into(&self, max: usize, out: &mut Vec<Outgoing>) -> usize {
        let start = out.len();
        let taken = self.chain.pop_into(max, out);
        let bytes = out[start..].iter().map(Outgoing::weight).sum();
        self.uncount(taken as u64, bytes);
        self.starved.store(taken == 0, Ordering::Relaxed);
        taken
    }

    /// Takes the oldest queued item.
    pub fn pop(&self) -> Option<Outgoing> {
        let Some(item) = self.chain.pop() else {
            self.starved.store(true, Ordering::Relaxed);
            return None;
        };
        self.starved.store(false, Ordering::Relaxed);
        self.uncount(1, item.weight());
        Some(item)
    }

    /// Gives the queue's memory back if nothing is queued (the writer calls this when the
    /// connection has been quiet for a heartbeat); returns whether it did.
    pub fn release_if_idle(&self) -> bool {
        self.chain.release_if_empty()
    }

    /// Queue slots allocated now (zero while idle).
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.chain.slots()
    }

    /// `SUBSCRIBER_QUEUE_SIZE`: most items queued.
    pub fn capacity(&self) -> usize {
        self.max_frames as usize
    }

    /// Whether `spare` more items would still leave the queue within both limits: what a sender
    /// that must never cause `SLOW_CONSUMER` (a presence notice) or wants to wait for room (a
    /// node catching up with the cluster) checks first.
    pub fn has_room(&self, spare: usize) -> bool {
        let load = Load(self.load.load(Ordering::Acquire));
        load.frames() + spare as u64 <= self.max_frames && load.bytes() < self.max_bytes
    }

    /// Whether the queue is at its high-water mark: half of either limit. The connection's
    /// reader stops reading there, so a client's own replies never fill the queue.
    pub fn past_high_water(&self) -> bool {
        self.past(Load(self.load.load(Ordering::Acquire)))
    }

    /// Resolves once the queue is below its high-water mark (or the outbox overflowed or closed,
    /// so a waiting reader never hangs).
    pub async fn below_high_water(&self) {
        poll_fn(|cx| {
            let done = || {
                !self.past_high_water()
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

    /// Items currently queued (counted as they are pushed, so one being pushed is included).
    pub fn len(&self) -> usize {
        Load(self.load.load(Ordering::Acquire)).frames() as usize
    }

    /// Bytes of frames currently queued.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> u64 {
        Load(self.load.load(Ordering::Acquire)).bytes()
    }

    /// Whether nothing is stored for the writer.
    pub fn is_empty(&self) -> bool {
        self.chain.is_empty()
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

    /// Stored items, not counted ones: a pusher wakes the writer after storing, so a writer that
    /// found nothing stored is woken again once the item is there.
    fn has_work(&self) -> bool {
        let counted = Load(self.load.load(Ordering::Acquire)).frames() > 0;
        // The count says so, unless the writer's last take found nothing although items were
        // counted (their pushers had not stored them yet): then look at the chain itself, so the
        // writer parks until those pushers wake it instead of spinning. Most wake-ups take the
        // first branch and never touch the chain's lock.
        (counted && (!self.starved.load(Ordering::Relaxed) || !self.chain.is_empty()))
            || self.overflowed.load(Ordering::Acquire)
            || self.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::broker::{Frame, StoredEvent};

    fn frame(s: &'static str) -> Outgoing {
        event_of(Frame::from_static(s))
    }

    fn event_of(frame: Frame) -> Outgoing {
        Outgoing::Event(Arc::new(StoredEvent {
            seq: 1,
            frame,
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

    fn sized(n: usize) -> Outgoing {
        Outgoing::frame(Frame::from("x".repeat(n)))
    }

    #[test]
    fn an_idle_outbox_holds_no_queue_memory() {
        let o = Outbox::new(10_000, SlowConsumerPolicy::Disconnect);
        assert_eq!(o.slots(), 0, "nothing allocated before the first push");
        o.push(frame("ack"));
        assert_eq!(o.slots(), chain::FIRST_SEGMENT);
        assert_eq!(text(o.pop()), "ack");
        assert!(o.release_if_idle());
        assert_eq!(o.slots(), 0, "given back once idle");
        o.push(frame("again"));
        assert!(!o.release_if_idle(), "never while something is queued");
        assert_eq!(text(o.pop()), "again");
    }

    #[test]
    fn a_burst_grows_the_chain_in_order_and_spent_segments_go() {
        let o = Outbox::new(10_000, SlowConsumerPolicy::Disconnect);
        for i in 0..5_000 {
            assert_eq!(o.push(sized(i % 7)), Pushed::Queued);
        }
        assert_eq!(o.len(), 5_000);
        assert!(o.slots() >= 5_000 && o.slots() < 10_000, "{}", o.slots());
        let mut out = Vec::new();
        let mut n = 0;
        while o.pop_into(100, &mut out) > 0 {
            for item in out.drain(..) {
                assert_eq!(item.weight(), (n % 7) as u64, "FIFO across segments");
                n += 1;
            }
        }
        assert_eq!(n, 5_000);
        assert_eq!((o.len(), o.bytes()), (0, 0));
        assert!(
            o.slots() <= 4096,
            "only the last segment stays: {}",
            o.slots()
        );
    }

    #[test]
    fn the_byte_limit_applies_before_the_frame_limit() {
        let o = Outbox::new(100, SlowConsumerPolicy::Disconnect).with_max_bytes(1024);
        for _ in 0..3 {
            assert_eq!(o.push(sized(300)), Pushed::Queued);
        }
        assert_eq!(o.bytes(), 900);
        assert!(o.past_high_water(), "past half the bytes");
        assert!(o.has_room(1), "but not full");
        assert_eq!(o.push(sized(300)), Pushed::Rejected, "1,200 bytes > 1,024");
        assert!(o.overflowed());
        assert_eq!(o.len(), 3, "the refused item is not counted");
    }

    #[test]
    fn one_item_larger_than_the_byte_limit_still_goes_to_an_empty_queue() {
        let o = Outbox::new(100, SlowConsumerPolicy::Disconnect).with_max_bytes(1024);
        assert_eq!(o.push(sized(5000)), Pushed::Queued);
        assert_eq!(o.push(sized(1)), Pushed::Rejected);
    }

    #[test]
    fn drop_oldest_evicts_until_the_bytes_fit() {
        let o = Outbox::new(100, SlowConsumerPolicy::DropOldest).with_max_bytes(1024);
        for _ in 0..3 {
            o.push(frame_event(300));
        }
        assert_eq!(o.push(frame_event(700)), Pushed::DroppedOldest);
        assert_eq!(o.dropped(), 2, "two of 300 make room for 700");
        assert_eq!(o.bytes(), 1000);
        assert!(!o.overflowed());
    }

    fn frame_event(n: usize) -> Outgoing {
        event_of(Frame::from("e".repeat(n)))
    }
}
