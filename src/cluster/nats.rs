//! The NATS JetStream backplane.
//!
//! # Data
//! - Stream `HERALD` over `herald.msg.<encoded topic>`, at most `RING_BUFFER_SIZE` messages per
//!   subject. A message body is the event frame up to `"seq":` exactly as the publishing node built
//!   it; headers carry where its parts lie and the topic's identity. Each node appends the stream
//!   sequence, so the frame is serialized once for the whole cluster.
//! - KV bucket `herald-topics`: key = encoded topic, value = `{"epoch","created_at"}`. The entry's
//!   revision is the topic's *generation*: a later life of a name always has a higher one, which
//!   is how a node tells a stale message or entry from a new one whatever order they arrive in.
//! - Core subject `herald.stats.<node>`: the node reports of `report.rs`.
//!
//! # Tasks
//! One registry watcher and one ordered stream consumer per node, each recreated from where it
//! stopped after any error and after every reconnect; a catch-up checker that turns `/readyz`
//! green once both have caught up; the report publisher and its subscriber.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use async_nats::{HeaderMap, ServerAddr};
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, OnceCell};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::report::{Report, Reports, REPORT_INTERVAL};
use super::{decode_topic, encode_topic, unavailable, CountsFn};
use crate::broker::{
    new_epoch, Broker, EventBuilder, Identity, Payload, Published, Topic, TopicName,
};
use crate::clock;
use crate::config::Config;
use crate::error::{ApiError, ErrorCode};

/// The stream holding every topic's messages.
const STREAM: &str = "HERALD";
/// Subject prefix of messages; the encoded topic follows.
const MSG_PREFIX: &str = "herald.msg.";
/// Every message subject.
const MSG_ALL: &str = "herald.msg.>";
/// The topic registry bucket.
const BUCKET: &str = "herald-topics";
/// Subject prefix of node reports; the node id follows.
const STATS_PREFIX: &str = "herald.stats.";
/// Header: `generation id.start id.end payload.start payload.end ts.start ts.end`.
const H_EVENT: &str = "Herald-Event";
/// Header: the topic's epoch.
const H_EPOCH: &str = "Herald-Epoch";
/// Header: the topic's creation time.
const H_CREATED: &str = "Herald-Created";
/// Longest wait for NATS on a client's behalf (publish ack, registry call) before answering
/// `INTERNAL`/503: a client gets a clear failure instead of hanging.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause before recreating a watcher or consumer that failed.
const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// How often the catch-up checker looks while not ready.
const CATCH_UP_POLL: Duration = Duration::from_millis(200);

/// A topic's registry value.
#[derive(Debug, Serialize, Deserialize)]
struct TopicValue {
    /// The epoch clients see.
    epoch: String,
    /// Creation time, RFC 3339.
    created_at: String,
}

/// What this node last learned about a name from the registry or the stream.
#[derive(Debug, Clone, Copy)]
struct Known {
    /// Registry revision of that fact.
    revision: u64,
    /// Whether the topic exists (false: deleted at `revision`, or a delete this node issued).
    live: bool,
}

/// Connection facts shared with the NATS client's event callback.
#[derive(Debug, Default)]
struct Link {
    /// The registry watcher has delivered everything up to the present.
    registry_current: AtomicBool,
    /// The stream consumer has applied everything up to the present.
    caught_up: AtomicBool,
    /// Bumped on every (re)connect, so the watcher and the consumer restart from where they were.
    connects: watch::Sender<u64>,
}

/// The handles that need NATS to be reachable once.
#[derive(Debug)]
struct Parts {
    /// The message stream.
    stream: stream::Stream,
    /// The topic registry.
    kv: kv::Store,
}

/// The NATS backplane of one node.
#[derive(Debug)]
pub struct NatsBackplane {
    /// The connection (reconnects by itself).
    client: async_nats::Client,
    /// JetStream on that connection.
    js: jetstream::Context,
    /// Stream and bucket, created or opened on first use.
    parts: OnceCell<Parts>,
    /// The local engine events are applied to.
    broker: Arc<Broker>,
    /// Shared with the event callback.
    link: Arc<Link>,
    /// This node's id in reports.
    node_id: String,
    /// Per-subject message limit of the stream.
    ring_size: usize,
    /// `AUTO_CREATE_TOPICS`.
    auto_create: bool,
    /// Newest registry and stream facts per name; the lock orders installs and retirements.
    known: Mutex<HashMap<TopicName, Known>>,
    /// Last stream sequence this node applied.
    applied: AtomicU64,
    /// Last registry revision this node saw.
    registry_revision: AtomicU64,
    /// Latest report of every node.
    reports: Reports,
}

impl NatsBackplane {
    /// Creates the client; it connects (and reconnects) in the background.
    pub(super) async fn connect(
        urls: &str,
        config: &Config,
        broker: Arc<Broker>,
    ) -> Result<Arc<Self>, ApiError> {
        let addrs = urls
            .split(',')
            .map(|u| u.trim().parse::<ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::bad_request(format!("NATS_URL `{urls}`: {e}")))?;
        let link = Arc::new(Link::default());
        let events = link.clone();
        let client = async_nats::ConnectOptions::new()
            .name(format!("herald {}", config.node_id))
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            // A dead server is noticed within a few seconds even when nothing is being sent.
            .ping_interval(Duration::from_secs(2))
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts as u64 * 100).min(1_000))
            })
            .event_callback(move |event| {
                let link = events.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            info!("connected to NATS");
                            link.connects.send_modify(|n| *n += 1);
                        }
                        async_nats::Event::Disconnected => {
                            warn!("disconnected from NATS; reconnecting");
                            link.registry_current.store(false, Ordering::Release);
                            link.caught_up.store(false, Ordering::Release);
                        }
                        other => debug!(event = %other, "NATS event"),
                    }
                }
            })
            .connect(addrs)
            .await
            .map_err(|e| unavailable("connect", e))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(CALL_TIMEOUT);
        Ok(Arc::new(Self {
            client,
            js,
            parts: OnceCell::new(),
            broker,
            link,
            node_id: config.node_id.clone(),
            ring_size: config.ring_buffer_size,
            auto_create: config.auto_create_topics,
            known: Mutex::new(HashMap::new()),
            applied: AtomicU64::new(0),
            registry_revision: AtomicU64::new(0),
            reports: Reports::default(),
        }))
    }

    /// Connected, and both the registry and the stream are caught up.
    pub(super) fn is_ready(&self) -> bool {
        self.connected()
            && self.link.registry_current.load(Ordering::Acquire)
            && self.link.caught_up.load(Ordering::Acquire)
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The cluster-wide counts.
    pub(super) fn reports(&self) -> &Reports {
        &self.reports
    }

    /// Opens (creating if needed) the stream and the bucket.
    async fn parts(&self) -> Result<&Parts, ApiError> {
        if !self.connected() {
            return Err(unavailable("NATS", "not connected"));
        }
        self.parts
            .get_or_try_init(|| async {
                let stream = self
                    .js
                    .get_or_create_stream(stream::Config {
                        name: STREAM.into(),
                        subjects: vec![MSG_ALL.into()],
                        max_messages_per_subject: self.ring_size as i64,
                        storage: stream::StorageType::File,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| unavailable("stream", e))?;
                // The bucket's stream is created directly, as `create_key_value` would: that
                // call first reads the account info, which it cannot parse from a 2.9 server.
                self.js
                    .get_or_create_stream(stream::Config {
                        name: format!("KV_{BUCKET}"),
                        subjects: vec![format!("$KV.{BUCKET}.>")],
                        max_messages_per_subject: 1,
                        storage: stream::StorageType::File,
                        allow_rollup: true,
                        deny_delete: true,
                        allow_direct: true,
                        discard: stream::DiscardPolicy::New,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| unavailable("registry", e))?;
                let kv = self
                    .js
                    .get_key_value(BUCKET)
                    .await
                    .map_err(|e| unavailable("registry", e))?;
                Ok(Parts { stream, kv })
            })
            .await
    }

    /// Spawns the background tasks.
    pub(super) fn start(
        self: Arc<Self>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
        counts: CountsFn,
    ) {
        let tasks: [(&str, futures_util::future::BoxFuture<'static, ()>); 4] = [
            ("registry", Box::pin(self.clone().watch_registry())),
            ("stream", Box::pin(self.clone().consume_stream())),
            ("catch-up", Box::pin(self.clone().check_catch_up())),
            ("reports", Box::pin(self.clone().exchange_reports(counts))),
        ];
        for (name, task) in tasks {
            let shutdown = shutdown.clone();
            tracker.spawn(async move {
                tokio::select! {
                    _ = shutdown.cancelled() => debug!(task = name, "cluster task stopped"),
                    _ = task => {}
                }
            });
        }
    }

    /// Waits until connected and the stream and bucket are open.
    async fn wait_parts(&self) -> &Parts {
        loop {
            match self.parts().await {
                Ok(parts) => return parts,
                Err(e) => debug!(error = %e, "waiting for NATS"),
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Follows the topic registry forever, from the last revision seen.
    async fn watch_registry(self: Arc<Self>) {
        let mut connects = self.link.connects.subscribe();
        loop {
            let parts = self.wait_parts().await;
            connects.mark_unchanged();
            if let Err(e) = self.watch_registry_once(parts, &mut connects).await {
                warn!(error = %e, "registry watch ended; restarting");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }

    async fn watch_registry_once(
        &self,
        parts: &Parts,
        connects: &mut watch::Receiver<u64>,
    ) -> Result<(), String> {
        let from = self.registry_revision.load(Ordering::Acquire);
        let mut watch = if from == 0 {
            // Every key's latest entry (deletions included), then updates; `watch_all` would
            // deliver updates only.
            parts.kv.watch_with_history(">").await
        } else {
            parts.kv.watch_all_from_revision(from + 1).await
        }
        .map_err(|e| e.to_string())?;
        // An empty (or already followed) bucket delivers nothing to say "current", so ask.
        let status = parts.kv.status().await.map_err(|e| e.to_string())?;
        let last = status.info.state.last_sequence;
        debug!(
            from,
            last,
            values = status.values(),
            "registry watch started"
        );
        if last <= from || status.values() == 0 {
            self.link.registry_current.store(true, Ordering::Release);
        }
        loop {
            let entry = tokio::select! {
                entry = watch.next() => entry,
                _ = connects.changed() => return Err("reconnected".into()),
            };
            let entry = match entry {
                Some(Ok(entry)) => entry,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("watch ended".into()),
            };
            self.on_registry_entry(&entry);
            self.registry_revision
                .fetch_max(entry.revision, Ordering::AcqRel);
            if entry.seen_current || entry.revision >= last {
                self.link.registry_current.store(true, Ordering::Release);
            }
        }
    }

    fn on_registry_entry(&self, entry: &kv::Entry) {
        let Some(name) = decode_topic(&entry.key) else {
            warn!(key = %entry.key, "ignoring a registry key that is no topic");
            return;
        };
        match entry.operation {
            kv::Operation::Put => match serde_json::from_slice::<TopicValue>(&entry.value) {
                Ok(value) => {
                    self.learn_put(&name, entry.revision, value.epoch, value.created_at);
                }
                Err(e) => warn!(topic = %name, error = %e, "ignoring a malformed registry value"),
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                self.learn_delete(&name, entry.revision)
            }
        }
    }

    /// The topic exists at `revision`: installs it here unless a newer fact is known. Returns the
    /// live local topic of that generation, if any.
    fn learn_put(
        &self,
        name: &TopicName,
        revision: u64,
        epoch: String,
        created_at: String,
    ) -> Option<Arc<Topic>> {
        let mut known = self.known.lock();
        match known.get(name) {
            Some(k) if k.revision > revision => return None,
            Some(k) if k.revision == revision && !k.live => return None,
            _ => {}
        }
        known.insert(
            name.clone(),
            Known {
                revision,
                live: true,
            },
        );
        // A topic first met while catching up may already have lost old messages to the
        // stream's per-subject limit.
        let rebuilt = !self.link.caught_up.load(Ordering::Acquire);
        Some(self.broker.install(
            name,
            Identity {
                epoch: epoch.into(),
                created_at: created_at.into(),
                generation: revision,
                rebuilt,
            },
        ))
    }

    /// The topic was deleted at `revision` (or, with `revision` = its generation and the delete
    /// issued here, is being deleted): removes the older local life.
    fn learn_delete(&self, name: &TopicName, revision: u64) {
        let mut known = self.known.lock();
        if known
            .get(name)
            .is_some_and(|k| k.revision > revision || (k.revision == revision && !k.live))
        {
            return;
        }
        known.insert(
            name.clone(),
            Known {
                revision,
                live: false,
            },
        );
        self.broker.retire(name.as_str(), revision + 1);
    }

    /// Consumes the whole stream in order forever, from the last applied sequence.
    async fn consume_stream(self: Arc<Self>) {
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
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                _ = connects.changed() => return Err("reconnected".into()),
            };
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

    /// Turns `/readyz` green once connected and nothing is left to consume (the consumer also
    /// does when it sees `pending == 0`; this covers an idle stream, where nothing arrives).
    async fn check_catch_up(self: Arc<Self>) {
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

    /// Publishes this node's report every interval and records every node's.
    async fn exchange_reports(self: Arc<Self>, counts: CountsFn) {
        let subject = format!("{STATS_PREFIX}{}", self.node_id);
        let mut subscription = loop {
            match self.client.subscribe(format!("{STATS_PREFIX}*")).await {
                Ok(s) => break s,
                Err(e) => {
                    debug!(error = %e, "cannot subscribe to reports yet");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        };
        let mut tick = tokio::time::interval(REPORT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if !self.connected() {
                        continue;
                    }
                    let report = Report::local(&self.node_id, &self.broker, counts());
                    if let Ok(body) = serde_json::to_vec(&report) {
                        if let Err(e) = self.client.publish(subject.clone(), body.into()).await {
                            debug!(error = %e, "report not sent");
                        }
                    }
                }
                message = subscription.next() => match message {
                    Some(message) => match serde_json::from_slice::<Report>(&message.payload) {
                        Ok(report) => self.reports.record(report),
                        Err(e) => debug!(error = %e, "ignoring a malformed report"),
                    },
                    None => return,
                },
            }
        }
    }

    /// Makes `name` exist here: from the registry, or created in it when auto-create is on.
    pub(super) async fn ensure(&self, name: &TopicName) -> Result<Arc<Topic>, ApiError> {
        if let Some(topic) = self.broker.get(name.as_str()) {
            return Ok(topic);
        }
        let parts = self.parts().await?;
        if let Some(topic) = self.lookup(parts, name).await? {
            return Ok(topic);
        }
        if !self.auto_create {
            return Err(not_found(name));
        }
        match self.create(parts, name).await {
            Err(e) if e.code == ErrorCode::Conflict => {
                // Created elsewhere a moment ago.
                self.lookup(parts, name)
                    .await?
                    .ok_or_else(|| not_found(name))
            }
            other => other,
        }
    }

    /// The registry's entry for `name`, installed here.
    async fn lookup(
        &self,
        parts: &Parts,
        name: &TopicName,
    ) -> Result<Option<Arc<Topic>>, ApiError> {
        let entry = tokio::time::timeout(CALL_TIMEOUT, parts.kv.entry(encode_topic(name)))
            .await
            .map_err(|e| unavailable("registry", e))?
            .map_err(|e| unavailable("registry", e))?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let value: TopicValue =
            serde_json::from_slice(&entry.value).map_err(|e| unavailable("registry value", e))?;
        Ok(self.learn_put(name, entry.revision, value.epoch, value.created_at))
    }

    /// Adds `name` to the registry; `CONFLICT` when it is there.
    async fn create(&self, parts: &Parts, name: &TopicName) -> Result<Arc<Topic>, ApiError> {
        self.broker.check_topic_limit()?;
        let value = TopicValue {
            epoch: new_epoch(),
            created_at: clock::now().as_str().into(),
        };
        let body = serde_json::to_vec(&value).map_err(|e| unavailable("registry value", e))?;
        let created = tokio::time::timeout(
            CALL_TIMEOUT,
            parts.kv.create(encode_topic(name), Bytes::from(body)),
        )
        .await
        .map_err(|e| unavailable("registry", e))?;
        let revision = match created {
            Ok(revision) => revision,
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!("topic `{name}` already exists"),
                ))
            }
            Err(e) => return Err(unavailable("registry", e)),
        };
        self.learn_put(name, revision, value.epoch, value.created_at)
            .ok_or_else(|| not_found(name))
    }

    /// `POST /topics`.
    pub(super) async fn create_topic(&self, name: &TopicName) -> Result<(), ApiError> {
        if self.broker.get(name.as_str()).is_some() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("topic `{name}` already exists"),
            ));
        }
        let parts = self.parts().await?;
        self.create(parts, name).await.map(|_| ())
    }

    /// `DELETE /topics/{name}`: registry delete, local retirement (the other nodes follow from the
    /// registry), then the topic's messages are purged from the stream.
    pub(super) async fn delete_topic(&self, name: &TopicName) -> Result<(), ApiError> {
        let parts = self.parts().await?;
        let topic = match self.broker.get(name.as_str()) {
            Some(topic) => topic,
            None => self
                .lookup(parts, name)
                .await?
                .ok_or_else(|| not_found(name))?,
        };
        tokio::time::timeout(CALL_TIMEOUT, parts.kv.delete(encode_topic(name)))
            .await
            .map_err(|e| unavailable("registry", e))?
            .map_err(|e| unavailable("registry", e))?;
        self.learn_delete(name, topic.generation());
        // Only what this life stored: a new life's messages all come later in the stream.
        let purge = parts
            .stream
            .purge()
            .filter(format!("{MSG_PREFIX}{}", encode_topic(name)))
            .sequence(self.applied.load(Ordering::Acquire) + 1);
        if let Err(e) = purge.await {
            warn!(topic = %name, error = %e, "could not purge a deleted topic's messages");
        }
        Ok(())
    }

    /// Publishes through JetStream and answers with the stream sequence once it is stored.
    pub(super) async fn publish(
        &self,
        name: &TopicName,
        id: Option<&str>,
        payload: Payload<'_>,
    ) -> Result<Published, ApiError> {
        let event = EventBuilder::new(name, id, payload, self.broker.max_message_bytes())?;
        if !self.connected() {
            return Err(unavailable("NATS", "not connected"));
        }
        let topic = self.ensure(name).await?;
        topic.take_publish_token()?;
        let id_json: Box<str> = String::from_utf8_lossy(&event.buf[event.id.clone()]).into();
        let mut headers = HeaderMap::new();
        let meta = format!(
            "{} {} {} {} {} {} {}",
            topic.generation(),
            event.id.start,
            event.id.end,
            event.payload.start,
            event.payload.end,
            event.ts.start,
            event.ts.end
        );
        headers.insert(H_EVENT, meta.as_str());
        headers.insert(H_EPOCH, topic.epoch());
        headers.insert(H_CREATED, topic.created_at());
        let subject = format!("{MSG_PREFIX}{}", encode_topic(name));
        let ack = async {
            self.js
                .publish_with_headers(subject, headers, Bytes::from(event.buf))
                .await
                .map_err(|e| unavailable("publish", e))?
                .await
                .map_err(|e| unavailable("publish ack", e))
        };
        let ack = tokio::time::timeout(CALL_TIMEOUT, ack)
            .await
            .map_err(|e| unavailable("publish ack", e))??;
        Ok(Published {
            id_json,
            seq: ack.sequence,
        })
    }
}

fn not_found(name: &TopicName) -> ApiError {
    ApiError::new(
        ErrorCode::TopicNotFound,
        format!("topic `{name}` does not exist"),
    )
}
