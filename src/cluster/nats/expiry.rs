//! Idle topics expire cluster-wide (`TOPIC_IDLE_TTL_SECS`, PROTOCOL.md §8): a topic goes only when
//! it is idle on every live node, and never while a publish or subscribe on it is in flight.
//!
//! Every node runs the idle sweep over its implicit topics (`Broker::idle_candidates`), which
//! keeps each node's idle clocks current. The node with the smallest id among the live reports
//! leads: it asks every other live node (core NATS request/reply) whether the topics it found
//! idle are idle there too. A node answering "idle" leases the topic: a publish or subscribe that
//! arrives there meanwhile waits for the outcome (`broker/lifecycle.rs` says why the lease and an
//! operation in flight always see each other). If every live node answered idle within
//! [`ASK_TIMEOUT`], the leader deletes the registry entry *at its revision* (so a topic created
//! again, or touched in any way that changed the entry, is left alone), purges its messages from
//! the stream, and tells every node the outcome; a lost outcome costs a waiting operation one
//! registry read when the lease runs out. Two nodes that both think they lead only repeat work:
//! the revision-checked delete lets one through.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryFutureExt};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::subject::encode_topic;
use super::{unavailable, NatsBackplane, Parts, CALL_TIMEOUT};
use crate::broker::{sweep_interval, InFlight, Lease, Topic};
use crate::error::ApiError;
use crate::protocol::TopicName;

/// Subject prefix of the leader's question to one node; the node id follows.
const ASK_PREFIX: &str = "herald.expiry.ask.";
/// Subject of the leader's outcome, heard by every node.
const OUTCOME: &str = "herald.expiry.outcome";
/// How long the leader waits for every node's answer; later, the round keeps every topic.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);
/// The leader issues no registry delete later than this after asking, so every delete lands well
/// inside the nodes' [`LEASE`].
const DELETE_WINDOW: Duration = Duration::from_secs(2);
/// How long a node's idle vote holds operations on the topic back, at most.
const LEASE: Duration = Duration::from_secs(10);
/// How often a held-back operation looks at the lease again.
const LEASE_POLL: Duration = Duration::from_millis(10);
/// Most topics in one question (keeps every message far below NATS's payload limit).
const ASK_BATCH: usize = 1024;
/// Registry deletes the leader has in flight at once.
const DELETES_AT_ONCE: usize = 32;

/// One topic life in a question or an outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Life {
    /// Topic name.
    name: String,
    /// Its generation (registry revision).
    generation: u64,
}

/// The leader's question: are these idle on your node?
#[derive(Debug, Serialize, Deserialize)]
struct Ask {
    /// The topics the leader found idle.
    topics: Vec<Life>,
}

/// A node's answer: the indexes (in the question) of the topics that are busy there.
#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    /// Busy topics.
    busy: Vec<usize>,
}

/// The leader's outcome.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Outcome {
    /// Removed from the registry.
    expired: Vec<Life>,
    /// Kept: nodes end their leases.
    kept: Vec<Life>,
}

impl NatsBackplane {
    /// The local topic `name` for a publish or subscribe, with the operation marked in flight
    /// (the mark is dropped when the operation is done). Waits while this node's expiry vote
    /// leases the topic; once it is gone, a new life of the name is made as for any missing topic.
    pub(in crate::cluster) async fn hold(&self, name: &TopicName) -> Result<InFlight, ApiError> {
        let deadline = Instant::now() + LEASE + CALL_TIMEOUT;
        loop {
            let held = InFlight::new(self.ensure(name).await?);
            let topic = held.topic().clone();
            match self.broker.lease(&held) {
                Lease::Free => return Ok(held),
                Lease::Pending => {
                    drop(held);
                    if Instant::now() > deadline {
                        return Err(unavailable("topic expiry", "no outcome"));
                    }
                    tokio::time::sleep(LEASE_POLL).await;
                }
                Lease::Lapsed => {
                    // The outcome never came: the registry says whether the topic went.
                    drop(held);
                    let parts = self.parts().await?;
                    match self.lookup(parts, name).await? {
                        Some(live) if live.generation() == topic.generation() => {
                            self.broker.release(&topic)
                        }
                        _ => self.learn_delete(name, topic.generation()),
                    }
                }
            }
        }
    }

    /// Topics this node removed from the cluster for being idle since start.
    pub(in crate::cluster) fn topics_expired(&self) -> u64 {
        self.expired.load(Ordering::Relaxed)
    }

    /// Runs the idle sweep every tick and, on the leading node, the expiry rounds.
    pub(super) async fn expire_idle(self: Arc<Self>) {
        let Some(ttl) = self.broker.idle_ttl() else {
            return;
        };
        let mut tick = tokio::time::interval(sweep_interval(ttl));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let idle = self.broker.idle_candidates();
            if idle.is_empty() || !self.is_ready() || !self.leads() {
                continue;
            }
            let Ok(parts) = self.parts().await else {
                continue;
            };
            for batch in idle.chunks(ASK_BATCH) {
                self.expiry_round(parts, batch).await;
            }
        }
    }

    /// Whether this node leads expiry: no live node has a smaller id.
    fn leads(&self) -> bool {
        let live = self.reports().live_nodes();
        live.iter().all(|node| *node >= self.node_id)
    }

    /// One round: votes here and on every other live node, then removes what all found idle.
    async fn expiry_round(&self, parts: &Parts, candidates: &[Arc<Topic>]) {
        let asked = Instant::now();
        let lease_ms = LEASE.as_millis() as u64;
        let idle: Vec<&Arc<Topic>> = candidates
            .iter()
            .filter(|t| self.broker.vote_idle(t, lease_ms))
            .collect();
        if idle.is_empty() {
            return;
        }
        let lives: Vec<Life> = idle.iter().map(|t| life(t)).collect();
        let busy = self.ask_others(&lives).await;
        let mut outcome = Outcome::default();
        let mut removable = Vec::new();
        for (i, topic) in idle.into_iter().enumerate() {
            if busy.as_ref().is_some_and(|b| !b[i]) && asked.elapsed() < ASK_TIMEOUT {
                removable.push(topic.clone());
            } else {
                outcome.kept.push(life(topic));
            }
        }
        let deletes = futures_util::stream::iter(removable)
            .map(|topic: Arc<Topic>| {
                let kv = parts.kv.clone();
                async move {
                    let deleted = asked.elapsed() < DELETE_WINDOW
                        && tokio::time::timeout(
                            CALL_TIMEOUT,
                            kv.delete_expect_revision(
                                encode_topic(topic.name()),
                                Some(topic.generation()),
                            ),
                        )
                        .map_ok(|done| done.is_ok())
                        .await
                        .unwrap_or(false);
                    (topic, deleted)
                }
            })
            .buffer_unordered(DELETES_AT_ONCE)
            .collect::<Vec<_>>()
            .await;
        let mut expired = Vec::new();
        for (topic, deleted) in deletes {
            if deleted {
                self.learn_delete(topic.name(), topic.generation());
                self.expired.fetch_add(1, Ordering::Relaxed);
                outcome.expired.push(life(&topic));
                expired.push(topic);
            } else {
                outcome.kept.push(life(&topic));
            }
        }
        self.apply_outcome(&outcome);
        match serde_json::to_vec(&outcome) {
            Ok(body) => {
                if let Err(e) = self.client.publish(OUTCOME, body.into()).await {
                    debug!(error = %e, "expiry outcome not sent; leases run out instead");
                }
            }
            Err(e) => warn!(error = %e, "expiry outcome not encoded"),
        }
        if !expired.is_empty() {
            debug!(expired = expired.len(), "idle topics expired");
        }
        // After the outcome, so no node's operations wait for this.
        futures_util::stream::iter(expired)
            .for_each_concurrent(DELETES_AT_ONCE, |topic| async move {
                self.purge(parts, topic.name()).await;
            })
            .await;
    }

    /// Asks every other live node about `lives`: for each, whether it is busy on some node;
    /// `None` when a node did not answer in time.
    async fn ask_others(&self, lives: &[Life]) -> Option<Vec<bool>> {
        let body: bytes::Bytes = serde_json::to_vec(&Ask {
            topics: lives.to_vec(),
        })
        .ok()?
        .into();
        let others: Vec<String> = self
            .reports()
            .live_nodes()
            .into_iter()
            .filter(|node| *node != self.node_id)
            .collect();
        let answers = futures_util::future::join_all(others.iter().map(|node| {
            let request = self
                .client
                .request(format!("{ASK_PREFIX}{node}"), body.clone());
            tokio::time::timeout(ASK_TIMEOUT, request)
        }))
        .await;
        let mut busy = vec![false; lives.len()];
        for answer in answers {
            let message = answer.ok()?.ok()?;
            let answer: Answer = serde_json::from_slice(&message.payload).ok()?;
            for i in answer.busy {
                if let Some(b) = busy.get_mut(i) {
                    *b = true;
                }
            }
        }
        Some(busy)
    }

    /// Answers the leader's questions and applies its outcomes.
    pub(super) async fn answer_expiry(self: Arc<Self>) {
        let mut asks = self
            .subscribe_core(format!("{ASK_PREFIX}{}", self.node_id))
            .await;
        let mut outcomes = self.subscribe_core(OUTCOME.into()).await;
        loop {
            tokio::select! {
                ask = asks.next() => {
                    let Some(ask) = ask else { return };
                    let Some(reply) = ask.reply else { continue };
                    let Ok(ask) = serde_json::from_slice::<Ask>(&ask.payload) else {
                        debug!("ignoring a malformed expiry question");
                        continue;
                    };
                    if let Ok(body) = serde_json::to_vec(&self.vote(&ask)) {
                        if let Err(e) = self.client.publish(reply, body.into()).await {
                            debug!(error = %e, "expiry answer not sent");
                        }
                    }
                }
                outcome = outcomes.next() => {
                    let Some(outcome) = outcome else { return };
                    match serde_json::from_slice::<Outcome>(&outcome.payload) {
                        Ok(outcome) => self.apply_outcome(&outcome),
                        Err(e) => debug!(error = %e, "ignoring a malformed expiry outcome"),
                    }
                }
            }
        }
    }

    /// This node's answer: a topic it does not hold at that generation is busy (it cannot vouch
    /// for it), as is one with a subscriber, recent activity or an operation in flight.
    fn vote(&self, ask: &Ask) -> Answer {
        let lease_ms = LEASE.as_millis() as u64;
        let busy = ask
            .topics
            .iter()
            .enumerate()
            .filter(|(_, life)| {
                !self
                    .local(life)
                    .is_some_and(|t| self.broker.vote_idle(&t, lease_ms))
            })
            .map(|(i, _)| i)
            .collect();
        Answer { busy }
    }

    /// The local topic of `life`, if this node holds that generation.
    fn local(&self, life: &Life) -> Option<Arc<Topic>> {
        self.broker
            .get(&life.name)
            .filter(|t| t.generation() == life.generation)
    }

    /// Removes the expired topics here and ends the leases on the kept ones.
    fn apply_outcome(&self, outcome: &Outcome) {
        for life in &outcome.expired {
            if let Ok(name) = TopicName::parse(&life.name) {
                self.learn_delete(&name, life.generation);
            }
        }
        for life in &outcome.kept {
            if let Some(topic) = self.local(life) {
                self.broker.release(&topic);
            }
        }
    }
}

fn life(topic: &Topic) -> Life {
    Life {
        name: topic.name().as_str().to_string(),
        generation: topic.generation(),
    }
}
