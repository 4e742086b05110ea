//! Codec: parsing a client frame and building server frames.
//!
//! Target (from the issue): parsing a ~200-byte publish frame in **≤ 1 µs**. The bench only
//! reports the number; it never asserts a timing.
//!
//! # What is measured
//! - `parse/simd_json+decode`: what a WebSocket session does with each text frame: copy the bytes
//!   into a reused scratch buffer, `simd_json::to_borrowed_value_with_buffers` with reused
//!   `Buffers`, then [`herald::protocol::decode`] into a `ClientFrame`. The input is the 200-byte
//!   [`PUBLISH_FRAME`].
//! - `parse/simd_json`: the same without `decode`, to split the two costs.
//! - `parse/serde_json_value`: `serde_json::from_slice::<serde_json::Value>` on the same bytes,
//!   for reference only; herald does not use it.
//! - `serialize/event`: [`Broker::publish`] on a topic with no subscribers, i.e. building the
//!   event frame (payload serialization, cached timestamp), sequencing, and the ring append
//!   (which drops the event the full ring evicts). It also includes the topic lookup and the
//!   `Published` reply data.
//! - `serialize/subscribe_ack` and `serialize/publish_ack`: the ack frames from
//!   `herald::protocol::server`, with a `request_id`.
//!
//! Not measured: the WebSocket framing and the socket write; dispatching the decoded frame.
//!
//! # Running
//! ```text
//! cargo bench --bench codec
//! cargo bench --bench codec -- parse    # only the parse group
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use herald::broker::Broker;
use herald::protocol::{self, server};
use herald::protocol::{Payload, Published, SubscribeAck, TopicName};
use herald::Config;

/// A publish frame as a client sends it: exactly 200 bytes (checked at start-up).
const PUBLISH_FRAME: &str = r#"{"type":"publish","topic":"orders.eu-west","request_id":"r-000123","message":{"id":"m-000123","payload":{"user":"u-0042","action":"checkout","amount_cents":12995,"currency":"EUR","items":[17,23,42]}}}"#;

fn parse(c: &mut Criterion) {
    assert_eq!(PUBLISH_FRAME.len(), 200);
    let input = PUBLISH_FRAME.as_bytes();

    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("simd_json+decode", |b| {
        let mut scratch = Vec::new();
        let mut buffers = simd_json::Buffers::default();
        b.iter(|| {
            scratch.clear();
            scratch.extend_from_slice(black_box(input));
            let value = simd_json::to_borrowed_value_with_buffers(&mut scratch, &mut buffers)
                .expect("valid JSON");
            let frame = protocol::decode(&value).expect("valid publish frame");
            black_box(&frame);
        });
    });
    group.bench_function("simd_json", |b| {
        let mut scratch = Vec::new();
        let mut buffers = simd_json::Buffers::default();
        b.iter(|| {
            scratch.clear();
            scratch.extend_from_slice(black_box(input));
            let value = simd_json::to_borrowed_value_with_buffers(&mut scratch, &mut buffers)
                .expect("valid JSON");
            black_box(&value);
        });
    });
    group.bench_function("serde_json_value", |b| {
        b.iter(|| {
            let value: serde_json::Value =
                serde_json::from_slice(black_box(input)).expect("valid JSON");
            black_box(value)
        });
    });
    group.finish();
}

fn serialize(c: &mut Criterion) {
    // The payload and request id come from decoding the same frame a client would send; a
    // `RequestId` can only be obtained that way outside the crate.
    let mut bytes = PUBLISH_FRAME.as_bytes().to_vec();
    let value = simd_json::to_borrowed_value(&mut bytes).expect("valid JSON");
    let frame = protocol::decode(&value).expect("valid publish frame");
    let topic = frame.topic.expect("publish has a topic");
    let request_id = frame.request_id.expect("frame has a request_id");
    let payload = frame.payload.expect("publish has a payload");
    let message_id = frame.message_id;

    let broker = Broker::new(&Config::default());
    let empty = TopicName::parse("bench.codec.empty").expect("valid topic name");
    // Create the topic and fill its ring so every measured publish also evicts one event.
    for _ in 0..Config::default().ring_buffer_size {
        broker
            .publish(&empty, message_id, Payload::Value(payload))
            .expect("publish");
    }
    let epoch = broker
        .get(empty.as_str())
        .expect("topic exists")
        .epoch()
        .to_string();

    let mut group = c.benchmark_group("serialize");
    group.throughput(Throughput::Elements(1));
    group.bench_function("event", |b| {
        b.iter(|| {
            black_box(
                broker
                    .publish(&empty, message_id, Payload::Value(payload))
                    .expect("publish"),
            )
        });
    });
    group.bench_function("subscribe_ack", |b| {
        let ack = SubscribeAck {
            seq: 123_456,
            epoch: &epoch,
            recovered: Some(true),
        };
        b.iter(|| {
            black_box(server::subscribe_ack(
                Some(&request_id),
                &topic,
                black_box(&ack),
            ))
        });
    });
    group.bench_function("publish_ack", |b| {
        let published = Published {
            id_json: r#""m-000123""#.into(),
            seq: 123_456,
        };
        b.iter(|| {
            black_box(server::publish_ack(
                Some(&request_id),
                &topic,
                black_box(&published),
            ))
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = parse, serialize
}
criterion_main!(benches);
