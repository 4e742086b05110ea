//! The NATS JetStream backplane: everything one node does with NATS. This file owns the
//! connection, the stream and bucket handles, the node's shared state and the tasks it starts;
//! each concern lives in its own file:
//! - `registry.rs`: follows the topic registry and orders what this node knows per name;
//! - `consumer.rs`: applies the stream to local topics, and says when the node has caught up;
//! - `topics.rs`: looks up, creates and deletes topics in the registry for a client;
//! - `publish.rs`: stores a client's event in the stream;
//! - `reports.rs`: sends this node's counts and collects every node's;
//! - `presence.rs`: sends this node's presence changes and applies every other node's;
//! - `expiry.rs`: removes topics idle on every node (`TOPIC_IDLE_TTL_SECS`);
//! - `replicas.rs`: the stream's and bucket's replica count (`NATS_REPLICAS`);
//! - `leader.rs`: whether the stream has a leader, and whether NATS refused the replica count.
//!
//! # Data
//! - Stream `HERALD` over `herald.msg.<encoded topic>`, at most `RING_BUFFER_SIZE` messages per
//!   subject. A message body is the event frame up to `"seq":` exactly as the publishing node built
//!   it; headers carry where its parts lie and the topic's identity. Each node appends the stream
//!   sequence, so the frame is serialized once for the whole cluster.
//! - KV bucket `herald-topics`: key = encoded topic, value = `{"epoch","created_at"}`. The entry's
//!   revision is the topic's *generation*: a later life of a name always has a higher one, which
//!   is how a node tells a stale message or entry from a new one whatever order they arrive in.
//! - Core subject `herald.stats.<node>`: the node reports of `../report.rs`.
//! - Core subject `herald.presence.<node>`: the presence reports of `../presence.rs` (deltas,
//!   beats, full reports, requests for one, and `bye`).
//! - Core subjects `herald.expiry.ask.<node>` (request/reply) and `herald.expiry.outcome`: the
//!   idle-topic votes of `expiry.rs`. A registry value also says whether the topic was made by
//!   subscribe or publish (`"implicit": true`, and header `Herald-Implicit` on its messages).
//!
//! # Tasks
//! One registry watcher and one ordered stream consumer per node, each recreated from where it
//! stopped after any error and after every reconnect; a catch-up checker that turns `/readyz`
//! green once both have caught up; the report publisher and its subscriber; with a topic idle TTL,
//! the expiry sweep and the answers to other nodes' expiry questions.

mod consumer;
mod expiry;
mod leader;
mod presence;
mod publish;
mod registry;
mod replicas;
mod replication;
mod reports;
mod subject;
mod topics;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use async_nats::ServerAddr;
use parking_lot::Mutex;
use tokio::sync::{watch, OnceCell};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::broker::Broker;
use crate::cluster::report::Reports;
use crate::cluster::CountsFn;
use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::protocol::TopicName;

/// The stream holding every topic's messages.
const STREAM: &str = "HERALD";
/// Subject prefix of messages; the encoded topic follows.
const MSG_PREFIX: &str = "herald.msg.";
/// Every message subject.
const MSG_ALL: &str = "herald.msg.>";
/// The topic registry bucket.
const BUCKET: &str = "herald-topics";
/// Header: `generation id.start id.end payload.start payload.end ts.start ts.end`.
const H_EVENT: &str = "Herald-Event";
/// Header: the topic's epoch.
const H_EPOCH: &str = "Herald-Epoch";
/// Header: the topic's creation time.
const H_CREATED: &str = "Herald-Created";
/// Header, present when the topic was created by subscribe or publish (it may expire).
const H_IMPLICIT: &str = "Herald-Implicit";
/// Longest wait for NATS on a client's behalf (publish ack, registry call) before answering
/// `INTERNAL`/503: a client gets a clear failure instead of hanging.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause before recreating a watcher or consumer that failed.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

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
    /// Per-subject message limit of the stream (`STREAM_MAX_MSGS_PER_TOPIC`, at least the ring).
    per_topic: i64,
    /// Age limit of the stream's messages (`STREAM_MAX_AGE_SECS`; zero: none).
    max_age: Duration,
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
    /// Topics this node removed from the cluster for being idle.
    expired: AtomicU64,
    /// Gap notices: events a topic lost to the stream's retention before this node read them.
    gaps: AtomicU64,
    /// `NATS_REPLICAS` and the stream's leader.
    replication: replication::Replication,
    /// `PRESENCE_COALESCE_MS` and `PRESENCE_TTL_SECS`.
    presence: crate::config::PresenceSettings,
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
            // Every JetStream API call (consumer and watch creation, stream info) is a request:
            // bounded like a client's call, so a request lost with a dead server is retried
            // (placed elsewhere) after seconds, not the default 10.
            .request_timeout(Some(CALL_TIMEOUT))
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
            per_topic: i64::try_from(
                config
                    .stream_max_msgs_per_topic
                    .max(config.ring_buffer_size as u64),
            )
            .unwrap_or(i64::MAX),
            max_age: config.stream_max_age,
            auto_create: config.auto_create_topics,
            known: Mutex::new(HashMap::new()),
            applied: AtomicU64::new(0),
            registry_revision: AtomicU64::new(0),
            reports: Reports::default(),
            expired: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            replication: replication::Replication::new(config.nats_replicas),
            presence: config.presence.clone(),
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

    /// Gap notices this node sent.
    pub(super) fn gaps(&self) -> u64 {
        self.gaps.load(Ordering::Relaxed)
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
                let stream = stream::Config {
                    name: STREAM.into(),
                    subjects: vec![MSG_ALL.into()],
                    max_messages_per_subject: self.per_topic,
                    max_age: self.max_age,
                    storage: stream::StorageType::File,
                    ..Default::default()
                };
                let stream = self.open_stream(stream, "message").await?;
                // The bucket's stream is created directly, as `create_key_value` would: that
                // call first reads the account info, which it cannot parse from a 2.9 server.
                let bucket = stream::Config {
                    name: format!("KV_{BUCKET}"),
                    subjects: vec![format!("$KV.{BUCKET}.>")],
                    max_messages_per_subject: 1,
                    storage: stream::StorageType::File,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: stream::DiscardPolicy::New,
                    ..Default::default()
                };
                self.open_stream(bucket, "registry").await?;
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
        let mut tasks: Vec<(&str, futures_util::future::BoxFuture<'static, ()>)> = vec![
            ("registry", Box::pin(self.clone().watch_registry())),
            ("stream", Box::pin(self.clone().consume_stream())),
            ("catch-up", Box::pin(self.clone().check_catch_up())),
            ("reports", Box::pin(self.clone().exchange_reports(counts))),
        ];
        if self.broker.idle_ttl().is_some() {
            tasks.push(("expiry", Box::pin(self.clone().expire_idle())));
            tasks.push(("expiry votes", Box::pin(self.clone().answer_expiry())));
        }
        // Ends by itself on shutdown, after telling the other nodes this one's clients left.
        tracker.spawn(self.clone().exchange_presence(shutdown.clone()));
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
}

/// A failed backplane call: `UNAVAILABLE` (503) for REST; WebSocket replies say `INTERNAL`.
pub(super) fn unavailable(what: &str, error: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        format!("cluster backplane unavailable ({what}): {error}"),
    )
}
