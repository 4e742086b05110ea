//! A stateful target: random subscribe / unsubscribe / publish / delete sequences against the
//! engine, checked against a model: every subscriber gets exactly the events published to its
//! topics while subscribed, in `seq` order, and subscriber counts match.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arbitrary::Arbitrary;
use herald::broker::{Broker, ConnId, Outbox, Subscriber};
use herald::protocol::{Payload, Replay, TopicName};
use herald::config::{Config, SlowConsumerPolicy};
use libfuzzer_sys::fuzz_target;

const CONNS: usize = 4;
const TOPICS: [&str; 3] = ["a", "b", "c"];

#[derive(Arbitrary, Debug)]
enum Op {
    Subscribe { conn: u8, topic: u8, last_n: Option<u8> },
    Unsubscribe { conn: u8, topic: u8 },
    Publish { topic: u8 },
    Delete { topic: u8 },
}

fuzz_target!(|ops: Vec<Op>| {
    let mut config = Config::default();
    config.ring_buffer_size = 4;
    let broker = Broker::new(&config);
    let subs: Vec<Subscriber> = (0..CONNS)
        .map(|i| Subscriber {
            conn: ConnId(i as u64),
            outbox: Arc::new(Outbox::new(4096, SlowConsumerPolicy::Disconnect)),
            dialect: Default::default(),
        })
        .collect();
    let names: Vec<TopicName> = TOPICS.iter().map(|t| TopicName::parse(t).unwrap()).collect();
    // Model: who is subscribed to what, and the next seq per topic.
    let mut subscribed: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut next_seq: BTreeMap<usize, u64> = BTreeMap::new();
    let mut expected: Vec<Vec<(usize, u64)>> = vec![Vec::new(); CONNS];
    for op in ops.into_iter().take(256) {
        match op {
            Op::Subscribe { conn, topic, last_n } => {
                let (c, t) = (conn as usize % CONNS, topic as usize % TOPICS.len());
                let replay = last_n.map_or(Replay::None, |n| Replay::LastN(u64::from(n)));
                broker.subscribe(&names[t], &subs[c], &replay, None, None).unwrap();
                let fresh = subscribed.insert((c, t));
                next_seq.entry(t).or_insert(1);
                if fresh {
                    if let Some(n) = last_n {
                        // Replay: the newest min(n, ring, published) events of this topic life.
                        let head = next_seq[&t] - 1;
                        let n = u64::from(n).min(4).min(head);
                        for seq in head + 1 - n..=head {
                            expected[c].push((t, seq));
                        }
                    }
                }
            }
            Op::Unsubscribe { conn, topic } => {
                let (c, t) = (conn as usize % CONNS, topic as usize % TOPICS.len());
                if let Some(topic) = broker.get(TOPICS[t]) {
                    topic.unsubscribe(subs[c].conn);
                }
                subscribed.remove(&(c, t));
            }
            Op::Publish { topic } => {
                let t = topic as usize % TOPICS.len();
                let p = broker.publish(&names[t], None, Payload::Text("x")).unwrap();
                let seq = next_seq.entry(t).or_insert(1);
                assert_eq!(p.seq, *seq, "seq numbering");
                for &(c, st) in &subscribed {
                    if st == t {
                        expected[c].push((t, *seq));
                    }
                }
                *seq += 1;
            }
            Op::Delete { topic } => {
                let t = topic as usize % TOPICS.len();
                let existed = next_seq.remove(&t).is_some();
                assert_eq!(broker.delete_topic(TOPICS[t]).is_ok(), existed);
                subscribed.retain(|&(_, st)| st != t);
            }
        }
        for (t, name) in TOPICS.iter().enumerate() {
            let want = subscribed.iter().filter(|&&(_, st)| st == t).count();
            let got = broker.get(name).map_or(0, |topic| topic.subscriber_count());
            assert_eq!(got, want, "subscriber count of {name}");
        }
    }
    for (c, sub) in subs.iter().enumerate() {
        let mut got = Vec::new();
        while let Some(item) = sub.outbox.pop() {
            for f in item.frames() {
                let v: serde_json::Value = serde_json::from_str(f.as_str()).unwrap();
                if v["type"] == "event" {
                    let t = TOPICS.iter().position(|n| v["topic"] == *n).unwrap();
                    got.push((t, v["seq"].as_u64().unwrap()));
                }
            }
        }
        assert_eq!(got, expected[c], "events of connection {c}");
    }
});
