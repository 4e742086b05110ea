//! Fan-out: the cost of one publish delivered to every subscriber of a topic.
//!
//! One message with a 128-byte JSON payload is published with [`Broker::publish`] to a topic with
//! 1, 100, 1,000 and 10,000 subscribers, each holding its own [`Outbox`]. Throughput is reported
//! per delivery (`Throughput::Elements(subscribers)`), so criterion prints deliveries per second
//! beside the time per publish.
//!
//! Target (from the fan-out issue): one message to 1,000 outboxes in **≤ 25 µs**. The bench only
//! reports the number; it never asserts a timing.
//!
//! # What is measured
//! The whole of `Broker::publish` on one thread: topic lookup, building the event frame (payload
//! serialization, cached timestamp), the sequencer lock, the ring append, and one
//! `Outbox::push` (an `Arc` clone of the shared frame plus a lock-free queue push and waker check)
//! per subscriber.
//!
//! # What is not measured
//! - Draining the outboxes: after every batch of [`BATCH`] publishes the clock stops and every
//!   outbox is emptied with `pop()`, so the queues never fill and the next batch starts from
//!   empty queues.
//! - Writer tasks and sockets: nothing pops concurrently, so there is no cache-line traffic with
//!   consumer threads and no wake-up of a real task (no waker is registered). On a live server
//!   the numbers are higher; the load test in `loadtest/` covers that path.
//!
//! `fanout_patterns/all_via_gt/1000` is the 1,000-subscriber case with every subscriber on the
//! pattern `>` instead of the topic's name (issue 20: within reach of `fanout/1000`).
//! `fanout_patterns/10k_patterns/1000` publishes round 1,000 topics whose 10,000 subscribers each
//! hold a distinct pattern (ten per topic), `fanout_patterns/10k_exact/1000` the same fan-out by
//! topic name (issue 20: ≥ 0.8 × its throughput).
//!
//! # Running
//! ```text
//! cargo bench --bench fanout
//! cargo bench --bench fanout -- 1000    # one size only
//! cargo bench --bench fanout -- fanout_patterns
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use herald::broker::{Broker, Outbox, Subscriber};
use herald::config::SlowConsumerPolicy;
use herald::protocol::{Payload, Replay, TopicName, TopicPattern};
use herald::Config;

/// Subscriber counts to fan out to.
const SUBSCRIBERS: [usize; 4] = [1, 100, 1_000, 10_000];

/// Publishes timed back to back before the outboxes are drained; also each outbox's capacity,
/// so a batch always fits and the `disconnect` policy never triggers.
const BATCH: usize = 32;

/// The payload, exactly 128 bytes of compact JSON (checked at start-up).
const PAYLOAD: &str = r#"{"user":"u-0042","action":"checkout","amount_cents":12995,"currency":"EUR","items":[17,23,42],"note":"gift wrap, leave at door"}"#;

/// Empties every outbox and returns how many frames it held.
fn drain(subscribers: &[Subscriber]) -> usize {
    let mut frames = 0;
    for subscriber in subscribers {
        while let Some(item) = subscriber.outbox.pop() {
            frames += item.frames().count();
        }
    }
    frames
}

/// `count` connections of `broker`, each with an outbox that holds one batch.
fn connections(broker: &Broker, count: usize) -> Vec<Subscriber> {
    (0..count)
        .map(|_| Subscriber {
            conn: broker.next_conn_id(),
            outbox: Arc::new(Outbox::new(BATCH, SlowConsumerPolicy::Disconnect)),
            dialect: Default::default(),
        })
        .collect()
}

fn fanout(c: &mut Criterion) {
    let mut payload_bytes = PAYLOAD.as_bytes().to_vec();
    let payload = simd_json::to_borrowed_value(&mut payload_bytes).expect("payload is JSON");

    let mut group = c.benchmark_group("fanout");
    for &count in &SUBSCRIBERS {
        let broker = Broker::new(&Config::default());
        let name = TopicName::parse("bench.fanout").expect("valid topic name");
        let subscribers = connections(&broker, count);
        for subscriber in &subscribers {
            broker
                .subscribe(&name, subscriber, &Replay::None, None, None)
                .expect("subscribe");
        }

        // One publish outside the clock checks the setup: every outbox got the frame and the
        // stored payload is the advertised size.
        broker
            .publish(&name, Some("m-1"), Payload::Value(&payload))
            .expect("publish");
        assert_eq!(drain(&subscribers), count);
        let topic = broker.get(name.as_str()).expect("topic exists");
        assert_eq!(topic.history(1)[0].payload_json().len(), 128);

        group.throughput(Throughput::Elements(count as u64));
        let id = BenchmarkId::from_parameter(count);
        time_publishes(&mut group, id, &broker, &name, &payload, &subscribers);
    }
    group.finish();
    fanout_via_patterns(c, &payload);
    many_patterns(c, &payload);
}

/// The same fan-out to 1,000 subscribers that all subscribed with the pattern `>` (issue 20):
/// the topic's snapshot lists them as it lists exact subscribers, so this should cost the same
/// per delivery as `fanout/1000`.
fn fanout_via_patterns(c: &mut Criterion, payload: &simd_json::BorrowedValue<'_>) {
    const COUNT: usize = 1_000;
    let mut group = c.benchmark_group("fanout_patterns");
    let broker = Broker::new(&Config::default());
    let name = TopicName::parse("bench.fanout").expect("valid topic name");
    let every = TopicPattern::parse(">").expect("valid pattern");
    let subscribers = connections(&broker, COUNT);
    for subscriber in &subscribers {
        assert!(broker
            .subscribe_pattern(&every, subscriber)
            .expect("pattern subscribe"));
    }
    group.throughput(Throughput::Elements(COUNT as u64));
    let id = BenchmarkId::new("all_via_gt", COUNT);
    time_publishes(&mut group, id, &broker, &name, payload, &subscribers);
    group.finish();
}

/// The ten distinct patterns that match topic `a.<i>.b.c` and no other topic of
/// [`many_patterns`]: ten thousand patterns over a thousand topics.
fn patterns_of(i: usize) -> [String; 10] {
    [
        format!("a.{i}.b.*"),
        format!("a.{i}.*.c"),
        format!("*.{i}.b.c"),
        format!("a.{i}.>"),
        format!("a.{i}.b.>"),
        format!("*.{i}.*.c"),
        format!("*.{i}.b.*"),
        format!("a.{i}.*.*"),
        format!("*.{i}.>"),
        format!("*.{i}.*.*"),
    ]
}

/// 1,000 topics `a.<i>.b.c`, ten subscribers each, publishes going round the topics (ten
/// deliveries each): `10k_patterns` has each of 10,000 subscribers on its own distinct pattern
/// (issue 20: ≥ 0.8 × the throughput of `10k_exact`, the same fan-out by topic name). Each
/// broker is built only when its benchmark runs, so running one of them alone measures it on a
/// heap the other never touched.
fn many_patterns(c: &mut Criterion, payload: &simd_json::BorrowedValue<'_>) {
    const TOPICS: usize = 1_000;
    const PER_TOPIC: usize = 10;
    let mut group = c.benchmark_group("fanout_patterns");
    group.throughput(Throughput::Elements(PER_TOPIC as u64));
    let names: Vec<TopicName> = (0..TOPICS)
        .map(|i| TopicName::parse(&format!("a.{i}.b.c")).expect("valid topic name"))
        .collect();
    let build = |via_patterns: bool| {
        let broker = Broker::new(&Config::default());
        for name in &names {
            broker.create_topic(name).expect("create");
        }
        let subscribers = connections(&broker, TOPICS * PER_TOPIC);
        for (i, per_topic) in subscribers.chunks(PER_TOPIC).enumerate() {
            for (subscriber, pattern) in per_topic.iter().zip(patterns_of(i)) {
                if via_patterns {
                    let pattern = TopicPattern::parse(&pattern).expect("valid pattern");
                    assert!(broker
                        .subscribe_pattern(&pattern, subscriber)
                        .expect("pattern subscribe"));
                } else {
                    broker
                        .subscribe(&names[i], subscriber, &Replay::None, None, None)
                        .expect("subscribe");
                }
            }
        }
        (broker, subscribers)
    };
    for via_patterns in [false, true] {
        let id = if via_patterns {
            "10k_patterns"
        } else {
            "10k_exact"
        };
        let mut built = None;
        let mut rounds = Rounds::default();
        group.bench_function(BenchmarkId::new(id, TOPICS), |b| {
            let (broker, subscribers) = built.get_or_insert_with(|| build(via_patterns));
            let of_topic = |i: usize| &subscribers[i * PER_TOPIC..(i + 1) * PER_TOPIC];
            b.iter_custom(|iters| {
                rounds.publish(iters, broker, &names, payload, of_topic, PER_TOPIC)
            });
        });
    }
    group.finish();
}

/// Times publishes to `name` (see [`Rounds::publish`]) with every subscriber receiving each.
fn time_publishes(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: BenchmarkId,
    broker: &Broker,
    name: &TopicName,
    payload: &simd_json::BorrowedValue<'_>,
    subscribers: &[Subscriber],
) {
    let mut rounds = Rounds::default();
    let names = std::slice::from_ref(name);
    let all = |_| subscribers;
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            rounds.publish(iters, broker, names, payload, all, subscribers.len())
        });
    });
}

/// Publishing going round a list of topics.
#[derive(Default)]
struct Rounds {
    /// Index of the next topic to publish to.
    next: usize,
    /// Topics published to in the current batch.
    published: Vec<usize>,
}

impl Rounds {
    /// Times `iters` publishes going round `names` in batches of [`BATCH`], draining (untimed)
    /// the published topics' subscribers in between, and checks each publish reached
    /// `deliveries` of them.
    fn publish<'a>(
        &mut self,
        iters: u64,
        broker: &Broker,
        names: &[TopicName],
        payload: &simd_json::BorrowedValue<'_>,
        subscribers_of: impl Fn(usize) -> &'a [Subscriber],
        deliveries: usize,
    ) -> Duration {
        let mut elapsed = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let batch = left.min(BATCH as u64);
            let start = Instant::now();
            for _ in 0..batch {
                black_box(
                    broker
                        .publish(&names[self.next], Some("m-1"), Payload::Value(payload))
                        .expect("publish"),
                );
                self.published.push(self.next);
                self.next = (self.next + 1) % names.len();
            }
            elapsed += start.elapsed();
            // One topic's subscribers are drained once per batch, however often it was published.
            self.published.dedup();
            let frames: usize = self
                .published
                .drain(..)
                .map(|i| drain(subscribers_of(i)))
                .sum();
            // Not a timing check: every outbox got every frame, none was rejected.
            assert_eq!(frames, deliveries * batch as usize);
            left -= batch;
        }
        elapsed
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = fanout
}
criterion_main!(benches);
