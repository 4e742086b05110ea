//! The one door into the engine: every operation a client can ask for (publish, subscribe,
//! unsubscribe, topic create/delete/get/list, history, stats) exists here once, whatever transport
//! asked. [`Node`] hides whether this process is alone (the in-memory broker) or one node of a
//! cluster (the NATS backplane), and it is where checks that apply to every operation live.
//!
//! The transports (`server::session` for WebSocket, `server::rest` for HTTP) only translate: wire
//! → a call here, and the `ApiError` it returns → an error frame or an HTTP status.

mod budget;
mod caller;
mod stats;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Capability;
use crate::broker::{
    sweep_interval, Broker, ConnId, EventCounts, Joining, Outgoing, StoredEvent, Subscriber, Topic,
    TopicStats,
};
use crate::cluster::{Backplane, NodeCounts, PendingAck};
use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::histogram::HistogramSnapshot;
use crate::protocol::{
    Frame, Payload, PresenceList, Published, Replay, SubscribeAck, TopicName, TopicPattern,
};

pub use caller::{secs_until, Caller, Credentials, Gate, TokenHolder};
pub use stats::{NodeStats, TopicView};

/// Builds a subscribe ack from the facts the engine decided, inside the topic's sequencer.
pub type AckFn<'a> = &'a (dyn Fn(&SubscribeAck) -> Frame + Sync);

/// What a transport knows of who is subscribing, for presence (issue 21); the door decides the
/// identity from it and the caller.
#[derive(Debug, Clone, Copy)]
pub struct Presence<'a> {
    /// The subscribe frame's `client_id`, if it has one.
    pub client_id: Option<&'a str>,
    /// The connection's name: its `?id=` / `?client_id=`, else its server-assigned id.
    pub connection: &'a Arc<str>,
    /// `presence_events`: tell the subscriber of joins and leaves.
    pub events: bool,
}

/// This process as a member of the broker: the engine plus the way it reaches the other nodes.
#[derive(Debug)]
pub struct Node {
    /// The engine (shared with the cluster backplane's consumer).
    broker: Arc<Broker>,
    /// The single node or the cluster.
    backplane: Backplane,
    /// Who may do what: the admin key and the token verifier.
    gate: Gate,
    /// Whether subscribe/publish create a missing topic (`AUTO_CREATE_TOPICS`).
    auto_create: bool,
    /// Open WebSocket sessions on this node, for `/health`, `/stats` and the cluster report.
    sessions: AtomicUsize,
    /// Connections this node closed because their outbox overflowed (`disconnect` policy).
    slow_consumer_disconnects: AtomicU64,
    /// `MAX_PRESENCE_CLIENTS`.
    max_presence_clients: usize,
    /// `PRESENCE_COALESCE_MS`: how often presence notices are flushed.
    presence_coalesce: std::time::Duration,
}

impl Node {
    /// The node `config` asks for; in cluster mode the NATS client connects (and keeps retrying)
    /// in the background, so a node can start before NATS is up.
    pub async fn new(config: &Config) -> Result<Self, ApiError> {
        let gate = Gate::new(config).map_err(|e| ApiError::new(ErrorCode::BadRequest, e))?;
        let broker = Arc::new(Broker::new(config));
        let backplane = Backplane::connect(config, broker.clone()).await?;
        Ok(Self {
            broker,
            backplane,
            gate,
            auto_create: config.auto_create_topics,
            sessions: AtomicUsize::new(0),
            slow_consumer_disconnects: AtomicU64::new(0),
            max_presence_clients: config.presence.max_clients,
            presence_coalesce: config.presence.coalesce,
        })
    }

    /// Starts the background tasks (the idle-topic sweep, the cluster's) on `tracker`; they end
    /// when `shutdown` is cancelled.
    pub fn start(self: &Arc<Self>, tracker: &TaskTracker, shutdown: CancellationToken) {
        // In cluster mode topics expire through the backplane (every node must agree).
        if let Some(ttl) = self
            .broker
            .idle_ttl()
            .filter(|_| !self.backplane.is_cluster())
        {
            let broker = self.broker.clone();
            let stop = shutdown.clone();
            tracker.spawn(async move {
                let mut tick = tokio::time::interval(sweep_interval(ttl));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        _ = tick.tick() => {
                            let expired = broker.sweep();
                            if expired > 0 {
                                tracing::debug!(expired, "idle topics expired");
                            }
                        }
                    }
                }
            });
        }
        // In cluster mode the backplane flushes, to report local changes in the same step.
        if !self.backplane.is_cluster() {
            let broker = self.broker.clone();
            let stop = shutdown.clone();
            let every = self.presence_coalesce;
            tracker.spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        _ = tick.tick() => {
                            broker.flush_presence();
                        }
                    }
                }
            });
        }
        let weak = Arc::downgrade(self);
        self.backplane.start(
            tracker,
            shutdown,
            Box::new(move || weak.upgrade().map(|n| n.local_counts()).unwrap_or_default()),
        );
    }

    /// Who presents `presented`, every credential a request carried (PROTOCOL.md §4).
    pub fn caller(&self, presented: &[Credentials<'_>]) -> Result<Caller, ApiError> {
        self.gate.caller(presented)
    }

    /// The admin key and token verifier.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Publishes a message; in cluster mode returns once JetStream stored it.
    pub async fn publish(
        &self,
        caller: &Caller,
        topic: &TopicName,
        id: Option<&str>,
        payload: Payload<'_>,
    ) -> Result<Published, ApiError> {
        caller.check(Capability::Publish, topic)?;
        self.backplane
            .publish(&self.broker, topic, id, payload)
            .await
    }

    /// Cluster mode's pipelined publish: returns once the message is on its way to the stream
    /// (a connection's publishes keep their order), with the wait for its ack.
    pub async fn send(
        &self,
        caller: &Caller,
        topic: &TopicName,
        id: Option<&str>,
        payload: Payload<'_>,
    ) -> Result<PendingAck, ApiError> {
        caller.check(Capability::Publish, topic)?;
        self.backplane.send(&self.broker, topic, id, payload).await
    }

    /// Whether a subscribe to `topic` could succeed now, for a route that must answer before it
    /// subscribes (seed a's `/ws/sub/{topic}`, PROTOCOL.md §2, refuses the upgrade with 404).
    pub async fn check_subscribable(
        &self,
        caller: &Caller,
        topic: &TopicName,
    ) -> Result<(), ApiError> {
        caller.check(Capability::Subscribe, topic)?;
        if self.backplane.is_cluster() {
            self.backplane.ensure(topic).await.map(|_| ())
        } else if !self.auto_create && self.broker.get(topic.as_str()).is_none() {
            Err(not_found(topic))
        } else {
            Ok(())
        }
    }

    /// Subscribes `subscriber` to `topic` and queues `ack`'s frame (when given) followed by the
    /// replay `replay` asks for, in one outbox slot. The subscription counts in the topic's
    /// presence as the token's `sub`, else the frame's `client_id`, else the connection's name;
    /// `presence_events` needs the `presence` capability, checked here once.
    pub async fn subscribe(
        &self,
        caller: &Caller,
        topic: &TopicName,
        subscriber: &Subscriber,
        replay: &Replay,
        ack: Option<AckFn<'_>>,
        presence: Presence<'_>,
    ) -> Result<Arc<Topic>, ApiError> {
        caller.check(Capability::Subscribe, topic)?;
        if presence.events {
            caller.check(Capability::Presence, topic)?;
        }
        let identity = match (caller.token(), presence.client_id) {
            (Some(token), _) => token.sub.clone(),
            (None, Some(id)) => id.into(),
            (None, None) => presence.connection.clone(),
        };
        let joining = Joining {
            identity,
            events: presence.events,
        };
        // Held until the subscriber is in the topic's list (cluster mode: see `Backplane::ensure`).
        let _in_flight = self.backplane.ensure(topic).await?;
        if let Replay::Since { seq, epoch } = replay {
            self.backplane
                .reach(&self.broker, topic, *seq, epoch.as_deref())
                .await;
        }
        let ack = ack.map(|f| f as &dyn Fn(&SubscribeAck) -> Frame);
        self.broker
            .subscribe(topic, subscriber, replay, ack, Some(&joining))
    }

    /// Ends `conn`'s subscription to `topic` (a leave, when it was its identity's last).
    pub fn unsubscribe(&self, topic: &Arc<Topic>, conn: ConnId) {
        self.broker.unsubscribe(topic, conn);
    }

    /// Who is on `topic` (cluster-wide in cluster mode): up to `MAX_PRESENCE_CLIENTS` identities
    /// and how many there are; needs the `presence` capability.
    pub fn presence(&self, caller: &Caller, topic: &TopicName) -> Result<PresenceList, ApiError> {
        caller.check(Capability::Presence, topic)?;
        self.broker
            .presence(topic.as_str(), self.max_presence_clients)
            .ok_or_else(|| not_found(topic))
    }

    /// Presence notices queued to subscribers since start, and those dropped for want of room.
    pub fn presence_notices(&self) -> (u64, u64) {
        self.broker.presence_notices()
    }

    /// Subscribes `subscriber` to every topic `pattern` matches, now and later, live only, then
    /// queues `ack` (when given). Events of matching topics published while this runs may reach
    /// the client just before the ack; every one published after it does. In cluster mode every
    /// node holds every topic, so matching is this node's alone.
    pub fn subscribe_pattern(
        &self,
        caller: &Caller,
        pattern: &TopicPattern,
        subscriber: &Subscriber,
        ack: Option<Frame>,
    ) -> Result<(), ApiError> {
        caller.check_pattern(Capability::Subscribe, pattern)?;
        self.broker.subscribe_pattern(pattern, subscriber)?;
        if let Some(ack) = ack {
            subscriber.outbox.push(Outgoing::frame(ack));
        }
        Ok(())
    }

    /// Ends `conn`'s subscription to `pattern`; matching topics stop delivering to it unless
    /// another of its subscriptions matches them.
    pub fn unsubscribe_pattern(&self, pattern: &TopicPattern, conn: ConnId) {
        self.broker.unsubscribe_pattern(pattern, conn);
    }

    /// `POST /topics`: `CONFLICT` when the topic exists (anywhere in the cluster).
    pub async fn create_topic(&self, caller: &Caller, topic: &TopicName) -> Result<(), ApiError> {
        caller.check_admin("creating a topic")?;
        self.backplane.create_topic(&self.broker, topic).await
    }

    /// `DELETE /topics/{name}`: every subscriber (on every node) gets `topic_deleted`.
    pub async fn delete_topic(&self, caller: &Caller, topic: &TopicName) -> Result<(), ApiError> {
        caller.check_admin("deleting a topic")?;
        self.backplane.delete_topic(&self.broker, topic).await
    }

    /// One topic's facts; `TOPIC_NOT_FOUND` when it does not exist.
    pub fn topic(&self, caller: &Caller, topic: &TopicName) -> Result<TopicView, ApiError> {
        caller.check_either(Capability::Subscribe, Capability::History, topic)?;
        let found = self.existing(topic)?;
        let (subscribers, messages) = self.backplane.topic_counts(&found);
        Ok(TopicView::new(&found, subscribers, messages))
    }

    /// Every topic with its counts, sorted by name; in cluster mode summed over live nodes.
    pub fn topics(&self, caller: &Caller) -> Result<Vec<TopicStats>, ApiError> {
        caller.check_admin("listing topics")?;
        Ok(self.all_topics())
    }

    fn all_topics(&self) -> Vec<TopicStats> {
        self.backplane.topics(&self.broker)
    }

    /// The last `last_n` stored events of `topic` (all of them when `None`), oldest first.
    pub fn history(
        &self,
        caller: &Caller,
        topic: &TopicName,
        last_n: Option<usize>,
    ) -> Result<Vec<Arc<StoredEvent>>, ApiError> {
        caller.check(Capability::History, topic)?;
        Ok(self.existing(topic)?.history(last_n.unwrap_or(usize::MAX)))
    }

    /// The counts `/health`, `/stats` and `/metrics` report.
    pub fn stats(&self, caller: &Caller) -> Result<NodeStats, ApiError> {
        caller.check_admin("the node's counts (/health, /stats, /metrics)")?;
        let topics = self.all_topics();
        let (totals, nodes) = self.backplane.totals(self.local_counts());
        Ok(NodeStats {
            subscribers: topics.iter().map(|t| t.subscribers).sum(),
            pattern_subscriptions: self.broker.pattern_subscriptions(),
            topics,
            totals,
            nodes: self.backplane.is_cluster().then_some(nodes),
            uptime_secs: self.broker.uptime_secs(),
        })
    }

    /// Event counts since start, deleted topics included.
    pub fn event_counts(&self) -> EventCounts {
        self.broker.event_counts()
    }

    /// Publish-to-enqueue latency so far.
    pub fn publish_latency(&self) -> HistogramSnapshot {
        self.broker.publish_latency()
    }

    /// Topics this node removed for being idle (`TOPIC_IDLE_TTL_SECS`) since start.
    pub fn topics_expired(&self) -> u64 {
        self.backplane.topics_expired(&self.broker)
    }

    /// Cluster mode: gap notices this node sent since start.
    pub fn gaps(&self) -> u64 {
        self.backplane.gaps()
    }

    /// Whether this node can serve: always on a single node; in cluster mode, connected to NATS
    /// and caught up with the registry and the stream.
    pub fn is_ready(&self) -> bool {
        self.backplane.is_ready()
    }

    /// Why this node should get no new clients (`/readyz` 503), if it should not: the backplane
    /// is unreachable or behind, or its stream has no leader.
    pub fn unready_reason(&self) -> Option<&'static str> {
        self.backplane.unready_reason()
    }

    /// Whether the backplane's stream has a leader (always on a single node).
    pub fn has_stream_leader(&self) -> bool {
        self.backplane.has_stream_leader()
    }

    /// Resolves with one line when the backplane cannot run as configured; never on a single
    /// node.
    pub async fn backplane_refused(&self) -> String {
        self.backplane.refused().await
    }

    /// Whether this is cluster mode.
    pub fn is_cluster(&self) -> bool {
        self.backplane.is_cluster()
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> ConnId {
        self.broker.next_conn_id()
    }

    /// A WebSocket session opened on this node.
    pub fn session_opened(&self) {
        self.sessions.fetch_add(1, Ordering::Relaxed);
    }

    /// A WebSocket session ended.
    pub fn session_closed(&self) {
        self.sessions.fetch_sub(1, Ordering::Relaxed);
    }

    /// A WebSocket session is being closed as a slow consumer.
    pub fn slow_consumer_closed(&self) {
        self.slow_consumer_disconnects
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Open WebSocket sessions on this node.
    pub fn session_count(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    /// This node's own counts, for `/metrics` and the cluster report.
    pub fn local_counts(&self) -> NodeCounts {
        NodeCounts {
            connections: self.session_count() as u64,
            slow_consumer_disconnects: self.slow_consumer_disconnects.load(Ordering::Relaxed),
            dropped: self.broker.dropped_total(),
        }
    }

    /// The live topic called `topic`, or `TOPIC_NOT_FOUND`.
    fn existing(&self, topic: &TopicName) -> Result<Arc<Topic>, ApiError> {
        self.broker
            .get(topic.as_str())
            .ok_or_else(|| not_found(topic))
    }
}

fn not_found(topic: &TopicName) -> ApiError {
    ApiError::new(
        ErrorCode::TopicNotFound,
        format!("topic `{topic}` does not exist"),
    )
}
