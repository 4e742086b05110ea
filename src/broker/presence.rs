//! Presence (issue 21): who is on a topic, and the `join` / `leave` notices of subscribers that
//! asked for them.
//!
//! # Where it lives and what it costs
//! Each topic keeps a [`Presence`] behind its own small mutex, beside the subscriber snapshot and
//! never read by a publish: fan-out walks the snapshot as before, with no presence work per
//! delivery. Only subscribe, unsubscribe, a topic's deletion and (in cluster mode) another
//! node's report change it; subscribe and unsubscribe change it under the sequencer they already
//! hold, so it always agrees with the snapshot's by-name members. A subscribed connection costs
//! two map entries per topic (its identity, shared as one `Arc<str>` by its subscriptions, and
//! the identity's count).
//!
//! # Identity and counting
//! Only subscriptions by name count (a pattern subscriber listens; it is not "on" each topic).
//! An identity is present while its count here plus its count on the other nodes of a cluster
//! (`remote`, kept current by `cluster/nats/presence.rs`) is above zero, so a second tab is not
//! a join and a user on two nodes is one identity.
//!
//! # Notices
//! A change of whether an identity is present is not sent at once: it waits in `pending` until the
//! next flush (`PRESENCE_COALESCE_MS`), which sends only identities whose presence differs from
//! what it was at the previous flush, so a join and leave inside one window cancel out. A notice
//! is built once and pushed to each watcher as a droppable [`Outgoing::Notice`] only while its
//! queue has room, so notices never make a slow consumer of anyone.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::outbox::Outbox;
use super::subscriber::{ConnId, Subscriber};
use crate::protocol::{PresenceList, TopicName};

/// One topic's local presence changes, for the cluster report: identity and its count here.
pub type PresenceDelta = (TopicName, Vec<(Arc<str>, u32)>);

/// How a subscription counts in presence: who it is, and whether it wants notices.
#[derive(Debug, Clone)]
pub struct Joining {
    /// The identity (the token's `sub`, else a client-chosen id, else the connection's id).
    pub identity: Arc<str>,
    /// `presence_events`: the subscriber is told of joins and leaves.
    pub events: bool,
}

/// An identity's connections: here, and on the other nodes of a cluster.
#[derive(Debug, Default, Clone, Copy)]
struct Count {
    /// Subscriptions by name on this node.
    local: u32,
    /// The sum over the other live nodes.
    remote: u32,
}

impl Count {
    fn total(self) -> u32 {
        self.local.saturating_add(self.remote)
    }
}

/// A subscriber that asked for `join` / `leave` notices.
#[derive(Debug)]
struct Watcher {
    /// Where its notices go.
    outbox: Arc<Outbox>,
    /// Its own identity: it is not told of its own joins and leaves.
    identity: Arc<str>,
}

/// One topic's presence; only the topic's presence lock holder touches it.
#[derive(Debug, Default)]
pub(crate) struct Presence {
    /// This node's subscriptions by name: the identity each counts for.
    conns: HashMap<ConnId, Arc<str>>,
    /// Every identity present (an entry exists only while its total is above zero).
    counts: HashMap<Arc<str>, Count>,
    /// Subscribers that asked for notices.
    watchers: HashMap<ConnId, Watcher>,
    /// Identities whose presence changed since the last flush, with whether they were present
    /// then.
    pending: HashMap<Arc<str>, bool>,
    /// Cluster mode: identities whose local count changed since the last report to other nodes.
    changed: HashSet<Arc<str>>,
    /// Whether local changes are reported to other nodes (the topic is a cluster's).
    cluster: bool,
    /// Whether the topic is in the broker's flush queue.
    queued: bool,
}

/// What one flush of a topic found to do.
#[derive(Debug, Default)]
pub(crate) struct Flush {
    /// Identities that joined (`true`) or left, to tell watchers.
    pub(crate) notices: Vec<(Arc<str>, bool)>,
    /// The watchers to tell (outbox and own identity), when there is something to tell.
    pub(crate) watchers: Vec<(Arc<Outbox>, Arc<str>)>,
    /// Cluster mode: local counts that changed, to report.
    pub(crate) changed: Vec<(Arc<str>, u32)>,
}

impl Presence {
    /// Presence of a cluster topic (`cluster`: local changes are reported) or a single node's.
    pub(crate) fn new(cluster: bool) -> Self {
        Self {
            cluster,
            ..Self::default()
        }
    }

    /// `subscriber` subscribed by name as `joining`. Returns whether the topic needs a flush
    /// queued.
    pub(crate) fn join(&mut self, subscriber: &Subscriber, joining: &Joining) -> bool {
        if let Some(old) = self.conns.insert(subscriber.conn, joining.identity.clone()) {
            self.add_local(&old, false);
        }
        self.add_local(&joining.identity, true);
        if joining.events {
            self.watch(subscriber, joining);
        }
        self.claim()
    }

    /// `subscriber` (already counted) wants notices from now on.
    pub(crate) fn watch(&mut self, subscriber: &Subscriber, joining: &Joining) {
        let identity = self
            .conns
            .get(&subscriber.conn)
            .unwrap_or(&joining.identity);
        let watcher = Watcher {
            outbox: subscriber.outbox.clone(),
            identity: identity.clone(),
        };
        self.watchers.insert(subscriber.conn, watcher);
    }

    /// `conn`'s subscription by name ended. Returns whether the topic needs a flush queued.
    pub(crate) fn leave(&mut self, conn: ConnId) -> bool {
        self.watchers.remove(&conn);
        if let Some(identity) = self.conns.remove(&conn) {
            self.add_local(&identity, false);
        }
        self.claim()
    }

    /// The topic is gone: every local subscription ends, with no one left to tell.
    pub(crate) fn clear(&mut self) -> bool {
        self.watchers.clear();
        self.pending.clear();
        for (_, identity) in std::mem::take(&mut self.conns) {
            self.add_local(&identity, false);
        }
        self.claim()
    }

    /// Sets what the other nodes count for `identity`. Returns whether the topic needs a flush.
    pub(crate) fn set_remote(&mut self, identity: &Arc<str>, remote: u32) -> bool {
        let entry = self.counts.entry(identity.clone()).or_default();
        let before = entry.total() > 0;
        entry.remote = remote;
        let after = entry.total() > 0;
        if !after {
            self.counts.remove(identity);
        }
        if before != after {
            self.note(identity, before);
        }
        self.claim()
    }

    /// What the other nodes count, by identity.
    pub(crate) fn remote(&self) -> impl Iterator<Item = (&Arc<str>, u32)> {
        self.counts
            .iter()
            .filter(|(_, c)| c.remote > 0)
            .map(|(id, c)| (id, c.remote))
    }

    /// What this node counts, by identity.
    pub(crate) fn local(&self) -> impl Iterator<Item = (&Arc<str>, u32)> {
        self.counts
            .iter()
            .filter(|(_, c)| c.local > 0)
            .map(|(id, c)| (id, c.local))
    }

    /// Up to `max` identities present (sorted, so every node lists the same ones) and the count.
    pub(crate) fn list(&self, max: usize) -> PresenceList {
        let mut clients: Vec<(Arc<str>, u32)> = self
            .counts
            .iter()
            .map(|(id, c)| (id.clone(), c.total()))
            .collect();
        let count = clients.len();
        if count > max {
            clients.select_nth_unstable_by(max, |a, b| a.0.cmp(&b.0));
            clients.truncate(max);
        }
        clients.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        PresenceList { clients, count }
    }

    /// Takes what the next flush must do and leaves the flush queue.
    pub(crate) fn take(&mut self) -> Flush {
        self.queued = false;
        let counts = &self.counts;
        let notices: Vec<(Arc<str>, bool)> = self
            .pending
            .drain()
            .filter_map(|(id, was)| {
                let now = counts.contains_key(&id);
                (now != was).then_some((id, now))
            })
            .collect();
        let watchers = if notices.is_empty() {
            Vec::new()
        } else {
            self.watchers
                .values()
                .map(|w| (w.outbox.clone(), w.identity.clone()))
                .collect()
        };
        let changed = self
            .changed
            .drain()
            .map(|id| {
                let local = counts.get(&id).map_or(0, |c| c.local);
                (id, local)
            })
            .collect();
        Flush {
            notices,
            watchers,
            changed,
        }
    }

    fn add_local(&mut self, identity: &Arc<str>, up: bool) {
        let entry = self.counts.entry(identity.clone()).or_default();
        let before = entry.total() > 0;
        entry.local = if up {
            entry.local.saturating_add(1)
        } else {
            entry.local.saturating_sub(1)
        };
        let after = entry.total() > 0;
        if !after {
            self.counts.remove(identity);
        }
        if self.cluster {
            self.changed.insert(identity.clone());
        }
        if before != after {
            self.note(identity, before);
        }
    }

    /// Remembers that `identity`'s presence changed from `was`; a change back before the flush
    /// cancels it.
    fn note(&mut self, identity: &Arc<str>, was: bool) {
        if self.watchers.is_empty() {
            return;
        }
        match self.pending.entry(identity.clone()) {
            Entry::Occupied(e) => {
                // Back to what it was at the last flush: nothing to tell.
                e.remove();
            }
            Entry::Vacant(e) => {
                e.insert(was);
            }
        }
    }

    /// Whether the topic must now enter the flush queue (it has work and is not queued yet).
    fn claim(&mut self) -> bool {
        let work = !self.pending.is_empty() || !self.changed.is_empty();
        let claim = work && !self.queued;
        self.queued |= claim;
        claim
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SlowConsumerPolicy;
    use crate::protocol::Dialect;

    fn sub(id: u64) -> Subscriber {
        Subscriber {
            conn: ConnId(id),
            outbox: Arc::new(Outbox::new(8, SlowConsumerPolicy::Disconnect)),
            dialect: Dialect::Canonical,
        }
    }

    fn as_(identity: &str, events: bool) -> Joining {
        Joining {
            identity: identity.into(),
            events,
        }
    }

    fn notices(p: &mut Presence) -> Vec<(String, bool)> {
        let mut got: Vec<(String, bool)> = p
            .take()
            .notices
            .into_iter()
            .map(|(id, joined)| (id.to_string(), joined))
            .collect();
        got.sort();
        got
    }

    #[test]
    fn tabs_count_once_and_a_change_undone_before_the_flush_is_not_told() {
        let mut p = Presence::new(false);
        // No watcher: nothing to flush, nothing queued.
        assert!(!p.join(&sub(1), &as_("u", false)));
        // A watcher is not told of its own join: still nothing to flush.
        assert!(!p.join(&sub(2), &as_("w", true)));
        assert!(p.join(&sub(3), &as_("v", false)));
        assert!(
            !p.join(&sub(4), &as_("v", false)),
            "queued already; second tab no news"
        );
        assert_eq!(notices(&mut p), vec![("v".into(), true)]);
        assert!(!p.leave(ConnId(4)), "v still has a tab");
        assert!(p.leave(ConnId(3)));
        assert!(!p.join(&sub(5), &as_("v", false)), "queued already");
        assert_eq!(
            notices(&mut p),
            vec![],
            "left and came back inside one window"
        );
        let list = p.list(2);
        assert_eq!(list.count, 3);
        let ids: Vec<&str> = list.clients.iter().map(|(id, _)| &**id).collect();
        assert_eq!(ids, ["u", "v"]);
    }

    #[test]
    fn cluster_topics_report_local_changes_and_remote_counts_join_and_leave() {
        let mut p = Presence::new(true);
        assert!(p.join(&sub(1), &as_("w", true)));
        assert_eq!(p.take().changed, vec![("w".into(), 1)]);
        // Another node's user: present while counted anywhere.
        let u: Arc<str> = "u".into();
        assert!(p.set_remote(&u, 2));
        assert!(
            !p.join(&sub(2), &as_("u", false)),
            "queued already, and u was here"
        );
        assert_eq!(notices(&mut p), vec![("u".into(), true)]);
        assert!(!p.set_remote(&u, 0), "still here on this node");
        assert_eq!(p.list(10).clients, vec![(u.clone(), 1), ("w".into(), 1)]);
        assert!(p.clear());
        let flush = p.take();
        assert!(flush.notices.is_empty(), "no one left to tell");
        let mut changed = flush.changed;
        changed.sort();
        assert_eq!(changed, vec![("u".into(), 0), ("w".into(), 0)]);
    }
}
