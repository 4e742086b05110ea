//! loom model checks of the broker's lock-free parts (issue 7): the replay ring, the outbox
//! wake-ups and the subscriber snapshot that subscribe/unsubscribe swap while a publish reads it.
//! Topic lifecycle and pattern models (the sweep, cluster expiry's vote, a pattern subscribe
//! racing a topic's creation) are in `loom_tests/lifecycle.rs`.
//!
//! Built and run only with the `herald_loom` cfg (`.ci/run` does this):
//!
//! ```text
//! RUSTFLAGS="--cfg herald_loom" LOOM_MAX_PREEMPTIONS=5 CARGO_TARGET_DIR=target/loom \
//!     cargo test --release --lib broker::loom_tests
//! ```
//!
//! loom runs each model under every interleaving of its threads' synchronization operations (up
//! to the preemption bound), and lets a load return any value the memory model allows, not just
//! the newest one. The code under test is the real `Ring`, `Outbox` and `Topic`; `src/sync.rs`
//! says which of the primitives they are built from are loom's own and which are models (arc-swap
//! and crossbeam's queue, which loom cannot see into).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use loom::sync::atomic::AtomicU64;
use loom::thread;

use super::event::{EventBuilder, StoredEvent};
use super::outbox::{Outbox, Outgoing, Pushed};
use super::ring::Ring;
use super::subscriber::{ConnId, Subscriber};
use super::topic::Topic;
use crate::config::SlowConsumerPolicy;
use crate::protocol::{Frame, Payload, Replay, SubscribeAck, TopicName};

/// An event whose frame is its own `seq`, so a reader can tell a slot it read belongs to it.
fn event(seq: u64) -> Arc<StoredEvent> {
    Arc::new(StoredEvent {
        seq,
        frame: Frame::from(seq.to_string()),
        id: 0..0,
        payload: 0..0,
        ts: 0..0,
        seed_c: std::sync::OnceLock::new(),
        deflated: std::sync::OnceLock::new(),
        at_ms: 0,
    })
}

/// Asserts `events` is a run of consecutive `seq`s, each event the one stored for its `seq`.
fn assert_run(events: &[Arc<StoredEvent>]) {
    for e in events {
        assert_eq!(
            e.frame.as_str(),
            e.seq.to_string(),
            "event with a foreign frame"
        );
    }
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gap or disorder in {seqs:?}"
    );
}

#[test]
fn ring_reader_racing_appends_gets_the_whole_history_up_to_the_head_it_read() {
    loom::model(|| {
        // Three appends into four slots: nothing is ever overwritten, so a reader must get
        // every event up to the head it read; a slot read that missed its event (a head
        // published before its slot) shows up as a short or empty answer.
        let ring = Arc::new(Ring::new(4));
        let writer = {
            let ring = ring.clone();
            thread::spawn(move || (1..=3).for_each(|seq| ring.push(event(seq))))
        };
        let before = ring.head();
        let got = ring.last_n(4);
        let after = ring.head();
        assert_run(&got);
        let newest = got.last().map_or(0, |e| e.seq);
        assert!(
            before <= newest && newest <= after,
            "{before} ≤ {newest} ≤ {after}"
        );
        assert_eq!(got.first().map(|e| e.seq), (newest > 0).then_some(1));

        let (since, complete) = ring.since(1);
        assert!(
            complete,
            "nothing was overwritten, yet since(1) is incomplete"
        );
        assert_run(&since);
        assert!(since.first().is_none_or(|e| e.seq == 2));
        writer.join().unwrap();
    });
}

#[test]
fn ring_reader_racing_overwrites_gets_a_gap_free_run_and_a_true_completeness_flag() {
    loom::model(|| {
        // Four appends into two slots: readers race with overwrites of the slots they read.
        // `begun` is the seq the writer has started to append: an overwrite shows in a slot
        // before the head moves, so the head alone cannot tell whether a slot was reused.
        let ring = Arc::new(Ring::new(2));
        let begun = Arc::new(AtomicU64::new(0));
        let writer = {
            let (ring, begun) = (ring.clone(), begun.clone());
            thread::spawn(move || {
                for seq in 1..=4 {
                    begun.store(seq, Ordering::Release);
                    ring.push(event(seq));
                }
            })
        };
        let before = ring.head();
        let got = ring.last_n(2);
        let after = ring.head();
        assert_run(&got);
        match got.last() {
            // The run ends at the head last_n read.
            Some(last) => assert!(before <= last.seq && last.seq <= after),
            // Empty only while the ring is, or once the newest slot it read was reused.
            None => assert!(
                before == 0 || begun.load(Ordering::Acquire) >= before + 2,
                "last_n empty at head {before}"
            ),
        }

        let (since, complete) = ring.since(1);
        assert_run(&since);
        if complete {
            assert!(since.first().is_none_or(|e| e.seq == 2));
        } else {
            // Incomplete only once seq 2 is really gone: its slot reused by seq 4.
            let begun = begun.load(Ordering::Acquire);
            assert!(
                begun >= 4,
                "since(1) incomplete while the writer is at {begun}"
            );
        }
        writer.join().unwrap();
    });
}

fn item(text: &'static str) -> Outgoing {
    Outgoing::Event(Arc::new(StoredEvent {
        seq: 0,
        frame: Frame::from_static(text),
        id: 0..0,
        payload: 0..0,
        ts: 0..0,
        seed_c: std::sync::OnceLock::new(),
        deflated: std::sync::OnceLock::new(),
        at_ms: 0,
    }))
}

fn text(item: Outgoing) -> String {
    item.frames()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join("+")
}

/// Everything queued, one string per frame.
fn drain(outbox: &Outbox) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(item) = outbox.pop() {
        out.extend(item.frames().map(|f| f.as_str().to_string()));
    }
    out
}

#[test]
fn outbox_writer_is_woken_for_every_push_and_sees_the_close() {
    loom::model(|| {
        let outbox = Arc::new(Outbox::new(4, SlowConsumerPolicy::Disconnect));
        let publisher = {
            let outbox = outbox.clone();
            thread::spawn(move || {
                assert_eq!(outbox.push(item("a")), Pushed::Queued);
                assert_eq!(outbox.push(item("b")), Pushed::Queued);
                outbox.close();
            })
        };
        // The writer task's loop: park until there is work, drain, stop once closed and empty.
        // A lost wake-up leaves it parked with nobody to wake it, which loom reports as a
        // deadlock.
        let got = loom::future::block_on(async {
            let mut got = Vec::new();
            loop {
                outbox.ready().await;
                while let Some(item) = outbox.pop() {
                    got.push(text(item));
                }
                if outbox.is_closed() && outbox.is_empty() {
                    break got;
                }
            }
        });
        publisher.join().unwrap();
        assert_eq!(got, ["a", "b"]);
    });
}

#[test]
fn outbox_overflow_wakes_a_writer_stuck_on_its_socket() {
    loom::model(|| {
        let outbox = Arc::new(Outbox::new(1, SlowConsumerPolicy::Disconnect));
        let publisher = {
            let outbox = outbox.clone();
            thread::spawn(move || {
                assert_eq!(outbox.push(item("a")), Pushed::Queued);
                assert_eq!(outbox.push(item("b")), Pushed::Rejected);
            })
        };
        loom::future::block_on(outbox.overflow());
        assert!(outbox.overflowed());
        publisher.join().unwrap();
        assert_eq!(drain(&outbox), ["a"]);
    });
}

/// Every item the writer took, through its batched `pop_into`.
fn take_all(outbox: &Outbox, got: &mut Vec<String>) {
    let mut out = Vec::new();
    outbox.pop_into(8, &mut out);
    got.extend(out.into_iter().map(text));
}

#[test]
fn outbox_pushes_racing_a_grow_keep_each_pushers_order_and_lose_nothing() {
    // Segments hold one item under loom: every second push grows the chain, while the other
    // pusher and the writer work on it.
    loom::model(|| {
        let outbox = Arc::new(Outbox::new(8, SlowConsumerPolicy::Disconnect));
        let pushers: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|who| {
                let outbox = outbox.clone();
                thread::spawn(move || {
                    for n in 1..=2 {
                        let name: &'static str = if who == "a" {
                            ["a1", "a2"][n - 1]
                        } else {
                            ["b1", "b2"][n - 1]
                        };
                        assert_eq!(outbox.push(item(name)), Pushed::Queued);
                    }
                })
            })
            .collect();
        let mut got = Vec::new();
        take_all(&outbox, &mut got);
        for pusher in pushers {
            pusher.join().unwrap();
        }
        take_all(&outbox, &mut got);
        let order = |who: char| {
            got.iter()
                .filter(|g| g.starts_with(who))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(order('a'), ["a1", "a2"], "{got:?}");
        assert_eq!(order('b'), ["b1", "b2"], "{got:?}");
        assert_eq!(outbox.len(), 0);
    });
}

#[test]
fn outbox_writer_dropping_spent_segments_racing_a_push_loses_nothing() {
    loom::model(|| {
        let outbox = Arc::new(Outbox::new(8, SlowConsumerPolicy::Disconnect));
        // Two one-item segments: the writer's take empties the first and drops it.
        outbox.push(item("1"));
        outbox.push(item("2"));
        let pusher = {
            let outbox = outbox.clone();
            thread::spawn(move || assert_eq!(outbox.push(item("3")), Pushed::Queued))
        };
        let mut got = Vec::new();
        take_all(&outbox, &mut got);
        pusher.join().unwrap();
        take_all(&outbox, &mut got);
        assert_eq!(got, ["1", "2", "3"]);
    });
}

#[test]
fn outbox_giving_memory_back_racing_a_push_loses_nothing() {
    loom::model(|| {
        let outbox = Arc::new(Outbox::new(8, SlowConsumerPolicy::Disconnect));
        outbox.push(item("ack"));
        assert!(outbox.pop().is_some());
        let pusher = {
            let outbox = outbox.clone();
            thread::spawn(move || assert_eq!(outbox.push(item("event")), Pushed::Queued))
        };
        // The writer's heartbeat: give the idle queue back, unless the push got in first.
        let released = outbox.release_if_idle();
        pusher.join().unwrap();
        assert_eq!(drain(&outbox), ["event"], "released: {released}");
        assert!(outbox.release_if_idle());
        assert_eq!(outbox.slots(), 0);
    });
}

#[test]
fn outbox_pop_wakes_a_reader_waiting_below_the_high_water_mark() {
    loom::model(|| {
        let outbox = Arc::new(Outbox::new(2, SlowConsumerPolicy::Disconnect));
        outbox.push(item("a"));
        outbox.push(item("b"));
        let writer = {
            let outbox = outbox.clone();
            thread::spawn(move || drain(&outbox))
        };
        // The connection's reader pauses while the queue is at its high-water mark (1 of 2).
        loom::future::block_on(outbox.below_high_water());
        assert_eq!(writer.join().unwrap(), ["a", "b"]);
    });
}

fn subscriber(conn: u64) -> Subscriber {
    Subscriber {
        conn: ConnId(conn),
        outbox: Arc::new(Outbox::new(8, SlowConsumerPolicy::Disconnect)),
        dialect: crate::protocol::Dialect::Canonical,
    }
}

fn publish(topic: &Topic, text: &str) -> u64 {
    let mut event = EventBuilder::new(topic.name(), None, Payload::Text(text), 1024).unwrap();
    topic.publish(&mut event).unwrap().unwrap().seq
}

fn is_event(frame: &str) -> bool {
    frame.starts_with(r#"{"type":"event""#)
}

#[test]
fn subscribe_and_unsubscribe_racing_a_publish_deliver_exactly_once_or_never() {
    loom::model(|| {
        let topic = Arc::new(Topic::new(TopicName::parse("t").unwrap(), 4, 0));
        let leaving = subscriber(1);
        assert!(topic.subscribe(&leaving, &Replay::None, None));
        let joining = subscriber(2);

        let publisher = {
            let topic = topic.clone();
            thread::spawn(move || publish(&topic, "x"))
        };
        let subscribing = {
            let (topic, joining) = (topic.clone(), joining.clone());
            thread::spawn(move || {
                let ack = |a: &SubscribeAck| Frame::from(format!("ack {}", a.seq));
                assert!(topic.subscribe(&joining, &Replay::None, Some(&ack)));
                // A repeated subscribe is idempotent: it must not bring a second copy.
                assert!(topic.subscribe(&joining, &Replay::None, None));
            })
        };
        assert!(topic.unsubscribe(ConnId(1)));
        assert_eq!(publisher.join().unwrap(), 1);
        subscribing.join().unwrap();

        // The ack's seq says on which side of the publish the subscription took effect: before
        // it (seq 0) the event must arrive, once; after it (seq 1) it must not.
        let frames = drain(&joining.outbox);
        let acked_at: u64 = frames[0]
            .strip_prefix("ack ")
            .and_then(|s| s.parse().ok())
            .expect("the ack comes first");
        let events = frames.iter().filter(|f| is_event(f)).count();
        assert_eq!(events, usize::from(acked_at == 0), "{frames:?}");
        // The leaving subscriber got it at most once, depending on which came first.
        assert!(
            drain(&leaving.outbox)
                .iter()
                .filter(|f| is_event(f))
                .count()
                <= 1
        );
        assert_eq!(topic.subscriber_count(), 1);
    });
}

#[test]
fn concurrent_publishes_reach_a_subscriber_in_seq_order() {
    loom::model(|| {
        let topic = Arc::new(Topic::new(TopicName::parse("t").unwrap(), 4, 0));
        let reader = subscriber(1);
        assert!(topic.subscribe(&reader, &Replay::None, None));
        let publishers: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|text| {
                let topic = topic.clone();
                thread::spawn(move || publish(&topic, text))
            })
            .collect();
        let mut seqs: Vec<u64> = publishers.into_iter().map(|p| p.join().unwrap()).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, [1, 2]);
        let received: Vec<u64> = drain(&reader.outbox)
            .iter()
            .map(|f| {
                let v: serde_json::Value = serde_json::from_str(f).unwrap();
                v["seq"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(received, [1, 2]);
        let stored: Vec<u64> = topic.history(4).iter().map(|e| e.seq).collect();
        assert_eq!(stored, [1, 2]);
    });
}

mod lifecycle;
