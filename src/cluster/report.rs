//! Cluster-wide counts (PROTOCOL.md §8): each node publishes its local counts every
//! [`REPORT_INTERVAL`] on core NATS, and every node keeps the latest report of every node,
//! its own included (as echoed by NATS). Answers are computed from those same reports on every
//! node, so `/stats`, `/health` and `GET /topics` agree across nodes within one interval.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::broker::{Broker, Topic, TopicStats};

/// How often a node reports its counts.
pub(crate) const REPORT_INTERVAL: Duration = Duration::from_millis(250);

/// A node whose last report is older than this is considered gone (a killed node's subscribers
/// stop counting after it). Several intervals, so a loaded node is not dropped by one late tick.
pub(crate) const REPORT_TTL: Duration = Duration::from_millis(2_000);

/// Node-level counts the server keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCounts {
    /// Open WebSocket connections.
    pub connections: u64,
    /// Connections closed as slow consumers.
    pub slow_consumer_disconnects: u64,
    /// Events dropped under `drop_oldest`.
    pub dropped: u64,
}

/// One node's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Report {
    /// Who sent it.
    pub node: String,
    /// Its node-level counts.
    pub counts: NodeCounts,
    /// Its topics with any subscriber, message or drop.
    pub topics: Vec<TopicReport>,
}

/// One topic in a [`Report`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TopicReport {
    /// Topic name.
    pub name: String,
    /// The topic's generation, so counts of an earlier life of the name are not mixed in.
    pub generation: u64,
    /// Local subscriptions.
    pub subscribers: u64,
    /// Messages this node saw.
    pub messages: u64,
    /// Local drops.
    pub dropped: u64,
}

/// Reads this node's counts for the cluster report (connections live in the server).
pub type CountsFn = Box<dyn Fn() -> NodeCounts + Send + Sync>;

impl Report {
    /// This node's report now.
    pub(crate) fn local(node: &str, broker: &Broker, counts: NodeCounts) -> Self {
        let topics = broker
            .topics()
            .into_iter()
            .filter(|t| t.subscribers > 0 || t.messages > 0 || t.dropped > 0)
            .filter_map(|t| {
                let generation = broker.get(&t.name)?.generation();
                Some(TopicReport {
                    name: t.name,
                    generation,
                    subscribers: t.subscribers as u64,
                    messages: t.messages,
                    dropped: t.dropped,
                })
            })
            .collect();
        Self {
            node: node.to_string(),
            counts,
            topics,
        }
    }
}

/// The latest report of every node.
#[derive(Debug, Default)]
pub(crate) struct Reports {
    /// By node id: when it arrived and what it said.
    latest: Mutex<HashMap<String, (Instant, Report)>>,
}

/// Sums for one topic over the live reports.
#[derive(Debug, Default, Clone, Copy)]
struct Sum {
    subscribers: u64,
    messages: u64,
    dropped: u64,
}

impl Reports {
    /// Records a report.
    pub(crate) fn record(&self, report: Report) {
        let mut latest = self.latest.lock();
        latest.insert(report.node.clone(), (Instant::now(), report));
        // Nodes that are gone for good are forgotten, so ids of restarted nodes do not pile up.
        latest.retain(|_, (at, _)| at.elapsed() < REPORT_TTL * 30);
    }

    /// Reports recent enough to count.
    fn live(&self) -> Vec<Report> {
        let latest = self.latest.lock();
        latest
            .values()
            .filter(|(at, _)| at.elapsed() < REPORT_TTL)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The ids of the nodes whose last report is recent enough to count.
    pub(crate) fn live_nodes(&self) -> Vec<String> {
        let latest = self.latest.lock();
        latest
            .iter()
            .filter(|(_, (at, _))| at.elapsed() < REPORT_TTL)
            .map(|(node, _)| node.clone())
            .collect()
    }

    fn sums(&self) -> HashMap<(String, u64), Sum> {
        let mut sums: HashMap<(String, u64), Sum> = HashMap::new();
        for report in self.live() {
            for t in report.topics {
                let sum = sums.entry((t.name, t.generation)).or_default();
                sum.subscribers += t.subscribers;
                // Every node sees every message, so the best-informed node has the count (a node
                // that joined later only saw what the stream still held).
                sum.messages = sum.messages.max(t.messages);
                sum.dropped += t.dropped;
            }
        }
        sums
    }

    /// The topics that exist (this node's registry, which mirrors the shared one) with counts
    /// summed over live nodes; sorted by name.
    pub(crate) fn topics(&self, broker: &Broker) -> Vec<TopicStats> {
        let sums = self.sums();
        let mut out: Vec<TopicStats> = broker
            .topics()
            .into_iter()
            .map(|t| {
                let generation = broker.get(&t.name).map(|x| x.generation()).unwrap_or(0);
                let sum = sums
                    .get(&(t.name.clone(), generation))
                    .copied()
                    .unwrap_or_default();
                TopicStats {
                    name: t.name,
                    subscribers: sum.subscribers as usize,
                    messages: sum.messages,
                    dropped: sum.dropped,
                }
            })
            .collect();
        out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// One topic's subscribers and messages over live nodes.
    pub(crate) fn topic_counts(&self, topic: &Topic) -> (usize, u64) {
        let key = (topic.name().as_str().to_string(), topic.generation());
        let sum = self.sums().get(&key).copied().unwrap_or_default();
        (sum.subscribers as usize, sum.messages)
    }

    /// Node-level counts summed over live nodes, and how many nodes are live.
    pub(crate) fn totals(&self) -> (NodeCounts, usize) {
        let live = self.live();
        let mut total = NodeCounts::default();
        for r in &live {
            total.connections += r.counts.connections;
            total.slow_consumer_disconnects += r.counts.slow_consumer_disconnects;
            total.dropped += r.counts.dropped;
        }
        (total, live.len())
    }
}
