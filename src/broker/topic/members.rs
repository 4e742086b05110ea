//! Who is on a topic and why: by name, through patterns, or both (issue 20). Kept under the
//! sequencer beside the snapshot publishers read, so the snapshot can list each connection once
//! and still be updated correctly when one of its reasons goes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::Topic;
use crate::broker::subscriber::{ConnId, Subscriber, Subscribers};

/// A topic's subscribers by reason; only the sequencer's holder reads or writes it.
#[derive(Debug, Default)]
pub(super) struct Members {
    /// Connections subscribed by name.
    direct: HashSet<ConnId>,
    /// Connections listed through patterns, with how many of their patterns match the topic.
    via: HashMap<ConnId, u32>,
}

impl Members {
    /// Records `subscriber`'s subscription by name; the next snapshot, or `None` when it was
    /// already subscribed by name.
    pub(super) fn join(
        &mut self,
        current: &Subscribers,
        subscriber: &Subscriber,
    ) -> Option<Subscribers> {
        if !self.direct.insert(subscriber.conn) {
            return None;
        }
        Some(if self.via.contains_key(&subscriber.conn) {
            current.recount(true)
        } else {
            current.with(subscriber, true)
        })
    }

    /// Ends `conn`'s subscription by name; the next snapshot, or `None` when it had none.
    pub(super) fn leave(&mut self, current: &Subscribers, conn: ConnId) -> Option<Subscribers> {
        if !self.direct.remove(&conn) {
            return None;
        }
        Some(if self.via.contains_key(&conn) {
            current.recount(false)
        } else {
            current.without(conn, true)
        })
    }

    /// Forgets everyone (the topic is gone).
    pub(super) fn clear(&mut self) {
        self.direct.clear();
        self.via.clear();
    }
}

impl Topic {
    /// One more of `subscriber`'s patterns matches this topic: it is listed unless it already
    /// was (by name or another pattern). Called with the pattern index locked (`patterns.rs`).
    pub(crate) fn add_pattern(&self, subscriber: &Subscriber) {
        let mut sequencer = self.sequencer.lock();
        if self.is_deleted() {
            return;
        }
        let members = &mut sequencer.members;
        let count = members.via.entry(subscriber.conn).or_insert(0);
        *count += 1;
        if *count == 1 && !members.direct.contains(&subscriber.conn) {
            let current = self.subscribers.load();
            self.subscribers
                .store(Arc::new(current.with(subscriber, false)));
        }
    }

    /// One of `conn`'s patterns matching this topic went: it is unlisted when that was its
    /// last reason to be here.
    pub(crate) fn remove_pattern(&self, conn: ConnId) {
        let mut sequencer = self.sequencer.lock();
        let members = &mut sequencer.members;
        let Some(count) = members.via.get_mut(&conn) else {
            return;
        };
        *count -= 1;
        if *count > 0 {
            return;
        }
        members.via.remove(&conn);
        if !members.direct.contains(&conn) {
            let current = self.subscribers.load();
            self.subscribers
                .store(Arc::new(current.without(conn, false)));
        }
    }
}
