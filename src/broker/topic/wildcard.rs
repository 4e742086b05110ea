//! A topic's side of wildcard subscriptions (issue 20): pattern subscribers listed in and
//! unlisted from its snapshot, by the broker's pattern index (`broker/patterns.rs`).

use std::sync::Arc;

use super::Topic;
use crate::broker::subscriber::{ConnId, Subscriber};

impl Topic {
    /// One more of `subscriber`'s patterns matches this topic: it is listed unless it already
    /// was (by name or another pattern). Called with the pattern index locked.
    pub(crate) fn add_pattern(&self, subscriber: &Subscriber) {
        let mut sequencer = self.sequencer.lock();
        if self.is_deleted() {
            return;
        }
        let current = self.subscribers.load();
        if let Some(next) = sequencer.members.join_via(&current, subscriber) {
            self.subscribers.store(Arc::new(next));
        }
    }

    /// One of `conn`'s patterns matching this topic went: it is unlisted when that was its
    /// last reason to be here.
    pub(crate) fn remove_pattern(&self, conn: ConnId) {
        let mut sequencer = self.sequencer.lock();
        let current = self.subscribers.load();
        if let Some(next) = sequencer.members.leave_via(&current, conn) {
            self.subscribers.store(Arc::new(next));
        }
    }
}
