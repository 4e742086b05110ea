//! Cluster mode's side of the topic registry: topics made to match the shared registry, which
//! decided they exist (or no longer do) for every node.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use dashmap::mapref::entry::Entry;

use super::{patterns, Broker, Identity, Topic};
use crate::protocol::TopicName;

impl Broker {
    /// Cluster mode: makes `identity` the live topic called `name`. A topic of another generation
    /// is replaced, and its subscribers get `topic_deleted`; the same generation is kept as is.
    pub fn install(&self, name: &TopicName, identity: Identity) -> Arc<Topic> {
        let fresh = || {
            Arc::new(
                Topic::with_identity(
                    name.clone(),
                    self.ring_size,
                    self.max_publish_rate,
                    identity.clone(),
                )
                .with_lifecycle(
                    identity.implicit && self.idle_ttl.is_some(),
                    self.history_ttl_ms,
                ),
            )
        };
        let watch = |topic: &Arc<Topic>| {
            if topic.is_implicit() {
                self.sweeper.watch(topic);
            }
        };
        let patterns = self.patterns.lock();
        match self.topics.entry(name.clone()) {
            Entry::Occupied(mut e) => {
                if e.get().generation() == identity.generation {
                    return e.get().clone();
                }
                let topic = fresh();
                patterns::apply(&patterns, &topic);
                let mut retired = self.retired.lock();
                let old = e.insert(topic.clone());
                let claimed = old.close();
                self.presence.queue(&old, claimed);
                *retired += old.event_counts();
                watch(&topic);
                topic
            }
            Entry::Vacant(e) => {
                // The shared registry already decided the topic exists: no MAX_TOPICS refusal.
                self.topic_count.fetch_add(1, Ordering::AcqRel);
                let topic = fresh();
                patterns::apply(&patterns, &topic);
                e.insert(topic.clone());
                watch(&topic);
                topic
            }
        }
    }

    /// Cluster mode: removes `name` if its local life is older than `generation` (a deletion
    /// recorded at that registry revision). Returns whether a topic was removed.
    pub fn retire(&self, name: &str, generation: u64) -> bool {
        let Some((_, topic)) = self
            .topics
            .remove_if(name, |_, t| t.generation() < generation)
        else {
            return false;
        };
        self.topic_count.fetch_sub(1, Ordering::AcqRel);
        let mut retired = self.retired.lock();
        let claimed = topic.close();
        self.presence.queue(&topic, claimed);
        *retired += topic.event_counts();
        true
    }
}
