//! loom models of topic lifecycle and patterns: the idle sweep racing a publish or a subscribe
//! (issue 24), cluster expiry's vote racing a subscribe, and a pattern subscribe racing a topic's
//! creation and a publish (issue 20). Run with the parent module's command.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use loom::thread;

use super::{drain, is_event, item, publish, subscriber};
use crate::broker::event::EventBuilder;
use crate::broker::lifecycle::Lease;
use crate::broker::subscriber::ConnId;
use crate::broker::topic::{InFlight, Topic};
use crate::protocol::{Payload, Replay, TopicName};

/// The idle sweep's two steps on `topic` at sweep clock `now` with a TTL of 0: the look outside
/// the lock, then (when idle) the re-check under the sequencer that `Broker::expire` runs inside
/// `DashMap::remove_if`. Returns whether the topic was retired.
fn sweep(topic: &Topic, now: u64) -> bool {
    let mark = topic.life().mark(topic.messages());
    let idle = topic.life().idle(now, 0, mark, topic.subscriber_count());
    idle.is_some_and(|mark| topic.retire_if_idle(mark))
}

/// An implicit topic the sweep has looked at once, so its next look may find it idle.
fn seen_idle_topic() -> Arc<Topic> {
    let topic = Topic::new(TopicName::parse("t").unwrap(), 4, 0).with_lifecycle(true, 0);
    assert!(
        !sweep(&topic, 0),
        "the first look only starts the idle clock"
    );
    Arc::new(topic)
}

#[test]
fn the_sweep_racing_a_publish_never_retires_a_topic_the_publish_landed_in() {
    loom::model(|| {
        let topic = seen_idle_topic();
        let publisher = {
            let topic = topic.clone();
            thread::spawn(move || {
                let mut event =
                    EventBuilder::new(topic.name(), None, Payload::Text("x"), 1024).unwrap();
                topic.publish(&mut event).unwrap()
            })
        };
        let retired = sweep(&topic, 1);
        let published = publisher.join().unwrap();
        // Exactly one wins: a publish that landed keeps the topic; one that lost sees it deleted
        // (`None`, so `Broker::publish` retries on a fresh topic) and stored nothing.
        assert_ne!(
            retired,
            published.is_some(),
            "retired {retired}, published {published:?}"
        );
        assert_eq!(topic.is_deleted(), retired);
        assert_eq!(topic.messages(), u64::from(!retired));
    });
}

#[test]
fn the_sweep_racing_a_subscribe_and_unsubscribe_never_retires_a_topic_subscribed_to() {
    loom::model(|| {
        let topic = seen_idle_topic();
        let subscribing = {
            let topic = topic.clone();
            thread::spawn(move || {
                let joined = topic.subscribe(&subscriber(1), &Replay::None, None);
                // The subscriber leaves again at once: the topic still was not idle for the TTL.
                let left = joined && topic.unsubscribe(ConnId(1));
                (joined, left)
            })
        };
        let retired = sweep(&topic, 1);
        let (joined, left) = subscribing.join().unwrap();
        // A subscribe that joined the topic keeps it, even after leaving again before the sweep's
        // re-check; one that lost sees it deleted and `Broker::subscribe` retries.
        assert_ne!(retired, joined, "retired {retired}, joined {joined}");
        assert_eq!(left, joined);
        assert_eq!(topic.is_deleted(), retired);
    });
}

#[test]
fn a_cluster_expiry_vote_racing_a_subscribe_never_says_idle_for_a_topic_subscribed_to() {
    loom::model(|| {
        let topic = seen_idle_topic();
        let subscribing = {
            let topic = topic.clone();
            thread::spawn(move || {
                // As `NatsBackplane::hold` and `Node::subscribe`.
                let held = InFlight::new(topic.clone());
                let joined = held.lease_at(1) == Lease::Free
                    && topic.subscribe(&subscriber(1), &Replay::None, None);
                drop(held);
                joined
            })
        };
        let idle = topic.vote_idle(1, 0, 100);
        let joined = subscribing.join().unwrap();
        // Either the vote saw the subscribe (in flight or done) and said busy, or the subscribe
        // saw the lease and waited for the outcome.
        assert!(!(idle && joined), "voted idle for a topic subscribed to");
    });
}

#[test]
fn a_pattern_subscribe_racing_a_topic_creation_and_a_publish_delivers_once_after_its_ack() {
    use crate::broker::patterns::{self, PatternIndex};
    use crate::protocol::TopicPattern;
    use crate::sync::{AtomicBool, Mutex};

    loom::model(|| {
        // The index, `apply`, `Topic::add_pattern` and the publish are the real ones; the map
        // slot stands in for the topic `DashMap`, taken in the same order as `Broker::insert`
        // and `Broker::subscribe_pattern` take it (index lock first).
        let index = Arc::new(Mutex::new(PatternIndex::default()));
        let map: Arc<Mutex<Option<Arc<Topic>>>> = Arc::new(Mutex::new(None));
        let acked = Arc::new(AtomicBool::new(false));
        let joining = subscriber(1);

        let creator = {
            let (index, map) = (index.clone(), map.clone());
            thread::spawn(move || {
                let index = index.lock();
                let topic = Arc::new(Topic::new(TopicName::parse("t.a").unwrap(), 4, 0));
                patterns::apply(&index, &topic);
                *map.lock() = Some(topic);
            })
        };
        let subscribing = {
            let (index, map, acked, joining) =
                (index.clone(), map.clone(), acked.clone(), joining.clone());
            thread::spawn(move || {
                let pattern = TopicPattern::parse("t.*").unwrap();
                {
                    let mut index = index.lock();
                    assert!(index.insert(&pattern, &joining));
                    let existing = map.lock().clone();
                    if let Some(topic) = existing.filter(|t| pattern.matches(t.name().as_str())) {
                        topic.add_pattern(&joining);
                    }
                }
                // The node queues the ack once the broker call returned.
                joining.outbox.push(item("ack"));
                acked.store(true, Ordering::SeqCst);
            })
        };
        // The publisher: a client that saw the ack (or not) publishes to the topic if it exists.
        let found = map.lock().clone();
        let after_ack = acked.load(Ordering::SeqCst);
        if let Some(topic) = &found {
            publish(topic, "x");
        }
        creator.join().unwrap();
        subscribing.join().unwrap();

        let frames = drain(&joining.outbox);
        let events = frames.iter().filter(|f| is_event(f)).count();
        assert!(events <= 1, "delivered twice: {frames:?}");
        if found.is_some() && after_ack {
            assert_eq!(
                events, 1,
                "published after the ack but not delivered: {frames:?}"
            );
        }
    });
}
