//! Cluster-wide presence (issue 21): what every other node counts, by topic and identity, kept
//! from their presence reports, and summed into each local topic's `remote` counts.
//!
//! # Why node reports over core NATS, not a KV bucket
//! nats-server 2.9 has no per-key TTL, so a KV bucket's `max_age` would expire a quiet user's
//! entry while they are still there, or force every node to rewrite every entry within the age:
//! a write per identity per topic per period, to JetStream's disk. A dead node is what must
//! expire, not an identity, so each node reports its own counts on core NATS (memory only, no
//! stream): a **delta** of the identities whose local count changed, at most every
//! `PRESENCE_COALESCE_MS` (absolute counts, so a repeated or reordered one is harmless), a
//! **beat** every second carrying its last sequence number, and a **full** report when another
//! node asks (it missed a sequence number, heard a node for the first time, or the node
//! restarted: a new incarnation). A node heard nothing from for `PRESENCE_TTL_SECS` has its view
//! dropped, which is the "leave" of each of its identities; a node shutting down says `bye` so
//! that happens at once. Every node applies the same reports, so all answer the same set.
//!
//! This file is the bookkeeping (no I/O); `nats/presence.rs` sends and receives.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::broker::{Broker, PresenceDelta};

/// A report's counts: topic → identity → count.
pub(crate) type Entries = Vec<(String, Vec<(String, u32)>)>;

/// What a presence report says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// Local counts that changed (absolute); a count of 0 is gone.
    Delta,
    /// Every local count: the receiver forgets what it had of the sender first.
    Full,
    /// Alive, and the last `seq` sent.
    Beat,
    /// Please send a full report (`target`).
    Want,
    /// Shutting down: forget me now.
    Bye,
}

/// One node's presence report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Report {
    /// The sender.
    pub node: String,
    /// The sender's process life: a restarted node (same id) starts over.
    pub inc: String,
    /// The sender's report number: deltas and fulls take the next one, beats repeat the last.
    pub seq: u64,
    /// What it says.
    pub kind: Kind,
    /// `Want`: the node asked for a full report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `Delta` / `Full`: topic → identity → count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Entries,
}

/// What this node knows of one other node's counts.
#[derive(Debug)]
struct View {
    /// Its incarnation.
    inc: String,
    /// The last report number applied.
    seq: u64,
    /// Whether a full report was applied since the view began (else parts may be missing).
    complete: bool,
    /// When it was last heard from.
    heard: Instant,
    /// When this node last asked it for a full report.
    asked: Option<Instant>,
    /// Topic → identity → count.
    topics: HashMap<String, HashMap<Arc<str>, u32>>,
}

/// Every other node's counts; only the presence task touches it.
#[derive(Debug)]
pub(crate) struct Remote {
    /// This node's id (its own reports echo back and are ignored).
    me: String,
    /// By node id.
    views: HashMap<String, View>,
    /// Topics with counts elsewhere that do not exist here (yet): applied once they do.
    unapplied: HashSet<String>,
    /// `PRESENCE_TTL_SECS`.
    ttl: Duration,
}

/// Pause before asking the same node for a full report again.
const ASK_AGAIN: Duration = Duration::from_secs(1);

impl Remote {
    /// No other node known yet.
    pub(crate) fn new(me: &str, ttl: Duration) -> Self {
        Self {
            me: me.to_string(),
            views: HashMap::new(),
            unapplied: HashSet::new(),
            ttl,
        }
    }

    /// Takes in `report` and sets the counts it changes on `broker`'s topics. Returns the node to
    /// ask for a full report, if one is needed, and whether this node itself was asked for one.
    pub(crate) fn receive(&mut self, report: Report, broker: &Broker) -> (Option<String>, bool) {
        if report.node == self.me {
            return (None, false);
        }
        if report.kind == Kind::Want {
            return (None, report.target.as_deref() == Some(self.me.as_str()));
        }
        if report.kind == Kind::Bye {
            if let Some(view) = self.views.remove(&report.node) {
                self.apply(broker, view.topics.into_keys());
            }
            return (None, false);
        }
        let now = Instant::now();
        let restarted = self
            .views
            .get(&report.node)
            .is_some_and(|v| v.inc != report.inc);
        if restarted {
            if let Some(old) = self.views.remove(&report.node) {
                self.apply(broker, old.topics.into_keys());
            }
        }
        let view = self
            .views
            .entry(report.node.clone())
            .or_insert_with(|| View {
                inc: report.inc.clone(),
                seq: 0,
                complete: false,
                heard: now,
                asked: None,
                topics: HashMap::new(),
            });
        view.heard = now;
        let mut touched: Vec<String> = Vec::new();
        let mut missed = false;
        match report.kind {
            Kind::Full if report.seq > view.seq || !view.complete => {
                touched.extend(view.topics.drain().map(|(t, _)| t));
                set_counts(view, &report.topics, &mut touched);
                view.seq = report.seq;
                view.complete = true;
            }
            Kind::Delta if report.seq > view.seq => {
                missed = report.seq != view.seq + 1;
                set_counts(view, &report.topics, &mut touched);
                view.seq = report.seq;
            }
            Kind::Beat => missed = report.seq > view.seq,
            _ => {}
        }
        let ask =
            (missed || !view.complete) && view.asked.is_none_or(|at| at.elapsed() >= ASK_AGAIN);
        if ask {
            view.asked = Some(now);
        }
        self.apply(broker, touched.into_iter());
        (ask.then_some(report.node), false)
    }

    /// Drops the views of nodes silent for `PRESENCE_TTL_SECS` (their identities leave) and
    /// applies every known count again, so a topic installed here since, or recreated, gets
    /// them. Run about every second.
    pub(crate) fn sweep(&mut self, broker: &Broker) {
        let ttl = self.ttl;
        let gone: Vec<String> = self
            .views
            .iter()
            .filter(|(_, v)| v.heard.elapsed() >= ttl)
            .map(|(node, _)| node.clone())
            .collect();
        let mut topics: HashSet<String> = std::mem::take(&mut self.unapplied);
        for node in gone {
            if let Some(view) = self.views.remove(&node) {
                tracing::info!(%node, "presence: node silent past PRESENCE_TTL_SECS, its clients leave");
                topics.extend(view.topics.into_keys());
            }
        }
        for view in self.views.values() {
            topics.extend(view.topics.keys().cloned());
        }
        self.apply(broker, topics.into_iter());
    }

    /// Sets each of `topics`' remote counts on `broker` to the sum over the live views.
    fn apply(&mut self, broker: &Broker, topics: impl Iterator<Item = String>) {
        for topic in topics {
            let mut totals: HashMap<Arc<str>, u32> = HashMap::new();
            for view in self.views.values() {
                for (id, n) in view.topics.get(&topic).into_iter().flatten() {
                    *totals.entry(id.clone()).or_default() += n;
                }
            }
            let Some(current) = broker.remote_presence(&topic) else {
                if !totals.is_empty() {
                    self.unapplied.insert(topic);
                }
                continue;
            };
            for (id, n) in &totals {
                if current.get(id) != Some(n) {
                    broker.set_remote_presence(&topic, id, *n);
                }
            }
            for id in current.keys().filter(|id| !totals.contains_key(*id)) {
                broker.set_remote_presence(&topic, id, 0);
            }
        }
    }
}

/// Sets a view's counts from a report's entries (absolute; 0 removes), noting the topics.
fn set_counts(
    view: &mut View,
    entries: &[(String, Vec<(String, u32)>)],
    touched: &mut Vec<String>,
) {
    for (topic, ids) in entries {
        let counts = view.topics.entry(topic.clone()).or_default();
        for (id, n) in ids {
            if *n == 0 {
                counts.remove(id.as_str());
            } else {
                counts.insert(id.as_str().into(), *n);
            }
        }
        if counts.is_empty() {
            view.topics.remove(topic);
        }
        touched.push(topic.clone());
    }
}

/// A report's `topics` from the broker's local counts.
pub(crate) fn entries(deltas: Vec<PresenceDelta>) -> Entries {
    deltas
        .into_iter()
        .map(|(topic, ids)| {
            let ids = ids.into_iter().map(|(id, n)| (id.to_string(), n)).collect();
            (topic.as_str().to_string(), ids)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Identity;
    use crate::config::Config;
    use crate::protocol::TopicName;

    fn broker_with(topics: &[&str]) -> Broker {
        let broker = Broker::new(&Config::default());
        for t in topics {
            install(&broker, t);
        }
        broker
    }

    fn install(broker: &Broker, name: &str) {
        let identity = Identity {
            epoch: "e".into(),
            created_at: "now".into(),
            generation: 1,
            rebuilt: false,
            implicit: false,
        };
        broker.install(&TopicName::parse(name).unwrap(), identity);
    }

    fn report(node: &str, inc: &str, seq: u64, kind: Kind, counts: &[(&str, &str, u32)]) -> Report {
        let mut topics: Entries = Vec::new();
        for (topic, id, n) in counts {
            match topics.iter_mut().find(|(t, _)| t == topic) {
                Some((_, ids)) => ids.push((id.to_string(), *n)),
                None => topics.push((topic.to_string(), vec![(id.to_string(), *n)])),
            }
        }
        Report {
            node: node.into(),
            inc: inc.into(),
            seq,
            kind,
            target: None,
            topics,
        }
    }

    fn listed(broker: &Broker, topic: &str) -> Vec<(String, u32)> {
        let list = broker.presence(topic, 100).expect("topic exists");
        list.clients
            .into_iter()
            .map(|(id, n)| (id.to_string(), n))
            .collect()
    }

    fn pairs(list: &[(&str, u32)]) -> Vec<(String, u32)> {
        list.iter().map(|(id, n)| (id.to_string(), *n)).collect()
    }

    #[test]
    fn nodes_counts_add_up_and_a_missed_report_asks_for_a_full_one_once() {
        let broker = broker_with(&["t"]);
        let mut remote = Remote::new("me", Duration::from_secs(10));
        let full = report("a", "1", 1, Kind::Full, &[("t", "u", 2), ("t", "v", 1)]);
        assert_eq!(remote.receive(full, &broker), (None, false));
        let full = report("b", "1", 1, Kind::Full, &[("t", "u", 1)]);
        assert_eq!(remote.receive(full, &broker), (None, false));
        assert_eq!(listed(&broker, "t"), pairs(&[("u", 3), ("v", 1)]));
        // Report 2 of `a` was lost: 3 applies (absolute counts) and asks for a full report.
        let delta = report("a", "1", 3, Kind::Delta, &[("t", "v", 0)]);
        assert_eq!(remote.receive(delta, &broker), (Some("a".into()), false));
        assert_eq!(listed(&broker, "t"), pairs(&[("u", 3)]));
        let beat = report("a", "1", 5, Kind::Beat, &[]);
        assert_eq!(
            remote.receive(beat, &broker),
            (None, false),
            "asked again too soon"
        );
        // Own reports echo back and are ignored; a request names who must answer.
        let mine = report("me", "1", 9, Kind::Full, &[("t", "me", 1)]);
        assert_eq!(remote.receive(mine, &broker), (None, false));
        let mut want = report("b", "1", 1, Kind::Want, &[]);
        want.target = Some("me".into());
        assert_eq!(remote.receive(want, &broker), (None, true));
        assert_eq!(listed(&broker, "t"), pairs(&[("u", 3)]));
    }

    #[test]
    fn a_restarted_node_starts_over_and_bye_forgets_it_at_once() {
        let broker = broker_with(&["t"]);
        let mut remote = Remote::new("me", Duration::from_secs(10));
        remote.receive(report("a", "1", 4, Kind::Full, &[("t", "u", 1)]), &broker);
        assert_eq!(listed(&broker, "t"), pairs(&[("u", 1)]));
        // Same id, new life: what the old one counted is gone, and a full report is asked for.
        let beat = report("a", "2", 0, Kind::Beat, &[]);
        assert_eq!(remote.receive(beat, &broker), (Some("a".into()), false));
        assert_eq!(listed(&broker, "t"), pairs(&[]));
        remote.receive(report("a", "2", 1, Kind::Full, &[("t", "w", 2)]), &broker);
        assert_eq!(listed(&broker, "t"), pairs(&[("w", 2)]));
        remote.receive(report("a", "2", 1, Kind::Bye, &[]), &broker);
        assert_eq!(listed(&broker, "t"), pairs(&[]));
    }

    #[test]
    fn a_silent_node_expires_and_a_topic_made_later_gets_its_counts() {
        let broker = broker_with(&["t"]);
        let mut remote = Remote::new("me", Duration::from_millis(50));
        let full = report("a", "1", 1, Kind::Full, &[("t", "u", 1), ("later", "u", 1)]);
        remote.receive(full, &broker);
        assert!(broker.presence("later", 10).is_none());
        install(&broker, "later");
        remote.sweep(&broker);
        assert_eq!(listed(&broker, "later"), pairs(&[("u", 1)]));
        std::thread::sleep(Duration::from_millis(60));
        remote.sweep(&broker);
        assert_eq!(listed(&broker, "t"), pairs(&[]));
        assert_eq!(listed(&broker, "later"), pairs(&[]));
    }
}
