//! The broker's presence operations (issue 21): unsubscribe (a possible leave), the presence
//! answer, the flush, and the cluster's view of other nodes' counts.

use std::collections::HashMap;
use std::sync::Arc;

use super::presence::PresenceDelta;
use super::subscriber::ConnId;
use super::{Broker, Topic};
use crate::protocol::PresenceList;

impl Broker {
    /// Ends `conn`'s subscription to `topic` by name.
    pub fn unsubscribe(&self, topic: &Arc<Topic>, conn: ConnId) -> bool {
        let (left, claimed) = topic.unsubscribe_counted(conn);
        self.presence.queue(topic, claimed);
        left
    }

    /// Who is on `name`, at most `max` identities listed; `None` when it does not exist.
    pub fn presence(&self, name: &str, max: usize) -> Option<PresenceList> {
        self.get(name).map(|t| t.presence_list(max))
    }

    /// Sends every pending notice (join/leave, coalesced since the last flush) and returns the
    /// local counts that changed since, for the cluster report. Called every
    /// `PRESENCE_COALESCE_MS`.
    pub fn flush_presence(&self) -> Vec<PresenceDelta> {
        self.presence.flush()
    }

    /// Cluster mode: sets what the other nodes count for `identity` on `name`; false when the
    /// topic does not exist here (yet).
    pub fn set_remote_presence(&self, name: &str, identity: &Arc<str>, remote: u32) -> bool {
        let Some(topic) = self.get(name) else {
            return false;
        };
        let claimed = topic.set_remote_presence(identity, remote);
        self.presence.queue(&topic, claimed);
        true
    }

    /// Cluster mode: what the other nodes count on `name`, by identity, as this node holds it.
    pub fn remote_presence(&self, name: &str) -> Option<HashMap<Arc<str>, u32>> {
        self.get(name).map(|t| t.remote_presence())
    }

    /// Cluster mode: every topic's local counts, for a full report to other nodes.
    pub fn local_presence(&self) -> Vec<PresenceDelta> {
        self.topics
            .iter()
            .filter_map(|e| {
                let local = e.value().local_presence();
                (!local.is_empty()).then(|| (e.key().clone(), local))
            })
            .collect()
    }

    /// Notices queued to watchers since start, and those dropped for want of room.
    pub fn presence_notices(&self) -> (u64, u64) {
        self.presence.notices()
    }
}
