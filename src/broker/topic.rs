//! One topic: its subscriber snapshot, its sequencer and its replay ring.
//!
//! # Concurrency
//! - Publishers read the subscriber list with one `ArcSwap::load`, no lock.
//! - Publishers of the *same* topic are ordered by the `sequencer` mutex: taking the next `seq`,
//!   appending to the ring and pushing to the outboxes happen inside it, so every subscriber
//!   receives events in `seq` order. Without it two publishers could take seq 5 and 6 and push
//!   them in the opposite order. The critical section is short (the frame is built before it) and
//!   never awaits; subscribers, ring readers and other topics never take it.
//! - Subscribe, unsubscribe and delete replace the snapshot copy-on-write inside the same mutex.
//!   That is what makes replay exact: the ack's `seq`, the replayed run and the first live event
//!   are decided at one point between two publishes, so nothing is missed or sent twice.

use std::io::Write;
use std::mem;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::counts::EventCounts;
use super::event::{EventBuilder, StoredEvent};
use super::history::{History, SparseRing};
use super::lifecycle::{self, Lifecycle};
use super::members::Members;
use super::outbox::{event_weight, Outgoing, Replayed};
use super::presence::{Joining, Presence};
use super::rate_limit::RateLimiter;
use super::ring::Ring;
use super::subscriber::{ConnId, FanOut, Subscriber, Subscribers};
use crate::clock;
use crate::error::{ApiError, ErrorCode};
use crate::protocol::server as frames;
use crate::protocol::{Dialect, Frame, Published, Replay, SubscribeAck, TopicName};
use crate::sync::{ArcSwap, AtomicBool, AtomicU64, Mutex};

mod cluster;
mod lease;
mod presence;
mod wildcard;

pub use lease::InFlight;

/// A fresh opaque epoch: 16 hex digits of a random UUID.
pub fn new_epoch() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

/// State only the sequencer's holder may touch.
#[derive(Debug)]
struct Sequencer {
    /// Last `seq` handed out.
    seq: u64,
    /// Present when `MAX_PUBLISH_RATE` is set.
    limiter: Option<RateLimiter>,
    /// Who is subscribed and why, to keep the snapshot's one entry per connection right.
    members: Members,
}

/// Who a topic is in cluster mode: the identity every node gives it, from the shared registry.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The epoch clients see.
    pub epoch: Box<str>,
    /// When it was created (RFC 3339).
    pub created_at: Box<str>,
    /// The registry revision that created it; a higher one is a later life of the same name.
    pub generation: u64,
    /// Whether this node joined after the topic had messages (its ring comes from the stream).
    pub rebuilt: bool,
    /// Created by subscribe or publish (it may expire when idle), not by `POST /topics`.
    pub implicit: bool,
}

/// A topic.
#[derive(Debug)]
pub struct Topic {
    /// Its name.
    name: TopicName,
    /// Changes whenever `seq` numbering starts over (here: each time the topic is created), so a
    /// resuming client can tell its `since_seq` belongs to another life of the topic.
    epoch: Box<str>,
    /// When it was created, for `GET /topics/{name}`.
    created_at: Box<str>,
    /// The cluster registry revision of this life of the topic; 0 on a single node.
    generation: u64,
    /// Current subscribers; replaced copy-on-write, read lock-free by publishers.
    subscribers: ArcSwap<Subscribers>,
    /// Orders publishes and subscription changes (see the module docs).
    sequencer: Mutex<Sequencer>,
    /// The last `RING_BUFFER_SIZE` events.
    ring: History,
    /// Set once the topic is removed from the registry; late publishers and subscribers retry.
    deleted: AtomicBool,
    /// Events evicted from subscribers' outboxes under `drop_oldest` (PROTOCOL.md §1). Written
    /// only by the sequencer's holder, once per publish that dropped something.
    dropped: AtomicU64,
    /// The rest of the topic's event counts, for `/metrics`.
    tally: Tally,
    /// What the idle sweep knows of it.
    life: Lifecycle,
    /// `HISTORY_TTL_SECS` in ms: older events are not replayed; 0 keeps them all.
    history_ttl_ms: u64,
    /// Who is on the topic (`broker/presence.rs`); never taken by a publish. Made on first use:
    /// a topic only published to carries one word for it.
    presence: Mutex<Option<Box<Presence>>>,
}

/// A topic's event counts besides `dropped`. Only the sequencer's holder writes them, so a write
/// is a plain load and store (no locked read-modify-write) and readers never block a publish.
#[derive(Debug, Default)]
struct Tally {
    /// Messages published.
    published: AtomicU64,
    /// Events enqueued to subscribers.
    delivered: AtomicU64,
    /// Events refused by an outbox that overflowed under `disconnect`.
    dropped_slow_consumer: AtomicU64,
    /// Events refused by an outbox whose connection was closing.
    dropped_closed: AtomicU64,
}

/// Adds `n` to a counter that only the sequencer's holder writes.
fn bump(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}

impl Topic {
    /// A new empty topic with a fresh epoch.
    pub fn new(name: TopicName, ring_size: usize, max_publish_rate: u32) -> Self {
        let limiter = (max_publish_rate > 0).then(|| RateLimiter::per_second(max_publish_rate));
        Self {
            name,
            epoch: new_epoch().into(),
            created_at: clock::now().as_str().into(),
            generation: 0,
            subscribers: ArcSwap::from_pointee(Subscribers::default()),
            sequencer: Mutex::new(Sequencer {
                seq: 0,
                limiter,
                members: Members::default(),
            }),
            ring: History::Dense(Ring::new(ring_size)),
            deleted: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            tally: Tally::default(),
            life: Lifecycle::new(false),
            history_ttl_ms: 0,
            presence: Mutex::new(None),
        }
    }

    /// The same topic, expiring when idle if `implicit`, replaying events younger than
    /// `history_ttl_ms` only (0 = all).
    pub(crate) fn with_lifecycle(mut self, implicit: bool, history_ttl_ms: u64) -> Self {
        self.life = Lifecycle::new(implicit);
        self.history_ttl_ms = history_ttl_ms;
        self
    }

    /// What the idle sweep knows of it.
    pub(crate) fn life(&self) -> &Lifecycle {
        &self.life
    }

    /// Whether it was created by subscribe or publish and may expire when idle.
    pub fn is_implicit(&self) -> bool {
        self.life.is_implicit()
    }

    /// A cluster-mode topic: its identity comes from the shared registry and its `seq`s from the
    /// stream, so they skip numbers.
    pub fn with_identity(
        name: TopicName,
        ring_size: usize,
        max_publish_rate: u32,
        identity: Identity,
    ) -> Self {
        let mut topic = Self::new(name, ring_size, max_publish_rate);
        topic.epoch = identity.epoch;
        topic.created_at = identity.created_at;
        topic.generation = identity.generation;
        topic.ring = History::Sparse(SparseRing::new(ring_size, identity.rebuilt));
        topic
    }

    /// The cluster registry revision of this life of the topic (0 on a single node).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Its name.
    pub fn name(&self) -> &TopicName {
        &self.name
    }

    /// Its epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// When it was created.
    pub fn created_at(&self) -> &str {
        &self.created_at
    }

    /// Messages published since the topic was created (in cluster mode: that this node saw).
    pub fn messages(&self) -> u64 {
        self.ring.messages()
    }

    /// Latest `seq` (0 before the first message).
    pub fn seq(&self) -> u64 {
        self.ring.head()
    }

    /// Current subscriptions.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.load().len()
    }

    /// Events dropped for slow subscribers under `drop_oldest`.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// What happened to this topic's events so far.
    pub fn event_counts(&self) -> EventCounts {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EventCounts {
            published: load(&self.tally.published),
            delivered: load(&self.tally.delivered),
            dropped_oldest: load(&self.dropped),
            dropped_slow_consumer: load(&self.tally.dropped_slow_consumer),
            dropped_closed: load(&self.tally.dropped_closed),
        }
    }

    /// Whether the topic was deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Up to `n` stored events younger than `HISTORY_TTL_SECS`, oldest first.
    pub fn history(&self, n: usize) -> Vec<Arc<StoredEvent>> {
        let mut events = self.ring.last_n(n);
        self.drop_aged(&mut events);
        events
    }

    /// Drops events older than `HISTORY_TTL_SECS`; returns whether any went.
    fn drop_aged(&self, events: &mut Vec<Arc<StoredEvent>>) -> bool {
        self.history_ttl_ms > 0
            && lifecycle::drop_aged(events, self.history_ttl_ms, crate::clock::unix_millis())
    }

    /// The sweep's removal check, run inside `DashMap::remove_if`: marks the topic deleted if it
    /// has no subscriber and its activity mark is still `mark` (nothing was published, subscribed
    /// or unsubscribed since the sweep looked). Under the sequencer, so no publish or subscribe is
    /// inside.
    pub(crate) fn retire_if_idle(&self, mark: u64) -> bool {
        let _sequencer = self.sequencer.lock();
        if self.is_deleted()
            || !self.subscribers.load().is_empty()
            || self.life.mark(self.ring.messages()) != mark
        {
            return false;
        }
        self.deleted.store(true, Ordering::Release);
        true
    }

    /// Assigns the next `seq`, stores the event and queues it for every subscriber.
    /// `Ok(None)` when the topic was deleted meanwhile (the caller looks it up again).
    pub(crate) fn publish(&self, event: &mut EventBuilder) -> Result<Option<Published>, ApiError> {
        let mut sequencer = self.sequencer.lock();
        if self.is_deleted() {
            return Ok(None);
        }
        if let Some(limiter) = &mut sequencer.limiter {
            if !limiter.try_take() {
                return Err(ApiError::new(
                    ErrorCode::RateLimited,
                    format!("topic `{}` is over MAX_PUBLISH_RATE", self.name),
                ));
            }
        }
        sequencer.seq += 1;
        let seq = sequencer.seq;
        let published = self.store_and_fan_out(seq, event)?;
        drop(sequencer);
        Ok(Some(published))
    }

    /// Completes the frame with `seq`, stores it and queues it for every subscriber. The caller
    /// holds the sequencer.
    #[inline]
    fn store_and_fan_out(&self, seq: u64, event: &mut EventBuilder) -> Result<Published, ApiError> {
        let mut buf = mem::take(&mut event.buf);
        let _ = write!(buf, "{seq}}}");
        let frame = Frame::try_from(Bytes::from(buf))
            .map_err(|_| ApiError::new(ErrorCode::Internal, "event frame is not UTF-8"))?;
        let stored = Arc::new(StoredEvent {
            seq,
            frame,
            id: event.id.clone(),
            payload: event.payload.clone(),
            ts: event.ts.clone(),
            seed_c: OnceLock::new(),
            deflated: OnceLock::new(),
            at_ms: event.at_ms,
        });
        let mut counts = FanOut::default();
        let subscribers = self.subscribers.load();
        let weight = event_weight(&stored);
        for recipient in &subscribers.plain {
            counts.add(&recipient.outbox, Outgoing::Event(stored.clone()), weight);
        }
        for recipient in &subscribers.seed_c {
            counts.add(&recipient.outbox, Outgoing::SeedC(stored.clone()), weight);
        }
        let FanOut {
            delivered,
            dropped,
            overflowed,
            closed,
        } = counts;
        bump(&self.dropped, dropped);
        bump(&self.tally.published, 1);
        bump(&self.tally.delivered, delivered);
        bump(&self.tally.dropped_slow_consumer, overflowed);
        bump(&self.tally.dropped_closed, closed);
        let id_json = stored.id_json().into();
        self.ring.push(stored);
        Ok(Published { id_json, seq })
    }

    /// Adds `subscriber` (idempotent) and queues the ack built by `ack` followed by the replay.
    /// Returns false when the topic was deleted meanwhile.
    #[cfg(test)]
    pub(crate) fn subscribe(
        &self,
        subscriber: &Subscriber,
        replay: &Replay,
        ack: Option<&dyn Fn(&SubscribeAck) -> Frame>,
    ) -> bool {
        self.subscribe_as(subscriber, replay, ack, None).is_some()
    }

    /// [`Topic::subscribe`], counting the subscription in presence as `joining` (when given).
    /// `None` when the topic was deleted meanwhile, else whether it needs a presence flush.
    pub(crate) fn subscribe_as(
        &self,
        subscriber: &Subscriber,
        replay: &Replay,
        ack: Option<&dyn Fn(&SubscribeAck) -> Frame>,
        joining: Option<&Joining>,
    ) -> Option<bool> {
        let mut sequencer = self.sequencer.lock();
        if self.is_deleted() {
            return None;
        }
        self.life.touch();
        let current = self.subscribers.load();
        let next = sequencer.members.join(&current, subscriber);
        let already = next.is_none();
        let mut claimed = false;
        if let Some(next) = next {
            self.subscribers.store(Arc::new(next));
            if let Some(joining) = joining {
                claimed = self.with_presence(|p| p.join(subscriber, joining));
            }
        } else if let Some(joining) = joining.filter(|j| j.events) {
            // Subscribed already: asking again with `presence_events` turns notices on.
            self.with_presence(|p| p.watch(subscriber, joining));
        }
        let latest = sequencer.seq;
        // A repeated subscribe replays nothing: the connection already has those events.
        let (events, recovered) = match replay {
            _ if already => (Vec::new(), None),
            Replay::None => (Vec::new(), None),
            Replay::LastN(n) => (
                self.history(usize::try_from(*n).unwrap_or(usize::MAX)),
                Some(true),
            ),
            Replay::Since { epoch: Some(e), .. } if **e != *self.epoch => (Vec::new(), Some(false)),
            Replay::Since { seq, .. } if *seq > latest => (Vec::new(), Some(false)),
            Replay::Since { seq, .. } => {
                // Events past HISTORY_TTL_SECS are ones the client has not seen: a gap.
                let (mut events, complete) = self.ring.since(*seq);
                let aged = self.drop_aged(&mut events);
                (events, Some(complete && !aged))
            }
        };
        let ack = ack.map(|ack| {
            ack(&SubscribeAck {
                seq: latest,
                epoch: &self.epoch,
                recovered,
            })
        });
        let item = match (ack, subscriber.dialect) {
            (ack, _) if events.is_empty() => ack.map(Outgoing::frame),
            // Events go by reference: a compressing connection sends their compressed form.
            (ack, Dialect::Canonical) => Some(Outgoing::Replay(Box::new(Replayed { ack, events }))),
            (ack, Dialect::SeedC) => Some(Outgoing::batch(
                ack.into_iter()
                    .chain(events.iter().map(|e| e.seed_c().clone()))
                    .collect(),
            )),
        };
        if let Some(item) = item {
            subscriber.outbox.push(item);
        }
        drop(sequencer);
        Some(claimed)
    }

    /// Removes the connection's subscription; returns whether it had one.
    pub fn unsubscribe(&self, conn: ConnId) -> bool {
        self.unsubscribe_counted(conn).0
    }

    /// Marks the topic deleted, empties its subscriber list and tells each subscriber. Returns
    /// whether the topic needs a presence flush (cluster mode: its local counts went to zero).
    pub(crate) fn close(&self) -> bool {
        let mut sequencer = self.sequencer.lock();
        self.deleted.store(true, Ordering::Release);
        sequencer.members.clear();
        let claimed = self.presence.lock().as_mut().is_some_and(|p| p.clear());
        let gone = self.subscribers.swap(Arc::new(Subscribers::default()));
        // Pattern subscribers are told too; they stay subscribed to their patterns.
        if gone.all().next().is_none() {
            return claimed;
        }
        let info = frames::info_topic_deleted(&self.name);
        for recipient in gone.all() {
            recipient.outbox.push(Outgoing::info(info.clone()));
        }
        claimed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Outbox;
    use crate::config::SlowConsumerPolicy;
    use crate::protocol::Dialect;
    use crate::protocol::Payload;

    fn topic() -> Topic {
        Topic::new(TopicName::parse("t").unwrap(), 4, 0)
    }

    fn sub(id: u64) -> Subscriber {
        Subscriber {
            conn: ConnId(id),
            outbox: Arc::new(Outbox::new(64, SlowConsumerPolicy::Disconnect)),
            dialect: Dialect::Canonical,
        }
    }

    fn publish(t: &Topic, text: &str) -> u64 {
        let mut ev = EventBuilder::new(t.name(), Some("x"), Payload::Text(text), 1 << 20).unwrap();
        t.publish(&mut ev).unwrap().unwrap().seq
    }

    fn texts(o: &Outbox) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(item) = o.pop() {
            out.extend(item.frames().map(|f| f.as_str().to_string()));
        }
        out
    }

    #[test]
    fn event_frame_is_valid_json_with_every_field() {
        let t = topic();
        let s = sub(1);
        assert!(t.subscribe(&s, &Replay::None, None));
        publish(&t, "hi \"there\"");
        let got = texts(&s.outbox);
        let v: serde_json::Value = serde_json::from_str(&got[0]).unwrap();
        assert_eq!(v["type"], "event");
        assert_eq!(v["topic"], "t");
        assert_eq!(v["message"]["id"], "x");
        assert_eq!(v["message"]["payload"], "hi \"there\"");
        assert_eq!(v["seq"], 1);
        let stored = &t.history(1)[0];
        assert_eq!(stored.payload_json(), r#""hi \"there\"""#);
        assert_eq!(stored.id_json(), r#""x""#);
        assert_eq!(stored.ts(), v["ts"].as_str().unwrap());
    }

    /// A seed-c subscriber's frame is rendered only when first needed, once, and shared with
    /// every other seed-c subscriber and replay; canonical subscribers get the stored frame.
    #[test]
    fn seed_c_frames_are_rendered_lazily_once_and_shared() {
        let t = Topic::new(TopicName::parse("notes").unwrap(), 8, 0);
        let plain = sub(1);
        let seed = |id| Subscriber {
            dialect: Dialect::SeedC,
            ..sub(id)
        };
        let (c1, c2, late) = (seed(2), seed(3), seed(4));
        for s in [&plain, &c1, &c2] {
            assert!(t.subscribe(s, &Replay::None, None));
        }
        publish(&t, "hello");
        let Some(Outgoing::Event(stored)) = plain.outbox.pop() else {
            panic!("canonical subscriber got no event");
        };
        assert!(
            stored.seed_c.get().is_none(),
            "rendered before anyone needed it"
        );
        let take = |s: &Subscriber| match s.outbox.pop() {
            Some(item @ Outgoing::SeedC(_)) => {
                item.frames().next().expect("a frame").as_bytes().clone()
            }
            other => panic!("expected a seed-c event, got {other:?}"),
        };
        let (first, second) = (take(&c1), take(&c2));
        assert_eq!(first.as_ptr(), second.as_ptr(), "rendered twice");
        let v: serde_json::Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(v["topic"], "notes");
        assert_eq!(v["data"], "hello");
        assert_eq!(v["seq"], 1);
        assert_eq!(v["timestamp"].as_str(), Some(stored.ts()));
        assert_eq!(v["id"].to_string(), stored.id_json());
        assert!(t.subscribe(&late, &Replay::LastN(1), None));
        let replay = late.outbox.pop().expect("replayed");
        let replayed = replay.frames().next().expect("a frame").as_bytes().clone();
        assert_eq!(replayed.as_ptr(), first.as_ptr(), "replay rendered again");
        // Either shape unsubscribes alike; a repeated subscribe does not add a second shape.
        assert!(t.subscribe(
            &Subscriber {
                dialect: Dialect::Canonical,
                ..seed(2)
            },
            &Replay::None,
            None
        ));
        assert_eq!(t.subscriber_count(), 4);
        assert!(t.unsubscribe(c1.conn) && t.unsubscribe(plain.conn));
        assert_eq!(t.subscriber_count(), 2);
        publish(&t, "again");
        assert!(c1.outbox.pop().is_none() && plain.outbox.pop().is_none());
        assert!(matches!(c2.outbox.pop(), Some(Outgoing::SeedC(_))));
    }

    #[test]
    fn subscribe_twice_delivers_once() {
        let t = topic();
        let s = sub(1);
        t.subscribe(&s, &Replay::None, None);
        t.subscribe(&s, &Replay::LastN(3), None);
        assert_eq!(t.subscriber_count(), 1);
        publish(&t, "a");
        assert_eq!(texts(&s.outbox).len(), 1);
    }

    #[test]
    fn since_with_wrong_epoch_replays_nothing() {
        let t = topic();
        for p in ["a", "b"] {
            publish(&t, p);
        }
        let s = sub(1);
        let recovered = std::cell::Cell::new(None);
        let ack = |a: &SubscribeAck| {
            recovered.set(Some(a.recovered));
            Frame::from_static("{}")
        };
        let replay = Replay::Since {
            seq: 0,
            epoch: Some("other".into()),
        };
        t.subscribe(&s, &replay, Some(&ack));
        assert_eq!(recovered.get(), Some(Some(false)));
        assert_eq!(texts(&s.outbox), vec!["{}"]);
    }

    #[test]
    fn delete_notifies_and_empties() {
        let t = topic();
        let s = sub(1);
        t.subscribe(&s, &Replay::None, None);
        t.close();
        assert_eq!(t.subscriber_count(), 0);
        assert!(texts(&s.outbox)[0].contains("topic_deleted"));
        let mut ev = EventBuilder::new(t.name(), None, Payload::Text("x"), 10).unwrap();
        assert!(t.publish(&mut ev).unwrap().is_none());
    }

    #[test]
    fn rate_limit_refuses_past_the_burst() {
        let t = Topic::new(TopicName::parse("t").unwrap(), 4, 3);
        for _ in 0..3 {
            publish(&t, "ok");
        }
        let mut ev = EventBuilder::new(t.name(), None, Payload::Text("x"), 10).unwrap();
        let err = t.publish(&mut ev).unwrap_err();
        assert_eq!(err.code, ErrorCode::RateLimited);
    }
}
