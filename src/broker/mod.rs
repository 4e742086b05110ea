//! The engine: topic registry, topics and outboxes. No I/O happens in here; the server feeds it
//! parsed requests and drains the outboxes it fills.
//!
//! Topics live in a `DashMap` (sharded, so unrelated topics never contend). Each topic keeps its
//! subscriber list as an `ArcSwap` snapshot that subscribe/unsubscribe replace copy-on-write, so a
//! publish reads it without a lock. A publish serializes its event frame once; the same buffer goes
//! into the topic's replay ring and into every subscriber's outbox.

mod counts;
mod event;
mod history;
mod lifecycle;
#[cfg(all(test, herald_loom))]
mod loom_tests;
mod members;
pub mod outbox;
mod patterns;
mod presence;
mod presence_hub;
mod presence_ops;
mod rate_limit;
mod registry;
pub mod ring;
mod subscriber;
mod sweep;
#[cfg(test)]
mod sweep_tests;
mod topic;
mod wildcard;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use parking_lot::Mutex;

pub use counts::{EventCounts, TopicStats};
pub(crate) use event::EventBuilder;
pub use event::StoredEvent;
pub use lifecycle::Lease;
pub use outbox::{Outbox, Outgoing, Pushed, Replayed};
use patterns::PatternIndex;
pub use presence::{Joining, PresenceDelta};
use presence_hub::PresenceHub;
pub use ring::Ring;
pub use subscriber::{ConnId, Subscriber};
use sweep::Sweeper;
pub use sweep::{sweep_interval, SWEEP_BATCH};
pub use topic::{new_epoch, Identity, InFlight, Topic};

use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::histogram::{self, Histogram, HistogramSnapshot};
use crate::protocol::{Frame, Payload, Published, Replay, SubscribeAck, TopicName};

/// Lookups a publish or subscribe makes when the topic it found is deleted or expired meanwhile.
const RETRIES: usize = 4;

/// The topic registry and the settings the engine enforces.
#[derive(Debug)]
pub struct Broker {
    /// Every live topic by name.
    topics: DashMap<TopicName, Arc<Topic>>,
    /// Topics that exist, kept beside the map because `DashMap::len` locks every shard.
    topic_count: AtomicUsize,
    /// Source of connection ids.
    next_conn: AtomicU64,
    /// Replay ring size for new topics.
    ring_size: usize,
    /// Whether subscribe/publish create a missing topic here. Off in cluster mode, where topics
    /// are created in the shared registry and then [`Broker::install`]ed on every node.
    auto_create: bool,
    /// Upper bound on `topic_count`.
    max_topics: usize,
    /// Largest payload accepted, bytes of compact JSON.
    max_message_bytes: usize,
    /// Publishes per second per topic (0 = unlimited).
    max_publish_rate: u32,
    /// When the broker started, for `/health`.
    started: Instant,
    /// Counts of topics deleted since, so totals never go backwards. Held while a topic moves
    /// from the map to here and while a scrape sums, so a scrape sees it in exactly one place.
    retired: Mutex<EventCounts>,
    /// Publish-to-enqueue latency (sharded, so publishers on different threads do not contend).
    publish_latency: Histogram,
    /// `TOPIC_IDLE_TTL_SECS` when implicit topics expire (not 0).
    idle_ttl: Option<Duration>,
    /// `HISTORY_TTL_SECS` in ms for new topics; 0 keeps events regardless of age.
    history_ttl_ms: u64,
    /// The idle sweep's queue and count.
    sweeper: Sweeper,
    /// Every pattern subscription (issue 20). Held while a topic is created and while a pattern
    /// is added or removed, never by a publish (`patterns.rs` says why that is exact).
    patterns: Mutex<PatternIndex>,
    /// Pattern subscriptions stored, readable without the lock for `/stats`.
    pattern_count: AtomicUsize,
    /// `MAX_PATTERN_SUBSCRIPTIONS`.
    max_patterns: usize,
    /// Topics with presence notices or changes to flush, and notice counts (issue 21).
    presence: PresenceHub,
}

impl Broker {
    /// An empty broker enforcing `config`'s limits.
    pub fn new(config: &Config) -> Self {
        Self {
            topics: DashMap::new(),
            topic_count: AtomicUsize::new(0),
            next_conn: AtomicU64::new(1),
            ring_size: config.ring_buffer_size,
            auto_create: config.auto_create_topics && config.nats_url.is_none(),
            max_topics: config.max_topics,
            max_message_bytes: config.max_message_bytes,
            max_publish_rate: config.max_publish_rate,
            started: Instant::now(),
            retired: Mutex::new(EventCounts::default()),
            publish_latency: histogram::publish_latency_histogram(),
            idle_ttl: (!config.topic_idle_ttl.is_zero()).then_some(config.topic_idle_ttl),
            history_ttl_ms: u64::try_from(config.history_ttl.as_millis()).unwrap_or(u64::MAX),
            sweeper: Sweeper::new(config.topic_idle_ttl),
            patterns: Mutex::new(PatternIndex::default()),
            pattern_count: AtomicUsize::new(0),
            max_patterns: config.max_pattern_subscriptions,
            presence: PresenceHub::default(),
        }
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// Seconds since start.
    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Number of topics.
    pub fn topic_count(&self) -> usize {
        self.topic_count.load(Ordering::Relaxed)
    }

    /// The topic called `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.get(name).map(|t| t.value().clone())
    }

    /// The topic for a subscribe or publish: existing, or created when auto-create is on.
    pub fn resolve(&self, name: &TopicName) -> Result<Arc<Topic>, ApiError> {
        if let Some(topic) = self.get(name.as_str()) {
            return Ok(topic);
        }
        if !self.auto_create {
            return Err(ApiError::new(
                ErrorCode::TopicNotFound,
                format!("topic `{name}` does not exist"),
            ));
        }
        self.insert(name, true).map(|(topic, _)| topic)
    }

    /// Creates `name` explicitly (`POST /topics`); `CONFLICT` when it exists.
    pub fn create_topic(&self, name: &TopicName) -> Result<Arc<Topic>, ApiError> {
        match self.insert(name, false)? {
            (topic, true) => Ok(topic),
            (_, false) => Err(ApiError::new(
                ErrorCode::Conflict,
                format!("topic `{name}` already exists"),
            )),
        }
    }

    /// Inserts a topic unless one exists; returns it and whether it was created now. An
    /// `implicit` one (made by subscribe or publish) may expire when idle.
    fn insert(&self, name: &TopicName, implicit: bool) -> Result<(Arc<Topic>, bool), ApiError> {
        let patterns = self.patterns.lock();
        match self.topics.entry(name.clone()) {
            Entry::Occupied(e) => Ok((e.get().clone(), false)),
            Entry::Vacant(e) => {
                // Reserve a slot first so concurrent creators cannot overshoot the limit.
                let before = self.topic_count.fetch_add(1, Ordering::AcqRel);
                if before >= self.max_topics {
                    self.topic_count.fetch_sub(1, Ordering::AcqRel);
                    return Err(ApiError::new(
                        ErrorCode::LimitExceeded,
                        format!("MAX_TOPICS ({}) reached", self.max_topics),
                    ));
                }
                let expires = implicit && self.idle_ttl.is_some();
                let topic = Arc::new(
                    Topic::new(name.clone(), self.ring_size, self.max_publish_rate)
                        .with_lifecycle(expires, self.history_ttl_ms),
                );
                // Listed before it is published in the map, so no publish reaches it without
                // the pattern subscribers already acked.
                patterns::apply(&patterns, &topic);
                e.insert(topic.clone());
                if expires {
                    self.sweeper.watch(&topic);
                }
                Ok((topic, true))
            }
        }
    }

    /// One idle-sweep tick (`TOPIC_IDLE_TTL_SECS`): looks at up to [`SWEEP_BATCH`] implicit topics
    /// and removes those idle for the TTL (`lifecycle.rs` says why that never races a publish or
    /// subscribe). Returns how many it removed; nothing when the TTL is off.
    pub fn sweep(&self) -> usize {
        if self.idle_ttl.is_none() {
            return 0;
        }
        self.sweeper
            .tick(self.clock_ms(), |topic, mark| self.expire(topic, mark))
    }

    /// Cluster mode's sweep tick: the implicit topics idle here for the TTL, left in place (only
    /// the cluster removes them, once every node agrees). Empty when the TTL is off.
    pub fn idle_candidates(&self) -> Vec<Arc<Topic>> {
        let mut idle = Vec::new();
        if self.idle_ttl.is_some() {
            self.sweeper.tick(self.clock_ms(), |topic, _| {
                idle.push(topic.clone());
                false
            });
        }
        idle
    }

    /// Cluster expiry's vote on `topic`: whether it has been idle here for the TTL with nothing in
    /// flight. An idle vote leases the topic for `lease_ms` (operations on it wait, see
    /// `lifecycle.rs`) until [`Broker::release`], its removal, or the lease running out.
    pub fn vote_idle(&self, topic: &Topic, lease_ms: u64) -> bool {
        let Some(ttl) = self.idle_ttl else {
            return false;
        };
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let now = self.clock_ms();
        topic.vote_idle(now, ttl, now.saturating_add(lease_ms))
    }

    /// Ends this node's expiry lease on `topic` (the cluster keeps it).
    pub fn release(&self, topic: &Topic) {
        topic.life().release();
    }

    /// Where this node's expiry lease on the topic `held` uses stood when it was made, now.
    pub fn lease(&self, held: &InFlight) -> Lease {
        held.lease_at(self.clock_ms())
    }

    /// The sweep clock: ms since the broker started.
    fn clock_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// Removes `topic` if it is still the live topic of its name and its activity mark is still
    /// `mark`.
    fn expire(&self, topic: &Arc<Topic>, mark: u64) -> bool {
        // Held across the removal, as in `delete_topic`, so a scrape counts the topic's events
        // exactly once.
        let mut retired = self.retired.lock();
        let removed = self.topics.remove_if(topic.name(), |_, live| {
            Arc::ptr_eq(live, topic) && live.retire_if_idle(mark)
        });
        if removed.is_none() {
            return false;
        }
        self.topic_count.fetch_sub(1, Ordering::AcqRel);
        *retired += topic.event_counts();
        true
    }

    /// Implicit topics removed for being idle since start.
    pub fn topics_expired(&self) -> u64 {
        self.sweeper.expired()
    }

    /// `TOPIC_IDLE_TTL_SECS`, unless 0.
    pub fn idle_ttl(&self) -> Option<Duration> {
        self.idle_ttl
    }

    /// Whether another topic may be created (`MAX_TOPICS`); `LIMIT_EXCEEDED` when not.
    pub fn check_topic_limit(&self) -> Result<(), ApiError> {
        if self.topic_count() >= self.max_topics {
            return Err(ApiError::new(
                ErrorCode::LimitExceeded,
                format!("MAX_TOPICS ({}) reached", self.max_topics),
            ));
        }
        Ok(())
    }

    /// Largest payload accepted, bytes of compact JSON.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Removes `name`: its subscribers get `topic_deleted` and are unsubscribed.
    pub fn delete_topic(&self, name: &str) -> Result<(), ApiError> {
        let mut retired = self.retired.lock();
        let Some((_, topic)) = self.topics.remove(name) else {
            return Err(ApiError::new(
                ErrorCode::TopicNotFound,
                format!("topic `{name}` does not exist"),
            ));
        };
        self.topic_count.fetch_sub(1, Ordering::AcqRel);
        // After `close` no publish can change the topic's counts any more.
        let claimed = topic.close();
        self.presence.queue(&topic, claimed);
        *retired += topic.event_counts();
        Ok(())
    }

    /// Publishes to `name`, creating it if allowed. The payload is written straight into the
    /// event frame, which is then shared by the ring and every subscriber.
    pub fn publish(
        &self,
        name: &TopicName,
        id: Option<&str>,
        payload: Payload<'_>,
    ) -> Result<Published, ApiError> {
        let start = Instant::now();
        let mut frame = EventBuilder::new(name, id, payload, self.max_message_bytes)?;
        // A topic deleted (or expired) between lookup and publish is looked up again: with
        // auto-create the message lands in a new topic, otherwise the caller hears
        // TOPIC_NOT_FOUND. A new topic cannot expire before the sweep saw it idle for the TTL,
        // so the retries end.
        for _ in 0..RETRIES {
            let topic = self.resolve(name)?;
            if let Some(published) = topic.publish(&mut frame)? {
                self.publish_latency.observe_duration(start.elapsed());
                return Ok(published);
            }
        }
        Err(ApiError::new(
            ErrorCode::TopicNotFound,
            format!("topic `{name}` was deleted"),
        ))
    }

    /// Subscribes `subscriber` to `name` (creating it if allowed) and queues the ack (when
    /// `ack` is given) followed by any replay, in one outbox slot. With `joining`, the
    /// subscription counts in the topic's presence.
    pub fn subscribe(
        &self,
        name: &TopicName,
        subscriber: &Subscriber,
        replay: &Replay,
        ack: Option<&dyn Fn(&SubscribeAck) -> Frame>,
        joining: Option<&Joining>,
    ) -> Result<Arc<Topic>, ApiError> {
        for _ in 0..RETRIES {
            let topic = self.resolve(name)?;
            if let Some(claimed) = topic.subscribe_as(subscriber, replay, ack, joining) {
                self.presence.queue(&topic, claimed);
                return Ok(topic);
            }
        }
        Err(ApiError::new(
            ErrorCode::TopicNotFound,
            format!("topic `{name}` was deleted"),
        ))
    }

    /// Events dropped under `drop_oldest` since start, deleted topics included.
    pub fn dropped_total(&self) -> u64 {
        self.event_counts().dropped_oldest
    }

    /// Event counts since start, deleted topics included.
    pub fn event_counts(&self) -> EventCounts {
        let retired = self.retired.lock();
        let mut total = *retired;
        for entry in self.topics.iter() {
            total += entry.value().event_counts();
        }
        total
    }

    /// Publish-to-enqueue latency so far.
    pub fn publish_latency(&self) -> HistogramSnapshot {
        self.publish_latency.snapshot()
    }

    /// Every topic with its counts, sorted by name.
    pub fn topics(&self) -> Vec<TopicStats> {
        let mut out: Vec<TopicStats> = self
            .topics
            .iter()
            .map(|e| TopicStats {
                name: e.key().as_str().to_string(),
                subscribers: e.value().subscriber_count(),
                messages: e.value().messages(),
                dropped: e.value().dropped(),
            })
            .collect();
        out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        out
    }
}
