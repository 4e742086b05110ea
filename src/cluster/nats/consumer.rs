//! The stream side: one ordered consumer that applies every message to the local topic of its
//! generation, and the catch-up checker that turns `/readyz` green on an idle stream.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{consumer, stream};
use futures_util::StreamExt;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::registry::TopicValue;
use super::subject::{decode_topic, encode_topic};
use super::{
    NatsBackplane, Parts, H_CREATED, H_EPOCH, H_EVENT, H_IMPLICIT, MSG_ALL, MSG_PREFIX, RETRY_PAUSE,
};
use crate::broker::{EventBuilder, Outbox, Topic};
use crate::clock;

/// How often the catch-up checker looks while not ready.
const CATCH_UP_POLL: Duration = Duration::from_millis(200);
/// Messages left in the stream past the one being applied from which this node is catching up
/// (after a partition or an outage) rather than following live traffic.
const CATCH_UP_PENDING: u64 = 64;
/// Age (ms since the stream stored it) from which a message is part of a backlog: after a link
/// stalled and recovered without a disconnect, what was in flight arrives at once with a small
/// `pending`, but old.
const CATCH_UP_AGE_MS: i128 = 500;
/// Longest a catching-up node waits for one subscriber's queue to make room before leaving it to
/// the slow-consumer policy (and no longer waiting for it in this catch-up).
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);
/// Topics whose retained messages a node checks at once after an outage.
const GAP_CHECKS_AT_ONCE: usize = 32;
/// How often a catching-up node looks at a full queue again.
const ROOM_POLL: Duration = Duration::from_millis(1);

/// Delivering a backlog at the pace subscribers read it: while catching up, an event waits for
/// room in every subscriber's queue instead of overflowing it, so a subscriber that reads at full
/// speed is never cut as a slow consumer by its own node's backlog. Live traffic is unchanged.
#[derive(Debug, Default)]
struct Pace {
    /// Behind the stream: from a (re)start or a large backlog until nothing is pending.
    catching_up: bool,
    /// Queues (by address) that did not drain within [`CATCH_UP_WAIT`] during this catch-up.
    given_up: HashSet<usize>,
}

impl Pace {
    /// Waits until every subscriber of `topic` has room for one more event, or gives up on those
    /// that do not drain in time.
    async fn wait_for_room(&mut self, topic: &Topic) {
        let key = |outbox: &Arc<Outbox>| Arc::as_ptr(outbox) as usize;
        while let Some(outbox) = topic.full_outbox(|o| self.given_up.contains(&key(o))) {
            let deadline = Instant::now() + CATCH_UP_WAIT;
            while !outbox.has_room(1) && !outbox.is_closed() && !outbox.overflowed() {
                if Instant::now() >= deadline {
                    self.given_up.insert(key(&outbox));
                    break;
                }
                tokio::time::sleep(ROOM_POLL).await;
            }
        }
    }
}
/// How often a silent consumer is checked for a stall. The ordered consumer's own heartbeat check
/// needs two missed 15 s heartbeats (a minute) to notice that the server holding it died while
/// this node stayed connected elsewhere; this notices in a few seconds.
const STALL_CHECK: Duration = Duration::from_secs(1);
/// Silent checks in a row, each finding a message this node has not applied, that count as a
/// stall (more than one: a message may be stored just before a check and delivered after it).
const STALL_CHECKS: u32 = 2;
/// How often a resume waiting for this node to catch up looks again.
const REACH_POLL: Duration = Duration::from_millis(10);
/// Longest a resume waits for this node to apply its `since_seq`: longer than NATS takes to
/// elect a new stream leader (its election timeout is 4–9 s) plus this node noticing its
/// consumer stalled and recreating it (2–3 s), so a resume during a failover stays exact.
const RESUME_WAIT: Duration = Duration::from_secs(15);

impl NatsBackplane {
    /// Consumes the whole stream in order forever, from the last applied sequence.
    pub(super) async fn consume_stream(self: Arc<Self>) {
        let mut connects = self.link.connects.subscribe();
        loop {
            let parts = self.wait_parts().await;
            // The registry first: a message's topic is usually known by then.
            while !self.link.registry_current.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            connects.mark_unchanged();
            if let Err(e) = self.consume_once(parts, &mut connects).await {
                warn!(error = %e, "stream consumer ended; restarting");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }

    async fn consume_once(
        &self,
        parts: &Parts,
        connects: &mut watch::Receiver<u64>,
    ) -> Result<(), String> {
        let start = self.applied.load(Ordering::Acquire) + 1;
        let consumer = parts
            .stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                },
                filter_subject: MSG_ALL.into(),
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        debug!(start, "stream consumer started");
        // A (re)start follows a reconnect or an error: what comes first may be a backlog.
        let mut pace = Pace {
            catching_up: true,
            ..Pace::default()
        };
        let mut expected = start;
        let mut stall = tokio::time::interval(STALL_CHECK);
        stall.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut delivered, mut silent) = (false, 0);
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                _ = connects.changed() => return Err("reconnected".into()),
                _ = stall.tick() => {
                    silent = match (delivered, self.unapplied_exists(parts).await) {
                        (false, true) => silent + 1,
                        _ => 0,
                    };
                    delivered = false;
                    if silent >= STALL_CHECKS {
                        return Err("stalled: the stream has messages the consumer does not deliver".into());
                    }
                    continue;
                }
            };
            delivered = true;
            let message = match message {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("consumer ended".into()),
            };
            let info = match message.info() {
                Ok(info) => (
                    info.stream_sequence,
                    info.pending,
                    info.published.unix_timestamp_nanos() / 1_000_000,
                ),
                Err(e) => return Err(e.to_string()),
            };
            let (seq, pending, stored_ms) = info;
            // Every message of the stream is a topic's, so a sequence skipped is one the stream
            // dropped before this node read it: find out which topics lost what.
            if seq > expected && expected > 1 {
                self.tell_gaps(parts).await;
            }
            expected = seq + 1;
            let late = i128::from(clock::unix_millis()) - stored_ms > CATCH_UP_AGE_MS;
            pace.catching_up |= late || pending >= CATCH_UP_PENDING;
            match self.prepare(&message.message) {
                Ok(Some((topic, mut event))) => {
                    if pace.catching_up {
                        pace.wait_for_room(&topic).await;
                    }
                    if let Err(e) = topic.apply(seq, &mut event) {
                        warn!(seq, error = %e.message, "skipping a stream message");
                    }
                }
                Ok(None) => {}
                Err(e) => warn!(seq, error = %e, "skipping a malformed stream message"),
            }
            if pending == 0 && !late {
                pace = Pace::default();
            }
            self.applied.fetch_max(seq, Ordering::AcqRel);
            if pending == 0 {
                self.link.caught_up.store(true, Ordering::Release);
            }
        }
    }

    /// When the stream dropped messages before this node read them (its retention was exceeded
    /// while the node was cut off or behind): tells the subscribers of every topic whose next
    /// events the stream no longer holds that those are lost, before reading on.
    /// Retention drops a topic's oldest messages first, so if the last one this node applied is
    /// still stored, nothing after it is missing; if it is gone, whatever lay between it and the
    /// first one still stored is. (A topic the stream holds nothing of any more, after
    /// `STREAM_MAX_AGE_SECS`, cannot be told apart from one that had no news.)
    async fn tell_gaps(&self, parts: &Parts) {
        let topics: Vec<Arc<Topic>> = self
            .broker
            .topics()
            .into_iter()
            .filter(|t| t.subscribers > 0)
            .filter_map(|t| self.broker.get(&t.name))
            .collect();
        futures_util::stream::iter(topics)
            .for_each_concurrent(GAP_CHECKS_AT_ONCE, |topic| async move {
                let last = topic.seq();
                if last == 0 {
                    return;
                }
                let first_kept = parts
                    .stream
                    .raw_message_builder()
                    .sequence(last)
                    .next_by_subject(format!("{MSG_PREFIX}{}", encode_topic(topic.name())))
                    .send()
                    .await;
                if let Ok(first) = first_kept {
                    if first.sequence > last + 1 && topic.lost(last, first.sequence - 1) {
                        self.gaps.fetch_add(1, Ordering::Relaxed);
                        warn!(
                            topic = %topic.name(),
                            from = last + 1,
                            to = first.sequence - 1,
                            "events lost to the stream's retention"
                        );
                    }
                }
            })
            .await;
    }

    /// Reads one stream message: the local topic of its generation (none when that life is over)
    /// and the event.
    fn prepare(
        &self,
        message: &async_nats::Message,
    ) -> Result<Option<(Arc<Topic>, EventBuilder)>, String> {
        let token = message
            .subject
            .as_str()
            .strip_prefix(MSG_PREFIX)
            .ok_or("subject outside the stream")?;
        let name = decode_topic(token).ok_or("subject is no topic")?;
        let headers = message.headers.as_ref().ok_or("no headers")?;
        let header = |key: &str| headers.get(key).map(|v| v.as_str().to_string());
        let meta: Vec<u64> = header(H_EVENT)
            .ok_or("no event header")?
            .split(' ')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| "bad event header")?;
        let [generation, id0, id1, p0, p1, t0, t1] = meta[..] else {
            return Err("bad event header".into());
        };
        let topic = match self.broker.get(name.as_str()) {
            Some(t) if t.generation() == generation => t,
            _ => {
                let value = TopicValue {
                    epoch: header(H_EPOCH).ok_or("no epoch header")?,
                    created_at: header(H_CREATED).unwrap_or_else(|| clock::now().as_str().into()),
                    implicit: header(H_IMPLICIT).is_some(),
                };
                match self.learn_put(&name, generation, &value) {
                    Some(t) if t.generation() == generation => t,
                    // A message of an earlier life of the topic: deleted since.
                    _ => return Ok(None),
                }
            }
        };
        let range = |a: u64, b: u64| -> Range<usize> { a as usize..b as usize };
        let event = EventBuilder::from_parts(
            &name,
            message.payload.to_vec(),
            range(id0, id1),
            range(p0, p1),
            range(t0, t1),
        )
        .ok_or("malformed event body")?;
        Ok(Some((topic, event)))
    }

    /// Waits until this node applied stream sequence `seq`, which another node may already have
    /// delivered, for as long as the stream may still bring it here: up to [`RESUME_WAIT`], or
    /// until a look at the stream begun after the wait did shows the stream never held `seq` (a
    /// `since_seq` from the future). A lag that outlives a failover (an election, this node's
    /// consumer found stalled and recreated) still ends in an exact resume.
    pub(in crate::cluster) async fn reach(&self, seq: u64) {
        let deadline = tokio::time::Instant::now() + RESUME_WAIT;
        let replication = &self.replication;
        // The look-up in flight now may have been answered before `seq` was stored: wait for
        // the one after it.
        let fresh = replication.looks.load(Ordering::Acquire) + 2;
        while self.applied.load(Ordering::Acquire) < seq && tokio::time::Instant::now() < deadline {
            if replication.looks.load(Ordering::Acquire) >= fresh
                && replication.stream_last.load(Ordering::Acquire) < seq
            {
                return;
            }
            tokio::time::sleep(REACH_POLL).await;
        }
    }

    /// Whether the stream holds a message after the last one applied (false when unknown).
    async fn unapplied_exists(&self, parts: &Parts) -> bool {
        let next = self.applied.load(Ordering::Acquire) + 1;
        let request = parts
            .stream
            .raw_message_builder()
            .sequence(next)
            .next_by_subject(MSG_ALL)
            .send();
        matches!(tokio::time::timeout(STALL_CHECK, request).await, Ok(Ok(_)))
    }

    /// Turns `/readyz` green once connected and nothing is left to consume (the consumer also
    /// does when it sees `pending == 0`; this covers an idle stream, where nothing arrives).
    pub(super) async fn check_catch_up(self: Arc<Self>) {
        loop {
            tokio::time::sleep(CATCH_UP_POLL).await;
            if !self.connected()
                || self.link.caught_up.load(Ordering::Acquire)
                || !self.link.registry_current.load(Ordering::Acquire)
            {
                continue;
            }
            let Ok(parts) = self.parts().await else {
                continue;
            };
            let next = self.applied.load(Ordering::Acquire) + 1;
            let request = parts
                .stream
                .raw_message_builder()
                .sequence(next)
                .next_by_subject(MSG_ALL);
            match request.send().await {
                Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => {
                    self.link.caught_up.store(true, Ordering::Release);
                    info!(applied = next - 1, "caught up with the stream");
                }
                Err(e) => debug!(error = %e, "catch-up check failed"),
                Ok(_) => {}
            }
        }
    }
}
