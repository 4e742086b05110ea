//! Cluster expiry's side of a topic (`../lifecycle.rs` says how the lease and the operations in
//! flight meet): the vote, and the mark a publish or subscribe holds while it runs.

use std::sync::Arc;

use super::Topic;
use crate::broker::lifecycle::Lease;

impl Topic {
    /// Cluster expiry's vote at sweep clock `now`: whether the topic has been idle here for `ttl`
    /// ms with nothing in flight. An idle vote leases the topic until `lease_until`.
    pub(crate) fn vote_idle(&self, now: u64, ttl: u64, lease_until: u64) -> bool {
        !self.is_deleted()
            && self.life().vote_idle(
                now,
                ttl,
                lease_until,
                || self.messages(),
                || self.subscriber_count(),
            )
    }
}

/// A publish or subscribe in flight on a topic, in cluster mode: while one exists this node votes
/// the topic busy. Made before the operation uses the topic, dropped when it is done (the publish
/// stored, the subscriber in the topic's list).
#[derive(Debug)]
pub struct InFlight {
    /// The topic the operation uses.
    topic: Arc<Topic>,
    /// Whether this node's idle vote stood when the mark was made.
    leased: bool,
}

impl InFlight {
    /// Marks an operation on `topic` as running.
    pub fn new(topic: Arc<Topic>) -> Self {
        let leased = topic.life().enter();
        Self { topic, leased }
    }

    /// The topic the operation uses.
    pub fn topic(&self) -> &Arc<Topic> {
        &self.topic
    }

    /// Where this node's expiry lease stood when the mark was made, at sweep clock `now`: only
    /// [`Lease::Free`] lets the operation go ahead.
    pub(crate) fn lease_at(&self, now: u64) -> Lease {
        if self.leased {
            self.topic.life().lease_at(now)
        } else {
            Lease::Free
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.topic.life().leave();
    }
}
