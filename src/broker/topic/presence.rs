//! A topic's side of presence (issue 21, `broker/presence.rs`): its presence lock, taken inside
//! the sequencer by subscribe and unsubscribe and alone by queries, flushes and other nodes'
//! reports; a publish never takes it.

use std::collections::HashMap;
use std::sync::Arc;

use super::Topic;
use crate::broker::presence::{Flush, Presence};
use crate::broker::subscriber::ConnId;
use crate::protocol::PresenceList;

impl Topic {
    /// Runs `f` on the topic's presence, making it on first use (a cluster's topic, one with a
    /// registry generation, reports its local changes to the other nodes).
    pub(super) fn with_presence<R>(&self, f: impl FnOnce(&mut Presence) -> R) -> R {
        let mut presence = self.presence.lock();
        let presence =
            presence.get_or_insert_with(|| Box::new(Presence::new(self.generation() > 0)));
        f(presence)
    }

    /// Removes the connection's subscription by name: whether it had one, and whether the topic
    /// needs a presence flush queued.
    pub(crate) fn unsubscribe_counted(&self, conn: ConnId) -> (bool, bool) {
        let mut sequencer = self.sequencer.lock();
        let current = self.subscribers.load();
        let Some(next) = sequencer.members.leave(&current, conn) else {
            return (false, false);
        };
        self.subscribers.store(Arc::new(next));
        // The idle time of a topic whose last subscriber left starts now.
        self.life.touch();
        let claimed = self.presence.lock().as_mut().is_some_and(|p| p.leave(conn));
        drop(sequencer);
        (true, claimed)
    }

    /// Who is on the topic: up to `max` identities and how many there are.
    pub fn presence_list(&self, max: usize) -> PresenceList {
        let presence = self.presence.lock();
        let list = presence.as_ref().map(|p| p.list(max)).unwrap_or_default();
        list
    }

    /// What the next presence flush must do.
    pub(crate) fn take_presence(&self) -> Flush {
        let mut presence = self.presence.lock();
        let flush = presence.as_mut().map(|p| p.take()).unwrap_or_default();
        flush
    }

    /// Cluster mode: what the other nodes count for `identity`; whether a flush is needed.
    pub(crate) fn set_remote_presence(&self, identity: &Arc<str>, remote: u32) -> bool {
        self.with_presence(|p| p.set_remote(identity, remote))
    }

    /// Cluster mode: what the other nodes count, by identity.
    pub(crate) fn remote_presence(&self) -> HashMap<Arc<str>, u32> {
        let presence = self.presence.lock();
        let remote = presence
            .iter()
            .flat_map(|p| p.remote())
            .map(|(id, n)| (id.clone(), n));
        remote.collect()
    }

    /// What this node counts, by identity.
    pub(crate) fn local_presence(&self) -> Vec<(Arc<str>, u32)> {
        let presence = self.presence.lock();
        let local = presence
            .iter()
            .flat_map(|p| p.local())
            .map(|(id, n)| (id.clone(), n));
        local.collect()
    }
}
