//! What the door reports about topics and the node, in the engine's terms (the transports pick
//! the fields their routes show).

use crate::broker::{Topic, TopicStats};
use crate::cluster::NodeCounts;

/// One topic as `GET /topics/{name}` shows it.
#[derive(Debug, Clone)]
pub struct TopicView {
    /// Its name.
    pub name: String,
    /// Current subscriptions (cluster-wide in cluster mode).
    pub subscribers: usize,
    /// Messages published since it was created.
    pub messages: u64,
    /// Latest `seq`.
    pub seq: u64,
    /// Its epoch.
    pub epoch: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

impl TopicView {
    pub(super) fn new(topic: &Topic, subscribers: usize, messages: u64) -> Self {
        Self {
            name: topic.name().as_str().to_string(),
            subscribers,
            messages,
            seq: topic.seq(),
            epoch: topic.epoch().to_string(),
            created_at: topic.created_at().to_string(),
        }
    }
}

/// The counts `/health`, `/stats` and `/metrics` report.
#[derive(Debug, Clone)]
pub struct NodeStats {
    /// Every topic with its counts, sorted by name.
    pub topics: Vec<TopicStats>,
    /// Subscriptions over all topics.
    pub subscribers: usize,
    /// Pattern subscriptions on this node (issue 20), counted apart from `subscribers`.
    pub pattern_subscriptions: usize,
    /// Connections, drops and slow-consumer closes: this node's, or summed over the cluster.
    pub totals: NodeCounts,
    /// Live nodes, in cluster mode only.
    pub nodes: Option<usize>,
    /// Seconds since this node started.
    pub uptime_secs: u64,
}
