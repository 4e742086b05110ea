//! The broker's wildcard subscriptions (issue 20): a pattern subscribe or unsubscribe lists or
//! unlists the connection in every live topic it matches, under the pattern index's lock
//! (`patterns.rs` says why that is exact against topic creation).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::subscriber::{ConnId, Subscriber};
use super::{Broker, Topic};
use crate::error::{ApiError, ErrorCode};
use crate::protocol::TopicPattern;

impl Broker {
    /// Subscribes `subscriber` to every topic matching `pattern`, now and later; false when it
    /// already was (idempotent). `LIMIT_EXCEEDED` past `MAX_PATTERN_SUBSCRIPTIONS`.
    pub fn subscribe_pattern(
        &self,
        pattern: &TopicPattern,
        subscriber: &Subscriber,
    ) -> Result<bool, ApiError> {
        let mut index = self.patterns.lock();
        if index.len() >= self.max_patterns {
            if index.contains(pattern, subscriber.conn) {
                return Ok(false);
            }
            return Err(ApiError::new(
                ErrorCode::LimitExceeded,
                format!("MAX_PATTERN_SUBSCRIPTIONS ({}) reached", self.max_patterns),
            ));
        }
        if !index.insert(pattern, subscriber) {
            return Ok(false);
        }
        self.pattern_count.store(index.len(), Ordering::Relaxed);
        for topic in self.topics_matching(pattern) {
            topic.add_pattern(subscriber);
        }
        Ok(true)
    }

    /// Ends `conn`'s subscription to `pattern`; false when it had none.
    pub fn unsubscribe_pattern(&self, pattern: &TopicPattern, conn: ConnId) -> bool {
        let mut index = self.patterns.lock();
        if !index.remove(pattern, conn) {
            return false;
        }
        self.pattern_count.store(index.len(), Ordering::Relaxed);
        for topic in self.topics_matching(pattern) {
            topic.remove_pattern(conn);
        }
        true
    }

    /// Pattern subscriptions on this node.
    pub fn pattern_subscriptions(&self) -> usize {
        self.pattern_count.load(Ordering::Relaxed)
    }

    /// The live topics `pattern` matches, collected first so no map shard stays locked while
    /// their sequencers are taken.
    fn topics_matching(&self, pattern: &TopicPattern) -> Vec<Arc<Topic>> {
        self.topics
            .iter()
            .filter(|e| pattern.matches(e.key().as_str()))
            .map(|e| e.value().clone())
            .collect()
    }
}
