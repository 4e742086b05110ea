//! The stream side: one ordered consumer that applies every message to the local topic of its
//! generation, and the catch-up checker that turns `/readyz` green on an idle stream.

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{consumer, stream};
use futures_util::StreamExt;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::subject::decode_topic;
use super::{
    NatsBackplane, Parts, CALL_TIMEOUT, H_CREATED, H_EPOCH, H_EVENT, MSG_ALL, MSG_PREFIX,
    RETRY_PAUSE,
};
use crate::broker::EventBuilder;
use crate::clock;

/// How often the catch-up checker looks while not ready.
const CATCH_UP_POLL: Duration = Duration::from_millis(200);
/// How often a silent consumer is checked for a stall. The ordered consumer's own heartbeat check
/// needs two missed 15 s heartbeats (a minute) to notice that the server holding it died while
/// this node stayed connected elsewhere; this notices in a few seconds.
const STALL_CHECK: Duration = Duration::from_secs(1);
/// Silent checks in a row, each finding a message this node has not applied, that count as a
/// stall (more than one: a message may be stored just before a check and delivered after it).
const STALL_CHECKS: u32 = 2;
/// How often a resume waiting for this node to catch up looks again.
const REACH_POLL: Duration = Duration::from_millis(10);

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
                Ok(info) => (info.stream_sequence, info.pending),
                Err(e) => return Err(e.to_string()),
            };
            let (seq, pending) = info;
            if let Err(e) = self.apply(&message.message, seq) {
                warn!(seq, error = %e, "skipping a malformed stream message");
            }
            self.applied.fetch_max(seq, Ordering::AcqRel);
            if pending == 0 {
                self.link.caught_up.store(true, Ordering::Release);
            }
        }
    }

    /// Applies one stream message to the local topic of its generation.
    fn apply(&self, message: &async_nats::Message, seq: u64) -> Result<(), String> {
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
                let epoch = header(H_EPOCH).ok_or("no epoch header")?;
                let created = header(H_CREATED).unwrap_or_else(|| clock::now().as_str().into());
                match self.learn_put(&name, generation, epoch, created) {
                    Some(t) if t.generation() == generation => t,
                    // A message of an earlier life of the topic: deleted since.
                    _ => return Ok(()),
                }
            }
        };
        let range = |a: u64, b: u64| -> Range<usize> { a as usize..b as usize };
        let mut event = EventBuilder::from_parts(
            &name,
            message.payload.to_vec(),
            range(id0, id1),
            range(p0, p1),
            range(t0, t1),
        )
        .ok_or("malformed event body")?;
        topic.apply(seq, &mut event).map_err(|e| e.message)?;
        Ok(())
    }

    /// Waits until this node applied stream sequence `seq`, for at most `CALL_TIMEOUT` (a
    /// `since_seq` from the future never catches up).
    pub(in crate::cluster) async fn reach(&self, seq: u64) {
        let deadline = tokio::time::Instant::now() + CALL_TIMEOUT;
        while self.applied.load(Ordering::Acquire) < seq && tokio::time::Instant::now() < deadline {
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
