//! The backplane between the server and the engine (PROTOCOL.md §8).
//!
//! [`Backplane::Local`] is the single node: every call goes straight to the in-memory
//! [`Broker`] with no await point, allocation or dynamic call added to the publish and fan-out
//! path. [`Backplane::Nats`] (enabled by `NATS_URL`) makes any number of nodes one broker:
//! - publishes go to one JetStream stream (`HERALD`, subjects `herald.msg.<topic>`) and are acked
//!   to the client only after JetStream's PubAck, with `seq` = the stream sequence;
//! - every node consumes the whole stream in order and fans each event out locally, so every node
//!   assigns the same `seq` and keeps the same ring, and a restarted node rebuilds from the stream;
//! - topics live in a JetStream KV bucket (`herald-topics`) that every node watches;
//! - each node reports its local counts on core NATS, and every node sums the same reports;
//! - each node reports its presence changes on core NATS, and every node adds the other nodes'
//!   counts to its topics' presence (`presence.rs`);
//! - on a NATS cluster the stream and bucket keep `NATS_REPLICAS` copies, and the node says when
//!   the stream has no leader (`/readyz`, `/metrics`) and keeps serving once one is elected.
//!
//! See `nats.rs` for the engine side and `report.rs` for the cluster-wide counts.

mod nats;
mod presence;
mod report;

use std::sync::Arc;

use crate::broker::{Broker, InFlight, Topic, TopicStats};
use crate::config::Config;
use crate::error::ApiError;
use crate::protocol::{Payload, Published, TopicName};

pub use report::{CountsFn, NodeCounts};

/// A publish on its way to the stream: resolves with its ack once JetStream stored it.
pub type PendingAck =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Published, ApiError>> + Send>>;

/// How the server reaches the engine: this process alone, or the cluster over NATS.
#[derive(Debug)]
pub enum Backplane {
    /// Single node, in memory (the default).
    Local,
    /// Cluster mode over NATS JetStream.
    Nats(Arc<nats::NatsBackplane>),
}

impl Backplane {
    /// The backplane `config` asks for; in cluster mode the NATS client connects (and keeps
    /// retrying) in the background, so a node can start before NATS is up.
    pub async fn connect(config: &Config, broker: Arc<Broker>) -> Result<Self, ApiError> {
        match &config.nats_url {
            None => Ok(Self::Local),
            Some(url) => Ok(Self::Nats(
                nats::NatsBackplane::connect(url, config, broker).await?,
            )),
        }
    }

    /// Starts the cluster tasks (registry watch, stream consumer, reports) on `tracker`; they end
    /// when `shutdown` is cancelled. Nothing to start for a single node.
    pub fn start(
        &self,
        tracker: &tokio_util::task::TaskTracker,
        shutdown: tokio_util::sync::CancellationToken,
        counts: CountsFn,
    ) {
        if let Self::Nats(nats) = self {
            nats.clone().start(tracker, shutdown.clone(), counts);
            let leader = nats.clone().watch_stream_leader();
            tracker.spawn(async move {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = leader => {}
                }
            });
        }
    }

    /// Resolves with one line when the backplane cannot run as configured (NATS refused
    /// `NATS_REPLICAS`); the node then stops. Never resolves on a single node.
    pub async fn refused(&self) -> String {
        match self {
            Self::Local => std::future::pending().await,
            Self::Nats(nats) => nats.refused().await,
        }
    }

    /// Whether herald's stream has a leader (JetStream can store publishes): always on a single
    /// node; in cluster mode, as last looked up (about every second).
    pub fn has_stream_leader(&self) -> bool {
        match self {
            Self::Local => true,
            Self::Nats(nats) => nats.has_stream_leader(),
        }
    }

    /// Why this node should get no new clients, if it should not: `None` when ready.
    pub fn unready_reason(&self) -> Option<&'static str> {
        if !self.is_ready() {
            Some("backplane unavailable")
        } else if !self.has_stream_leader() {
            Some("backplane has no stream leader")
        } else {
            None
        }
    }

    /// Whether this node can serve: always on a single node; in cluster mode, connected to NATS
    /// and caught up with the registry and the stream.
    pub fn is_ready(&self) -> bool {
        match self {
            Self::Local => true,
            Self::Nats(nats) => nats.is_ready(),
        }
    }

    /// Whether this is cluster mode.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Nats(_))
    }

    /// Makes sure `name` exists on this node before a subscribe: in cluster mode looks it up in
    /// (or, with auto-create, adds it to) the shared registry, and returns the subscribe's
    /// in-flight mark, to keep until the subscriber is in the topic (so no node expires the topic
    /// meanwhile). A single node creates topics in [`Broker::subscribe`] itself.
    pub async fn ensure(&self, name: &TopicName) -> Result<Option<InFlight>, ApiError> {
        match self {
            Self::Local => Ok(None),
            Self::Nats(nats) => Ok(Some(Box::pin(nats.hold(name)).await?)),
        }
    }

    /// Topics this node removed for being idle (`TOPIC_IDLE_TTL_SECS`) since start: on a single
    /// node, all of them; in a cluster, those whose removal this node carried out.
    pub fn topics_expired(&self, broker: &Broker) -> u64 {
        match self {
            Self::Local => broker.topics_expired(),
            Self::Nats(nats) => nats.topics_expired(),
        }
    }

    /// Before a resume from `seq` in `epoch`: in cluster mode, waits a bounded time until this
    /// node has applied `seq`, which another node may already have delivered to the client while
    /// this one lags (it lost its NATS server, say), so the resume is exact rather than
    /// `recovered: false`. Nothing to wait for on a single node or in another life of the topic.
    pub async fn reach(&self, broker: &Broker, name: &TopicName, seq: u64, epoch: Option<&str>) {
        if let Self::Nats(nats) = self {
            let same_life = broker
                .get(name.as_str())
                .is_some_and(|t| epoch.is_none_or(|e| e == t.epoch()));
            if same_life {
                Box::pin(nats.reach(seq)).await;
            }
        }
    }

    /// Cluster mode: hands a message to NATS and returns once it is on its way, with the wait
    /// for its PubAck, so a connection can have many in flight and still keep their order. A
    /// single node publishes at once (nothing to wait for).
    pub async fn send(
        &self,
        broker: &Broker,
        name: &TopicName,
        id: Option<&str>,
        payload: Payload<'_>,
    ) -> Result<PendingAck, ApiError> {
        match self {
            Self::Local => {
                let published = broker.publish(name, id, payload);
                Ok(Box::pin(std::future::ready(published)))
            }
            Self::Nats(nats) => Box::pin(nats.send(name, id, payload)).await,
        }
    }

    /// Publishes a message; in cluster mode returns once JetStream stored it.
    pub async fn publish(
        &self,
        broker: &Broker,
        name: &TopicName,
        id: Option<&str>,
        payload: Payload<'_>,
    ) -> Result<Published, ApiError> {
        match self {
            Self::Local => broker.publish(name, id, payload),
            Self::Nats(nats) => Box::pin(nats.publish(name, id, payload)).await,
        }
    }

    /// `POST /topics`: `CONFLICT` when the topic exists (anywhere in the cluster).
    pub async fn create_topic(&self, broker: &Broker, name: &TopicName) -> Result<(), ApiError> {
        match self {
            Self::Local => broker.create_topic(name).map(|_| ()),
            Self::Nats(nats) => Box::pin(nats.create_topic(name)).await,
        }
    }

    /// `DELETE /topics/{name}`: every subscriber (on every node) gets `topic_deleted`.
    pub async fn delete_topic(&self, broker: &Broker, name: &TopicName) -> Result<(), ApiError> {
        match self {
            Self::Local => broker.delete_topic(name.as_str()),
            Self::Nats(nats) => Box::pin(nats.delete_topic(name)).await,
        }
    }

    /// Gap notices this node sent (events lost to the stream's retention); none on a single node.
    pub fn gaps(&self) -> u64 {
        match self {
            Self::Local => 0,
            Self::Nats(nats) => nats.gaps(),
        }
    }

    /// Every topic with its counts, sorted by name; in cluster mode summed over live nodes.
    pub fn topics(&self, broker: &Broker) -> Vec<TopicStats> {
        match self {
            Self::Local => broker.topics(),
            Self::Nats(nats) => nats.reports().topics(broker),
        }
    }

    /// One topic's subscribers and messages; in cluster mode summed over live nodes.
    pub fn topic_counts(&self, topic: &Topic) -> (usize, u64) {
        match self {
            Self::Local => (topic.subscriber_count(), topic.messages()),
            Self::Nats(nats) => nats.reports().topic_counts(topic),
        }
    }

    /// Node-level totals (`local` on a single node, the sum over live nodes in a cluster), and
    /// the number of live nodes.
    pub fn totals(&self, local: NodeCounts) -> (NodeCounts, usize) {
        match self {
            Self::Local => (local, 1),
            Self::Nats(nats) => nats.reports().totals(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_paths_do_not_grow_every_connections_task() {
        // Every WebSocket reader's state machine embeds these futures; unboxed, the NATS arms made
        // each connection's task 8.8 KB instead of 3.1 KB (idle memory 15.7 → 10.1 KiB/conn).
        let broker = Broker::new(&crate::config::Config::default());
        let topic = TopicName::parse("t").unwrap();
        let local = Backplane::Local;
        fn size<F: std::future::Future>(future: F) -> usize {
            std::mem::size_of_val(&future)
        }
        let sizes = [
            (
                "publish",
                size(local.publish(&broker, &topic, None, Payload::Text("x"))),
            ),
            ("ensure", size(local.ensure(&topic))),
            ("reach", size(local.reach(&broker, &topic, 1, None))),
            ("create_topic", size(local.create_topic(&broker, &topic))),
            ("delete_topic", size(local.delete_topic(&broker, &topic))),
        ];
        for (name, bytes) in sizes {
            assert!(bytes <= 256, "Backplane::{name}'s future is {bytes} bytes");
        }
    }
}
