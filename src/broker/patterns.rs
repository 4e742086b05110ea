//! Wildcard subscriptions (issue 20): a token trie of every pattern subscription, consulted when
//! a topic is created or a pattern is added or removed, never when a message is published.
//!
//! The result of matching lives in each topic's own subscriber snapshot (`Topic::add_pattern`):
//! a pattern subscriber is one more recipient there, merged with the exact subscribers so a
//! connection appears once per topic however many of its subscriptions match. A publish walks
//! that one list as before, with no branch and no lookup per delivery.
//!
//! # Ordering with topic creation
//! A pattern subscribe and a topic creation both hold the index's lock while they match: the
//! subscribe adds itself to every topic that exists, a creation adds every pattern that matches
//! to the new topic before anyone else can change the index, and before the topic enters the map
//! (else a publish could find it between the two and miss a subscriber already acked; the loom
//! model in `loom_tests.rs` found exactly that). So each (pattern, topic) pair is applied exactly
//! once, and once the subscribe's ack is queued every publish to a matching topic, existing or
//! created later, sees the subscriber.

use std::collections::HashMap;

use super::subscriber::{ConnId, Subscriber};
use super::topic::Topic;
use crate::protocol::TopicPattern;

/// Lists every pattern subscription matching a topic just created in it, before the topic is
/// in the map; the caller holds the index's lock, so no pattern changes meanwhile (module docs).
pub(crate) fn apply(index: &PatternIndex, topic: &Topic) {
    for subscriber in index.matching(topic.name().as_str()) {
        topic.add_pattern(subscriber);
    }
}

/// One level of the trie.
#[derive(Debug, Default)]
pub(crate) struct Node {
    /// Children by literal token.
    literal: HashMap<Box<str>, Node>,
    /// The child after a `*` token.
    star: Option<Box<Node>>,
    /// Subscriptions whose pattern ends here (the topic must end here too).
    end: Vec<Subscriber>,
    /// Subscriptions whose pattern ends here with `>` (one or more topic tokens follow).
    rest: Vec<Subscriber>,
}

impl Node {
    /// The list a pattern's subscriptions sit in, created on the way down.
    fn slot<'a, 'b>(
        &'a mut self,
        mut tokens: impl Iterator<Item = &'b str>,
    ) -> &'a mut Vec<Subscriber> {
        match tokens.next() {
            None => &mut self.end,
            Some(">") => &mut self.rest,
            Some("*") => self.star.get_or_insert_with(Box::default).slot(tokens),
            Some(literal) => self.literal.entry(literal.into()).or_default().slot(tokens),
        }
    }

    /// Removes `conn`'s subscription to the pattern `tokens` below here, pruning emptied
    /// branches; returns whether it was there.
    fn remove<'b>(&mut self, mut tokens: impl Iterator<Item = &'b str>, conn: ConnId) -> bool {
        let take = |list: &mut Vec<Subscriber>| {
            let before = list.len();
            list.retain(|s| s.conn != conn);
            list.len() != before
        };
        match tokens.next() {
            None => take(&mut self.end),
            Some(">") => take(&mut self.rest),
            Some("*") => {
                let Some(child) = self.star.as_mut() else {
                    return false;
                };
                let removed = child.remove(tokens, conn);
                if child.is_empty() {
                    self.star = None;
                }
                removed
            }
            Some(literal) => {
                let Some(child) = self.literal.get_mut(literal) else {
                    return false;
                };
                let removed = child.remove(tokens, conn);
                if child.is_empty() {
                    self.literal.remove(literal);
                }
                removed
            }
        }
    }

    /// Whether nothing is stored here or below.
    fn is_empty(&self) -> bool {
        self.literal.is_empty()
            && self.star.is_none()
            && self.end.is_empty()
            && self.rest.is_empty()
    }

    /// Every subscription whose pattern matches the topic tokens in `rest` (`None`: all
    /// consumed), once per matching pattern. Each trie node is visited at most once per topic
    /// (its depth is fixed by its path), so `*` branches cannot blow up.
    fn collect<'a>(&'a self, rest: Option<&str>, out: &mut Vec<&'a Subscriber>) {
        let Some(rest) = rest else {
            out.extend(&self.end);
            return;
        };
        out.extend(&self.rest);
        let (token, after) = match rest.split_once('.') {
            Some((token, after)) => (token, Some(after)),
            None => (rest, None),
        };
        if let Some(child) = self.literal.get(token) {
            child.collect(after, out);
        }
        if let Some(child) = &self.star {
            child.collect(after, out);
        }
    }
}

/// Every pattern subscription on this node, by pattern. Kept behind the broker's lock (see the
/// module docs); `count` is what `/stats` shows and `MAX_PATTERN_SUBSCRIPTIONS` bounds.
#[derive(Debug, Default)]
pub(crate) struct PatternIndex {
    /// The trie.
    root: Node,
    /// Pattern subscriptions stored.
    count: usize,
}

impl PatternIndex {
    /// Adds `subscriber`'s subscription to `pattern`; false when it already had it.
    pub(crate) fn insert(&mut self, pattern: &TopicPattern, subscriber: &Subscriber) -> bool {
        let list = self.root.slot(pattern.tokens());
        if list.iter().any(|s| s.conn == subscriber.conn) {
            return false;
        }
        list.push(subscriber.clone());
        self.count += 1;
        true
    }

    /// Whether `conn` holds a subscription to `pattern`.
    pub(crate) fn contains(&self, pattern: &TopicPattern, conn: ConnId) -> bool {
        let mut node = &self.root;
        for token in pattern.tokens() {
            let next = match token {
                ">" => return node.rest.iter().any(|s| s.conn == conn),
                "*" => node.star.as_deref(),
                literal => node.literal.get(literal),
            };
            let Some(next) = next else {
                return false;
            };
            node = next;
        }
        node.end.iter().any(|s| s.conn == conn)
    }

    /// Removes `conn`'s subscription to `pattern`; false when it had none.
    pub(crate) fn remove(&mut self, pattern: &TopicPattern, conn: ConnId) -> bool {
        let removed = self.root.remove(pattern.tokens(), conn);
        if removed {
            self.count -= 1;
        }
        removed
    }

    /// The subscriptions matching `topic`, once per matching pattern (a connection with two
    /// matching patterns is listed twice; the topic counts them).
    pub(crate) fn matching(&self, topic: &str) -> Vec<&Subscriber> {
        let mut out = Vec::new();
        if self.count > 0 {
            self.root.collect(Some(topic), &mut out);
        }
        out
    }

    /// Pattern subscriptions stored.
    pub(crate) fn len(&self) -> usize {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::broker::Outbox;
    use crate::config::SlowConsumerPolicy;
    use crate::protocol::Dialect;

    fn sub(id: u64) -> Subscriber {
        Subscriber {
            conn: ConnId(id),
            outbox: Arc::new(Outbox::new(4, SlowConsumerPolicy::Disconnect)),
            dialect: Dialect::Canonical,
        }
    }

    fn conns(index: &PatternIndex, topic: &str) -> Vec<u64> {
        let mut ids: Vec<u64> = index.matching(topic).iter().map(|s| s.conn.0).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn insert_is_idempotent_and_remove_prunes() {
        let mut index = PatternIndex::default();
        let p = TopicPattern::parse("a.*.c").unwrap();
        assert!(index.insert(&p, &sub(1)));
        assert!(!index.insert(&p, &sub(1)));
        assert!(index.insert(&TopicPattern::parse("a.>").unwrap(), &sub(1)));
        assert_eq!(index.len(), 2);
        assert_eq!(
            conns(&index, "a.b.c"),
            vec![1, 1],
            "once per matching pattern"
        );
        assert!(index.remove(&p, ConnId(1)));
        assert!(!index.remove(&p, ConnId(1)));
        assert!(index.remove(&TopicPattern::parse("a.>").unwrap(), ConnId(1)));
        assert!(index.root.is_empty(), "emptied branches are pruned");
        assert_eq!(index.len(), 0);
    }

    /// A token from a small alphabet, so patterns and topics collide often.
    fn token() -> impl Strategy<Value = String> {
        prop_oneof![Just("a"), Just("b"), Just("c"), Just("")].prop_map(str::to_string)
    }

    fn pattern() -> impl Strategy<Value = String> {
        let part = prop_oneof![Just("a"), Just("b"), Just("*")].prop_map(str::to_string);
        (proptest::collection::vec(part, 0..4), any::<bool>()).prop_map(|(mut tokens, rest)| {
            if rest || tokens.is_empty() {
                tokens.push(">".into());
            } else if !tokens.iter().any(|t| t == "*") {
                tokens.push("*".into());
            }
            tokens.join(".")
        })
    }

    proptest! {
        /// The trie finds exactly the patterns the token-by-token reference matcher accepts.
        #[test]
        fn trie_agrees_with_the_reference_matcher(
            patterns in proptest::collection::vec(pattern(), 1..12),
            topics in proptest::collection::vec(proptest::collection::vec(token(), 1..5), 1..12),
        ) {
            let mut index = PatternIndex::default();
            let parsed: Vec<TopicPattern> =
                patterns.iter().map(|p| TopicPattern::parse(p).unwrap()).collect();
            for (i, p) in parsed.iter().enumerate() {
                index.insert(p, &sub(i as u64));
            }
            for topic in topics.iter().map(|t| t.join(".")) {
                let mut expected: Vec<u64> = parsed
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.matches(&topic))
                    .map(|(i, _)| i as u64)
                    .collect();
                expected.sort_unstable();
                prop_assert_eq!(conns(&index, &topic), expected, "topic {:?}", topic);
            }
        }
    }
}
