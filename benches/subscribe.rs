//! Subscription churn: one subscribe plus one unsubscribe on a topic that already has 10, 1,000 or
//! 10,000 subscribers.
//!
//! A topic keeps its subscribers in a copy-on-write snapshot (`ArcSwap<Vec<Subscriber>>`) so that
//! publishes read it without a lock. The price is paid here: every subscribe and every unsubscribe
//! copies the whole list (one `Arc<Outbox>` clone per subscriber) and frees the old one, so the
//! cost grows linearly with the subscriber count. This bench shows how steep that line is.
//!
//! # What is measured
//! Per iteration, [`Broker::subscribe`] (topic lookup, sequencer lock, duplicate check, new
//! snapshot) followed by [`Topic::unsubscribe`] (sequencer lock, new snapshot without the
//! connection), leaving the topic as it was. `Replay::None` and no ack builder are used, so
//! nothing is queued; ack building is in `benches/codec.rs`. With no concurrent publishers the
//! old snapshot is freed at once, inside the measured part.
//!
//! Not measured: the session's own subscription map and the per-connection limit check.
//!
//! `pattern_subscribe_unsubscribe` (issue 20) does the same with a wildcard pattern on a broker
//! holding 1,000 topics and 10,000 distinct patterns: the pattern is added to the trie and listed
//! in every topic it matches, then removed again. `one_topic` matches one topic, `every_topic`
//! (`>`) all 1,000. Ten thousand pattern subscribes cost about 10,000 × the `one_topic` figure.
//!
//! `pattern_subscribe_all/10000_over_1000_topics` times 10,000 distinct pattern subscriptions
//! made one after another on a fresh broker with 1,000 topics (issue 20: < 1 s in all).
//!
//! # Running
//! ```text
//! cargo bench --bench subscribe
//! cargo bench --bench subscribe -- pattern
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use herald::broker::{Broker, Joining, Outbox, Subscriber, Topic};
use herald::config::SlowConsumerPolicy;
use herald::protocol::{Replay, TopicName, TopicPattern};
use herald::Config;

/// Subscribers already on the topic.
const EXISTING: [usize; 3] = [10, 1_000, 10_000];

/// A subscriber with a one-slot outbox: nothing is ever published in this bench.
fn subscriber(broker: &Broker) -> Subscriber {
    Subscriber {
        conn: broker.next_conn_id(),
        outbox: Arc::new(Outbox::new(1, SlowConsumerPolicy::Disconnect)),
        dialect: Default::default(),
    }
}

fn churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("subscribe_unsubscribe");
    for &existing in &EXISTING {
        let broker = Broker::new(&Config::default());
        let name = TopicName::parse("bench.subscribe").expect("valid topic name");
        let mut topic: Option<Arc<Topic>> = None;
        // Every subscribe counts in presence, as a server's do (issue 21).
        let joining = |s: &Subscriber| Joining {
            identity: format!("conn-{}", s.conn.0).into(),
            events: false,
        };
        for _ in 0..existing {
            let s = subscriber(&broker);
            topic = Some(
                broker
                    .subscribe(&name, &s, &Replay::None, None, Some(&joining(&s)))
                    .expect("subscribe"),
            );
        }
        let topic = topic.expect("at least one subscriber");
        let newcomer = subscriber(&broker);
        let newcomer_joins = joining(&newcomer);

        group.bench_function(BenchmarkId::from_parameter(existing), |b| {
            b.iter(|| {
                let t = broker
                    .subscribe(
                        &name,
                        black_box(&newcomer),
                        &Replay::None,
                        None,
                        Some(&newcomer_joins),
                    )
                    .expect("subscribe");
                black_box(t.unsubscribe(newcomer.conn))
            });
        });
        // Not a timing check: each iteration must have added and then removed the newcomer.
        assert_eq!(topic.subscriber_count(), existing);
    }
    group.finish();
}

/// Pattern churn on 1,000 topics (`t.0.x` … `t.999.x`) and 10,000 distinct patterns.
fn pattern_churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("pattern_subscribe_unsubscribe");
    let broker = Broker::new(&Config::default());
    let parse = |p: String| TopicPattern::parse(&p).expect("valid pattern");
    for i in 0..1_000 {
        let name = TopicName::parse(&format!("t.{i}.x")).expect("valid topic name");
        broker.create_topic(&name).expect("create");
    }
    let holder = subscriber(&broker);
    for i in 0..10_000 {
        let pattern = parse(format!("t.{i}.*"));
        assert!(broker
            .subscribe_pattern(&pattern, &holder)
            .expect("subscribe"));
    }
    let newcomer = subscriber(&broker);
    for (id, pattern) in [("one_topic", "t.5.>"), ("every_topic", ">")] {
        let pattern = parse(pattern.to_string());
        group.bench_function(id, |b| {
            b.iter(|| {
                broker
                    .subscribe_pattern(black_box(&pattern), &newcomer)
                    .expect("subscribe");
                black_box(broker.unsubscribe_pattern(&pattern, newcomer.conn))
            });
        });
    }
    // Not a timing check: every newcomer subscription was removed again.
    assert_eq!(broker.pattern_subscriptions(), 10_000);
    group.finish();
}

/// Subscribing 10,000 distinct patterns (ten per topic, each matching one of 1,000 topics
/// `a.<i>.b.c`, from 10,000 connections) on a fresh broker, timed as a whole (issue 20: < 1 s).
fn ten_thousand_patterns(c: &mut Criterion) {
    let mut group = c.benchmark_group("pattern_subscribe_all");
    group.sample_size(10);
    let forms = ["a.{}.b.*", "a.{}.*.c", "*.{}.b.c", "a.{}.>", "a.{}.b.>"];
    let forms = forms
        .iter()
        .chain(&["*.{}.*.c", "*.{}.b.*", "a.{}.*.*", "*.{}.>", "*.{}.*.*"]);
    let patterns: Vec<TopicPattern> = (0..1_000)
        .flat_map(|i| forms.clone().map(move |f| f.replace("{}", &i.to_string())))
        .map(|p| TopicPattern::parse(&p).expect("valid pattern"))
        .collect();
    assert_eq!(patterns.len(), 10_000);
    group.bench_function("10000_over_1000_topics", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let broker = Broker::new(&Config::default());
                for i in 0..1_000 {
                    let name = TopicName::parse(&format!("a.{i}.b.c")).expect("valid topic name");
                    broker.create_topic(&name).expect("create");
                }
                let subscribers: Vec<Subscriber> =
                    (0..patterns.len()).map(|_| subscriber(&broker)).collect();
                let start = std::time::Instant::now();
                for (pattern, s) in patterns.iter().zip(&subscribers) {
                    assert!(broker.subscribe_pattern(pattern, s).expect("subscribe"));
                }
                elapsed += start.elapsed();
                // Not a timing check: every subscription was made.
                assert_eq!(broker.pattern_subscriptions(), 10_000);
            }
            elapsed
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = churn, pattern_churn, ten_thousand_patterns
}
criterion_main!(benches);
