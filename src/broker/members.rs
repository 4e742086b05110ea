//! Who is on a topic and why: by name, through patterns, or both (issue 20). Kept under the
//! topic's sequencer beside the snapshot publishers read, so the snapshot can list each
//! connection once and still be updated correctly when one of its reasons goes.

use std::collections::{HashMap, HashSet};

use super::subscriber::{ConnId, Subscriber, Subscribers};

/// A topic's subscribers by reason; only the sequencer's holder reads or writes it.
#[derive(Debug, Default)]
pub(crate) struct Members {
    /// Connections subscribed by name.
    direct: HashSet<ConnId>,
    /// Connections listed through patterns, with how many of their patterns match the topic.
    via: HashMap<ConnId, u32>,
}

impl Members {
    /// Records `subscriber`'s subscription by name; the next snapshot, or `None` when it was
    /// already subscribed by name.
    pub(crate) fn join(
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
    pub(crate) fn leave(&mut self, current: &Subscribers, conn: ConnId) -> Option<Subscribers> {
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
    pub(crate) fn clear(&mut self) {
        self.direct.clear();
        self.via.clear();
    }

    /// One more of `subscriber`'s patterns matches the topic; the next snapshot, or `None` when
    /// it was already listed (by name or another pattern).
    pub(crate) fn join_via(
        &mut self,
        current: &Subscribers,
        subscriber: &Subscriber,
    ) -> Option<Subscribers> {
        let count = self.via.entry(subscriber.conn).or_insert(0);
        *count += 1;
        (*count == 1 && !self.direct.contains(&subscriber.conn))
            .then(|| current.with(subscriber, false))
    }

    /// One of `conn`'s patterns matching the topic went; the next snapshot, or `None` when it
    /// stays listed (by name or another pattern).
    pub(crate) fn leave_via(&mut self, current: &Subscribers, conn: ConnId) -> Option<Subscribers> {
        let count = self.via.get_mut(&conn)?;
        *count -= 1;
        if *count > 0 {
            return None;
        }
        self.via.remove(&conn);
        (!self.direct.contains(&conn)).then(|| current.without(conn, false))
    }
}
