//! The idle sweep against the whole registry, with real threads (`loom_tests.rs` models one
//! topic): whatever the interleaving, no publish fails, no subscriber is left on a removed topic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::{Broker, ConnId, Outbox, Subscriber};
use crate::config::{Config, SlowConsumerPolicy};
use crate::protocol::{Payload, Replay, TopicName};

fn broker(ttl: Duration) -> Arc<Broker> {
    Arc::new(Broker::new(&Config {
        topic_idle_ttl: ttl,
        ..Config::default()
    }))
}

fn name(i: usize) -> TopicName {
    TopicName::parse(&format!("t{}", i % 8)).unwrap()
}

/// Real threads (the loom model covers one topic; this covers the map): a sweep running flat
/// out with a 2 ms TTL never fails a publish, never leaves a subscriber on a topic that is no
/// longer the live one, and a publish after a subscribe reaches it.
#[test]
fn a_sweep_running_flat_out_never_removes_a_topic_in_use() {
    let broker = broker(Duration::from_millis(2));
    let stop = Arc::new(AtomicBool::new(false));
    let sweeper = {
        let (broker, stop) = (broker.clone(), stop.clone());
        thread::spawn(move || {
            let mut expired = 0;
            while !stop.load(Ordering::Relaxed) {
                expired += broker.sweep();
            }
            expired
        })
    };
    let workers: Vec<_> = (0..3u64)
        .map(|w| {
            let broker = broker.clone();
            thread::spawn(move || {
                for i in 0..3_000 {
                    let name = name(i + w as usize);
                    if w == 0 {
                        broker.publish(&name, None, Payload::Text("p")).unwrap();
                        continue;
                    }
                    let sub = Subscriber {
                        conn: ConnId(w),
                        outbox: Arc::new(Outbox::new(16, SlowConsumerPolicy::DropOldest)),
                        dialect: Default::default(),
                    };
                    let topic = broker
                        .subscribe(&name, &sub, &Replay::None, None, None)
                        .unwrap();
                    let live = broker.get(name.as_str()).expect("subscribed topic is live");
                    assert!(Arc::ptr_eq(&topic, &live), "subscribed to an expired topic");
                    broker.publish(&name, None, Payload::Text("x")).unwrap();
                    assert!(
                        sub.outbox.pop().is_some(),
                        "the publish missed the subscriber"
                    );
                    assert!(topic.unsubscribe(sub.conn));
                    if i % 64 == 0 {
                        thread::sleep(Duration::from_millis(3));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    thread::sleep(Duration::from_millis(5));
    stop.store(true, Ordering::Relaxed);
    let during = sweeper.join().unwrap();
    // Two looks at least the TTL apart remove what is left.
    let mut after = broker.sweep();
    thread::sleep(Duration::from_millis(5));
    after += broker.sweep();
    assert_eq!(broker.topic_count(), 0);
    assert_eq!(broker.topics_expired() as usize, during + after);
    assert!(during + after >= 8);
    assert_eq!(broker.event_counts().published, 3 * 3_000);
}

#[test]
fn explicit_topics_never_expire_and_a_new_life_gets_a_new_epoch() {
    let broker = broker(Duration::from_millis(1));
    let kept = TopicName::parse("kept").unwrap();
    broker.create_topic(&kept).unwrap();
    let first = broker.publish(&name(0), None, Payload::Text("a")).unwrap();
    let epoch = broker.get("t0").unwrap().epoch().to_string();
    broker.sweep();
    thread::sleep(Duration::from_millis(3));
    assert_eq!(broker.sweep(), 1);
    assert!(broker.get("t0").is_none());
    assert!(broker.get("kept").is_some());
    let again = broker.publish(&name(0), None, Payload::Text("b")).unwrap();
    assert_eq!((first.seq, again.seq), (1, 1));
    assert_ne!(broker.get("t0").unwrap().epoch(), epoch);
}
